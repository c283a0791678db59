"""Events yielded by Engine.ask(), in order: Status*, Hits, Token*, Done | Error.

When a backend fails mid-answer, a Notice follows its tokens, and the next backend's Status, Hits
and Tokens follow the Notice (the UI keeps the partial text above the note)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Stage = Literal["loading", "retrieving", "queued", "generating", "failover"]
# stop | length: complete (cached); cancelled | timeout: cut short; error: a backend broke mid-answer
FinishReason = Literal["", "stop", "length", "cancelled", "timeout", "error"]
CacheKind = Literal["exact", "semantic"]


@dataclass
class Status:
    stage: Stage
    detail: str = ""
    position: int = 0  # places ahead in the queue when stage == "queued"


@dataclass
class Hits:
    hits: list  # prompt.Passage: what the answer may cite, each with its number `n`


@dataclass
class Token:
    text: str


@dataclass
class Notice:
    text: str  # shown inline where the answer stopped, e.g. "gpu-a failed mid-answer ..."


@dataclass
class Done:
    answer: str
    cache: CacheKind | None = None
    retrieval_only: bool = False
    reason: str = ""  # why retrieval-only, or why generation stopped early
    finish_reason: FinishReason = ""
    retrieval_ms: float = 0.0
    first_token_ms: float | None = None
    tokens_per_s: float = 0.0
    prompt_tokens: int = 0
    reused_tokens: int = 0
    completion_tokens: int = 0
    total_ms: float = 0.0
    extra: dict = field(default_factory=dict)
    backend: str = ""  # who wrote the answer: "local" or "openai:URL"; "" for retrieval-only
    turn: list = field(default_factory=list)  # this exchange, to pass back as history next time
    cited: list[int] = field(default_factory=list)  # the passage numbers the answer cites (all exist)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Error:
    message: str
