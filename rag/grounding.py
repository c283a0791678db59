"""The grounding gate: is any retrieved passage about what the question asks?

Before a model writes anything, `support(question, passages)` measures how much of the question a
passage covers: the share of the question's content tokens (lexical.tokens, stopwords dropped,
rarer words weighing more) found in the best of the top passages. Below GROUNDING_MIN the engine
does not generate a guess: it answers "I found nothing about this in your documents" and shows the
closest passages. Small models invent an answer for any question; this keeps them from doing so
when the documents plainly do not talk about it. The threshold was chosen with
`python -m rag eval --answers` (docs/answers.md has the table).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import lexical

NOTHING_FOUND = "I found nothing about this in your documents."


def content_tokens(text: str) -> list[str]:
    return [t for t in dict.fromkeys(lexical.tokens(text)) if t not in lexical.STOPWORDS]


def support(question: str, passages: Sequence[str], top: int = 3) -> float:
    """Weighted share of the question's content tokens in its best-covering passage, 0..1.
    Longer tokens weigh more (log length): names and numbers matter more than short glue words.
    Example: support("When was the K7 pump serviced?", ["The K7 pump was serviced in May."]) -> 1.0."""
    wanted = content_tokens(question)
    if not wanted:
        return 1.0  # nothing to check: let the model answer
    weights = {t: 1.0 + math.log(len(t)) for t in wanted}
    total = sum(weights.values())
    best = 0.0
    for text in passages[:top]:
        have = set(lexical.tokens(text))
        best = max(best, sum(w for t, w in weights.items() if t in have) / total)
    return round(best, 3)
