"""The two seams of the backend chain, written down.

A `Backend` is one entry of the chain (the local model, or one OpenAI-compatible server): it says
whether it may answer without any network call (`unavailable`), hands out its `ChatModel` when it
can (`acquire`: loads the local model, probes a server whose breaker is due), identifies its answers
for the cache (`fingerprint`) and reports on itself (`status`). A `ChatModel` writes the answer:
token counting for the prompt budget, a place in its queue, and the streamed text.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

from ..events import FinishReason
from .endpoints import BackendKind


@dataclass
class GenerationStats:
    prompt_tokens: int = 0
    reused_tokens: int = 0  # prompt tokens whose KV was already in the context (prefix reuse)
    completion_tokens: int = 0
    first_token_s: float | None = None
    generate_s: float = 0.0
    finish_reason: FinishReason = ""

    @property
    def tokens_per_s(self) -> float:
        decode = self.generate_s - (self.first_token_s or 0.0)
        return (self.completion_tokens - 1) / decode if self.completion_tokens > 1 and decode > 0 else 0.0


class ChatModel(Protocol):
    name: str  # who wrote the answer, as Done.backend shows it: "local" or "openai:URL"

    @property
    def n_ctx(self) -> int: ...

    def count_chat(self, messages: list[dict]) -> int: ...

    def queue(self) -> AbstractContextManager[Iterator[int]]:
        """Enter to wait for a turn: iterate the places ahead (0 = now); the block then owns the model."""
        ...

    def stream(
        self,
        messages: list[dict],
        max_tokens: int,
        temperature: float,
        stats: GenerationStats,
        cancel: threading.Event | None = None,
        deadline: float | None = None,
        stop: Sequence[str] = (),
    ) -> Iterator[str]: ...


class Backend(Protocol):
    name: str
    kind: BackendKind

    def fingerprint(self) -> str: ...

    def start(self) -> None:
        """Begin whatever makes the first answer faster (the local model loads); no network."""
        ...

    def will_load(self, wait: bool) -> bool:
        """Whether `acquire(wait)` will first wait for a load (shown as Status("loading", "model"))."""
        ...

    def unavailable(self, wait: bool) -> str:
        """ "" if this backend may answer now, else why not. No network calls."""
        ...

    def acquire(self, wait: bool) -> tuple[ChatModel | None, str]:
        """(model, "") if it can answer now, else (None, why not)."""
        ...

    def refresh(self, timeout: float) -> None:
        """Bring the status up to date now (`rag status`): the local model loads, a server is pinged."""
        ...

    def status(self) -> BackendStatus: ...


@dataclass
class RemoteHealth:
    """What a server backend adds to its status: breaker, context and the rolling health record."""

    model: str | None
    n_ctx: int | None
    n_ctx_source: str
    breaker: str  # closed | open | half-open
    consecutive_failures: int
    probe_in_s: float
    breaker_opened: int
    token_counter: str  # the server's tokenizer route, "estimate", or "" before the first count
    reachable: bool | None  # None until contacted
    requests: int
    served: int
    p50_ms: float | None
    p95_ms: float | None
    window: int
    errors: dict[str, int]
    last_error: str


@dataclass
class BackendStatus:
    name: str
    kind: BackendKind
    state: str  # the local model's load state, or a server's breaker state
    error: str | None = None
    remote: RemoteHealth | None = None  # servers only
