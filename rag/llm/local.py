"""The local model: one owner (`LocalBackend`) and the llama.cpp runner it loads (`LocalLLM`).

`LocalBackend` is the chain's `local` entry: it owns the GGUF path, its metadata, the memory plan,
the crash probe, the lazily loaded `LocalLLM`, the cache fingerprint, availability and status.
`LocalLLM` loads the model with the planner's parameters, renders chats with the GGUF's own
template (llama-cpp-python's sandboxed Jinja2 formatter, kept sandboxed), counts tokens and
streams text pieces. Generation stops on EOS, stop strings, cancellation (checked between tokens)
or the deadline. Its `TicketLock` serialises callers first-come first-served and tells each its
place in the queue, so concurrent askers wait instead of crashing the shared context. No
LlamaRAMCache/LlamaDiskCache: llama-cpp-python's own longest-prefix reuse keeps the system prompt's
KV between questions.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from .. import failpoints, llama_build
from ..config import Settings
from ..errors import ModelError, RagError
from ..lazy import Lazy
from ..status import ModelStatus
from . import planner, probe
from .base import BackendStatus, GenerationStats
from .endpoints import BackendKind
from .gguf import GGUFMeta, read_meta
from .planner import Plan
from .templates import Template, fallback
from .ticket import TicketLock

log = logging.getLogger(__name__)
# the load-time test render: a multi-turn chat, as templates that fail only past one message show
TEST_CHAT = [
    {"role": "system", "content": "Answer from the passages."},
    {"role": "user", "content": "ping"},
    {"role": "assistant", "content": "pong"},
    {"role": "user", "content": "and again?"},
]


def _template_errors() -> tuple:
    """What rendering a GGUF's chat template can raise (jinja2 is imported only with the model)."""
    from jinja2.exceptions import SecurityError, TemplateError

    return SecurityError, TemplateError, TypeError, ValueError, KeyError, IndexError


def _template_problem(exc: Exception, instead: Template) -> str:
    from jinja2.exceptions import SecurityError

    what = (
        "tried an unsafe operation, which the sandbox refused (nothing ran)"
        if isinstance(exc, SecurityError)
        else "cannot be rendered"
    )
    return (
        f"the model's chat template {what} ({type(exc).__name__}: {str(exc)[:160]}); answering with the "
        f"built-in {instead.name} template instead: answers may be worse, use a GGUF from a trusted source "
        "or another model"
    )


class LocalLLM:
    name = "local"

    def __init__(self, path: Path, plan: Plan, chat_template: str | None):
        llama_build.load_backends()
        import llama_cpp
        from jinja2.exceptions import TemplateError
        from llama_cpp import Llama

        try:
            self.llama = Llama(model_path=str(path), verbose=False, **plan.llama_kwargs())
        except TemplateError as exc:  # llama-cpp-python compiles every template the GGUF carries
            raise ModelError(
                f"{path.name}: its chat template does not compile ({type(exc).__name__}: {exc}), and "
                "llama-cpp-python will not load such a file: use another GGUF of this model"
            ) from exc
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(
                f"llama.cpp could not load {path} ({exc}): the file may be corrupt or need a "
                "newer llama-cpp-python; check it with `python -m rag plan`"
            ) from exc
        self.path = path
        self.n_ctx = self.llama.n_ctx()
        self.lock = TicketLock()
        self._last_sequence: tuple[str, list[int]] = ("", [])  # (rendered text, its token ids) in the KV cache
        # sliding-window layers keep only the last tokens' KV (swa_full off, see planner): a prefix whose
        # window was evicted cannot be reused
        self.window = llama_cpp.llama_model_n_swa(self.llama._model.model) if "swa_full" in plan.choices else 0
        self.template_fallback = ""  # why the GGUF's own chat template is not used ("" = it is)
        self.fallback = fallback(self._is_control_token)
        self.stops: tuple[str, ...] = ()  # stop strings the template adds to the model's end-of-turn tokens
        if chat_template is None:
            self.template_fallback = (
                f"the GGUF carries no chat template (a base model?): answering with the built-in "
                f"{self.fallback.name} template its vocabulary fits"
            )
        self._formatter = self._make_formatter(chat_template)

    def _is_control_token(self, marker: str) -> bool:
        ids = self.llama.tokenize(marker.encode(), add_bos=False, special=True)
        return len(ids) == 1

    def _make_formatter(self, template: str | None):
        """The GGUF's template, test-rendered with a multi-turn chat. One the sandbox stops (it reached for
        Python internals) or that cannot be rendered (a missing include, a bad filter) is replaced by
        the built-in template the vocabulary fits (templates.py), with the reason kept in
        `template_fallback` (status, panel) and logged. None: the GGUF has no template, use that one."""
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def text(token: int) -> str:
            return self.llama.detokenize([token], special=True).decode("utf-8", errors="ignore") if token >= 0 else ""

        def build(source: str):
            formatter = Jinja2ChatFormatter(
                source, eos_token=text(self.llama.token_eos()), bos_token=text(self.llama.token_bos())
            )
            formatter(messages=TEST_CHAT)  # type: ignore[arg-type]  # fail now, not mid-chat
            return formatter

        if template is None:
            self.stops = self.fallback.stops
            return build(self.fallback.source)
        try:
            return build(template)
        except _template_errors() as exc:
            self.template_fallback = _template_problem(exc, self.fallback)
            log.warning("%s: %s", self.path.name, self.template_fallback)
            self.stops = self.fallback.stops
            return build(self.fallback.source)

    def _render(self, messages: list[dict]):
        """The chat rendered with the model's template; a template that fails on this chat (the sandbox
        refused something, an error only some conversations reach) is replaced by ChatML from now on."""
        try:
            return self._formatter(messages=messages)
        except _template_errors() as exc:
            if self.template_fallback:
                raise ModelError(f"the chat could not be rendered ({exc}); clear the chat and ask again") from exc
            self.template_fallback = _template_problem(exc, self.fallback)
            log.warning("%s: %s", self.path.name, self.template_fallback)
            self._formatter = self._make_formatter(None)
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
            tokens = last_tokens + self.llama.tokenize(
                text[len(last_text) :].encode("utf-8"), add_bos=False, special=True
            )
        else:
            tokens = self.llama.tokenize(text.encode("utf-8"), add_bos=not rendered.added_special, special=True)
        return tokens, [s for s in (*stop, *self.stops) if s], text

    def count_chat(self, messages: list[dict]) -> int:
        return len(self.tokenize_chat(messages)[0])

    def queue(self):
        """Wait for the one context: yields places ahead until it is this caller's turn."""
        return self.lock.hold_reporting(self.lock.take())

    def _reused(self, tokens: list[int]) -> int:
        """Length of the prefix of `tokens` already evaluated in the context."""
        cached = self.llama.input_ids[: self.llama.n_tokens]
        n = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            n += 1
        n = min(n, len(tokens) - 1)  # llama.cpp re-evaluates at least the last token
        if n and self.window and not self._window_kept(n):
            self.llama.reset()  # evaluate the whole prompt again (the KV is overwritten from position 0)
            return 0
        return n

    def _window_kept(self, n: int) -> bool:
        """Whether the KV of the `window` tokens before position `n` is still cached, so generation can go
        on from `n`. A sliding-window cache drops older positions; llama.cpp's server makes the same check."""
        import llama_cpp

        oldest = llama_cpp.llama_memory_seq_pos_min(llama_cpp.llama_get_memory(self.llama._ctx.ctx), 0)
        return oldest <= max(0, n - self.window)

    def is_end(self, token: int) -> bool:
        """End-of-generation tokens (EOS, <|im_end|>, <|eot_id|> ...) as the model's vocabulary defines them."""
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llama._model.vocab, token))

    def stream(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stats: GenerationStats,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]:
        """Yield text pieces; the caller must be inside `queue()`. `stats` is filled in as it goes.

        Drives Llama.generate() token by token with an incremental UTF-8 decoder: linear in the
        answer length (create_completion's streaming re-detokenizes the whole answer per token)."""
        tokens, template_stop, prompt_text = self.tokenize_chat(messages)
        stop = [*template_stop, *(s for s in stop if s not in template_stop)]
        max_tokens = max(1, min(max_tokens, self.n_ctx - len(tokens)))
        generated: list[int] = []
        answer, cut = "", -1
        stats.prompt_tokens, stats.reused_tokens = len(tokens), self._reused(tokens)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        hold = max((len(s) for s in stop), default=1) - 1  # tail that may be the start of a stop string
        pending, began = "", time.perf_counter()
        generator = self.llama.generate(tokens, top_k=40, top_p=0.95, min_p=0.05, temp=temperature, repeat_penalty=1.1)
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
                    pending = pending[len(pending) - hold :]
                if stats.completion_tokens >= max_tokens:
                    stats.finish_reason = "length"
                    break
                if cancel is not None and cancel.is_set():
                    stats.finish_reason = "cancelled"
                    break
                if deadline is not None and time.monotonic() > deadline:
                    stats.finish_reason = "timeout"
                    break
            # a character cut off by MAX_TOKENS (its first bytes generated, the rest not) is dropped,
            # not shown as U+FFFD
            torn = bool(decoder.getstate()[0])
            if pending and stats.finish_reason in ("stop", "length"):
                answer += pending
                yield pending
            # remember text -> ids only when the answer text is exactly the generated tokens' text
            whole = cut < 0 if stats.finish_reason == "stop" else stats.finish_reason == "length" and not torn
            self._last_sequence = (prompt_text + answer, tokens + generated) if whole else ("", [])
        finally:
            generator.close()
            stats.generate_s = time.perf_counter() - began


class LocalBackend:
    """The chain's `local` entry: llama.cpp in this process on MODEL_PATH, loaded on first need."""

    name = "local"
    kind: BackendKind = "local"

    def __init__(self, settings: Settings):
        self.settings = settings
        self.path = settings.model_path
        self.meta: GGUFMeta | None = None  # set by the loader, before the plan
        self.plan: Plan | None = None
        self.model: Lazy[LocalLLM] = Lazy("model", self._load)

    def _load(self) -> LocalLLM:
        failpoints.hit("model.load")
        if self.path is None:
            raise ModelError(
                "no GGUF in models/: place one or set MODEL_PATH; answering from your documents only until then"
            )
        meta = read_meta(self.path)
        plan = planner.plan(meta, self.settings, planner.probe())
        self.meta, self.plan = meta, plan
        for warning in plan.warnings:
            log.warning("%s", warning)
        # loaded and run once in a child first: a crash there (bad file, CPU kernel) spares the server
        probe.probe(self.path, self.fingerprint(), self.settings.cache_dir, plan.llama_kwargs())
        return LocalLLM(self.path, plan, meta.chat_template)

    def fingerprint(self) -> str:
        """The model file's identity for the cache: name, size and mtime. "none" without a file."""
        if self.path is None or not self.path.exists():
            return "none"
        st = self.path.stat()
        return hashlib.sha256(f"{self.path.name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]

    def start(self) -> None:
        self.model.start_if_idle()

    @property
    def loading(self) -> bool:
        return self.model.state == "loading"

    def will_load(self, wait: bool) -> bool:
        return wait and not self.model.ready and self.model.state != "failed"

    def unavailable(self, wait: bool) -> str:
        if self.model.ready or (wait and self.model.state != "failed"):
            return ""
        return str(self.model.error) if self.model.state == "failed" else "the model is still loading"

    def acquire(self, wait: bool) -> tuple[LocalLLM | None, str]:
        self.model.start_if_idle()  # a fallback loads when first asked for
        if wait and self.model.state != "failed":
            try:
                return self.model.get(), ""
            except RagError as exc:
                return None, str(exc)
        if self.model.ready:
            return self.model.peek(), ""
        return None, self.unavailable(False)

    def refresh(self, timeout: float) -> None:
        """Wait up to `timeout` s for the model to load (a failure stays in the status)."""
        try:
            self.model.get(timeout=timeout)
        except (RagError, TimeoutError):
            pass

    def status(self) -> BackendStatus:
        return BackendStatus(
            self.name, self.kind, self.model.state, str(self.model.error) if self.model.error else None
        )

    def details(self) -> ModelStatus:
        """The file, its plan and the build, for the panel and `rag status`."""
        llm, meta = self.model.peek(), self.meta
        return ModelStatus(
            path=str(self.path) if self.path else None,
            file_bytes=meta.file_size if meta else None,
            architecture=meta.architecture if meta else None,
            quantization=meta.quantization if meta else None,
            n_ctx=llm.n_ctx if llm else None,
            queue=llm.lock.waiting if llm else 0,
            template_problem=(llm.template_fallback or None) if llm else None,
            plan=self.plan,
            llama_build=llama_build.describe(),
            bundled=self.settings.model_is_bundled,
        )
