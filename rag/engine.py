"""Engine: owns the lazily loaded embedder, index and backend chain; the one object the UI and CLI use.

Creating an Engine (start=True) begins loading its parts in background threads and returns at once
(the local model only when it heads the backend chain). `ask()` yields events (events.py) from the
question pipeline (pipeline.py). `ingest()`, `add_uploads()`, `delete_document()` and `reindex()`
change the index; `documents()` lists it. Each takes the `viewer` (accounts.Viewer, the signed-in
user; None with sign-in off), who sees and changes only their own documents and the shared library
(admins change the shared library too). A sampler thread reads RAM/VRAM once a second, keeps the
chart's history and reacts to memory pressure, so `status()` is a plain read of typed dataclasses
(status.py). The Engine never imports streamlit.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Literal

from .accounts import Accounts, Viewer
from .cache import AnswerCache
from .config import Settings
from .conversations import Conversations, ConversationStore
from .db import open_database
from .embeddings import Embedder, load_embedder
from .errors import IngestError, RagError
from .events import Error
from .index import ALL_DOCUMENTS, Access, IndexStore
from .ingest import IngestReport, ingest
from .lazy import Lazy
from .llm import planner
from .llm.chain import Chain
from .pipeline import Pipeline, Question
from .status import CacheStatus, DocumentList, EngineStatus, IndexStatus, MemoryStatus, PartStatus, UploadNote
from .uploads import display_name, save_upload

log = logging.getLogger(__name__)
HISTORY_SAMPLES = 600  # memory readings kept for the panel's chart (10 minutes at one per second)
SAMPLE_S = 1.0
Part = Literal["embedder", "index", "model"]
Progress = Callable[[int, int, str], None]


class Engine:
    def __init__(self, settings: Settings, start: bool = True, embedder: Embedder | None = None):
        """`embedder`: an already loaded embedder to share (tests, several engines in one process)."""
        self.settings = settings
        self.embedder: Lazy[Embedder] = Lazy(
            "embedder",
            (lambda: embedder)
            if embedder is not None
            else (lambda: _frozen(load_embedder(settings.embed_model, *settings.embed_prefixes))),
        )
        self.index: Lazy[IndexStore] = Lazy("index", self._open_index)
        self.cache = AnswerCache(settings.cache_dir, settings.semantic_cache)
        # the state database (SQLite in DATA_DIR, or PostgreSQL): saved conversations (None with
        # HISTORY=off: nothing kept on disk) and, with AUTH=local, the accounts
        self.db = open_database(settings.database_url, settings.data_dir)
        self.history: ConversationStore | None = Conversations(self.db) if settings.history else None
        self.accounts = Accounts(self.db, settings.session_hours) if settings.accounts else None
        self.chain = Chain(settings)
        self.pipeline = Pipeline(settings, self.chain, self.cache, self.index, self.embedder, self.gen_params)
        self.memory_history: deque[tuple[float, int, int]] = deque(maxlen=HISTORY_SAMPLES)
        self._pressure: planner.Pressure = planner.SAFE
        self._reading: tuple[planner.Reading, planner.Pressure, float] | None = None
        self._sampler_stop = threading.Event()
        self._sampler_started = False
        if start:
            self.start()

    # ---- loading ---------------------------------------------------------------------------
    def _open_index(self) -> IndexStore:
        params = {"chunk_chars": self.settings.chunk_chars, "chunk_overlap": self.settings.chunk_overlap}
        return IndexStore(self.settings.index_dir, params)

    def start(self, parts: Sequence[Part] = ("index", "model", "embedder")) -> None:
        """Begin loading `parts` in the background ("model": the chain's first backend, so a local model
        that is only a fallback loads when first needed), and the memory sampler."""
        for name in parts:
            if name == "model":
                self.chain.first.start()
            else:
                (self.index if name == "index" else self.embedder).start_if_idle()
        self._start_sampler()

    def model_loading(self) -> bool:
        """Whether the local model is loading now (its answer can follow a quick retrieval-only one)."""
        return self.chain.local is not None and self.chain.local.loading

    def uses_demo_model(self) -> bool:
        """Whether the local model is the bundled demo model (no GGUF placed, BUNDLED_MODEL on)."""
        return self.chain.local is not None and self.settings.model_is_bundled

    def load_states(self) -> list[PartStatus]:
        """Load state of the embedder, the index and (when the chain has one) the local model."""
        parts: list[Lazy] = [self.embedder, self.index]
        if self.chain.local is not None:
            parts.append(self.chain.local.model)
        return [PartStatus(p.name, p.state, p.load_seconds, str(p.error) if p.error else None) for p in parts]

    def refresh(self, timeout: float) -> None:
        """Bring the status up to date now: wait for the index and the model, ping every server."""
        try:
            self.index.get(timeout=timeout)
        except (RagError, TimeoutError):
            pass  # the failure is part of the status
        for backend in self.chain.backends:
            backend.refresh(timeout)

    # ---- asking ----------------------------------------------------------------------------
    def gen_params(self) -> dict:
        s = self.settings
        return {
            "max_tokens": s.max_tokens,
            "temperature": s.temperature,
            "top_k": s.top_k,
            "retrieval": s.retrieval_mode,
            "grounding": s.grounding_min,
            "answer_check": s.answer_check,
            "evidence_check": s.evidence_check,
        }

    def ask(
        self,
        question: str,
        history: Sequence[dict] = (),
        cancel: threading.Event | None = None,
        wait_for_model: bool = False,
        collections: Sequence[str] = (),
        viewer: Viewer | None = None,
    ) -> Iterator:
        """Answer `question` as a stream of events; never raises for user-facing problems.
        `collections`: search only documents in these named collections (none: all documents)."""
        scope = tuple(sorted({c for c in collections if c and c != ALL_DOCUMENTS}))
        q = Question(" ".join(question.split()), list(history), cancel, wait_for_model, scope, _access(viewer))
        if not q.text:
            yield Error("the question is empty: type a question about your documents")
            return
        try:
            yield from self.pipeline.run(q)
        except RagError as exc:
            yield Error(str(exc))

    def chat(self, messages: Sequence[dict], cancel: threading.Event | None = None) -> Iterator:
        """The model alone on `messages` (system, user, assistant), without your documents: the API's
        passthrough. Events as from ask(); never raises for user-facing problems."""
        turns = [{"role": m["role"], "content": str(m["content"])} for m in messages]
        try:
            yield from self.pipeline.plain(turns, cancel)
        except RagError as exc:
            yield Error(str(exc))

    # ---- documents -------------------------------------------------------------------------
    def ingest(
        self,
        paths,
        progress: Progress | None = None,
        names: dict[str, str] | None = None,
        collection: str = "",
        owner: str = "",
    ) -> IngestReport:
        """Index files and folders (into the named `collection` too, when given), as `owner`'s
        documents ("": the shared library)."""
        embedder, store = self.embedder.get(), self.index.get()
        store.check_embedder(embedder.id, embedder.dim)
        s = self.settings
        return ingest(
            paths, embedder, store, s.chunk_chars, s.chunk_overlap, progress, names, collection=collection, owner=owner
        )

    def collections(self, viewer: Viewer | None = None) -> dict[str, int]:
        """Named collections with the viewer's document counts ("All documents" holds every document)."""
        store = self.index.peek()
        return store.collections(_access(viewer)) if store is not None else {}

    def _document(self, doc_id: str, viewer: Viewer | None) -> dict:
        """A document the viewer may change (their own; the shared library for admins), else RagError."""
        store = self.index.get()
        doc = next((d for d in store.documents(_access(viewer)) if d["doc_id"] == doc_id), None)
        if doc is None:
            raise RagError(f"no document {doc_id[:12]} in the index: see `python -m rag docs`")
        if viewer is not None and doc["owner"] == "" and not viewer.admin:
            raise RagError(f"{doc['source']} is in the shared library: only an admin can change it")
        if viewer is not None and doc["owner"] not in ("", viewer.name):
            raise RagError(f"{doc['source']} was shared with you by {doc['owner']}: only they can change it")
        return doc

    def set_collections(self, doc_id: str, names: Sequence[str], viewer: Viewer | None = None) -> str:
        """Put a document in exactly these named collections (a new index version)."""
        self._document(doc_id, viewer)
        return self.index.get().commit(members={doc_id: list(names)})

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads"

    def add_uploads(
        self,
        files: Sequence[tuple[str, bytes]],
        progress: Progress | None = None,
        collection: str = "",
        viewer: Viewer | None = None,
        shared: bool = False,
    ) -> list[UploadNote]:
        """Store uploaded (name, bytes) under generated names, index them (into `collection` too, when
        given) as the viewer's own documents (`shared`: into the shared library, for admins), and drop
        the copies of files that indexed nothing. One note per file; a bad file never stops the others."""
        if shared and viewer is not None and not viewer.admin:
            return [UploadNote(False, "Only an admin can add documents to the shared library.")]
        owner = viewer.name if viewer is not None and not shared else ""
        notes, paths, names = [], [], {}
        limit = self.settings.max_upload_mb * 1024 * 1024
        for name, data in files:
            try:
                path = save_upload(data, name, self.uploads_dir, limit)
            except IngestError as exc:
                notes.append(UploadNote(False, str(exc)))
                continue
            paths.append(path)
            names[str(path)] = display_name(name)
        if not paths:
            return notes
        try:
            report = self.ingest(paths, progress, names, collection, owner)
        except RagError as exc:
            for path in paths:
                self.forget_upload(path)
            return notes + [UploadNote(False, str(exc))]
        for result in report.results:
            label = names.get(result.path, result.path)
            if result.status in ("added", "replaced"):
                notes.append(
                    UploadNote(True, f"{label}: {result.chunks} passage{'' if result.chunks == 1 else 's'} indexed")
                )
                continue
            self.forget_upload(result.path)  # nothing indexed from it: do not keep the copy
            if result.status == "unchanged" and collection:
                notes.append(UploadNote(True, f"{label}: already indexed; now also in {collection}"))
                continue
            notes.append(UploadNote(False, result.message if result.status == "error" else f"{label}: already indexed"))
        if note := report.read_note():
            notes.append(UploadNote(True, note))
        return notes

    def documents(self, viewer: Viewer | None = None) -> DocumentList:
        """The documents the viewer sees; `chunks` counts theirs."""
        store = self.index.peek()
        if store is None:
            failed = self.index.state == "failed"
            return DocumentList(False, str(self.index.error) if failed else "", "", 0, [])
        docs = store.documents(_access(viewer))
        chunks = store.count() if viewer is None else sum(d["chunks"] for d in docs)
        return DocumentList(True, "", store.version, chunks, docs)

    def delete_document(self, doc_id: str, viewer: Viewer | None = None) -> str:
        """Remove a document from the index, and its stored copy if it was uploaded."""
        doc = self._document(doc_id, viewer)
        version = self.index.get().commit(delete=[doc_id])
        if not any(d["path"] == doc["path"] for d in self.index.get().documents()):
            self.forget_upload(doc["path"])  # another user's copy of the same upload keeps its file
        return version

    def forget_upload(self, path: str | Path) -> None:
        """Delete a stored upload that was not indexed (a duplicate or an unreadable file)."""
        path = Path(path)
        if path.parent.resolve() == self.uploads_dir.resolve():
            path.unlink(missing_ok=True)

    def ingest_sample_if_new(self, sample: Path) -> IngestReport | None:
        """Index the bundled guide the first time this index is used, so a new user can ask at once."""
        store = self.index.get()
        marker = self.settings.index_dir / ".sample-offered"
        if marker.exists() or store.count() > 0:
            return None
        report = self.ingest([sample])
        marker.write_text("the bundled sample was indexed once; it is not added again\n")
        return report

    def reindex(self, progress: Progress | None = None, viewer: Viewer | None = None) -> IngestReport:
        """Rebuild the index from the documents' files with the current embedder and chunking (every
        user's: an admin's task); each document keeps its owner and collections."""
        if viewer is not None and not viewer.admin:
            raise RagError("re-indexing rebuilds every user's documents: ask an admin")
        embedder, store = self.embedder.get(), self.index.get()
        docs = store.documents()
        names = {d["path"]: d["source"] for d in docs}
        owners = {d["path"]: d["owner"] for d in docs}
        return ingest(
            [Path(d["path"]) for d in docs],
            embedder,
            store,
            self.settings.chunk_chars,
            self.settings.chunk_overlap,
            progress,
            names,
            reset=True,
            owners=owners,
        )

    # ---- memory and status -----------------------------------------------------------------
    def _start_sampler(self) -> None:
        if self._sampler_started:
            return
        self._sampler_started = True
        threading.Thread(
            target=_sample_forever, args=(weakref.ref(self), self._sampler_stop), name="memory-sampler", daemon=True
        ).start()

    def close(self) -> None:
        """Stop the memory sampler (the parts themselves are released with the Engine)."""
        self._sampler_stop.set()

    def sample(self) -> None:
        """One memory reading: kept for status() and the chart; pressure reacted to."""
        reading = planner.probe()
        level, used = planner.pressure(reading)
        self._reading = (reading, level, used)
        self.react_to_pressure(level)
        self.memory_history.append((time.time(), reading.rss, sum(g.used for g in reading.gpus)))

    def react_to_pressure(self, level: planner.Pressure) -> None:
        """At CRITICAL or worse: collect garbage and drop the cache's in-memory handle, logged once per change."""
        if level == self._pressure:
            return
        self._pressure = level
        if level in (planner.CRITICAL, planner.EMERGENCY):
            self.cache.close()
            freed = gc.collect()
            log.warning("memory pressure %s: ran gc (%d objects) and released the cache handle", level, freed)

    def status(self) -> EngineStatus:
        """A read: the latest sample (a fresh reading, reacted to by nobody, before the first one)."""
        if self._reading is None:
            reading = planner.probe()
            level, used = planner.pressure(reading)
        else:
            reading, level, used = self._reading
        store = self.index.peek()
        return EngineStatus(
            parts=self.load_states(),
            model=self.chain.local.details() if self.chain.local else None,
            backends=self.chain.status(),
            memory=MemoryStatus(
                reading.ram_total,
                reading.ram_available,
                reading.rss,
                reading.gpus,
                reading.gpu_note,
                level,
                round(used, 3),
            ),
            index=IndexStatus(
                store.version, store.count(), store.manifest.get("documents", 0), store.manifest.get("embedder")
            )
            if store
            else None,
            cache=CacheStatus(**self.cache.stats()),
            history=list(self.memory_history),
            low_vram=self.settings.low_vram,
        )


def _sample_forever(ref: weakref.ref[Engine], stop: threading.Event) -> None:
    """Sample until the Engine is closed or collected (the thread holds no reference between samples)."""
    while True:
        engine = ref()
        if engine is None or stop.is_set():
            return
        try:
            engine.sample()
        except Exception:  # noqa: BLE001 - a failed reading must not end sampling
            log.exception("memory sampling failed")
        del engine
        if stop.wait(SAMPLE_S):
            return


def _access(viewer: Viewer | None) -> Access | None:
    """What the viewer may read: None with sign-in off (everything)."""
    return Access(viewer.name, viewer.shared) if viewer is not None else None


def history_owner(viewer: Viewer | None) -> str:
    """Whose conversations: the signed-in user's; "" with sign-in off."""
    return viewer.name if viewer is not None else ""


def _frozen(value):
    """Move everything alive now (torch, transformers, the model) out of the garbage collector's
    scans: these objects live as long as the process, and each full collection walked them all."""
    gc.collect()
    gc.freeze()
    return value
