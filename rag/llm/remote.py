"""An OpenAI-compatible chat server as a backend: Ollama, LM Studio, llama.cpp's server, vLLM.

`RemoteLLM` is both a chain `Backend` and its own `ChatModel` (base.py) on the `openai` SDK,
with its own policy instead of the SDK's retries: connect/read timeouts per request, a total budget
for getting the first token, retries with full-jitter exponential backoff on connection errors, 5xx
and 429 (Retry-After honoured), never on another 4xx or a timeout (a stalled server is left for the
next backend at once), and a circuit breaker (health.py). Failing before the first token raises
BackendDown; failing after it raises StreamBroken. Prompt tokens are counted with the server's
tokenizer endpoint where it has one (llama-cpp-python: /extras/tokenize/count; llama.cpp server
and vLLM: /tokenize), else estimated on the safe side (`estimate_tokens`): an overestimate only drops
a passage, an underestimate would overflow the server's context. The API key is sent, never logged or shown.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING

from ..errors import BackendDown, StreamBroken
from .base import BackendStatus, GenerationStats, RemoteHealth
from .endpoints import BackendKind, Endpoint

if TYPE_CHECKING:
    import openai
from .health import PROBE, SKIP, Breaker, Health

PER_MESSAGE = 8  # tokens for a message's role markers in common chat templates, rounded up
BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 4.0
PROBE_TIMEOUT_S = 2.0
COUNT_MEMO = 2048
DEFAULT_CTX = 4096  # when LLM_CTX is unset and the server does not report its context


class _Failure(Exception):
    def __init__(self, kind: str, message: str, retryable: bool = False, retry_after: float = 0.0, counts: bool = True):
        super().__init__(message)
        self.kind, self.retryable, self.retry_after = kind, retryable, retry_after
        self.counts = counts  # towards the breaker: a 4xx says the server is up


def estimate_tokens(text: str) -> int:
    """On the safe side of BPE chat tokenizers (Llama 3, Qwen, Gemma): one token per 3.5 ASCII letters,
    digits or spaces, one per ASCII punctuation mark, two per other character (byte-fallback
    vocabularies may use three per Hangul syllable). Example: 'hello world' -> 4; '안녕하세요' -> 11."""
    punct = sum(c < "\x80" and not (c.isalnum() or c.isspace()) for c in text)
    plain = sum(c < "\x80" for c in text) - punct
    return int(plain / 3.5) + punct + 2 * (len(text) - plain - punct) + 1


def backoff_s(attempt: int, retry_after: float = 0.0) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)], at least the server's Retry-After."""
    return max(retry_after, random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)))


class RemoteLLM:
    kind: BackendKind = "openai"

    def __init__(self, endpoint: Endpoint, settings):
        self.endpoint, self.settings = endpoint, settings
        self.name = endpoint.name
        # LLM_CTX, or what the server reports (found on first use), else DEFAULT_CTX
        self.known_ctx: int | None = settings.llm_ctx or None
        self.ctx_source = "LLM_CTX" if settings.llm_ctx else ""
        self.model = endpoint.model or settings.llm_model  # "" until the server names its first model
        self.breaker = Breaker(settings.llm_breaker_failures, settings.llm_breaker_cooldown_s)
        self.health = Health()
        self._client: openai.OpenAI | None = None
        self._lock = threading.Lock()
        self._count_route: str | None = None  # tokenizer endpoint that worked, "" = none (estimate)
        self._counts: OrderedDict[str, int] = OrderedDict()

    @property
    def token_counter(self) -> str:
        """How prompt tokens are counted: the server's tokenizer route, "estimate", or "" before the first count."""
        return "" if self._count_route is None else self._count_route or "estimate"

    def fingerprint(self) -> str:
        """What identifies this backend's answers in the cache: server and configured model."""
        return f"{self.endpoint.url}#{self.endpoint.model or self.settings.llm_model}"

    # ---- plumbing ------------------------------------------------------------------------
    @property
    def client(self):
        with self._lock:
            if self._client is None:
                import openai  # imported on first use: 0.5 s, not on the page's first paint

                # a placeholder key, never the OPENAI_API_KEY of the environment: that is not this server's
                self._client = openai.OpenAI(
                    base_url=self.endpoint.url,
                    api_key=self.settings.llm_api_key or "none",
                    max_retries=0,
                    timeout=self._timeout(self.settings.llm_read_timeout_s),
                )
            return self._client

    def _timeout(self, read_s: float):
        import openai

        connect = min(self.settings.llm_connect_timeout_s, read_s)
        return openai.Timeout(connect=connect, read=read_s, write=read_s, pool=connect)

    def _root(self) -> str:
        """The server's root: tokenizer endpoints live beside /v1, not under it."""
        url = self.endpoint.url
        return url[: -len("/v1")] if url.endswith("/v1") else url

    def _scrub(self, text: str) -> str:
        key = self.settings.llm_api_key
        return text.replace(key, "***") if key else text

    def _classify(self, exc: Exception) -> _Failure:
        import openai

        if isinstance(exc, _Failure):
            return exc
        if isinstance(exc, openai.APITimeoutError):
            return _Failure("timeout", "no response within the timeout (LLM_CONNECT_TIMEOUT_S / LLM_READ_TIMEOUT_S)")
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            return _Failure("connect", f"connection failed ({type(cause).__name__}: {cause})"[:300], retryable=True)
        if isinstance(exc, openai.APIStatusError):
            code = exc.status_code
            detail = self._scrub(str(exc.message))[:200]
            if code == 429 or code >= 500:
                return _Failure(
                    "http_429" if code == 429 else "http_5xx",
                    f"HTTP {code}: {detail}",
                    retryable=True,
                    retry_after=_retry_after(exc.response),
                )
            hint = {
                401: "check LLM_API_KEY",
                403: "check LLM_API_KEY",
                404: "is the URL the API base (it usually ends in /v1) and LLM_MODEL a model the server has?",
                400: "if the prompt is too long for the server, set LLM_CTX to its context size",
            }.get(code, "")
            return _Failure("http_4xx", f"HTTP {code}: {detail}" + (f" — {hint}" if hint else ""), counts=False)
        if isinstance(exc, openai.APIError):
            return _Failure("broken", f"bad response ({self._scrub(str(exc))[:200]})", retryable=True)
        if isinstance(exc, ValueError):  # json.JSONDecodeError: a chunk of the stream is not JSON
            return _Failure(
                "broken", f"the server sent a chunk that is not valid JSON ({str(exc)[:120]})", retryable=True
            )
        raise exc

    def _record(self, failure: _Failure) -> None:
        self.health.error(failure.kind, failure.args[0], reachable=failure.kind.startswith("http_"))

    # ---- availability ------------------------------------------------------------------------
    def start(self) -> None:
        """Nothing to load: the client is made on first use."""

    def will_load(self, wait: bool) -> bool:
        return False

    def unavailable(self, wait: bool) -> str:
        if self.breaker.remaining_s() == 0:
            return ""
        return f"circuit breaker open ({self.health.last_error})"

    def acquire(self, wait: bool) -> tuple[RemoteLLM | None, str]:
        """(self, "") if a request may go to this server now, else (None, why it is skipped)."""
        decision = self.breaker.check()
        if decision == SKIP:
            return None, (
                f"skipped: circuit breaker open after {self.breaker.failures} failures, "
                f"probed again in {self.breaker.remaining_s():.0f} s (last error: {self.health.last_error})"
            )
        if decision == PROBE:
            ok, message = self.ping()
            self.breaker.probed(ok)
            if not ok:
                return None, f"skipped: probe failed ({message}); breaker stays open"
        return self, ""

    def refresh(self, timeout: float) -> None:
        self.ping()  # reachability now, not just what this process has seen

    def queue(self):
        """A server queues requests itself: no waiting here."""
        return nullcontext(iter(()))

    def status(self) -> BackendStatus:
        b = self.breaker
        health = RemoteHealth(
            model=self.model or None,
            n_ctx=self.known_ctx,
            n_ctx_source=self.ctx_source,
            breaker=b.state,
            consecutive_failures=b.failures,
            probe_in_s=round(b.remaining_s(), 1),
            breaker_opened=b.opened_count,
            token_counter=self.token_counter,
            **self.health.snapshot(),
        )
        return BackendStatus(self.name, self.kind, b.state, health.last_error or None, health)

    def ping(self) -> tuple[bool, str]:
        """GET /models with a short timeout: (reachable, "" or the error). Recorded in health."""
        try:
            self.client.models.list(timeout=self._timeout(min(PROBE_TIMEOUT_S, self.settings.llm_read_timeout_s)))
        except Exception as exc:  # noqa: BLE001 - classified; anything unexpected is re-raised there
            failure = self._classify(exc)
            self._record(failure)
            return False, failure.args[0]
        self.health.reached()
        return True, ""

    @property
    def n_ctx(self) -> int:
        """The server's context size: LLM_CTX if set, else asked once (BackendDown if unreachable)."""
        if self.known_ctx is None:
            self.known_ctx, self.ctx_source = self._retrying(self._detect_ctx)
        return self.known_ctx

    def _detect_ctx(self, give_up: float) -> tuple[int, str]:
        """vLLM lists `max_model_len` with each model; llama.cpp's server has /props."""
        import openai

        timeout = self._timeout(max(0.1, min(PROBE_TIMEOUT_S * 2, give_up - time.monotonic())))
        models = self.client.models.list(timeout=timeout).data
        if not self.model and models:
            self.model = models[0].id  # saves _model_name asking again
        for m in models:
            n = (m.model_extra or {}).get("max_model_len")
            if isinstance(n, int) and n > 0 and m.id == self.model:
                return n, "server (max_model_len)"
        try:
            props = self.client.get(self._root() + "/props", cast_to=object, options={"timeout": timeout})
        except openai.APIStatusError as exc:
            if exc.status_code not in (400, 404, 405, 422):
                raise
            props = None
        settings = props.get("default_generation_settings") if isinstance(props, dict) else None
        n = settings.get("n_ctx") if isinstance(settings, dict) else None
        if isinstance(n, int) and n > 0:
            return n, "server (/props)"
        return DEFAULT_CTX, "default: the server does not report it; set LLM_CTX"

    def _model_name(self, timeout) -> str:
        if not self.model:
            models = self.client.models.list(timeout=timeout).data
            if not models:
                raise _Failure("http_4xx", "the server lists no models: load one or set LLM_MODEL", counts=False)
            self.model = models[0].id
        return self.model

    # ---- token counting --------------------------------------------------------------------
    def count_chat(self, messages: list[dict]) -> int:
        return sum(self._count(m["content"]) + PER_MESSAGE for m in messages) + PER_MESSAGE

    def _count(self, text: str) -> int:
        with self._lock:
            n = self._counts.get(text)
            if n is not None:
                self._counts.move_to_end(text)
                return n
        n = self._retrying(lambda give_up: self._server_count(text, give_up))  # a server down here is down
        with self._lock:
            self._counts[text] = n
            if len(self._counts) > COUNT_MEMO:
                self._counts.popitem(last=False)
        return n

    def _server_count(self, text: str, give_up: float) -> int:
        import openai

        routes = [self._count_route] if self._count_route is not None else ["/extras/tokenize/count", "/tokenize"]
        timeout = self._timeout(max(0.1, min(self.settings.llm_read_timeout_s, give_up - time.monotonic())))
        for route in filter(None, routes):
            body = {"input": text, "content": text, "prompt": text}
            if self.model:
                body["model"] = self.model
            try:
                reply = self.client.post(self._root() + route, body=body, cast_to=object, options={"timeout": timeout})
            except openai.APIStatusError as exc:
                if exc.status_code in (400, 404, 405, 422):
                    continue  # not this server's route
                raise
            n = reply.get("count") if isinstance(reply, dict) else None
            if n is None and isinstance(reply, dict) and isinstance(reply.get("tokens"), list):
                n = len(reply["tokens"])
            if isinstance(n, int):
                self._count_route = route
                return n
        self._count_route = ""
        return estimate_tokens(text)

    # ---- streaming ---------------------------------------------------------------------------
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
        """Yield text pieces as the server sends them (it applies the `stop` strings); fills `stats` like
        LocalLLM.stream."""
        began = time.perf_counter()
        stats.prompt_tokens = self.count_chat(messages)
        response, first, finish = self._start(messages, max_tokens, temperature, cancel, stop)
        stats.first_token_s = time.perf_counter() - began
        self.health.ok(stats.first_token_s * 1000)
        self.breaker.success()
        watchdog = _Watchdog(response, self.settings.llm_read_timeout_s, deadline)
        try:
            if first:
                stats.completion_tokens += 1
                yield first
            for text, reason in _pieces(response) if not finish else ():
                if cancel is not None and cancel.is_set():
                    finish = "cancelled"
                    break
                if deadline is not None and time.monotonic() > deadline:
                    finish = "timeout"
                    break
                if text:
                    watchdog.progress()
                    stats.completion_tokens += 1
                    yield text
                if reason:
                    finish = _finish(reason)
                    break
        except Exception as exc:  # noqa: BLE001 - classified; the answer so far stays with the caller
            if watchdog.fired != "timeout":
                raise self._broken(watchdog.why() or self._classify(exc).args[0]) from None
        finally:
            watchdog.stop()
            response.close()
            stats.generate_s = time.perf_counter() - began
        if watchdog.fired == "timeout":
            finish = "timeout"  # GEN_TIMEOUT_S: the answer so far is the answer, as for the local model
        elif watchdog.fired:
            raise self._broken(watchdog.why())
        if not finish:
            raise self._broken("the stream ended before the answer finished")
        stats.finish_reason = finish

    def _broken(self, message: str) -> StreamBroken:
        self._record(_Failure("midstream", message))
        self.breaker.failure()
        return StreamBroken(f"{self.name} failed mid-answer: {message}")

    def _start(self, messages, max_tokens, temperature, cancel, stop=()):
        """(response, first text, finish reason if it already ended), under the retry policy."""
        return self._retrying(lambda give_up: self._first(messages, max_tokens, temperature, give_up, stop), cancel)

    def _retrying(self, action, cancel: threading.Event | None = None):
        """`action(give_up)` retried on connection errors, 5xx, 429 and broken streams, with backoff,
        within LLM_TOTAL_TIMEOUT_S; BackendDown when it gives up (one breaker failure per request)."""
        give_up = time.monotonic() + self.settings.llm_total_timeout_s
        attempt = 0
        while True:
            self.health.attempt()
            try:
                return action(give_up)
            except Exception as exc:  # noqa: BLE001 - classified; unknown errors are re-raised there
                failure = self._classify(exc)
            self._record(failure)
            delay = backoff_s(attempt, failure.retry_after)
            if not failure.retryable or attempt >= self.settings.llm_retries or time.monotonic() + delay >= give_up:
                if failure.counts:
                    self.breaker.failure()
                tries = f" ({attempt + 1} attempts)" if attempt else ""
                raise BackendDown(f"{self.name}: {failure.args[0]}{tries}")
            attempt += 1
            if cancel is not None and cancel.wait(delay):
                raise BackendDown(f"{self.name}: stopped by the user")
            if cancel is None:
                time.sleep(delay)

    def _first(self, messages, max_tokens, temperature, give_up, stop=()):
        remaining = give_up - time.monotonic()
        timeout = self._timeout(max(0.1, min(self.settings.llm_read_timeout_s, remaining)))
        response = self.client.chat.completions.create(
            model=self._model_name(timeout),
            messages=messages,
            max_tokens=max_tokens,
            temperature=temperature,
            stream=True,
            timeout=timeout,
            **({"stop": list(stop)} if stop else {}),
        )
        watchdog = _Watchdog(response, self.settings.llm_read_timeout_s, give_up)
        try:
            for text, reason in _pieces(response):
                if text or reason:
                    return response, text, _finish(reason) if reason else ""
                if time.monotonic() > give_up:
                    raise _Failure(
                        "timeout", f"no first token within LLM_TOTAL_TIMEOUT_S={self.settings.llm_total_timeout_s:g}"
                    )
        except BaseException:
            response.close()
            if watchdog.fired:  # keep-alive comments only, until a timeout
                raise _Failure("timeout", watchdog.why(first=True)) from None
            raise
        finally:
            watchdog.stop()
        response.close()
        if watchdog.fired:
            raise _Failure("timeout", watchdog.why(first=True))
        raise _Failure(
            "broken",
            "the stream ended before the first token (if the server's log says the prompt "
            "exceeds its context, set LLM_CTX to the server's context size)",
            retryable=True,
        )


class _Watchdog:
    """Closes a stream from a side thread when no text arrived for `read_s` seconds or `deadline` has
    passed. SSE keep-alive comments reach no loop of ours (the SDK's iterator skips them inside one
    read) and reset the HTTP read timeout, so without it such a stream never ends."""

    def __init__(self, response, read_s: float, deadline: float | None):
        self.response, self.read_s, self.deadline = response, read_s, deadline
        self.fired = ""  # "" | "timeout" (deadline) | "stalled" (no text for read_s)
        self.last = time.monotonic()
        self._done = threading.Event()
        threading.Thread(target=self._run, name="stream-watchdog", daemon=True).start()

    def progress(self) -> None:
        self.last = time.monotonic()

    def stop(self) -> None:
        self._done.set()

    def why(self, first: bool = False) -> str:
        if self.fired == "stalled":
            return (
                f"no {'first ' if first else ''}token for LLM_READ_TIMEOUT_S={self.read_s:g} s "
                "(silence or keep-alive comments only)"
            )
        if self.fired == "timeout":
            return (
                "no first token within LLM_TOTAL_TIMEOUT_S (silence or keep-alive comments only)"
                if first
                else "the answer ran past GEN_TIMEOUT_S"
            )
        return ""

    def _run(self) -> None:
        while not self._done.wait(0.1):
            now = time.monotonic()
            if self.deadline is not None and now > self.deadline:
                self.fired = "timeout"
            elif now - self.last > self.read_s:
                self.fired = "stalled"
            else:
                continue
            self.response.close()  # the reading thread's next read fails or ends the stream
            return


def _pieces(response) -> Iterator[tuple[str, str | None]]:
    """(text, finish_reason) per streamed chunk; usage-only chunks give ("", None)."""
    for chunk in response:
        if not chunk.choices:
            yield "", None
            continue
        choice = chunk.choices[0]
        yield (choice.delta.content or "") if choice.delta else "", choice.finish_reason


def _finish(reason: str) -> str:
    """The server's finish_reason as ours: 'length' stays, anything else (stop, eos, content_filter) is 'stop'."""
    return "length" if reason == "length" else "stop"


def _retry_after(response) -> float:
    """Seconds from a Retry-After header (a number of seconds), 0 if absent or a date."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except (TypeError, ValueError):
        return 0.0
