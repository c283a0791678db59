"""Saved conversations: the SQLite store, its faults (locked, damaged, full disk), export, the CLI,
HISTORY=off, and a reopened conversation continuing after a restart with its prompt prefix reused."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import textwrap
from dataclasses import replace

import pytest

from rag import conversations, db
from rag.config import Settings
from rag.conversations import SQLiteConversations, title_of
from rag.engine import Engine
from rag.errors import ConfigError, HistoryError
from rag.events import Done
from rag.export import to_json, to_markdown

from .conftest import run_cli

SOURCES = [
    {"n": 1, "source": "manual.pdf", "page": 2, "score": 0.8, "found_by": "dense 0.61 + BM25 8.20", "text": "Key A."},
    {"n": 2, "source": "notes_[x].txt", "page": None, "score": 0.4, "found_by": "BM25 3.10", "text": "Other."},
]


def record(answer: str, **extra) -> dict:
    return {"role": "assistant", "content": answer, "sources": SOURCES, "cited": [1], "meta": "cache miss", **extra}


@pytest.fixture
def store(tmp_path):
    return SQLiteConversations(tmp_path / "data" / "conversations.sqlite")


def test_exchanges_are_saved_listed_searched_renamed_and_deleted(store):
    assert store.list() == [] and not store.db.path.exists()  # reading creates no file
    first = store.add(None, "How is the  service hatch key labelled?", record("VELVETORCHID [1]"))
    assert store.add(first, "And where is it kept?", record("In the red box [1]")) == first
    other = store.add(None, "연차 휴가는 며칠인가요?", record("매년 15일 [1]"))
    assert [s.id for s in store.list()] == [other, first]  # newest first
    assert store.list()[1].title == "How is the service hatch key labelled?" and store.list()[1].exchanges == 2
    assert [s.id for s in store.list("red box")] == [first]  # an answer's words
    assert [s.id for s in store.list("휴가")] == [other]  # any script
    assert [s.id for s in store.list("HATCH")] == [first]
    assert store.list("100%") == [] and store.list("_") == []  # LIKE wildcards are literal
    conv = store.get(first)
    assert conv is not None and [e.question for e in conv.exchanges][1] == "And where is it kept?"
    assert conv.exchanges[0].record == record("VELVETORCHID [1]")  # exactly as given
    store.rename(first, "  Hatch   key ")
    assert store.get(first).title == "Hatch key"
    with pytest.raises(HistoryError, match="cannot be empty"):
        store.rename(first, "   ")
    assert store.resolve(first[:8]) == first
    store.delete(first)
    assert store.get(first) is None and [s.id for s in store.list()] == [other]
    assert sqlite3.connect(store.db.path).execute("SELECT count(*) FROM exchanges").fetchone()[0] == 1
    with pytest.raises(HistoryError, match="no conversation has an id starting with"):
        store.resolve(first[:8])


def test_a_title_is_the_first_question_on_one_line():
    assert title_of("Where\nis   it?") == "Where is it?"
    long = title_of("word " * 40)
    assert len(long) == conversations.TITLE_CHARS and long.endswith("…")


def test_a_locked_store_is_reported_and_loses_nothing(store, monkeypatch):
    conv = store.add(None, "kept?", record("yes"))
    monkeypatch.setattr(db, "BUSY_MS", 200)
    holder = sqlite3.connect(store.db.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process writing, and not letting go
    try:
        with pytest.raises(HistoryError, match="locked.*try again in a moment"):
            store.add(conv, "while locked", record("lost?"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    store.add(conv, "after", record("saved"))
    assert [e.question for e in store.get(conv).exchanges] == ["kept?", "after"]


def test_a_damaged_store_is_reported_and_left_as_it_is(store):
    store.db.path.parent.mkdir(parents=True)
    garbage = b"this is not an SQLite file " * 200
    store.db.path.write_bytes(garbage)
    with pytest.raises(HistoryError, match="damaged; move it aside"):
        store.add(None, "question", record("answer"))
    with pytest.raises(HistoryError, match=str(store.db.path)):
        store.list()
    assert store.db.path.read_bytes() == garbage


def test_a_full_disk_is_reported_and_loses_nothing(store):
    """The store's process may write no more than the file holds now (RLIMIT_FSIZE, as a full disk)."""
    conv = store.add(None, "before the disk filled", record("kept"))
    code = textwrap.dedent(
        f"""
        import resource, signal, sys
        from rag.conversations import SQLiteConversations
        from rag.errors import ConfigError, HistoryError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
        store = SQLiteConversations({str(store.db.path)!r})
        try:
            store.add({conv!r}, "big", {{"content": "x" * 500_000}})
        except HistoryError as exc:
            print(exc)
            sys.exit(3)
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "could not be used" in proc.stdout and str(store.db.path) in proc.stdout
    assert [e.question for e in store.get(conv).exchanges] == ["before the disk filled"]
    store.add(conv, "after", record("saved"))  # room again: saving goes on
    assert len(store.get(conv).exchanges) == 2


def test_export_round_trip(store):
    conv_id = store.add(None, "**Bold** <img src=x onerror=alert(1)> question", record("Labelled VELVETORCHID [1]."))
    store.add(conv_id, "Where is it kept?", record("In the red box [2].", cited=[2], draft="draft text"))
    conv = store.get(conv_id)
    data = json.loads(to_json(conv))
    assert data["id"] == conv_id and data["title"] == conv.title
    assert [e["question"] for e in data["exchanges"]] == [e.question for e in conv.exchanges]
    for exported, saved in zip(data["exchanges"], conv.exchanges):
        assert {k: exported[k] for k in saved.record} == saved.record  # every saved field, unchanged
    md = to_markdown(conv)
    assert md.startswith("# \\*\\*Bold\\*\\* \\<img src=x onerror=alert\\(1\\)\\> question\n")
    assert "## 2. Where is it kept?" in md and "In the red box [2]." in md
    first, second = md.split("## 2")
    assert "- [1] manual\\.pdf, page 2 — cited" in first and "- [2] notes\\_\\[x\\]\\.txt\n" in first
    assert second.index("[2] notes") < second.index("[1] manual")  # the cited source first
    assert re.search(r"(?<!\\)<img", md) is None  # only as escaped, literal text


def test_history_off_keeps_nothing(settings, embedder, tmp_path):
    assert Settings.from_env({}).history is True
    off = Settings.from_env({"HISTORY": "off"})
    assert off.history is False
    with pytest.raises(ConfigError, match="HISTORY='maybe'"):
        Settings.from_env({"HISTORY": "maybe"})
    engine = Engine(replace(settings, history=False), embedder=embedder, start=False)
    assert engine.history is None


def test_chats_command(tmp_path):
    env = {"DATA_DIR": str(tmp_path / "data")}
    store = SQLiteConversations(tmp_path / "data" / "conversations.sqlite")
    conv = store.add(None, "Where is the hatch key?\x1b[2J", record("In the red box [1]."))
    listed = run_cli("chats", "list", env=env)
    assert listed.returncode == 0 and conv[:8] in listed.stdout and "\\x1b[2J" in listed.stdout  # shown, not obeyed
    shown = run_cli("chats", "show", conv[:8], env=env)
    assert shown.returncode == 0 and "In the red box [1]." in shown.stdout and "manual\\.pdf, page 2" in shown.stdout
    out = tmp_path / "chat.json"
    assert run_cli("chats", "export", conv[:8], "--format", "json", "-o", str(out), env=env).returncode == 0
    assert json.loads(out.read_text())["exchanges"][0]["content"] == "In the red box [1]."
    assert run_cli("chats", "delete", conv[:8], env=env).returncode == 0
    missing = run_cli("chats", "show", conv[:8], env=env)
    assert missing.returncode == 1 and "error: no conversation has an id starting with" in missing.stderr
    off = run_cli("chats", "list", env={**env, "HISTORY": "0"})
    assert off.returncode == 1 and "HISTORY=off" in off.stderr


def _ask(engine, question: str, history=()) -> Done:
    done = [e for e in engine.ask(question, history, wait_for_model=True) if isinstance(e, Done)]
    assert done, question
    return done[-1]


def test_a_reopened_conversation_continues_with_prefix_reuse_after_a_restart(settings, embedder, tiny_model, corpus):
    configured = replace(settings, model_path=tiny_model, temperature=0.0)
    before = Engine(configured, embedder=embedder)
    assert not before.ingest([corpus[0]]).errors
    first = _ask(before, "How is the service hatch key labelled?")
    conv = before.history.add(
        None, "How is the service hatch key labelled?", {"content": first.answer, "turn": first.turn}
    )
    del before  # a restart: a new engine, a new llama.cpp context with nothing cached

    after = Engine(configured, embedder=embedder)
    saved = after.history.get(conv)
    history = [m for exchange in saved.exchanges for m in exchange.record["turn"]]
    assert history == json.loads(json.dumps(first.turn))  # restored exactly as the engine sent it
    second = _ask(after, "And where is that key kept?", history)
    assert second.prompt_tokens > first.prompt_tokens  # the saved exchange is in the prompt
    after.history.add(conv, "And where is that key kept?", {"content": second.answer, "turn": second.turn})
    history = [m for exchange in after.history.get(conv).exchanges for m in exchange.record["turn"]]
    third = _ask(after, "Who may borrow it?", history)
    second_uncached = second.prompt_tokens - second.reused_tokens
    third_uncached = third.prompt_tokens - third.reused_tokens
    assert third_uncached <= 0.3 * second_uncached, (second_uncached, third_uncached)


def test_a_history_from_before_accounts_is_read_and_extended(tmp_path):
    """The schema of the release before accounts: no owner column, exchanges keyed by an id."""
    path = tmp_path / "data" / "conversations.sqlite"
    path.parent.mkdir()
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE conversations (id TEXT PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL,
            updated REAL NOT NULL);
        CREATE TABLE exchanges (id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES conversations(id)
            ON DELETE CASCADE, ordinal INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL,
            record TEXT NOT NULL, created REAL NOT NULL, UNIQUE (conversation_id, ordinal));
        INSERT INTO conversations VALUES ('c1', 'Old question', 1.0, 1.0);
        INSERT INTO exchanges VALUES (1, 'c1', 1, 'Old question', 'Old answer', '{"content": "Old answer"}', 1.0);
        """
    )
    old.commit()
    old.close()
    store = SQLiteConversations(path)
    assert [s.title for s in store.list()] == ["Old question"]  # sign-in off: the owner is ""
    assert store.add("c1", "New question", record("New answer")) == "c1"
    assert [e.question for e in store.get("c1").exchanges] == ["Old question", "New question"]
    assert store.list(owner="alice") == []
