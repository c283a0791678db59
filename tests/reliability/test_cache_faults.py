"""The answer cache is an optimisation: locked by another process or turned to garbage, chat goes on
answering (uncached), the problem is logged once, and a lock is waited out rather than 'repaired'."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from rag.events import Done

LOCKER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(60)
"""


def ask(engine, question):
    return [e for e in engine.ask(question, wait_for_model=True) if isinstance(e, Done)][-1]


@pytest.mark.slow
def test_locked_cache_answers_uncached_logs_once_and_keeps_its_entries(engine, caplog):
    first = ask(engine, "What is the backup passphrase for the archive?")
    assert first.cache is None and ask(engine, "What is the backup passphrase for the archive?").cache == "exact"
    locker = subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(engine.cache.directory / "cache.db")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert locker.stdout.readline().strip() == "locked"
        began = time.monotonic()
        for question in ("Where is the emergency generator key kept?", "Who reviews the budget each quarter?"):
            done = ask(engine, question)
            assert done.completion_tokens > 0 and done.cache is None
        assert time.monotonic() - began < 20  # not diskcache's default 60 s wait per write
        assert ask(engine, "What is the backup passphrase for the archive?").cache == "exact"  # reads go on
    finally:
        locker.kill()
        locker.wait()
    assert sum("locked by another writer" in r.message for r in caplog.records) == 1
    assert not any("rebuilding" in r.message for r in caplog.records)
    ask(engine, "Where is the emergency generator key kept?")  # stored now that the lock is gone
    assert ask(engine, "Where is the emergency generator key kept?").cache == "exact"


def test_garbage_cache_is_rebuilt_while_chat_goes_on(engine, caplog):
    ask(engine, "What is the backup passphrase for the archive?")
    engine.cache.close()
    (engine.cache.directory / "cache.db").write_bytes(b"\x00garbage" * 4096)
    done = ask(engine, "What is the backup passphrase for the archive?")
    assert done.completion_tokens > 0 and done.cache is None
    assert sum("rebuilding" in r.message for r in caplog.records) == 1
    ask(engine, "Where is the emergency generator key kept?")
    assert ask(engine, "Where is the emergency generator key kept?").cache == "exact"
