"""How far the dense leg is trusted on Korean, measured on the configured embedder, not assumed.

Once per embedder (on the first Korean question) the 24 question/passage pairs of
data/probe-ko.json, whose questions paraphrase their passages, are ranked two ways: by the
embedder (cosine of query and passage embeddings, with their prefixes) and by keyword overlap
(IDF-weighted shared lexical tokens, what the BM25 leg sees). With r = dense MRR / keyword MRR,
the dense leg's weight in the hybrid fusion is 2r - 1, between 0 and 1: a leg that ranks less than
half as well as keywords is left out for Korean, one that ranks as well gets full weight. The
English-only MiniLM, which reads Hangul as jamo, measures r = 0.31 (weight 0): on
tests/data/korean-long.json its Korean vectors hold the answer for 0.086 of the questions, and every
weight above 0 lowered hybrid recall (0.1: 0.870, 0.31: 0.862; 0: 0.872, lexical alone).
"""

from __future__ import annotations

import json
import logging
import math
import threading
from pathlib import Path

from . import lexical

PROBE = Path(__file__).with_name("data") / "probe-ko.json"
log = logging.getLogger(__name__)
_measured: dict[str, float] = {}
_lock = threading.Lock()


def korean_weight(embedder) -> float:
    """The measured weight of `embedder`'s leg for Korean questions (cached by embedder id)."""
    with _lock:
        if embedder.id not in _measured:
            dense, keywords = probe_mrr(embedder)
            _measured[embedder.id] = round(min(1.0, max(0.0, 2 * dense / keywords - 1)), 2)
            log.info(
                "Korean probe for %s: dense MRR %.2f, keyword MRR %.2f -> dense weight %.2f",
                embedder.id,
                dense,
                keywords,
                _measured[embedder.id],
            )
        return _measured[embedder.id]


def probe_mrr(embedder) -> tuple[float, float]:
    """(dense MRR, keyword MRR) of the probe pairs: each question ranks all passages."""
    pairs = json.loads(PROBE.read_text(encoding="utf-8"))["pairs"]
    questions, passages = [q for q, _ in pairs], [p for _, p in pairs]
    q_vectors = embedder.embed_queries(questions)
    p_vectors = embedder.embed_batch(passages)
    dense = [[float(q @ p) for p in p_vectors] for q in q_vectors]
    docs = [set(lexical.tokens(p)) for p in passages]
    idf = {t: math.log(1 + len(docs) / sum(t in d for d in docs)) for d in docs for t in d}
    keyword = [
        [sum(idf[t] for t in set(lexical.tokens(q)) - lexical.STOPWORDS if t in d) for d in docs] for q in questions
    ]
    return _mrr(dense), _mrr(keyword)


def _mrr(scores: list[list[float]]) -> float:
    """Mean reciprocal rank of passage i for question i (ties rank against it)."""
    return sum(
        1 / (1 + sum(s > row[i] or (s == row[i] and j != i) for j, s in enumerate(row))) for i, row in enumerate(scores)
    ) / len(scores)
