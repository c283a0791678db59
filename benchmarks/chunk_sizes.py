"""Chunk size against retrieval quality, per language: `rag eval` on each set at each CHUNK_CHARS.

    .venv/bin/python -m benchmarks.chunk_sizes [--sizes 300,600,900,1200] [--json out.json] SET.json ...

Default sets: the Korean long-document set, the small Korean set, the shared English SQuAD v2 fragment
and the shared Turkish FAQ. For each set and size it prints answer-recall@5 of hybrid, dense and
lexical, the chunk count, the share of the text the embedder reads and hybrid p50 latency, one
embedder load for all of it. The table goes to docs/retrieval.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rag.config import PROJECT_ROOT, Settings
from rag.embeddings import load_embedder
from rag.evaluate import evaluate

SETS = [
    PROJECT_ROOT / "tests/data/korean-long.json",
    PROJECT_ROOT / "tests/data/korean-qa.json",
    PROJECT_ROOT.parent / "shared/data/squad-v2-dev-en-fragment.json",
    PROJECT_ROOT.parent / "shared/data/turkish-faq.json",
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="*", type=Path)
    ap.add_argument("--sizes", default="300,600,900,1200")
    ap.add_argument("--overlap", type=float, default=1 / 6, help="overlap as a share of the size")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    settings = Settings.from_env()
    embedder = load_embedder(settings.embed_model, *settings.embed_prefixes)
    rows = []
    print("| set | CHUNK_CHARS | chunks | embedder reads | hybrid | dense | lexical | hybrid p50 ms |")
    print("|---|---|---|---|---|---|---|---|")
    for qa in args.sets or [s for s in SETS if s.exists()]:
        for size in (int(x) for x in args.sizes.split(",")):
            r = evaluate(qa, embedder, chunk_chars=size, chunk_overlap=int(size * args.overlap))
            modes = {m["mode"]: m for m in r["modes"]}
            rows.append(r)
            print(
                f"| {qa.name} ({r['questions']} q) | {size} | {r['chunks']} | {r['embedder_read']:.0%} | "
                + " | ".join(f"{modes[m]['answer_recall']:.3f}" for m in ("hybrid", "dense", "lexical"))
                + f" | {modes['hybrid']['p50_ms']:.1f} |",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
