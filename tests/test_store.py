"""The state database on both backends (an SQLite file, a real PostgreSQL server): conversations
kept apart by owner, two writers at once, accounts and sessions, the brake on guessing, two
processes sharing one PostgreSQL, and a DATABASE_URL's password never shown."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time

import pytest

from rag import accounts as accounts_module
from rag.accounts import AccountError, Accounts, SignInError, Viewer
from rag.config import PROJECT_ROOT
from rag.conversations import Conversations
from rag.db import PostgresDatabase
from rag.errors import HistoryError

PASSWORD = "correct horse battery"


def record(answer: str) -> dict:
    return {"role": "assistant", "content": answer, "sources": [], "cited": []}


def test_conversations_are_kept_apart_by_owner(state_db):
    store = Conversations(state_db)
    assert store.list(owner="alice") == []
    alice = store.add(None, "Where is the hatch key?", record("In the red box, VELVETORCHID [1]"), owner="alice")
    assert store.add(alice, "And the spare?", record("With the guard"), owner="alice") == alice
    bob = store.add(None, "Ärger mit dem Schlüssel? 연차 휴가는?", record("Nein"), owner="bob")
    assert [s.id for s in store.list(owner="alice")] == [alice]
    assert [s.id for s in store.list(owner="bob")] == [bob] and store.list() == []  # "" sees neither
    assert [s.id for s in store.list("velvetorchid", owner="alice")] == [alice]  # an answer, any case
    assert [s.id for s in store.list("ärger", owner="bob")] == [bob]  # non-Latin case folding on both
    assert [s.id for s in store.list("휴가", owner="bob")] == [bob]
    assert store.list("velvetorchid", owner="bob") == [] and store.list("100%", owner="alice") == []
    # bob cannot read, rename, delete, resolve or append to alice's conversation
    assert store.get(alice, owner="bob") is None
    store.rename(alice, "mine now", owner="bob")
    store.delete(alice, owner="bob")
    with pytest.raises(HistoryError, match="no conversation"):
        store.resolve(alice[:8], owner="bob")
    appended = store.add(alice, "sneaking in", record("?"), owner="bob")
    assert appended != alice
    kept = store.get(alice, owner="alice")
    assert kept is not None and kept.title == "Where is the hatch key?" and len(kept.exchanges) == 2
    assert kept.exchanges[0].record == record("In the red box, VELVETORCHID [1]")
    store.rename(alice, "  Hatch   key ", owner="alice")
    assert store.get(alice, owner="alice").title == "Hatch key"
    assert store.resolve(alice[:8], owner="alice") == alice
    store.delete(alice, owner="alice")
    assert store.get(alice, owner="alice") is None and store.list(owner="alice") == []


def test_two_writers_on_one_conversation_keep_every_exchange(state_db):
    store = Conversations(state_db)
    conv = store.add(None, "first", record("a"), owner="alice")
    errors: list[Exception] = []

    def tab(name: str) -> None:
        try:
            for i in range(12):
                store.add(conv, f"{name} {i}", record(f"{name} {i}"), owner="alice")
        except Exception as exc:  # noqa: BLE001 - the test reports any failure
            errors.append(exc)

    threads = [threading.Thread(target=tab, args=(name,)) for name in ("left", "right")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    saved = store.get(conv, owner="alice").exchanges
    assert len(saved) == 25 and len({e.question for e in saved}) == 25


def test_accounts_and_sessions(state_db):
    accounts = Accounts(state_db, session_hours=12)
    assert accounts.count() == 0
    admin = accounts.add("admin", PASSWORD, admin=True)
    assert admin.role == "admin"
    accounts.add("김지원", PASSWORD)  # any script
    with pytest.raises(AccountError, match="already a user"):
        accounts.add("admin", PASSWORD)
    with pytest.raises(AccountError, match="not a valid user name"):
        accounts.add("bad name", PASSWORD)
    with pytest.raises(AccountError, match="at least 8"):
        accounts.add("carol", "short")
    token, viewer = accounts.sign_in("김지원", PASSWORD, client="10.0.0.5")
    assert viewer == Viewer("김지원", admin=False) and accounts.session(token) == viewer
    assert accounts.session("forged-token") is None and accounts.session(None) is None
    second, _ = accounts.sign_in("김지원", PASSWORD)  # two tabs: two sessions
    accounts.sign_out(token)
    assert accounts.session(token) is None and accounts.session(second) == viewer
    accounts.set_password("김지원", "another password")  # ends every session of the user
    assert accounts.session(second) is None
    with pytest.raises(SignInError):
        accounts.sign_in("김지원", PASSWORD)
    token, _ = accounts.sign_in("김지원", "another password")
    accounts.set_disabled("김지원")
    assert accounts.session(token) is None
    with pytest.raises(SignInError, match="disabled"):
        accounts.sign_in("김지원", "another password")
    accounts.set_disabled("김지원", False)
    assert accounts.sign_in("김지원", "another password")[1].name == "김지원"
    listed = {u.name: u for u in accounts.users()}
    assert listed["admin"].role == "admin" and listed["김지원"].last_sign_in is not None
    assert "argon2" not in repr(accounts.users())  # no hash leaves the store
    with pytest.raises(AccountError, match="no user"):
        accounts.set_password("nobody", PASSWORD)


def test_a_session_expires(state_db):
    accounts = Accounts(state_db, session_hours=0.5 / 3600)  # half a second
    accounts.add("alice", PASSWORD)
    token, viewer = accounts.sign_in("alice", PASSWORD)
    assert accounts.session(token) == viewer
    time.sleep(0.7)
    assert accounts.session(token) is None


def test_twenty_wrong_passwords_are_refused_and_logged_without_the_password(state_db, caplog):
    accounts = Accounts(state_db)
    accounts.add("alice", PASSWORD)
    accounts.add("bob", PASSWORD)
    caplog.set_level(logging.INFO, logger="rag.accounts")
    messages = []
    for i in range(20):
        with pytest.raises(SignInError) as err:
            accounts.sign_in("alice", f"guess-{i}-hunter2", client="203.0.113.9")
        messages.append(str(err.value))
    wrong = accounts_module.ACCOUNT_FAILURES
    assert all("Wrong user name or password" in m for m in messages[:wrong])
    assert all("Too many failed sign-ins" in m for m in messages[wrong:])
    with pytest.raises(SignInError, match="Too many"):  # the right password too, until the window passes
        accounts.sign_in("alice", PASSWORD, client="198.51.100.7")
    assert accounts.sign_in("bob", PASSWORD, client="198.51.100.7")[1].name == "bob"  # others are not locked out
    with pytest.raises(SignInError, match="Too many"):  # the guessing client is refused for every account
        accounts.sign_in("bob", PASSWORD, client="203.0.113.9")
    logged = caplog.text
    assert logged.count("sign-in failed for 'alice' from 203.0.113.9") == wrong
    assert "too many failed attempts" in logged
    assert "hunter2" not in logged and PASSWORD not in logged and "$argon2" not in logged


def test_an_unknown_name_costs_a_hash_check_like_a_wrong_password(state_db, monkeypatch):
    """A wrong name and a wrong password take the same path through Argon2 (no timing oracle)."""
    accounts = Accounts(state_db)
    accounts.add("alice", PASSWORD)
    checked: list[str] = []
    real = accounts._verify
    monkeypatch.setattr(accounts, "_verify", lambda digest, pw: checked.append(digest) or real(digest, pw))
    for name in ("alice", "mallory"):
        with pytest.raises(SignInError, match="Wrong user name or password"):
            accounts.sign_in(name, "not the password")
    assert len(checked) == 2 and checked[1] == accounts._dummy and checked[0] != accounts._dummy


def _cli(*args: str, env: dict, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_two_processes_share_users_and_conversations_on_postgres(postgres, tmp_path):
    url = postgres.new_database()
    env = {"DATABASE_URL": url, "DATA_DIR": str(tmp_path / "unused")}  # nothing may land in DATA_DIR
    added = _cli("users", "add", "alice", "--password-stdin", env=env, stdin=PASSWORD + "\n")
    assert added.returncode == 0 and "added alice (user)" in added.stdout, added.stderr
    here = PostgresDatabase(url)
    assert Accounts(here).sign_in("alice", PASSWORD)[1].name == "alice"  # a user added by another process
    conv = Conversations(here).add(None, "Where is the pump manual?", record("Shelf 3"), owner="alice")
    listed = _cli("chats", "list", "--user", "alice", env=env)
    assert listed.returncode == 0 and conv[:8] in listed.stdout and "Where is the pump manual?" in listed.stdout
    assert conv[:8] not in _cli("chats", "list", env=env).stdout  # another owner's list
    users = _cli("users", "list", env=env)
    assert "alice" in users.stdout and "$argon2" not in users.stdout
    assert not (tmp_path / "unused").exists()


def test_a_database_url_password_is_never_shown(tmp_path):
    url = "postgresql://aichat:hunter2secret@127.0.0.1:9/aichat"  # nothing listens on port 9
    with pytest.raises(HistoryError) as err:
        Conversations(PostgresDatabase(url)).list()
    assert "hunter2secret" not in str(err.value) and "***@127.0.0.1:9" in str(err.value)
    assert "check DATABASE_URL" in str(err.value)
    checked = _cli("config", "--check", env={"DATABASE_URL": url})
    assert "hunter2secret" not in checked.stdout + checked.stderr
    bad = _cli("config", "--check", env={"DATABASE_URL": "mysql://x"})
    assert bad.returncode == 1 and "must be a postgresql:// URL" in bad.stderr


def test_shared_collections_are_part_of_the_session(state_db):
    accounts = Accounts(state_db)
    for name in ("alice", "bob"):
        accounts.add(name, PASSWORD)
    token, bob = accounts.sign_in("bob", PASSWORD)
    assert bob.shared == ()
    accounts.share("alice", "  Pump   manuals ", "bob")
    accounts.share("alice", "Pump manuals", "bob")  # once
    assert accounts.session(token).shared == (("alice", "Pump manuals"),)  # read at every run of the page
    assert accounts.shares("alice") == [("Pump manuals", "bob")] and accounts.shares("bob") == []
    with pytest.raises(AccountError, match="no user"):
        accounts.share("alice", "Pump manuals", "nobody")
    with pytest.raises(AccountError, match="other than its owner"):
        accounts.share("alice", "Pump manuals", "alice")
    accounts.unshare("alice", "Pump manuals", "bob")
    assert accounts.session(token).shared == ()
