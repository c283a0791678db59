"""One question's way through the engine: cache, retrieval, then the backend chain with failover.

`Question` carries everything a question accumulates (history, hits, the cache scope, timings,
what failed, the partial text a broken backend left); `Pipeline.run(q)` yields its events
(events.py). Each step is a method of one or two arguments, so failover and generation read as
what they do. The Engine builds a Pipeline over its parts; this module never imports streamlit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from . import grounding, prompt, retrieve
from .cache import AnswerCache, depends_on_history, scope_key
from .citations import CitationFilter, cited
from .config import Settings
from .embeddings import Embedder
from .errors import BackendDown, StreamBroken
from .events import Done, Error, Hits, Notice, Status, Token
from .index import Access, Hit, IndexStore, committed_version
from .lazy import Lazy
from .llm.base import Backend, ChatModel, GenerationStats
from .llm.chain import Chain
from .prompt import Passage, cite_label

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)
MARGIN_TOKENS = 16  # slack between the prompt + answer and n_ctx


@dataclass
class Question:
    text: str
    history: list[dict]
    cancel: threading.Event | None = None
    wait: bool = False  # wait for a loading model instead of answering retrieval-only
    collections: tuple[str, ...] = ()  # search only these named collections (none: all documents)
    access: Access | None = None  # what the signed-in user may read (None: sign-in off, everything)
    began: float = field(default_factory=time.perf_counter)
    context: list[dict] = field(default_factory=list)  # the history the answer may depend on
    scope: str = ""  # cache scope: index version, chain fingerprint, parameters, context
    vector: np.ndarray | None = None
    hits: list[Hit] = field(default_factory=list)
    retrieval_ms: float = 0.0
    failures: list[str] = field(default_factory=list)  # one line per backend that did not answer
    streamed: list[str] = field(default_factory=list)  # the current backend's text so far
    partial: str = ""  # text a backend streamed before it broke
    partial_backend: str = ""
    answered: bool = False
    support: float = 1.0  # how well the best passage covers the question (grounding.py)

    @property
    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.began) * 1000


class Pipeline:
    def __init__(
        self,
        settings: Settings,
        chain: Chain,
        cache: AnswerCache,
        index: Lazy[IndexStore],
        embedder: Lazy[Embedder],
        gen_params: Callable[[], dict],
    ):
        self.settings, self.chain, self.cache = settings, chain, cache
        self.index, self.embedder, self.gen_params = index, embedder, gen_params

    def run(self, q: Question) -> Iterator:
        yield Status("retrieving")
        fingerprint = self.chain.fingerprint()
        version = committed_version(self.settings.index_dir) or "v000000"
        q.context = q.history if depends_on_history(q.text) else []
        # a generated answer is valid for the same model file, index version and parameters, so it
        # is served before waiting for the model, the embedder or FAISS to load
        if fingerprint != "none" and (
            hit := self.cache.lookup_exact(q.text, scope_key(version, fingerprint, self.params(q), q.context))
        ):
            yield from self.cached(q, hit)
            return
        self.chain.first.start()  # load in parallel while the index opens
        self.embedder.start_if_idle()
        store = self.index.get()
        q.scope = scope_key(store.version, fingerprint, self.params(q), q.context)
        reason = self.chain.unavailable(q.wait)
        if not self.embedder.ready:
            yield Status("loading", "embedder")
        embedder = self.embedder.get()
        store.check_embedder(embedder.id, embedder.dim)
        t0 = time.perf_counter()
        q.vector = embedder.embed_queries([q.text])[0]
        if not reason and (hit := self.cache.lookup_semantic(q.text, q.scope, q.vector)):
            yield from self.cached(q, hit)
            return
        self.retrieve(q, embedder, store)
        q.retrieval_ms = (time.perf_counter() - t0) * 1000
        if reason:
            yield from self.retrieval_only(q, reason)
            return
        self.cache.count("miss")
        q.support = grounding.support(search_query(q.text, q.context), [h.text for h in q.hits])
        if q.support < self.settings.grounding_min:
            yield from self.nothing_found(q)
            return
        yield from self.failover(q)

    def params(self, q: Question) -> dict:
        """What an answer depends on besides the index, model and history: the generation parameters,
        the collections searched and the signed-in user (an answer cached for one collection or one
        user is never served for another)."""
        params = self.gen_params()
        if q.collections:
            params["collections"] = sorted(q.collections)
        if q.access is not None:  # a share withdrawn changes the scope: no answer outlives it
            params["owner"] = q.access.owner
            params["shared"] = sorted(q.access.shared)
        return params

    def nothing_found(self, q: Question) -> Iterator:
        """The grounding gate's answer: no guess, the closest passages instead."""
        passages = retrieve.numbered(q.hits[:3])
        yield Hits(passages)
        yield Token(answer := nothing_found_answer(passages, q.text))
        yield Done(
            answer,
            reason=f"no passage covers the question (support {q.support:.2f} < GROUNDING_MIN "
            f"{self.settings.grounding_min:g})",
            retrieval_ms=q.retrieval_ms,
            total_ms=q.elapsed_ms,
            extra={"gated": True, "support": q.support},
            cited=[p.n for p in passages],
        )

    def retrieve(self, q: Question, embedder: Embedder, store: IndexStore) -> None:
        # a follow-up ("and who checks it?") is searched together with the question it follows
        query_vector = embedder.embed_queries([search_query(q.text, q.history)])[0] if q.context else q.vector
        earlier = " ".join(m["content"] for m in q.context if m["role"] == "user")
        q.hits = retrieve.search(
            embedder,
            store,
            q.text,
            self.settings.top_k,
            vector=query_vector,
            mode=self.settings.retrieval_mode,
            context=earlier,
            collections=q.collections,
            access=q.access,
        )

    def retrieval_only(self, q: Question, reason: str) -> Iterator:
        passages = retrieve.numbered(q.hits[:3])
        answer = retrieve.retrieval_only_answer(passages, reason, q.text)
        yield Hits(passages)
        yield Token(answer)
        yield Done(
            answer,
            retrieval_only=True,
            reason=reason,
            retrieval_ms=q.retrieval_ms,
            total_ms=q.elapsed_ms,
            cited=[p.n for p in passages],
        )

    def cached(self, q: Question, hit) -> Iterator:
        self.cache.count(hit.kind)
        passages = [Passage(**p) for p in hit.hits]
        yield Hits(passages)
        yield Token(hit.answer)
        turn = [{"role": "user", "content": q.text, "passages": hit.hits}, {"role": "assistant", "content": hit.answer}]
        sources, attributed = sources_of(hit.answer, q.text, passages)
        yield Done(
            hit.answer,
            cache=hit.kind,
            total_ms=q.elapsed_ms,
            turn=turn,
            backend=hit.backend,
            cited=sources,
            extra={} if attributed is None else {"attributed": attributed},
        )

    def failover(self, q: Question) -> Iterator:
        """Try the chain in order; a failure before the first token moves on quietly, one after it
        leaves the partial text on screen with a Notice and moves on. Nothing partial is cached."""
        for backend in self.chain.backends:
            yield from self.attempt(q, backend)
            if q.answered or (q.cancel is not None and q.cancel.is_set()):
                break
        if q.answered:
            return
        if q.partial:
            yield Done(
                q.partial.strip(),
                reason="; ".join(q.failures),
                finish_reason="error",
                backend=q.partial_backend,
                retrieval_ms=q.retrieval_ms,
                total_ms=q.elapsed_ms,
                extra={"failures": q.failures},
            )
            return
        yield from self.retrieval_only(q, "no backend answered: " + "; ".join(q.failures))

    def attempt(self, q: Question, backend: Backend) -> Iterator:
        """One backend's try: `q.answered`, or one more line in `q.failures`."""
        if backend.will_load(q.wait):
            yield Status("loading", "model")
        model, why = self.chain.acquire(backend, q.wait)
        if model is None:
            q.failures.append(why)
            return
        if q.failures:
            yield Status("failover", f"{q.failures[-1]} — trying {backend.name}")
        q.streamed = []
        try:
            yield from self.generate(q, model)
            q.answered = True
        except BackendDown as exc:
            q.failures.append(str(exc))
            log.warning("%s", exc)
        except StreamBroken as exc:
            q.failures.append(str(exc))
            log.warning("%s", exc)
            q.partial, q.partial_backend = "".join(q.streamed), backend.name
            more = self.chain.may_answer_after(backend)
            yield Notice(
                f"{exc}. The text above is incomplete and is not kept"
                + ("; answering again with the next backend." if more else ".")
            )

    def generate(self, q: Question, model: ChatModel) -> Iterator:
        """Stream `model`'s answer; `q.streamed` keeps what was shown in case the stream breaks. Citation
        markers naming no passage of this prompt are dropped from the stream (citations.py)."""
        s = self.settings
        max_tokens = min(s.max_tokens, model.n_ctx // 2)
        built = prompt.build(q.text, q.history, q.hits, model.count_chat, model.n_ctx - max_tokens - MARGIN_TOKENS)
        yield Hits(built.citations)
        stats = GenerationStats()
        shown = CitationFilter({p.n for p in built.citations})
        raw_parts: list[str] = []  # exactly as generated: the next turn re-sends it for KV reuse
        with model.queue() as waiting:
            for position in waiting:
                yield Status("queued", position=position)
            yield Status("generating", model.name)
            deadline = time.monotonic() + s.gen_timeout_s
            for piece in model.stream(
                built.messages, max_tokens, s.temperature, stats, q.cancel, deadline, prompt.STOP
            ):
                raw_parts.append(piece)
                if text := shown.feed(piece):
                    q.streamed.append(text)
                    yield Token(text)
        if text := shown.finish():
            q.streamed.append(text)
            yield Token(text)
        raw = "".join(raw_parts)
        answer = "".join(q.streamed).strip()
        complete = stats.finish_reason in ("stop", "length")
        texts, labels = [p.text for p in built.citations], [cite_label(p) for p in built.citations]
        # every sentence is scored, also with the check off: `rag eval --answers` sweeps the threshold
        checked = grounding.check(answer, q.text, texts, labels, s.answer_check)
        evidence = grounding.evidence(checked.text, q.text, texts, labels) if checked.text else None
        extra = {
            "dropped_passages": built.dropped_hits,
            "dropped_turns": built.dropped_turns,
            "failures": list(q.failures),
            "invented_citations": shown.dropped,
            "support": q.support,
            "answer_support": grounding.answer_support(answer, q.text, texts, labels),
            "sentence_support": checked.sentences,
            "evidence": evidence,
        }
        reason = {
            "cancelled": "stopped by the user",
            "timeout": f"stopped after GEN_TIMEOUT_S={s.gen_timeout_s:g}s",
        }.get(stats.finish_reason, "")
        # sentences whose own words occur in no passage: what invented text looks like; an answer
        # taken from text that is not about the question: what a guess at an unanswerable one looks like
        unsupported = s.answer_check > 0 and checked.dropped
        off_question = evidence is not None and evidence < s.evidence_check
        if complete and (unsupported or off_question) and not grounding.abstains(answer):
            extra["draft"], extra["dropped_sentences"] = answer, checked.dropped
            extra["withdrawn"], extra["off_question"] = off_question or not checked.text, off_question
            answer = nothing_found_answer(built.citations[:3], q.text) if extra["withdrawn"] else checked.text
            reason = (
                "the model's answer was withdrawn: none of its sentences is found in the passages"
                f" (ANSWER_CHECK_MIN {s.answer_check:g})"
                if not checked.text
                else "the model's answer was withdrawn: the passage text it comes from covers "
                f"{evidence:.2f} of the question (EVIDENCE_MIN {s.evidence_check:g})"
                if off_question
                else f"{checked.dropped} of the model's sentences not found in the passages were removed"
                f" (ANSWER_CHECK_MIN {s.answer_check:g})"
            )
        sources, attributed = sources_of(answer, q.text, built.citations) if complete else (cited(answer), None)
        if attributed is not None:
            extra["attributed"] = attributed
        if complete and answer:
            self.cache.store(q.text, q.scope, answer, [asdict(p) for p in built.citations], q.vector, model.name)
        yield Done(
            answer,
            reason=reason,
            finish_reason=stats.finish_reason,
            retrieval_ms=q.retrieval_ms,
            first_token_ms=None if stats.first_token_s is None else stats.first_token_s * 1000,
            tokens_per_s=stats.tokens_per_s,
            prompt_tokens=stats.prompt_tokens,
            reused_tokens=stats.reused_tokens,
            completion_tokens=stats.completion_tokens,
            total_ms=q.elapsed_ms,
            backend=model.name,
            cited=sources,
            extra=extra,
            # a checked draft is not the conversation: the next turn sees what the user was left with
            turn=prompt.turn_record(built, q.text, answer if "draft" in extra else raw) if complete else [],
        )

    def plain(self, messages: list[dict], cancel: threading.Event | None) -> Iterator:
        """The chain's model on `messages` as they are: no retrieval, no citations, no cache (the API's
        passthrough). The same queue and failover before the first token as an answer from documents."""
        began, failures = time.perf_counter(), []
        for backend in self.chain.backends:
            model, why = self.chain.acquire(backend, True)
            if model is None:
                failures.append(why)
                continue
            stats, parts = GenerationStats(), []
            try:
                with model.queue() as waiting:
                    for position in waiting:
                        yield Status("queued", position=position)
                    yield Status("generating", model.name)
                    deadline = time.monotonic() + self.settings.gen_timeout_s
                    max_tokens = min(self.settings.max_tokens, model.n_ctx // 2)
                    for piece in model.stream(
                        messages, max_tokens, self.settings.temperature, stats, cancel, deadline, ()
                    ):
                        parts.append(piece)
                        yield Token(piece)
            except BackendDown as exc:
                failures.append(str(exc))
                continue
            yield Done(
                "".join(parts).strip(),
                finish_reason=stats.finish_reason,
                first_token_ms=None if stats.first_token_s is None else stats.first_token_s * 1000,
                tokens_per_s=stats.tokens_per_s,
                prompt_tokens=stats.prompt_tokens,
                completion_tokens=stats.completion_tokens,
                total_ms=(time.perf_counter() - began) * 1000,
                backend=model.name,
            )
            return
        yield Error("no model could answer: " + "; ".join(failures or ["none is configured"]))


def sources_of(answer: str, question: str, passages: list[Passage]) -> tuple[list[int], int | None]:
    """(passage numbers the answer cites, the one attributed to it): an answer that cites nothing and
    does not abstain gets the passage its own words come from (grounding.attribute), if any."""
    if (numbers := cited(answer)) or grounding.abstains(answer):
        return numbers, None
    n = grounding.attribute(answer, question, [(p.n, p.text, cite_label(p)) for p in passages])
    return ([n], n) if n is not None else ([], None)


def nothing_found_answer(passages: list[Passage], question: str = "") -> str:
    """ "I found nothing about this in your documents", quoting the closest passages (with their numbers)."""
    if not passages:
        return grounding.NOTHING_FOUND
    return grounding.NOTHING_FOUND + " The closest passages:\n\n" + retrieve.quote_passages(passages, question=question)


def search_query(question: str, history: list[dict]) -> str:
    """The text searched for a follow-up question: the previous question, then this one."""
    previous = [m["content"] for m in history if m["role"] == "user"][-1:]
    return " ".join(previous + [question])
