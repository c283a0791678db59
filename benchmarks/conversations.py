"""The saved-conversation list at scale: 10,000 exchanges, timed server-side.

Fills a conversation store (rag/conversations.py) with realistic exchanges (a question, a ~600-character
answer, five 900-character passages with their labels, the engine's turn record), then measures, in one
run: the store's list query (newest first, LIST_LIMIT rows), a text search over every title, question
and answer, opening one conversation, and the sidebar's whole render (ui/conversations.render under
Streamlit's AppTest) against the same render over an empty store. Bar: the list renders in < 100 ms.

    .venv/bin/python -m benchmarks.conversations [--exchanges 10000] [--per 5] [--rounds 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rag.conversations import SQLiteConversations

BAR_MS = 100.0
WORDS = (
    "leave policy parking permit badge hatch key manual page pump filter warranty invoice travel expense "
    "연차 휴가 급여 주차 출장 보안 교육 회의실 예약 복지 포인트 건강검진"
).split()


def _text(rng: random.Random, chars: int) -> str:
    out: list[str] = []
    while sum(len(w) + 1 for w in out) < chars:
        out.append(rng.choice(WORDS))
    return " ".join(out)


def fill(path: Path, conversations: int, per: int, seed: int = 0) -> SQLiteConversations:
    """A store at `path` with `conversations` x `per` exchanges of realistic size."""
    rng = random.Random(seed)
    store = SQLiteConversations(path)
    for _ in range(conversations):
        conv = None
        for _ in range(per):
            question = _text(rng, 60) + "?"
            sources = [
                {"n": n, "source": f"{rng.choice(WORDS)}.pdf", "page": rng.randint(1, 40), "score": 0.5,
                 "found_by": "dense 0.61 + BM25 8.20", "text": _text(rng, 900)}
                for n in range(1, 6)
            ]  # fmt: skip
            answer = _text(rng, 600) + " [1]"
            record = {
                "role": "assistant",
                "content": answer,
                "sources": sources,
                "cited": [1],
                "meta": "cache miss · retrieval 20 ms · first token 900 ms · 40.0 tokens/s · 1100 prompt tokens",
                "turn": [
                    {"role": "user", "content": question, "passages": sources},
                    {"role": "assistant", "content": answer},
                ],
            }
            conv = store.add(conv, question, record)
    return store


def _timed(fn, rounds: int) -> list[float]:
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        fn()
        times.append((time.perf_counter() - began) * 1000)
    return times


class _Holder:
    """What ui/conversations.render reads of the engine: its conversation store."""

    def __init__(self, history):
        self.history = history


def _sidebar(path: str) -> None:
    from benchmarks.conversations import _Holder
    from rag.conversations import SQLiteConversations
    from ui import conversations

    conversations.render(_Holder(SQLiteConversations(path)))


def render_ms(path: Path, rounds: int, open_id: str | None = None) -> list[float]:
    """Server-side render of the sidebar's conversation list, under AppTest (one run per round);
    `open_id`: with that conversation open (its rename, export and delete drawn too)."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_function(_sidebar, args=(str(path),), default_timeout=30)
    if open_id:
        at.session_state["conversation"] = open_id
    at.run()  # warm: imports, first script compile
    times = []
    for _ in range(rounds):
        began = time.perf_counter()
        at.run()
        times.append((time.perf_counter() - began) * 1000)
        assert not at.exception, at.exception
    return times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exchanges", type=int, default=10_000)
    ap.add_argument("--per", type=int, default=5, help="exchanges per conversation")
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="conversations-bench-") as tmp:
        began = time.perf_counter()
        store = fill(Path(tmp) / "conversations.sqlite", args.exchanges // args.per, args.per)
        size = store.db.path.stat().st_size / 2**20
        print(f"{args.exchanges} exchanges in {args.exchanges // args.per} conversations, {size:.0f} MiB, "
              f"written in {time.perf_counter() - began:.1f} s")  # fmt: skip
        newest = store.list(limit=1)[0].id
        rows = {
            "list (newest 50)": _timed(lambda: store.list(), args.rounds),
            "search 'warranty'": _timed(lambda: store.list("warranty"), args.rounds),
            "search '휴가'": _timed(lambda: store.list("휴가"), args.rounds),
            "open one conversation": _timed(lambda: store.get(newest), args.rounds),
            "sidebar render, empty store": render_ms(Path(tmp) / "empty.sqlite", args.rounds),
            f"sidebar render, {args.exchanges} exchanges": render_ms(store.db.path, args.rounds),
            f"sidebar render, {args.exchanges} exchanges, one open": render_ms(store.db.path, args.rounds, newest),
        }
    print("| what | p50 ms | p95 ms |\n|---|---|---|")
    for name, times in rows.items():
        times.sort()
        print(f"| {name} | {statistics.median(times):.1f} | {times[int(len(times) * 0.95) - 1]:.1f} |")
    rendered = statistics.median(rows[f"sidebar render, {args.exchanges} exchanges"])
    print(f"\nconversation list render at {args.exchanges} exchanges: p50 {rendered:.1f} ms (bar < {BAR_MS:.0f} ms)")
    return 0 if rendered < BAR_MS else 1


if __name__ == "__main__":
    sys.exit(main())
