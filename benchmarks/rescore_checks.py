"""Re-score a saved `rag eval --answers --json` run under other answer-check settings, without
generating again: the model's own answers (drafts) are kept, the k passages each question was shown
are retrieved again (retrieval is deterministic), and ANSWER_CHECK_MIN x EVIDENCE_MIN are applied as
the pipeline applies them. Prints contains-gold / no-answer / false abstention per pair, for the
whole set and for each half (even and odd questions), so a threshold chosen on one half can be read
off the other.

    .venv/bin/python benchmarks/rescore_checks.py docs/data/answers-smollm2-squad-v2-p4.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from rag import retrieve
from rag.answer_eval import Scored, evidence_grid, evidence_table
from rag.config import Settings
from rag.engine import Engine
from rag.evaluate import load_squad
from rag.grounding import answer_support, sentences
from rag.prompt import cite_label


def main(run_path: str) -> None:
    run = json.loads(Path(run_path).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (docs := root / "docs").mkdir()
        questions = {q.text: q for q in load_squad(Path(run["file"]), docs, impossible=True)}
        settings = replace(
            Settings.from_env(), index_dir=root / "index", cache_dir=root / "cache", data_dir=root / "data"
        )
        engine = Engine(settings)
        try:
            engine.ingest([docs])
            embedder, store = engine.embedder.get(), engine.index.get()
            rows = []
            for answer in run["answers"]:
                q = questions[answer["question"]]
                shown = retrieve.numbered(
                    retrieve.search(embedder, store, q.text, run["k"], mode=settings.retrieval_mode)
                )
                passages, labels = {p.n: p.text for p in shown}, [cite_label(p) for p in shown]
                own = (answer["draft"] or answer)["answer"]
                scored = [(s, answer_support(s, q.text, list(passages.values()), labels)) for s in sentences(own)]
                rows.append(
                    Scored(
                        q.text, q.impossible, own, False, evidence_check=evidence_grid(q, own, scored, passages, labels)
                    )
                )
        finally:
            engine.close()
    for name, part in (("all", rows), ("even", rows[0::2]), ("odd", rows[1::2])):
        print(f"\n{name}: {len(part)} questions; cells: contains gold / no-answer / false abstention")
        print("\n".join(evidence_table(part)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "docs/data/answers-smollm2-squad-v2-p4.json")
