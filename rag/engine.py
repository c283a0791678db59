"""Engine: owns the lazily loaded embedder, index and model and answers questions.

Creating an Engine starts loading all three in background threads and returns at once (the local
model only when it heads the backend chain). `ask()` yields events (see events.py): it serves cached
answers, retrieves, and generates with the first backend of the chain that answers (the local model
under its ticket lock, or an OpenAI-compatible server); a backend that fails before its first token
hands over to the next; with none able to answer it answers retrieval-only instead of failing.
`ingest()`, `delete_document()` and `reindex()` change the index; `status()` gathers what the
memory panel and `status --json` show. The Engine never imports streamlit.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path

from . import llama_build, prompt, retrieve
from .cache import AnswerCache, depends_on_history, scope_key
from .config import Settings
from .embeddings import load_embedder
from .errors import BackendDown, ModelError, RagError, StreamBroken
from .events import Done, Error, Hits, Notice, Status, Token
from .index import IndexStore, committed_version
from .ingest import IngestReport, ingest
from .lazy import Lazy
from .llm import planner as memory
from .llm import probe as model_probe
from .llm.chain import Backends
from .llm.gguf import GGUFMeta, read_meta
from .llm.local import GenerationStats, LocalLLM
from .prompt import Passage

log = logging.getLogger(__name__)
MARGIN_TOKENS = 16  # slack between the prompt + answer and n_ctx
HISTORY_SAMPLES = 600  # memory readings kept for the panel's chart (10 minutes at one per second)


class Engine:
    def __init__(self, settings: Settings, start: bool = True, embedder=None):
        """`embedder`: an already loaded embedder to share (tests, several engines in one process)."""
        self.settings = settings
        self.meta: GGUFMeta | None = None
        self.plan: memory.Plan | None = None
        self.embedder = Lazy("embedder", (lambda: embedder) if embedder is not None
                             else (lambda: _frozen(load_embedder(settings.embed_model))))
        self.index = Lazy("index", self._open_index)
        self.cache = AnswerCache(settings.cache_dir, settings.semantic_cache)
        self.backends = Backends(settings, Lazy("model", self._load_model), self.model_fingerprint)
        self._pressure_level = memory.SAFE
        self.memory_history: deque = deque(maxlen=HISTORY_SAMPLES)  # (time, rss, vram used) for the panel
        if start:  # a local model that is only a fallback loads when first needed
            for part in (self.index, self.model, self.embedder) if self.backends.local_first else (self.index,
                                                                                                    self.embedder):
                part.start()

    @property
    def model(self) -> Lazy:
        """The local model (loaded lazily); the backend chain holds it."""
        return self.backends.model

    @model.setter
    def model(self, lazy: Lazy) -> None:
        self.backends.model = lazy

    # ---- loading ---------------------------------------------------------------------------
    def _open_index(self) -> IndexStore:
        params = {"chunk_tokens": self.settings.chunk_tokens, "chunk_overlap": self.settings.chunk_overlap}
        return IndexStore(self.settings.index_dir, params)

    def _load_model(self) -> LocalLLM:
        path = self.settings.model_path
        if path is None:
            raise ModelError("no GGUF in models/: place one or set MODEL_PATH; answering from your documents "
                             "only until then")
        self.meta = read_meta(path)
        self.plan = memory.plan(self.meta, self.settings, memory.probe())
        for warning in self.plan.warnings:
            log.warning("%s", warning)
        # loaded and run once in a child first: a crash there (bad file, CPU kernel) spares the server
        model_probe.probe(path, self.model_fingerprint(), self.settings.cache_dir, self.plan.llama_kwargs())
        return LocalLLM(path, self.plan, self.meta.chat_template)

    def model_fingerprint(self) -> str:
        path = self.settings.model_path
        if path is None or not path.exists():
            return "none"
        st = path.stat()
        return hashlib.sha256(f"{path.name}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:16]

    # ---- asking ----------------------------------------------------------------------------
    def gen_params(self) -> dict:
        s = self.settings
        return {"max_tokens": s.max_tokens, "temperature": s.temperature, "top_k": s.top_k,
                "retrieval": s.retrieval_mode}

    def ask(self, question: str, history: list[dict] = (), cancel: threading.Event | None = None,
            wait_for_model: bool = False) -> Iterator:
        """Answer `question` as a stream of events; never raises for user-facing problems."""
        began = time.perf_counter()
        question = " ".join(question.split())
        if not question:
            yield Error("the question is empty: type a question about your documents")
            return
        try:
            yield from self._ask(question, list(history), cancel, wait_for_model, began)
        except RagError as exc:
            yield Error(str(exc))

    def _ask(self, question, history, cancel, wait_for_model, began) -> Iterator:
        yield Status("retrieving")
        fingerprint = self.backends.fingerprint()
        version = committed_version(self.settings.index_dir) or "v000000"
        context = history if depends_on_history(question) else []  # what the answer may depend on
        # a generated answer is valid for the same model file, index version and parameters, so it
        # is served before waiting for the model, the embedder or FAISS to load
        if fingerprint != "none" and (hit := self.cache.lookup_exact(
                question, scope_key(version, fingerprint, self.gen_params(), context))):
            yield from self._cached(question, hit, began)
            return
        for part in (self.model, self.embedder) if self.backends.local_first else (self.embedder,):
            part.start_if_idle()  # load in parallel while the index opens
        store = self.index.get()
        scope = scope_key(store.version, fingerprint, self.gen_params(), context)
        reason = self.backends.unavailable(wait_for_model)
        if not self.embedder.ready:
            yield Status("loading", "embedder")
        embedder = self.embedder.get()
        store.check_embedder(embedder.id, embedder.dim)
        t0 = time.perf_counter()
        vector = embedder.embed_batch([question])[0]
        if not reason and (hit := self.cache.lookup_semantic(question, scope, vector)):
            yield from self._cached(question, hit, began)
            return
        # a follow-up ("and who checks it?") is searched together with the question it follows
        query_vector = embedder.embed_batch([search_query(question, history)])[0] if context else vector
        earlier = " ".join(m["content"] for m in context if m["role"] == "user")  # a follow-up's context
        hits = retrieve.search(embedder, store, question, self.settings.top_k, vector=query_vector,
                               mode=self.settings.retrieval_mode, context=earlier)
        retrieval_ms = (time.perf_counter() - t0) * 1000
        if reason:
            yield from self._retrieval_only(hits, reason, retrieval_ms, began)
            return
        self.cache.count("miss")
        yield from self._failover(question, history, hits, cancel, wait_for_model, retrieval_ms, began,
                                  lambda answer, cited, backend: self.cache.store(
                                      question, scope, answer, [asdict(p) for p in cited], vector, backend))

    def _retrieval_only(self, hits, reason: str, retrieval_ms: float, began: float) -> Iterator:
        passages = retrieve.numbered(hits[:3])
        answer = retrieve.retrieval_only_answer(passages, reason)
        yield Hits(passages)
        yield Token(answer)
        yield Done(answer, retrieval_only=True, reason=reason, retrieval_ms=retrieval_ms,
                   total_ms=(time.perf_counter() - began) * 1000)

    def _failover(self, question, history, hits, cancel, wait, retrieval_ms, began, store) -> Iterator:
        """Try the chain in order; a failure before the first token moves on quietly, one after it
        leaves the partial text on screen with a Notice and moves on. Nothing partial is cached."""
        failures: list[str] = []
        partial, partial_backend = "", ""
        for i, endpoint in enumerate(self.backends.endpoints):
            if endpoint.kind == "local" and wait and not self.model.ready and self.model.state != "failed":
                yield Status("loading", "model")
            llm, why = self.backends.get(endpoint, wait)
            if llm is None:
                failures.append(why)
                continue
            if failures:
                yield Status("failover", f"{failures[-1]} — trying {endpoint.name}")
            parts: list[str] = []
            try:
                yield from self._generate(llm, endpoint.name, question, history, hits, cancel, retrieval_ms,
                                          began, store, parts, failures)
                return
            except BackendDown as exc:
                failures.append(str(exc))
                log.warning("%s", exc)
            except StreamBroken as exc:
                failures.append(str(exc))
                log.warning("%s", exc)
                partial, partial_backend = "".join(parts), endpoint.name
                more = self.backends.may_answer_after(i)
                yield Notice(f"{exc}. The text above is incomplete and is not kept"
                             + ("; answering again with the next backend." if more else "."))
            if cancel is not None and cancel.is_set():
                break
        if partial:
            yield Done(partial.strip(), reason="; ".join(failures), finish_reason="error", backend=partial_backend,
                       retrieval_ms=retrieval_ms, total_ms=(time.perf_counter() - began) * 1000,
                       extra={"failures": failures})
            return
        yield from self._retrieval_only(hits, "no backend answered: " + "; ".join(failures), retrieval_ms, began)

    def _cached(self, question: str, hit, began: float) -> Iterator:
        self.cache.count(hit.kind)
        yield Hits([Passage(**p) for p in hit.hits])
        yield Token(hit.answer)
        turn = [{"role": "user", "content": question, "passages": hit.hits},
                {"role": "assistant", "content": hit.answer}]
        yield Done(hit.answer, cache=hit.kind, total_ms=(time.perf_counter() - began) * 1000, turn=turn,
                   backend=hit.backend)

    def _generate(self, model, name, question, history, hits, cancel, retrieval_ms, began, store, parts,
                  failures) -> Iterator:
        max_tokens = min(self.settings.max_tokens, model.n_ctx // 2)
        budget = model.n_ctx - max_tokens - MARGIN_TOKENS
        built = prompt.build(question, history, hits, model.count_chat, budget)
        yield Hits(built.citations)
        lock = getattr(model, "lock", None)  # the local model's ticket lock; a server queues by itself
        with lock.hold_reporting(lock.take()) if lock else nullcontext(()) as waiting:
            for position in waiting:
                yield Status("queued", position=position)
            yield Status("generating", name)
            stats = GenerationStats()
            deadline = time.monotonic() + self.settings.gen_timeout_s
            for piece in model.stream(built.messages, max_tokens, self.settings.temperature, stats, cancel, deadline):
                parts.append(piece)
                yield Token(piece)
        raw = "".join(parts)
        answer = raw.strip()
        complete = stats.finish_reason in ("stop", "length")
        if complete and answer:
            store(answer, built.citations, name)
        reason = {"cancelled": "stopped by the user", "timeout":
                  f"stopped after GEN_TIMEOUT_S={self.settings.gen_timeout_s:g}s"}.get(stats.finish_reason, "")
        yield Done(answer, reason=reason, finish_reason=stats.finish_reason, retrieval_ms=retrieval_ms,
                   first_token_ms=None if stats.first_token_s is None else stats.first_token_s * 1000,
                   tokens_per_s=stats.tokens_per_s, prompt_tokens=stats.prompt_tokens,
                   reused_tokens=stats.reused_tokens, completion_tokens=stats.completion_tokens,
                   total_ms=(time.perf_counter() - began) * 1000, backend=name,
                   extra={"dropped_passages": built.dropped_hits, "dropped_turns": built.dropped_turns,
                          "failures": list(failures)},
                   turn=prompt.turn_record(built, question, raw) if complete else [])

    # ---- documents -------------------------------------------------------------------------
    def ingest(self, paths, progress=None, names: dict[str, str] | None = None) -> IngestReport:
        embedder, store = self.embedder.get(), self.index.get()
        store.check_embedder(embedder.id, embedder.dim)
        return ingest(paths, embedder, store, self.settings.chunk_tokens, self.settings.chunk_overlap,
                      progress, names)

    @property
    def uploads_dir(self) -> Path:
        return self.settings.data_dir / "uploads"

    def delete_document(self, doc_id: str) -> str:
        """Remove a document from the index, and its stored copy if it was uploaded."""
        store = self.index.get()
        paths = [Path(d["path"]) for d in store.documents() if d["doc_id"] == doc_id]
        version = store.commit(delete=[doc_id])
        for path in paths:
            self.forget_upload(path)
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

    def reindex(self, progress=None) -> IngestReport:
        """Rebuild the index from the documents' files with the current embedder and chunking."""
        embedder, store = self.embedder.get(), self.index.get()
        docs = store.documents()
        names = {d["path"]: d["source"] for d in docs}
        return ingest([Path(d["path"]) for d in docs], embedder, store, self.settings.chunk_tokens,
                      self.settings.chunk_overlap, progress, names, reset=True)

    # ---- status ----------------------------------------------------------------------------
    def status(self) -> dict:
        reading = memory.probe()
        level, used = memory.pressure(reading)
        self._react_to_pressure(level)
        now = time.time()
        if not self.memory_history or now - self.memory_history[-1][0] >= 1.0:
            self.memory_history.append((now, reading.rss, sum(g.used for g in reading.gpus)))
        model = self.model.peek()
        store = self.index.peek()
        return {
            "parts": {p.name: {"state": p.state, "load_seconds": p.load_seconds,
                               "error": str(p.error) if p.error else None}
                      for p in (self.embedder, self.index, self.model)},
            "model": {"path": str(self.settings.model_path) if self.settings.model_path else None,
                      "file_bytes": self.meta.file_size if self.meta else None,
                      "architecture": self.meta.architecture if self.meta else None,
                      "quantization": self.meta.quantization if self.meta else None,
                      "n_ctx": model.n_ctx if model else None,
                      "queue": model.lock.waiting if model else 0,
                      "template_problem": model.template_fallback if model else None},
            "plan": self.plan.summary() if self.plan else None,
            "llama_build": llama_build.describe() if self.backends.has_local else None,
            "backends": self.backends.status(),
            "memory": {"ram_total": reading.ram_total, "ram_available": reading.ram_available,
                       "rss": reading.rss, "gpus": [vars(g) for g in reading.gpus], "gpu_note": reading.gpu_note,
                       "pressure": level, "used_fraction": round(used, 3)},
            "index": {"version": store.version, "chunks": store.count(),
                      "documents": store.manifest.get("documents", 0),
                      "embedder": store.manifest.get("embedder")} if store else None,
            "cache": self.cache.stats(),
            "history": list(self.memory_history),
            "settings": {"low_vram": self.settings.low_vram, "max_tokens": self.settings.max_tokens,
                         "top_k": self.settings.top_k, "semantic_cache": self.settings.semantic_cache},
        }

    def _react_to_pressure(self, level: str) -> None:
        """At CRITICAL or worse: collect garbage and drop the cache's in-memory handle, logged once per change."""
        if level == self._pressure_level:
            return
        self._pressure_level = level
        if level in (memory.CRITICAL, memory.EMERGENCY):
            self.cache.close()
            freed = gc.collect()
            log.warning("memory pressure %s: ran gc (%d objects) and released the cache handle", level, freed)


def search_query(question: str, history: list[dict]) -> str:
    """The text searched for a follow-up question: the previous question, then this one."""
    previous = [m["content"] for m in history if m["role"] == "user"][-1:]
    return " ".join(previous + [question])


def _frozen(value):
    """Move everything alive now (torch, transformers, the model) out of the garbage collector's
    scans: these objects live as long as the process, and each full collection walked them all."""
    gc.collect()
    gc.freeze()
    return value


