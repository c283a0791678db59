"""A deterministic English corpus for benchmarks: plausible sentences, many topics, one planted fact."""

from __future__ import annotations

import random
from pathlib import Path

TOPICS = [
    "warehouse",
    "payroll",
    "laptop",
    "network",
    "holiday",
    "expense",
    "security",
    "printer",
    "badge",
    "parking",
    "training",
    "backup",
    "contract",
    "invoice",
    "server",
    "meeting",
    "travel",
    "insurance",
]
VERBS = ["is reviewed", "is approved", "is scheduled", "is updated", "is checked", "is renewed", "is archived"]
WHEN = [
    "every Monday",
    "at the end of each quarter",
    "before the audit",
    "after each release",
    "twice a year",
    "on the first working day",
    "within five days of a request",
    "when a manager asks",
]
WHO = [
    "by the office manager",
    "by the finance team",
    "by the IT desk",
    "by each department head",
    "by the facilities staff",
    "by the security officer",
]
FACT = "The emergency generator key is kept in the blue cabinet behind reception, labelled GENKEY-7731."
QUESTION = "Where is the emergency generator key kept?"


def write_corpus(folder: Path, n_docs: int, paragraphs: int = 12, seed: int = 0) -> Path:
    """n_docs Markdown files of `paragraphs` paragraphs each; the planted FACT is in the middle one."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for d in range(n_docs):
        lines = [f"# Handbook section {d}: {rng.choice(TOPICS)}", ""]
        for _ in range(paragraphs):
            sentences = [
                f"The {rng.choice(TOPICS)} {rng.choice(['policy', 'log', 'plan', 'record'])} "
                f"{rng.choice(VERBS)} {rng.choice(WHEN)} {rng.choice(WHO)}."
                for _ in range(6)
            ]
            lines += [" ".join(sentences), ""]
        if d == n_docs // 2:
            lines.insert(len(lines) // 2, FACT)
        (folder / f"section-{d:04d}.md").write_text("\n".join(lines))
    return folder
