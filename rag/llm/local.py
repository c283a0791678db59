"""The local LLM: llama-cpp-python on a memory-mapped GGUF, one context, one lock.

`LocalLLM` loads the model with the planner's parameters, renders chats with the GGUF's own
template (llama-cpp-python's sandboxed Jinja2 formatter, kept sandboxed), counts tokens and
streams text pieces. Generation stops on EOS, stop strings, cancellation (checked between tokens)
or the deadline. `TicketLock` serialises callers first-come first-served and tells each its place
in the queue, so concurrent askers wait instead of crashing the shared context. No
LlamaRAMCache/LlamaDiskCache: llama-cpp-python's own longest-prefix reuse keeps the system prompt's
KV between questions.
"""

from __future__ import annotations

import codecs
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .. import llama_build
from ..errors import ModelError
from .planner import Plan

log = logging.getLogger(__name__)
# the load-time test render: a multi-turn chat, as templates that fail only past one message show
TEST_CHAT = [{"role": "system", "content": "Answer from the passages."}, {"role": "user", "content": "ping"},
             {"role": "assistant", "content": "pong"}, {"role": "user", "content": "and again?"}]
FALLBACK_TEMPLATE = (  # ChatML, used when a GGUF carries no template
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _template_errors() -> tuple:
    """What rendering a GGUF's chat template can raise (jinja2 is imported only with the model)."""
    from jinja2.exceptions import SecurityError, TemplateError

    return SecurityError, TemplateError, TypeError, ValueError, KeyError, IndexError


def _template_problem(exc: Exception) -> str:
    from jinja2.exceptions import SecurityError

    what = ("tried an unsafe operation, which the sandbox refused (nothing ran)" if isinstance(exc, SecurityError)
            else "cannot be rendered")
    return (f"the model's chat template {what} ({type(exc).__name__}: {str(exc)[:160]}); answering with the "
            "ChatML template instead: answers may be worse, use a GGUF from a trusted source or another model")


class TicketLock:
    """A FIFO lock that reports each waiter's position (0 = its turn). A ticket abandoned while
    waiting (a closed browser tab) is skipped when its turn comes, so nobody waits for it."""

    def __init__(self):
        self._cond = threading.Condition()
        self._next_ticket = 0
        self._serving = 0
        self._abandoned: set[int] = set()

    def take(self) -> int:
        with self._cond:
            ticket = self._next_ticket
            self._next_ticket += 1
            return ticket

    def position(self, ticket: int) -> int:
        return max(0, ticket - self._serving)

    @property
    def waiting(self) -> int:
        """Callers holding or waiting for the lock."""
        return self._next_ticket - self._serving - len(self._abandoned)

    def release(self, ticket: int) -> None:
        with self._cond:
            if self._serving != ticket:
                self._abandoned.add(ticket)
                return
            self._serving += 1
            while self._serving in self._abandoned:
                self._abandoned.discard(self._serving)
                self._serving += 1
            self._cond.notify_all()

    @contextmanager
    def hold_reporting(self, ticket: int, poll: float = 0.25):
        """Yield an iterator of queue positions that ends when it is `ticket`'s turn; exhaust it,
        then the block holds the lock. The ticket is released (or abandoned) on exit."""

        def positions():
            last = None
            while self.position(ticket) > 0:  # reported at once, then whenever it changes
                position = self.position(ticket)
                if position != last:
                    last = position
                    yield position
                with self._cond:
                    self._cond.wait_for(lambda: self._serving == ticket, poll)

        try:
            yield positions()
        finally:
            self.release(ticket)


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose KV was already in the context (prefix reuse)
    completion_tokens: int = 0
    first_token_s: float | None = None
    generate_s: float = 0.0
    finish_reason: str = ""  # stop | length | cancelled | timeout

    @property
    def tokens_per_s(self) -> float:
        decode = self.generate_s - (self.first_token_s or 0.0)
        return (self.completion_tokens - 1) / decode if self.completion_tokens > 1 and decode > 0 else 0.0


class LocalLLM:
    def __init__(self, path: Path, plan: Plan, chat_template: str | None):
        llama_build.load_backends()
        from jinja2.exceptions import TemplateError
        from llama_cpp import Llama

        try:
            self.llama = Llama(model_path=str(path), verbose=False, **plan.llama_kwargs())
        except TemplateError as exc:  # llama-cpp-python compiles every template the GGUF carries
            raise ModelError(f"{path.name}: its chat template does not compile ({type(exc).__name__}: {exc}), and "
                             "llama-cpp-python will not load such a file: use another GGUF of this model") from exc
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not load {path} ({exc}): the file may be corrupt or need a "
                             "newer llama-cpp-python; check it with `python -m rag plan`") from exc
        self.path = path
        self.n_ctx = self.llama.n_ctx()
        self.lock = TicketLock()
        self._last_sequence: tuple[str, list[int]] = ("", [])  # (rendered text, its token ids) in the KV cache
        self.template_fallback = ""  # why the GGUF's own chat template is not used ("" = it is)
        self._formatter = self._make_formatter(chat_template or FALLBACK_TEMPLATE)

    def _make_formatter(self, template: str):
        """The GGUF's template, test-rendered with a multi-turn chat. One the sandbox stops (it reached for
        Python internals) or that cannot be rendered (a missing include, a bad filter) is replaced by
        ChatML, with the reason kept in `template_fallback` (status, panel) and logged."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def text(token: int) -> str:
            return self.llama.detokenize([token], special=True).decode("utf-8", errors="ignore") if token >= 0 else ""

        def build(source: str):
            formatter = Jinja2ChatFormatter(source, eos_token=text(self.llama.token_eos()),
                                            bos_token=text(self.llama.token_bos()))
            formatter(messages=TEST_CHAT)  # fail now, not mid-chat
            return formatter

        try:
            return build(template)
        except _template_errors() as exc:
            self.template_fallback = _template_problem(exc)
            log.warning("%s: %s", self.path.name, self.template_fallback)
            return build(FALLBACK_TEMPLATE)

    def _render(self, messages: list[dict]):
        """The chat rendered with the model's template; a template that fails on this chat (the sandbox
        refused something, an error only some conversations reach) is replaced by ChatML from now on."""
        try:
            return self._formatter(messages=messages)
        except _template_errors() as exc:
            if self.template_fallback:
                raise ModelError(f"the chat could not be rendered ({exc}); clear the chat and ask again") from exc
            self.template_fallback = _template_problem(exc)
            log.warning("%s: %s", self.path.name, self.template_fallback)
            self._formatter = self._make_formatter(FALLBACK_TEMPLATE)
            self._last_sequence = ("", [])
            return self._formatter(messages=messages)

    def tokenize_chat(self, messages: list[dict]) -> tuple[list[int], list[str], str]:
        """Token ids of the rendered chat (with the generation prompt), its stop strings, and its text.

        If the rendered text starts with the last evaluated sequence (its prompt + the answer as
        generated), those exact token ids are reused and only the rest is tokenized: re-tokenizing
        an answer need not give the ids the model generated, which would break the KV prefix match."""
        rendered = self._render(messages)
        stop = rendered.stop if isinstance(rendered.stop, list) else [rendered.stop] if rendered.stop else []
        text = rendered.prompt
        last_text, last_tokens = self._last_sequence
        if last_text and text.startswith(last_text):
            tokens = last_tokens + self.llama.tokenize(text[len(last_text):].encode("utf-8"), add_bos=False,
                                                       special=True)
        else:
            tokens = self.llama.tokenize(text.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        return tokens, [s for s in stop if s], text

    def count_chat(self, messages: list[dict]) -> int:
        return len(self.tokenize_chat(messages)[0])

    def _reused(self, tokens: list[int]) -> int:
        """Length of the prefix of `tokens` already evaluated in the context."""
        cached = self.llama.input_ids[: self.llama.n_tokens]
        n = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            n += 1
        return min(n, len(tokens) - 1)  # llama.cpp re-evaluates at least the last token

    def is_end(self, token: int) -> bool:
        """End-of-generation tokens (EOS, <|im_end|>, <|eot_id|> ...) as the model's vocabulary defines them."""
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token))

    def stream(self, messages: list[dict], max_tokens: int, temperature: float, stats: GenerationStats,
               cancel: threading.Event | None = None, deadline: float | None = None) -> Iterator[str]:
        """Yield text pieces; the caller must hold `self.lock`. `stats` is filled in as it goes.

        Drives Llama.generate() token by token with an incremental UTF-8 decoder: linear in the
        answer length (create_completion's streaming re-detokenizes the whole answer per token)."""
        tokens, stop, prompt_text = self.tokenize_chat(messages)
        max_tokens = max(1, min(max_tokens, self.n_ctx - len(tokens)))
        generated: list[int] = []
        answer, cut = "", -1
        stats.prompt_tokens, stats.reused_tokens = len(tokens), self._reused(tokens)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        hold = max((len(s) for s in stop), default=1) - 1  # tail that may be the start of a stop string
        pending, began = "", time.perf_counter()
        generator = self.llama.generate(tokens, top_k=40, top_p=0.95, min_p=0.05, temp=temperature,
                                        repeat_penalty=1.1)
        try:
            for token in generator:
                if stats.first_token_s is None:
                    stats.first_token_s = time.perf_counter() - began
                if self.is_end(token):
                    stats.finish_reason = "stop"
                    break
                stats.completion_tokens += 1
                generated.append(token)
                pending += decoder.decode(self.llama.detokenize([token]))
                cut = min((i for i in (pending.find(s) for s in stop) if i >= 0), default=-1)
                if cut >= 0:
                    pending, stats.finish_reason = pending[:cut], "stop"
                    break
                if len(pending) > hold:
                    answer += pending[: len(pending) - hold]
                    yield pending[: len(pending) - hold]
                    pending = pending[len(pending) - hold:]
                if stats.completion_tokens >= max_tokens:
                    stats.finish_reason = "length"
                    break
                if cancel is not None and cancel.is_set():
                    stats.finish_reason = "cancelled"
                    break
                if deadline is not None and time.monotonic() > deadline:
                    stats.finish_reason = "timeout"
                    break
            pending += decoder.decode(b"", final=True)
            if pending and stats.finish_reason in ("stop", "length"):
                answer += pending
                yield pending
            # remember text -> ids only when the answer text is exactly the generated tokens' text
            whole = cut < 0 if stats.finish_reason == "stop" else stats.finish_reason == "length"
            self._last_sequence = (prompt_text + answer, tokens + generated) if whole else ("", [])
        finally:
            generator.close()
            stats.generate_s = time.perf_counter() - began
