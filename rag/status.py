"""What `Engine.status()` returns: typed, read by the panel and `rag status`, `as_dict()` for --json.

Example: `engine.status().memory.pressure` -> "SAFE"; `engine.status().model.plan["n_ctx"]` -> 4096.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .lazy import PartState
from .llm.base import BackendStatus
from .llm.planner import Gpu, Plan, Pressure


@dataclass
class PartStatus:
    name: str  # embedder | index | model
    state: PartState
    load_seconds: float | None
    error: str | None


@dataclass
class ModelStatus:
    """The local model: its file, the plan made for it, and the llama.cpp build that runs it."""

    path: str | None
    file_bytes: int | None
    architecture: str | None
    quantization: str | None
    n_ctx: int | None  # None until loaded
    queue: int  # askers holding or waiting for the model
    template_problem: str | None  # why the GGUF's own chat template is not used
    plan: Plan | None  # None until a load has planned
    llama_build: dict | None
    bundled: bool = False  # the small demo model installed with the app, not one the user placed


DEMO_MODEL_NOTE = (
    "SmolLM2-135M, the small demo model bundled with AI-CHAT: fine for trying it out, weak answers. "
    "For better ones put a bigger instruction-tuned GGUF in models/ (see models/README.md) and restart."
)


@dataclass
class MemoryStatus:
    ram_total: int
    ram_available: int
    rss: int
    gpus: list[Gpu]
    gpu_note: str
    pressure: Pressure
    used_fraction: float


@dataclass
class IndexStatus:
    version: str
    chunks: int
    documents: int
    embedder: str | None


@dataclass
class CacheStatus:
    exact: int
    semantic: int
    miss: int
    entries: int
    hit_rate: float


@dataclass
class EngineStatus:
    parts: list[PartStatus]
    model: ModelStatus | None  # None when the chain has no local model
    backends: list[BackendStatus]  # in the order they are tried
    memory: MemoryStatus
    index: IndexStatus | None  # None until the index has opened
    cache: CacheStatus
    history: list[tuple[float, int, int]]  # (time, RSS, VRAM used) samples for the chart
    low_vram: bool

    def part(self, name: str) -> PartStatus:
        return next(p for p in self.parts if p.name == name)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class DocumentList:
    """The index's documents for the sidebar; `documents` is empty while the index is not open."""

    ready: bool
    problem: str  # why it is not ready: "" while loading, the error if it failed
    version: str
    chunks: int
    documents: list[dict]  # doc_id, source, path, chunks


@dataclass
class UploadNote:
    ok: bool
    text: str  # plain text: the UI escapes it
