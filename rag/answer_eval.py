"""`python -m rag eval --answers SET.json`: what a user gets, end to end, on a SQuAD-format set.

The real pipeline runs: the set's articles are ingested into a temporary index, then every
question (or a seeded sample of `n`) is asked through `Engine.ask` with the configured backend
chain (MODEL_PATH, the bundled model, or remote servers), one at a time and without history.
Per question we score the answer against the gold answers (SQuAD's normalisation: case,
punctuation, articles and spacing ignored):

- contains_gold: a gold answer appears in the answer;
- exact / f1: exact match and token F1 of the answer's best sentence against the best gold;
- citations: every `[n]` names a passage that was shown (valid), and a cited passage holds the gold;
- abstained: the answer says the documents do not hold the answer (on `is_impossible` questions
  that is the right behaviour; on answerable ones it is a miss);
- first_token_ms, total_ms.
"""

from __future__ import annotations

import random
import re
import statistics
import string
import tempfile
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from .config import Settings
from .errors import RagError
from .evaluate import Question, load_squad
from .grounding import CITATION, NOTHING_FOUND, abstains, evidence
from .prompt import cite_label

SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")


def normalize(text: str) -> str:
    """SQuAD's answer normalisation. Example: 'The  Normans!' -> 'normans'."""
    text = "".join(c for c in text.lower() if c not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1(prediction: str, gold: str) -> float:
    pred, ref = normalize(prediction).split(), normalize(gold).split()
    common = sum((Counter(pred) & Counter(ref)).values())
    if not common:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


@dataclass
class Scored:
    question: str
    impossible: bool
    answer: str
    abstained: bool
    contains_gold: bool = False
    exact: bool = False
    f1: float = 0.0
    retrieved_gold: bool = False  # a retrieved passage held the gold answer (the model could have found it)
    cited: list[int] = field(default_factory=list)
    invalid_citations: list[int] = field(default_factory=list)  # numbers of no passage that was shown
    cited_gold: bool = False  # a cited passage holds the gold answer
    attributed: int | None = None  # the model cited nothing; the engine named the passage its words are from
    source_gold: bool = False  # a cited or attributed passage holds the gold answer
    first_token_ms: float | None = None
    total_ms: float = 0.0
    support: float | None = None  # the grounding gate's measure for this question (grounding.py)
    gated: bool = False  # the gate answered "nothing found" instead of the model
    answer_support: float | None = None  # the answer check's measure of the model's answer (grounding.py)
    evidence: float | None = None  # the evidence check's measure of the (checked) answer (grounding.py)
    withdrawn: bool = False  # an answer check replaced the model's answer by "nothing found"
    draft: Scored | None = None  # the model's own answer, scored, when the answer check changed it
    check: dict[str, list[bool]] = field(default_factory=dict)  # threshold -> [contains gold, abstained]
    # "answer check/evidence check" thresholds -> [contains gold, abstained]
    evidence_check: dict[str, list[bool]] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str = ""


def score(q: Question, answer: str, passages: dict[int, str], first_token_ms, total_ms) -> Scored:
    cited = sorted({int(n) for n in CITATION.findall(answer)})
    body = CITATION.sub("", answer)
    golds = [normalize(a) for a in q.answers]
    out = Scored(q.text, q.impossible, answer, abstains(answer), first_token_ms=first_token_ms, total_ms=total_ms)
    out.cited = cited
    out.invalid_citations = [n for n in cited if n not in passages]
    if q.impossible:
        return out
    out.retrieved_gold = any(g in normalize(p) for g in golds for p in passages.values())
    if answer.startswith(NOTHING_FOUND):
        return out  # the engine's "nothing found" quotes passages: their words are not an answer
    text = normalize(body)
    out.contains_gold = any(g and g in text for g in golds)
    sentences = [s for s in SENTENCE_END.split(body) if s.strip()] or [body]
    out.exact = any(normalize(s) == g for s in sentences for g in golds)
    out.f1 = max((f1(s, g) for s in sentences for g in q.answers), default=0.0)
    out.cited_gold = any(g in normalize(passages[n]) for g in golds for n in cited if n in passages)
    return out


def _rate(values: list[bool]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def summary(scored: list[Scored]) -> dict:
    answerable = [s for s in scored if not s.impossible and not s.error]
    impossible = [s for s in scored if s.impossible and not s.error]
    # what the model itself cited: a withdrawn answer's draft (the "nothing found" reply quotes passages)
    own = [s.draft or s for s in answerable]
    with_citations = [s for s in own if s.cited]
    answered = [s for s in answerable if not s.abstained]  # not withdrawn, gated or declined
    cited_numbers = [n for s in scored for n in (s.draft or s).cited]
    first = sorted(s.first_token_ms for s in scored if s.first_token_ms is not None)
    total = sorted(s.total_ms for s in scored if not s.error)
    return {
        "questions": len(scored),
        "answerable": len(answerable),
        "impossible": len(impossible),
        "errors": sum(bool(s.error) for s in scored),
        "contains_gold": _rate([s.contains_gold for s in answerable]),
        "exact": _rate([s.exact for s in answerable]),
        "f1": round(statistics.mean(s.f1 for s in answerable), 3) if answerable else None,
        "retrieved_gold": _rate([s.retrieved_gold for s in answerable]),
        "false_abstention": _rate([s.abstained for s in answerable]),
        "no_answer": _rate([s.abstained for s in impossible]),  # the right behaviour on impossible questions
        "cite_rate": _rate([bool(s.cited) for s in own]),
        # of the answerable answers that cite: a cited passage holds the gold answer
        "citation_precision": _rate([s.cited_gold for s in with_citations]),
        # the answers the UI shows a source for (cited by the model, or attributed by the engine), and
        # of those the share whose source holds the gold answer; withdrawn answers are not counted
        "source_rate": _rate([bool(s.cited or s.attributed is not None) for s in answered]),
        "source_precision": _rate([s.source_gold for s in answered if s.cited or s.attributed is not None]),
        "invalid_citations": sum(len((s.draft or s).invalid_citations) for s in scored),
        "citations": len(cited_numbers),
        "first_token_p50_ms": round(statistics.median(first), 1) if first else None,
        "total_p50_ms": round(statistics.median(total), 1) if total else None,
        "total_p95_ms": round(total[min(len(total) - 1, int(len(total) * 0.95))], 1) if total else None,
    }


THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def sweep(scored: list[Scored], thresholds=THRESHOLDS) -> list[dict]:
    """What the grounding gate (GROUNDING_MIN) at each threshold would give, from one run's answers
    and support values: a question under the threshold gets "nothing found" instead of its answer."""
    out = []
    for t in thresholds:
        answerable = [s for s in scored if not s.impossible and not s.error and s.support is not None]
        impossible = [s for s in scored if s.impossible and not s.error and s.support is not None]
        out.append(
            {
                "min": t,
                "contains_gold": _rate([s.contains_gold and s.support >= t for s in answerable]),
                "no_answer": _rate([s.abstained or s.support < t for s in impossible]),
                "false_abstention": _rate([s.abstained or s.support < t for s in answerable]),
            }
        )
    return out


def check_sweep(scored: list[Scored], thresholds=THRESHOLDS) -> list[dict]:
    """What the answer check (ANSWER_CHECK_MIN) at each threshold would give, from the model's own
    answers and their sentences' support (`Scored.check`): kept sentences, or "nothing found"."""
    done = [s for s in scored if not s.error and s.check]
    answerable = [s for s in done if not s.impossible]
    impossible = [s for s in done if s.impossible]
    return [
        {
            "min": t,
            "contains_gold": _rate([s.check[str(t)][0] for s in answerable]),
            "no_answer": _rate([s.check[str(t)][1] for s in impossible]),
            "false_abstention": _rate([s.check[str(t)][1] for s in answerable]),
        }
        for t in thresholds
    ]


EVIDENCE_THRESHOLDS = (0.0, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5)
GRID_CHECKS = (0.0, 0.3, 0.5, 0.7)  # the answer check thresholds the evidence check is swept beside


def evidence_sweep(scored: list[Scored], answer_check: float) -> list[dict]:
    """What the evidence check (EVIDENCE_MIN) at each threshold would give beside the answer check at
    `answer_check` (one of GRID_CHECKS), from the model's own answers (`Scored.evidence_check`)."""
    done = [s for s in scored if not s.error and s.evidence_check]
    answerable = [s for s in done if not s.impossible]
    impossible = [s for s in done if s.impossible]
    out = []
    for t in EVIDENCE_THRESHOLDS:
        key = f"{answer_check:g}/{t:g}"
        out.append(
            {
                "answer_check": answer_check,
                "min": t,
                "contains_gold": _rate([s.evidence_check[key][0] for s in answerable]),
                "no_answer": _rate([s.evidence_check[key][1] for s in impossible]),
                "false_abstention": _rate([s.evidence_check[key][1] for s in answerable]),
            }
        )
    return out


def checked_at(
    q: Question, own: str, sentences: list, passages: dict[int, str], labels: list[str], t: float, te: float = 0.0
) -> list[bool]:
    """[contains gold, abstained] of the model's answer `own` after the answer check at threshold `t`
    and the evidence check at `te`, as the pipeline applies them."""
    if abstains(own):  # the checks leave an abstaining answer as it is
        s = score(q, own, passages, None, 0.0)
        return [s.contains_gold, True]
    kept = " ".join(text for text, share in sentences if share is None or share >= t)
    if not kept.strip():
        return [False, True]  # withdrawn: "nothing found"
    found = evidence(kept, q.text, list(passages.values()), labels)
    if found is not None and found < te:
        return [False, True]
    s = score(q, kept, passages, None, 0.0)
    return [s.contains_gold, s.abstained]


def evidence_grid(q: Question, own: str, sentences: list, passages: dict[int, str], labels: list[str]) -> dict:
    """`Scored.evidence_check`: [contains gold, abstained] for every GRID_CHECKS x EVIDENCE_THRESHOLDS pair."""
    return {
        f"{t:g}/{te:g}": checked_at(q, own, sentences, passages, labels, t, te)
        for t in GRID_CHECKS
        for te in EVIDENCE_THRESHOLDS
    }


def evidence_table(scored: list[Scored]) -> list[str]:
    """The evidence sweep as Markdown rows: one per EVIDENCE_MIN, one column per GRID_CHECKS value."""
    return evidence_rows([row for t in GRID_CHECKS for row in evidence_sweep(scored, t)])


def evidence_rows(sweep_rows: list[dict]) -> list[str]:
    def cell(r: dict) -> str:
        return " / ".join(
            "–" if r[k] is None else f"{r[k]:.3f}" for k in ("contains_gold", "no_answer", "false_abstention")
        )

    return [
        "| EVIDENCE_MIN | " + " | ".join(f"ANSWER_CHECK_MIN {t:g}" for t in GRID_CHECKS) + " |",
        "|---|" + "---|" * len(GRID_CHECKS),
        *(
            f"| {te:g} | " + " | ".join(cell(r) for r in sweep_rows if r["min"] == te) + " |"
            for te in EVIDENCE_THRESHOLDS
        ),
    ]


def evaluate_answers(
    qa_path: Path,
    settings: Settings,
    n: int | None = None,
    seed: int = 0,
    embedder=None,
    progress: Callable[[int, int, Scored], None] | None = None,
) -> dict:
    """Ingest the set into a temporary index and ask its questions; the summary plus every scored answer."""
    from .engine import Engine
    from .events import Done, Error, Hits

    with tempfile.TemporaryDirectory(prefix="ai-chat-answers-") as tmp:
        root = Path(tmp)
        docs = root / "docs"
        docs.mkdir()
        questions = load_squad(qa_path, docs, impossible=True)
        if n:
            questions = random.Random(seed).sample(questions, min(n, len(questions)))
        isolated = replace(
            settings, index_dir=root / "index", cache_dir=root / "cache", data_dir=root / "data", semantic_cache=False
        )
        engine = Engine(isolated, embedder=embedder)
        try:
            report = engine.ingest([docs])
            if report.errors:
                raise RagError("; ".join(r.message for r in report.errors))
            scored = []
            for i, q in enumerate(questions):
                passages: dict[int, str] = {}
                labels: list[str] = []
                done, error = None, ""
                for event in engine.ask(q.text, wait_for_model=True):
                    if isinstance(event, Hits):
                        passages = {p.n: p.text for p in event.hits}
                        labels = [cite_label(p) for p in event.hits]
                    elif isinstance(event, Done):
                        done = event
                    elif isinstance(event, Error):
                        error = event.message
                if done is None:
                    result = Scored(q.text, q.impossible, "", False, error=error or "no answer")
                else:
                    result = score(q, done.answer, passages, done.first_token_ms, done.total_ms)
                    result.support, result.gated = done.extra.get("support"), bool(done.extra.get("gated"))
                    result.answer_support = done.extra.get("answer_support")
                    result.evidence = done.extra.get("evidence")
                    result.attributed = done.extra.get("attributed")
                    if not q.impossible and result.attributed is not None:
                        gold = [normalize(a) for a in q.answers]
                        result.source_gold = any(g in normalize(passages.get(result.attributed, "")) for g in gold)
                    result.source_gold = result.source_gold or result.cited_gold
                    own = done.extra.get("draft", done.answer)
                    if "draft" in done.extra:
                        result.withdrawn = bool(done.extra.get("withdrawn"))
                        result.draft = score(q, own, passages, done.first_token_ms, done.total_ms)
                    if "sentence_support" in done.extra:
                        sentences = done.extra["sentence_support"]
                        result.check = {str(t): checked_at(q, own, sentences, passages, labels, t) for t in THRESHOLDS}
                        result.evidence_check = evidence_grid(q, own, sentences, passages, labels)
                    result.prompt_tokens, result.completion_tokens = done.prompt_tokens, done.completion_tokens
                    if done.retrieval_only and not result.gated:
                        result.error = f"retrieval only: {done.reason}"
                scored.append(result)
                if progress:
                    progress(i, len(questions), result)
            model = engine.status().model
        finally:
            engine.close()
    return {
        "file": str(qa_path),
        "model": (model.path if model else None) or ", ".join(b.name for b in engine.status().backends),
        "k": settings.top_k,
        "n": len(questions),
        "seed": seed,
        "summary": summary(scored),
        "gate_sweep": sweep(scored),
        "check_sweep": check_sweep(scored),
        "evidence_sweep": [row for t in GRID_CHECKS for row in evidence_sweep(scored, t)],
        "answer_check": settings.answer_check,
        "evidence_check": settings.evidence_check,
        "answers": [asdict(s) for s in scored],
    }


def table(result: dict) -> str:
    s = result["summary"]

    def pct(v):
        return "–" if v is None else f"{v:.3f}"

    return "\n".join(
        [
            f"{result['file']}: {s['questions']} questions ({s['answerable']} answerable, {s['impossible']} "
            f"impossible), k={result['k']}, model {result['model']}",
            "",
            "| figure | value |",
            "|---|---|",
            f"| answer contains a gold answer (answerable) | {pct(s['contains_gold'])} |",
            f"| exact match / token F1 of the best sentence | {pct(s['exact'])} / {pct(s['f1'])} |",
            f"| a retrieved passage held the gold answer | {pct(s['retrieved_gold'])} |",
            f"| answers citing a passage / citation precision | {pct(s['cite_rate'])} / "
            f"{pct(s['citation_precision'])} |",
            f"| citations naming no shown passage | {s['invalid_citations']} of {s['citations']} |",
            f"| answers shown with a source (cited or attributed) / its precision | {pct(s['source_rate'])} / "
            f"{pct(s['source_precision'])} |",
            f"| no-answer behaviour on impossible questions | {pct(s['no_answer'])} |",
            f"| false abstention on answerable questions | {pct(s['false_abstention'])} |",
            f"| first token p50 / total p50, p95 (ms) | {s['first_token_p50_ms']} / {s['total_p50_ms']}, "
            f"{s['total_p95_ms']} |",
            f"| errors (no generated answer) | {s['errors']} |",
            "",
            "| threshold | GROUNDING_MIN: contains gold / no-answer / false abstention "
            "| ANSWER_CHECK_MIN: contains gold / no-answer / false abstention |",
            "|---|---|---|",
            *(
                f"| {g['min']:g} | {pct(g['contains_gold'])} / {pct(g['no_answer'])} / {pct(g['false_abstention'])} "
                f"| {pct(c['contains_gold'])} / {pct(c['no_answer'])} / {pct(c['false_abstention'])} |"
                for g, c in zip(result["gate_sweep"], result["check_sweep"])
            ),
            "",
            *evidence_rows(result.get("evidence_sweep", [])),
            f"(each cell: contains gold / no-answer / false abstention; this run used ANSWER_CHECK_MIN "
            f"{result.get('answer_check', 0):g}, EVIDENCE_MIN {result.get('evidence_check', 0):g})",
        ]
    )
