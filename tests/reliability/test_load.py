"""Eight askers through one Engine at once, with an ingest in the middle: nothing crashes, every
question is answered, queue positions are reported, the model is built once, RSS stays flat.

`make test` runs it for 20 s; `make soak` for SOAK_SECONDS (default 120), the issue's 2 minutes."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter

import psutil
import pytest

from rag.events import Done, Error, Hits, Status, Token
from rag.llm import local as llm

ASKERS = 8
SECONDS = float(os.environ.get("SOAK_SECONDS", "20"))
TOPICS = [
    "the backup passphrase for the archive",
    "the emergency generator key",
    "the parking permit number",
    "deliveries and storage",
    "who reviews the budget",
    "the fire drill schedule",
]


@pytest.mark.slow
def test_eight_concurrent_askers_with_an_ingest_midway(engine, tmp_path, monkeypatch):
    built = []
    real_init = llm.LocalLLM.__init__
    monkeypatch.setattr(llm.LocalLLM, "__init__", lambda self, *a, **k: (built.append(1), real_init(self, *a, **k)))
    model = engine.chain.local.model.get()
    stop_at = time.monotonic() + SECONDS
    answered, errors, queued = Counter(), [], []
    ingested = threading.Event()
    rss = []

    def asker(n):
        i = 0
        while time.monotonic() < stop_at:
            # half repeat a few questions (cache hits), half are new (generated)
            topic = TOPICS[(n + i) % len(TOPICS)]
            question = f"What about {topic}?" if i % 2 else f"Asker {n} question {i}: what about {topic}?"
            i += 1
            got_done = False
            for event in engine.ask(question, wait_for_model=True):
                if isinstance(event, Status) and event.stage == "queued":
                    queued.append(event.position)
                elif isinstance(event, Error):
                    errors.append(event.message)
                elif isinstance(event, Done):
                    answered["all"] += 1
                    answered["empty"] += not event.answer
                    answered["cached"] += bool(event.cache)
                    answered["generated"] += bool(event.completion_tokens)
                    got_done = True
            assert got_done or errors

    def ingester():
        time.sleep(SECONDS / 5)
        doc = tmp_path / "late-arrival.md"
        doc.write_text("# Late arrival\n\nThe rooftop beehive is inspected by ORCHIDFALCON every Tuesday.\n")
        assert not engine.ingest([doc]).errors
        ingested.set()

    threads = [threading.Thread(target=asker, args=(n,)) for n in range(ASKERS)]
    threads.append(threading.Thread(target=ingester))
    process = psutil.Process()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        if ingested.is_set():  # warm-up: every path (ask, cache, ingest, new index version) has run once
            rss.append(process.memory_info().rss)
        time.sleep(0.5)
    for t in threads:
        t.join()

    assert not errors, errors[:3]
    assert answered["all"] >= ASKERS * 2 and not answered["empty"]
    assert answered["cached"] and answered["generated"]
    assert queued and max(queued) >= 2  # others were told their place in the queue
    assert built == [] and engine.chain.local.model.get() is model  # built once, before the load began
    warm = rss[len(rss) // 10 :]
    growth = (max(warm[-4:]) - min(warm[:4])) / min(warm[:4])
    print(
        f"\n{SECONDS:.0f} s, {ASKERS} askers: {answered['all']} answers ({answered['cached']} cached, "
        f"{answered['generated']} generated), queue positions up to {max(queued)}, RSS "
        f"{min(warm[:4]) / 2**20:.0f} -> {max(warm[-4:]) / 2**20:.0f} MB after warm-up ({growth:+.1%})"
    )
    assert growth < 0.05, f"RSS grew {growth:.1%} after warm-up"
    hits = [e for e in engine.ask("Who inspects the rooftop beehive?") if isinstance(e, Hits)][-1].hits
    assert "ORCHIDFALCON" in hits[0].text  # the document ingested mid-chat is searchable


@pytest.mark.slow
def test_answers_keep_streaming_while_documents_are_ingested(engine, tmp_path):
    """Tokens keep arriving while 30 documents are parsed, embedded and committed in another thread."""
    folder = tmp_path / "batch"
    folder.mkdir()
    for i in range(30):
        (folder / f"doc{i}.md").write_text(
            " ".join(f"Section {j} of handbook {i} covers shelf {j * i}." for j in range(150))
        )
    window = {}

    def ingest_all():
        window["start"] = time.monotonic()
        engine.ingest([folder])
        window["end"] = time.monotonic()

    worker = threading.Thread(target=ingest_all)
    worker.start()
    arrivals = []
    while worker.is_alive():
        for event in engine.ask(f"Tell me about deliveries, round {len(arrivals)}", wait_for_model=True):
            if isinstance(event, Token):
                arrivals.append(time.monotonic())
    worker.join()
    during = [t for t in arrivals if window["start"] <= t <= window["end"]]
    assert len(during) >= 10, f"{len(during)} tokens arrived during a {window['end'] - window['start']:.1f} s ingest"
    assert engine.index.get().documents()[-1]["source"].startswith("doc")
