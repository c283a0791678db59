"""Grounding: is a question about the passages, and is an answer taken from them?

Two checks, both measured with `python -m rag eval --answers` (docs/answers.md has the tables):

- before generating, `support(question, passages)`: the share of the question's content tokens
  (lexical.tokens, stopwords dropped, longer words weighing more) found in the best top passage.
  Below GROUNDING_MIN the engine answers "I found nothing about this in your documents" with the
  closest passages instead of generating (off by default: SQuAD v2's unanswerable questions reuse
  their paragraph's words, so this barely separates them);
- after generating, `answer_support(answer, question, passages)`: the share of the answer's own
  content tokens (those not already in the question) that occur in a shown passage. Below
  ANSWER_CHECK_MIN the answer is withdrawn for the same "nothing found" reply (the draft stays
  visible to the user as such). Small models invent names, dates and numbers; an answer whose words
  appear in no passage is what that looks like.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from . import lexical

NOTHING_FOUND = "I found nothing about this in your documents."
CITATION = re.compile(r"\[(\d+)\]")
# how answers say "not in the documents": the engine's own words, and what models write
ABSTAIN = re.compile(
    r"found nothing about this|(?:do|does|did) not (?:contain|mention|say|include|provide|answer)|"
    r"(?:no|not any) (?:information|mention|details?)|not (?:mentioned|stated|provided|found|given)|"
    r"cannot (?:find|answer|be answered|determine)|can't (?:find|answer)|unable to (?:find|answer)|"
    r"don't (?:know|have)|do not know|no answer|isn't (?:mentioned|in)|"
    r"찾을 수 없|찾지 못|나와 있지 않|언급되지 않|알 수 없|정보가 없",
    re.IGNORECASE,
)


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


def abstains(answer: str) -> bool:
    """Whether the answer says the documents do not hold it. Example: 'The passages do not say.' -> True."""
    return bool(ABSTAIN.search(answer))


def answer_support(answer: str, question: str, passages: Sequence[str], labels: Sequence[str] = ()) -> float | None:
    """Share of the answer's content tokens not in the question that occur in some passage, 0..1.
    An answer that adds no such token echoes the question (0.0), unless it is a bare yes or no (None:
    nothing to check). `labels` (passage file names) are removed from the answer first: a model that
    copies a passage's label has not found anything in it.
    Example: answer_support("It is tightened to 38 Nm [1].", "What torque?", ["... 38 Nm ..."]) -> 1.0."""
    body = CITATION.sub(" ", answer)
    for label in labels:
        body = body.replace(label, " ")
    asked = set(content_tokens(question))
    yes_no = lexical.tokens(body)[:1] in (["yes"], ["no"])
    new = [t for t in content_tokens(body) if t not in asked and not (yes_no and t in ("yes", "no"))]
    if not new:
        return None if yes_no else 0.0
    have = {t for text in passages for t in lexical.tokens(text)}
    return round(sum(t in have for t in new) / len(new), 3)
