"""Question -> ranked passages (dense FAISS search), and the retrieval-only answer.

The retrieval-only answer is what ask() gives when no model is available: the best passages,
quoted and cited, clearly labelled as extracts rather than a generated answer.
"""

from __future__ import annotations

from .index import Hit, IndexStore
from .prompt import Passage, cite_label

MIN_SCORE = 0.05  # below this cosine a MiniLM match is noise


def search(embedder, store: IndexStore, query: str, k: int, vector=None) -> list[Hit]:
    """Top-k hits for `query`; pass `vector` when the query is already embedded."""
    if vector is None:
        vector = embedder.embed_batch([query])[0]
    return [h for h in store.search(vector, k) if h.score >= MIN_SCORE]


def retrieval_only_answer(passages: list[Passage], reason: str) -> str:
    """Markdown quoting the passages with their citation numbers."""
    head = f"**Retrieval only** — {reason}. The most relevant passages from your documents:\n\n"
    if not passages:
        return head.replace("The most relevant passages from your documents:", "Nothing relevant was found.")
    parts = []
    for p in passages:
        text = " ".join(p.text.split())
        if len(text) > 400:
            text = text[:400].rsplit(" ", 1)[0] + " …"
        parts.append(f"[{p.n}] *{cite_label(p)}*: {text}")
    return head + "\n\n".join(parts)


def numbered(hits: list[Hit]) -> list[Passage]:
    """Hits as citable passages numbered from 1."""
    return [Passage(i, h.source, h.page, h.text, h.chunk_id, h.score) for i, h in enumerate(hits, 1)]
