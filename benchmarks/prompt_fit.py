"""How much of what retrieval finds reaches the model, per chunk size: a Korean character costs the
LLM's tokenizer more than an English one, so larger Korean chunks mean fewer passages in the prompt.

For every question of a SQuAD-format set, at each CHUNK_CHARS: the product's retrieval (top k) and
the prompt the pipeline would send (rag.prompt.build within the model's context, MAX_TOKENS kept
free for the answer); no generation. Prints the share of questions whose gold answer is in the top k,
the share whose gold is in a passage that made it into the prompt, passages kept and prompt tokens.

    .venv/bin/python -m benchmarks.prompt_fit tests/data/korean-long.json --sizes 450,900,1350
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from rag import prompt, retrieve
from rag.config import Settings
from rag.engine import Engine
from rag.evaluate import _norm, load_squad
from rag.pipeline import MARGIN_TOKENS


def run(qa: Path, settings: Settings, size: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="ai-chat-fit-") as tmp:
        root = Path(tmp)
        (root / "docs").mkdir()
        questions = load_squad(qa, root / "docs")
        isolated = replace(
            settings,
            index_dir=root / "index",
            cache_dir=root / "cache",
            data_dir=root / "data",
            chunk_chars=size,
            chunk_overlap=size // 6,
        )
        engine = Engine(isolated)
        try:
            engine.ingest([root / "docs"])
            model, why = engine.chain.acquire(engine.chain.first, True)
            if model is None:
                raise SystemExit(f"no model: {why}")
            embedder, store = engine.embedder.get(), engine.index.get()
            budget = model.n_ctx - min(settings.max_tokens, model.n_ctx // 2) - MARGIN_TOKENS
            top, fitted, kept, tokens = 0, 0, [], []
            for q in questions:
                hits = retrieve.search(embedder, store, q.text, settings.top_k, mode=settings.retrieval_mode)
                built = prompt.build(q.text, [], hits, model.count_chat, budget)
                gold = [_norm(a) for a in q.answers]
                top += any(g in _norm(h.text) for g in gold for h in hits if h.source == q.doc)
                fitted += any(g in _norm(p.text) for g in gold for p in built.citations if p.source == q.doc)
                kept.append(len(built.citations))
                tokens.append(built.n_tokens)
            n = len(questions)
            return {
                "set": qa.name,
                "chunk_chars": size,
                "questions": n,
                "n_ctx": model.n_ctx,
                "budget": budget,
                "gold_in_top_k": top / n,
                "gold_in_prompt": fitted / n,
                "passages_in_prompt": statistics.mean(kept),
                "prompt_tokens_p50": statistics.median(tokens),
            }
        finally:
            engine.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+", type=Path)
    ap.add_argument("--sizes", default="450,900,1350")
    args = ap.parse_args()
    settings = Settings.from_env()
    print(
        "| set | CHUNK_CHARS | n_ctx / budget | gold in top k | gold in the prompt | passages in the prompt | "
        "prompt tokens p50 |"
    )
    print("|---|---|---|---|---|---|---|")
    for qa in args.sets:
        for size in (int(s) for s in args.sizes.split(",")):
            r = run(qa, settings, size)
            print(
                f"| {r['set']} | {size} | {r['n_ctx']} / {r['budget']} | {r['gold_in_top_k']:.3f} | "
                f"{r['gold_in_prompt']:.3f} | {r['passages_in_prompt']:.1f} | {r['prompt_tokens_p50']:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
