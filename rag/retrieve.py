"""Question -> ranked passages (dense FAISS, lexical BM25, or both fused), and the retrieval-only answer.

The retrieval-only answer is what ask() gives when no model is available: the best passages,
quoted and cited, clearly labelled as extracts rather than a generated answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from . import grounding, lexical, probe
from .chunking import reads_words, sentence_spans
from .config import RetrievalMode
from .embeddings import Embedder
from .index import Access, Hit, IndexStore
from .prompt import Passage, cite_label

MIN_SCORE = 0.05  # below this cosine a MiniLM match is noise
MODES: tuple[RetrievalMode, ...] = ("hybrid", "dense", "lexical")
CANDIDATES = 50  # per leg, before fusion
RRF_K = 10  # reciprocal rank fusion: weight / (RRF_K + rank); measured against 5, 20 and 60 (README)
CONTEXT_WEIGHT = 0.5  # a follow-up's earlier questions count half as much as the question itself
UNREAD_DENSE_WEIGHT = 0.3  # the dense leg's weight for text its embedder cannot read (see dense_weight)


def dense_weight(embedder: Embedder, query: str) -> float:
    """How far to trust the dense leg for this query. Korean: the weight measured for this embedder
    on a probe set (rag/probe.py). Other text: 1.0 when the embedder's tokenizer reads it in word
    pieces, UNREAD_DENSE_WEIGHT when it needs more tokens than there are characters, i.e. it splits
    the script below the character level: its vectors then carry little meaning."""
    letters = [c for c in query if c.isalpha()]
    if letters and sum("\uac00" <= c <= "\ud7a3" for c in letters) * 2 >= len(letters):
        if hasattr(embedder, "embed_queries"):
            return probe.korean_weight(embedder)
    if getattr(embedder, "count_tokens", None) is None:
        return 1.0
    return 1.0 if reads_words(embedder, query) else UNREAD_DENSE_WEIGHT


def search(
    embedder: Embedder,
    store: IndexStore,
    query: str,
    k: int,
    vector=None,
    mode: RetrievalMode = "hybrid",
    context: str = "",
    collections: Sequence[str] = (),
    access: Access | None = None,
) -> list[Hit]:
    """Top-k hits for `query` by `mode`: dense (FAISS cosine), lexical (BM25 over lexical.tokens) or
    hybrid (both, fused by reciprocal rank). `vector`: the query's embedding when already computed
    (for a follow-up, the embedding of the question with the one it follows). `context`: earlier
    questions of the conversation, searched lexically at CONTEXT_WEIGHT. `collections`: search only
    documents in one of these named collections (none: all documents). `access`: what the signed-in
    user may read (index.Access; None: sign-in is off, everything)."""
    n = CANDIDATES if mode == "hybrid" else k
    legs: list[tuple[str, float, list[Hit]]] = []
    if mode in ("hybrid", "dense"):
        if vector is None:
            vector = embedder.embed_queries([query])[0]
        weight = dense_weight(embedder, query) if mode == "hybrid" else 1.0
        if weight > 0:  # 0: measured useless for this language (rag/probe.py)
            dense = store.search(vector, n, collections, access)
            legs.append(("dense", weight, [h for h in dense if h.score >= MIN_SCORE]))
    if mode in ("hybrid", "lexical"):
        legs.append(("BM25", 1.0, store.lexical_search(lexical.fts_query(query), n, collections, access)))
        if context:
            legs.append(
                ("BM25", CONTEXT_WEIGHT, store.lexical_search(lexical.fts_query(context), n, collections, access))
            )
    return fuse(legs, k)


def fuse(legs: list[tuple[str, float, list[Hit]]], k: int) -> list[Hit]:
    """Reciprocal rank fusion of ranked lists; each hit says which legs found it and their scores.

    RRF needs no calibration between a cosine and a BM25 score, whose scales differ by document
    and query; `python -m rag eval` compares it with the single legs."""
    fused: dict[int, float] = {}
    first: dict[int, Hit] = {}
    found: dict[int, dict[str, float]] = {}
    for name, weight, hits in legs:
        for rank, hit in enumerate(hits, 1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + weight / (RRF_K + rank)
            first.setdefault(hit.chunk_id, hit)
            found.setdefault(hit.chunk_id, {}).setdefault(name, hit.score)
    best = sorted(fused, key=lambda i: -fused[i])[:k]
    single = len(legs) == 1
    return [
        replace(
            first[i],
            score=first[i].score if single else fused[i],
            found_by=" + ".join(f"{name} {score:.2f}" for name, score in found[i].items()),
        )
        for i in best
    ]


def retrieval_only_answer(passages: list[Passage], reason: str, question: str = "") -> str:
    """Markdown quoting the passages with their citation numbers (the part about `question`)."""
    head = f"**Retrieval only** — {reason}. The most relevant passages from your documents:\n\n"
    if not passages:
        return head.replace("The most relevant passages from your documents:", "Nothing relevant was found.")
    return head + quote_passages(passages, question=question)


def quote_passages(passages: list[Passage], limit: int = 400, question: str = "") -> str:
    """Each passage as '[n] *source*: text'. A passage longer than `limit` characters is quoted from
    the sentence sharing most words with `question` (its start without one), cut on a word boundary."""
    parts = []
    for p in passages:
        text = " ".join(p.text.split())
        if len(text) > limit:
            start = _best_sentence(text, question)
            lead = "… " if start else ""
            text = lead + text[start : start + limit].rsplit(" ", 1)[0] + " …"
        parts.append(f"[{p.n}] *{cite_label(p)}*: {text}")
    return "\n\n".join(parts)


def _best_sentence(text: str, question: str) -> int:
    """Start of the sentence of `text` that covers most of the question (0 when none covers any)."""
    best, start = 0.0, 0
    for s, e in sentence_spans(text):
        score = grounding.coverage(question, text[s:e]) if question else 0.0
        if score > best:
            best, start = score, s
    return start


def numbered(hits: list[Hit]) -> list[Passage]:
    """Hits as citable passages numbered from 1."""
    return [Passage(i, h.source, h.page, h.text, h.chunk_id, h.score, h.found_by) for i, h in enumerate(hits, 1)]
