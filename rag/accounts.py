"""Accounts for a shared server (AUTH=local): users, hashed passwords, sign-in sessions, and a
brake on guessing.

Users live in the state database (db.py) beside the conversations, so several app processes on one
PostgreSQL share them. Passwords are hashed with Argon2id (argon2-cffi, its default parameters);
an unknown name is checked against a dummy hash, so a wrong name and a wrong password take the same
time. A sign-in returns a random session token, of which only the SHA-256 is stored; a session ends
after SESSION_HOURS, at sign-out, or when its user is disabled. Failed sign-ins are counted per
account and per client address over FAILURE_WINDOW_S: past the limits, sign-in is refused (also with
the right password) until the window has passed. Logs name the user and the client, never a
password or a hash.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from .db import Database
from .errors import RagError

log = logging.getLogger(__name__)

ROLES = ("user", "admin")
MIN_PASSWORD = 8
NAME_RE = re.compile(r"[\w.@-]{1,64}")
FAILURE_WINDOW_S = 15 * 60
ACCOUNT_FAILURES = 5  # wrong passwords for one account within the window before it is refused
CLIENT_FAILURES = 20  # failed sign-ins from one client address within the window
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, hash TEXT NOT NULL, role TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0,
    created DOUBLE PRECISION NOT NULL, last_sign_in DOUBLE PRECISION);
CREATE TABLE IF NOT EXISTS sessions (
    token_sha TEXT PRIMARY KEY, name TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS sign_in_failures (key TEXT NOT NULL, at DOUBLE PRECISION NOT NULL);
CREATE INDEX IF NOT EXISTS sign_in_failures_key ON sign_in_failures(key, at);
CREATE TABLE IF NOT EXISTS api_keys (
    key_sha TEXT PRIMARY KEY, name TEXT NOT NULL, created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS shares (
    owner TEXT NOT NULL, collection TEXT NOT NULL, user_name TEXT NOT NULL,
    PRIMARY KEY (owner, collection, user_name));
"""


class AccountError(RagError):
    """A user could not be added or changed (bad name, short password, unknown user)."""


class SignInError(RagError):
    """A sign-in was refused; the message is safe to show (it never says which part was wrong)."""


@dataclass(frozen=True)
class Viewer:
    """Who is asking: documents, collections, conversations and cached answers are theirs
    (plus the shared library). None where sign-in is off: one user, who sees everything."""

    name: str
    admin: bool = False
    shared: tuple[tuple[str, str], ...] = ()  # (owner, collection) pairs other users shared with this one


@dataclass
class User:
    name: str
    role: str
    disabled: bool
    created: float
    last_sign_in: float | None


def clean_name(name: str) -> str:
    """A user name as stored: NFC, trimmed; letters, digits and . _ @ - only (any script)."""
    name = unicodedata.normalize("NFC", name.strip())
    if not NAME_RE.fullmatch(name):
        raise AccountError(f"{name[:80]!r} is not a valid user name: use 1-64 letters, digits or . _ @ - (no spaces)")
    return name


def _viewer(tx, row: tuple) -> Viewer:
    """A Viewer from a (name, role) row, with the collections shared with that user."""
    shared = tx.rows("SELECT owner, collection FROM shares WHERE user_name=? ORDER BY owner, collection", (row[0],))
    return Viewer(row[0], row[1] == "admin", tuple((o, c) for o, c in shared))


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Accounts:
    def __init__(self, db: Database, session_hours: float = 12.0):
        from argon2 import PasswordHasher

        self.db = db
        self.session_s = session_hours * 3600
        self.hasher = PasswordHasher()
        db.add_schema(SCHEMA)

    @functools.cached_property
    def _dummy(self) -> str:
        """A hash checked for unknown names, so they take the same time (made at the first sign-in,
        not when the engine starts: an Argon2 hash costs tens of milliseconds and 64 MiB)."""
        return self.hasher.hash(secrets.token_hex(16))

    # ---- managing users (the CLI) ----------------------------------------------------------
    def add(self, name: str, password: str, admin: bool = False) -> User:
        name = clean_name(name)
        digest = self.hasher.hash(self._check_password(password))
        with self.db.tx(write=True) as tx:
            if tx.one("SELECT 1 FROM users WHERE name=?", (name,)):
                raise AccountError(f"there is already a user {name!r}: use `rag users passwd {name}`")
            tx.rows(
                "INSERT INTO users (name, hash, role, disabled, created) VALUES (?,?,?,0,?)",
                (name, digest, ROLES[admin], time.time()),
            )
        log.info("user %r added (%s)", name, ROLES[admin])
        return self._user(name)

    def set_password(self, name: str, password: str) -> None:
        digest = self.hasher.hash(self._check_password(password))
        with self.db.tx(write=True) as tx:
            self._must_exist(tx, name)
            tx.rows("UPDATE users SET hash=? WHERE name=?", (digest, name))
            tx.rows("DELETE FROM sessions WHERE name=?", (name,))  # signed out everywhere
        log.info("password of %r changed; its sessions ended", name)

    def set_disabled(self, name: str, disabled: bool = True) -> None:
        with self.db.tx(write=True) as tx:
            self._must_exist(tx, name)
            tx.rows("UPDATE users SET disabled=? WHERE name=?", (int(disabled), name))
            if disabled:
                tx.rows("DELETE FROM sessions WHERE name=?", (name,))
        log.info("user %r %s", name, "disabled" if disabled else "enabled")

    def set_role(self, name: str, admin: bool) -> None:
        with self.db.tx(write=True) as tx:
            self._must_exist(tx, name)
            tx.rows("UPDATE users SET role=? WHERE name=?", (ROLES[admin], name))

    def users(self) -> list[User]:
        with self.db.tx() as tx:
            rows = tx.rows("SELECT name, role, disabled, created, last_sign_in FROM users ORDER BY name")
        return [User(n, r, bool(d), c, last) for n, r, d, c, last in rows]

    def count(self) -> int:
        with self.db.tx() as tx:
            row = tx.one("SELECT count(*) FROM users")
        return int(row[0]) if row else 0

    def _user(self, name: str) -> User:
        return next(u for u in self.users() if u.name == name)

    @staticmethod
    def _must_exist(tx, name: str) -> None:
        if not tx.one("SELECT 1 FROM users WHERE name=?", (name,)):
            raise AccountError(f"there is no user {name!r}: see `rag users list`")

    @staticmethod
    def _check_password(password: str) -> str:
        if len(password) < MIN_PASSWORD:
            raise AccountError(f"a password needs at least {MIN_PASSWORD} characters")
        if "\x00" in password:
            raise AccountError("a password cannot contain a NUL character")
        return password

    # ---- sharing collections ---------------------------------------------------------------
    def share(self, owner: str, collection: str, user: str) -> None:
        """Let `user` read the documents of `owner` that are in `collection` (now and later ones)."""
        collection = " ".join(collection.split())
        if not collection or user == owner:
            raise AccountError("name a collection, and a user other than its owner, to share it with")
        with self.db.tx(write=True) as tx:
            for name in (owner, user):
                self._must_exist(tx, name)
            tx.rows(
                "INSERT INTO shares (owner, collection, user_name) VALUES (?,?,?) ON CONFLICT DO NOTHING",
                (owner, collection, user),
            )
        log.info("%r shared collection %r with %r", owner, collection, user)

    def unshare(self, owner: str, collection: str, user: str) -> None:
        with self.db.tx(write=True) as tx:
            tx.rows("DELETE FROM shares WHERE owner=? AND collection=? AND user_name=?", (owner, collection, user))

    def shares(self, owner: str) -> list[tuple[str, str]]:
        """(collection, user) pairs `owner` shares."""
        with self.db.tx() as tx:
            rows = tx.rows(
                "SELECT collection, user_name FROM shares WHERE owner=? ORDER BY collection, user_name", (owner,)
            )
        return [(c, u) for c, u in rows]

    # ---- API keys (rag/api.py) --------------------------------------------------------------
    def new_api_key(self, name: str) -> str:
        """A new bearer key for `name`'s API calls (shown once; only its SHA-256 is stored)."""
        key = "aichat-" + secrets.token_urlsafe(32)
        with self.db.tx(write=True) as tx:
            self._must_exist(tx, name)
            tx.rows("INSERT INTO api_keys (key_sha, name, created) VALUES (?,?,?)", (_sha(key), name, time.time()))
        log.info("API key made for %r", name)
        return key

    def revoke_api_keys(self, name: str) -> int:
        with self.db.tx(write=True) as tx:
            count = tx.one("SELECT count(*) FROM api_keys WHERE name=?", (name,))
            tx.rows("DELETE FROM api_keys WHERE name=?", (name,))
        return int(count[0]) if count else 0

    def api_key_viewer(self, key: str) -> Viewer | None:
        """The viewer of an API key whose user is enabled (with the collections shared with them)."""
        with self.db.tx() as tx:
            row = tx.one(
                "SELECT u.name, u.role FROM api_keys k JOIN users u ON u.name = k.name"
                " WHERE k.key_sha=? AND u.disabled=0",
                (_sha(key),),
            )
            return _viewer(tx, row) if row else None

    # ---- signing in (the app) --------------------------------------------------------------
    def sign_in(self, name: str, password: str, client: str = "") -> tuple[str, Viewer]:
        """(session token, viewer) for the right password of an enabled user; else SignInError."""
        now = time.time()
        name = unicodedata.normalize("NFC", name.strip())[:64]
        keys = [f"user:{name}", f"client:{client}"] if client else [f"user:{name}"]
        with self.db.tx() as tx:
            since = now - FAILURE_WINDOW_S
            counts = [
                int(tx.one("SELECT count(*) FROM sign_in_failures WHERE key=? AND at>?", (key, since))[0])  # type: ignore[index]
                for key in keys
            ]
            row = tx.one("SELECT hash, role, disabled FROM users WHERE name=?", (name,))
        if counts[0] >= ACCOUNT_FAILURES or (len(counts) > 1 and counts[1] >= CLIENT_FAILURES):
            log.warning("sign-in refused for %r from %s: too many failed attempts", name, client or "?")
            self._fail(keys, now)
            raise SignInError(
                f"Too many failed sign-ins; try again in {FAILURE_WINDOW_S // 60} minutes, or ask an admin."
            )
        ok = self._verify(row[0] if row else self._dummy, password) and row is not None and not row[2]
        if not ok:
            log.warning("sign-in failed for %r from %s", name, client or "?")
            self._fail(keys, now)
            raise SignInError("Wrong user name or password (or the account is disabled).")
        assert row is not None
        token = secrets.token_urlsafe(32)
        with self.db.tx(write=True) as tx:
            tx.rows("DELETE FROM sessions WHERE expires<?", (now,))
            tx.rows(
                "INSERT INTO sessions (token_sha, name, created, expires) VALUES (?,?,?,?)",
                (_sha(token), name, now, now + self.session_s),
            )
            tx.rows("UPDATE users SET last_sign_in=? WHERE name=?", (now, name))
            tx.rows("DELETE FROM sign_in_failures WHERE key=?", (keys[0],))
        log.info("%r signed in from %s", name, client or "?")
        viewer = self.session(token)
        assert viewer is not None
        return token, viewer

    def _verify(self, digest: str, password: str) -> bool:
        from argon2.exceptions import VerificationError

        try:
            return self.hasher.verify(digest, password)
        except (VerificationError, ValueError):  # wrong password, or a damaged hash
            return False

    def _fail(self, keys: Sequence[str], now: float) -> None:
        with self.db.tx(write=True) as tx:
            for key in keys:
                tx.rows("INSERT INTO sign_in_failures (key, at) VALUES (?,?)", (key, now))
            tx.rows("DELETE FROM sign_in_failures WHERE at<?", (now - FAILURE_WINDOW_S,))

    def session(self, token: str | None) -> Viewer | None:
        """The viewer of a live session (an enabled user, not expired); None otherwise."""
        if not token:
            return None
        with self.db.tx() as tx:
            row = tx.one(
                "SELECT u.name, u.role FROM sessions s JOIN users u ON u.name = s.name"
                " WHERE s.token_sha=? AND s.expires>? AND u.disabled=0",
                (_sha(token), time.time()),
            )
            return _viewer(tx, row) if row else None

    def sign_out(self, token: str | None) -> None:
        if token:
            with self.db.tx(write=True) as tx:
                tx.rows("DELETE FROM sessions WHERE token_sha=?", (_sha(token),))
