"""Grounding: is a question about the passages, and is an answer taken from them?

Two checks, both measured with `python -m rag eval --answers` (docs/answers.md has the tables):

- before generating, `support(question, passages)`: the share of the question's content tokens
  (lexical.tokens, stopwords dropped, longer words weighing more) found in the best top passage.
  Below GROUNDING_MIN the engine answers "I found nothing about this in your documents" with the
  closest passages instead of generating (off by default: SQuAD v2's unanswerable questions reuse
  their paragraph's words, so this barely separates them);
- after generating, `answer_support(sentence, question, passages)` for each sentence of the answer:
  the share of its own content tokens (those not already in the question) that occur in a shown
  passage. `check` keeps the sentences at or above ANSWER_CHECK_MIN; if none is left the answer is
  withdrawn for the same "nothing found" reply (the model's draft stays visible as such). Small
  models invent names, dates and numbers, or go on after a right first sentence about something
  else; a sentence whose words appear in no passage is what that looks like;
- after the check, `evidence(answer, question, passages)`: the passage sentence the answer's own
  words come from, with one sentence either side, and how much of the question that text covers.
  Below EVIDENCE_MIN the answer is withdrawn the same way. A question the documents do not answer
  still gets a plausible span from a small model, taken from a sentence about something else: on
  SQuAD v2 the unanswerable questions reuse their paragraph's words, but not near the span the
  model picked, which is what separates them (support over a whole passage barely does).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

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
    if not content_tokens(question):
        return 1.0  # nothing to check: let the model answer
    return round(max((coverage(question, text) for text in passages[:top]), default=0.0), 3)


def coverage(question: str, text: str) -> float:
    """Share of the question's content tokens found in `text`, longer tokens weighing more
    (1 + log length: names and numbers matter more than short glue words); 1.0 for no tokens."""
    weights = {t: 1.0 + math.log(len(t)) for t in content_tokens(question)}
    if not weights:
        return 1.0
    have = set(lexical.tokens(text))
    return sum(w for t, w in weights.items() if t in have) / sum(weights.values())


def abstains(answer: str) -> bool:
    """Whether the answer says the documents do not hold it. Example: 'The passages do not say.' -> True."""
    return bool(ABSTAIN.search(answer))


ATTRIBUTE_MIN = 0.5  # a passage holding at least half of an uncited answer's own words is named as its source


def attribute(answer: str, question: str, passages: Sequence[tuple[int, str, str]]) -> int | None:
    """For an answer that cites nothing: the number of the passage (n, text, label) holding most of its
    own words, if that is at least ATTRIBUTE_MIN of them; the earlier passage wins a tie. On SQuAD v2 with
    SmolLM2 this named a passage holding the gold answer for 34 of the 40 right answers."""
    labels = [label for _, _, label in passages]
    best, best_share = None, ATTRIBUTE_MIN
    for n, text, _ in passages:
        share = answer_support(answer, question, [text], labels)
        if share is not None and (share > best_share or (best is None and share == best_share)):
            best, best_share = n, share
    return best


SENTENCE = re.compile(r"(?<=[.!?。！？])\s+|\n+")


@dataclass
class Checked:
    text: str  # the sentences kept, as written ("" = none: the answer is withdrawn)
    dropped: int  # sentences removed
    sentences: list[tuple[str, float | None]]  # every sentence with its support


def sentences(answer: str) -> list[str]:
    """The answer cut after ., !, ? (and their CJK forms) and at line breaks, each piece with the
    separator that followed it, so that joining them gives the answer back."""
    pieces, start = [], 0
    for m in SENTENCE.finditer(answer):
        pieces.append(answer[start : m.end()])
        start = m.end()
    return [p for p in pieces + [answer[start:]] if p.strip()]


def check(answer: str, question: str, passages: Sequence[str], labels: Sequence[str], minimum: float) -> Checked:
    """The answer with its unsupported sentences removed (see the module docstring). A sentence that
    adds nothing to check (None: a bare yes/no) is kept."""
    scored = [(s, answer_support(s, question, passages, labels)) for s in sentences(answer)]
    kept = [s for s, share in scored if share is None or share >= minimum]
    return Checked("".join(kept).strip(), len(scored) - len(kept), [(s.strip(), share) for s, share in scored])


def answer_support(answer: str, question: str, passages: Sequence[str], labels: Sequence[str] = ()) -> float | None:
    """Share of the answer's content tokens not in the question that occur in some passage, 0..1.
    An answer that adds no such token echoes the question (0.0), unless it is a bare yes or no (None:
    nothing to check). `labels` (passage file names) are removed from the answer first: a model that
    copies a passage's label has not found anything in it.
    Example: answer_support("It takes 38 Nm [1].", "What torque?", ["... takes 38 Nm ..."]) -> 1.0."""
    new = _own_tokens(answer, question, labels)
    if not new:
        return None if _yes_no(_body(answer, labels)) else 0.0
    have = {t for text in passages for t in lexical.tokens(text)}
    return round(sum(t in have for t in new) / len(new), 3)


EVIDENCE_WINDOW = 1  # sentences either side of the one an answer is taken from


def evidence(answer: str, question: str, passages: Sequence[str], labels: Sequence[str] = ()) -> float | None:
    """How much of the question the text an answer comes from covers, 0..1 (see the module docstring):
    the passage sentence holding most of the answer's own content tokens (those not in the question;
    the first such sentence on a tie) with EVIDENCE_WINDOW sentences either side, scored by `coverage`.
    0.0 when no passage sentence holds any of them; None when the answer adds none (nothing to locate).
    Example: evidence("38 newton-metres.", "What is the torque for the K7 impeller bolt?",
    ["Pumps. The torque for the K7 impeller bolt is 38 newton-metres. Staff parking is free."]) -> 1.0;
    the same answer to "How many vacation days do new staff get?" from that passage gives 0.182."""
    new = _own_tokens(answer, question, labels)
    if not new:
        return None
    best, window = 0, ""
    for text in passages:
        parts = sentences(" ".join(text.split()))
        for i, sentence in enumerate(parts):
            have = set(lexical.tokens(sentence))
            if (found := sum(t in have for t in new)) > best:
                best = found
                window = " ".join(parts[max(0, i - EVIDENCE_WINDOW) : i + EVIDENCE_WINDOW + 1])
    return round(coverage(question, window), 3) if best else 0.0


def _body(answer: str, labels: Sequence[str]) -> str:
    body = CITATION.sub(" ", answer)
    for label in labels:
        body = body.replace(label, " ")
    return body


def _yes_no(body: str) -> bool:
    return lexical.tokens(body)[:1] in (["yes"], ["no"])


def _own_tokens(answer: str, question: str, labels: Sequence[str]) -> list[str]:
    """The answer's content tokens that the question does not have, citations and passage labels
    removed (a model that copies a label has not found anything); a leading yes or no is not one."""
    body = _body(answer, labels)
    asked = set(content_tokens(question))
    yes_no = _yes_no(body)
    return [t for t in content_tokens(body) if t not in asked and not (yes_no and t in ("yes", "no"))]
