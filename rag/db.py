"""The state database: saved conversations, accounts and sign-in sessions (conversations.py,
accounts.py). SQLite under DATA_DIR by default; PostgreSQL when DATABASE_URL names one, so several
app processes share users and conversations.

Both are written in one SQL dialect that both engines accept ('?' placeholders, ON CONFLICT,
lower() LIKE); `Database` holds the few differences (row locks, first-use schema creation) and
turns every driver error into a `HistoryError` that names the store (a URL's password masked)
and the fix. The FAISS/FTS index is not here: it stays a versioned snapshot on disk (index.py).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import HistoryError
from .llm.endpoints import redact

BUSY_MS = 2000  # how long a write waits for another writer (a second tab, another process)
CONNECT_TIMEOUT_S = 5


class Tx:
    """One transaction's connection: `rows()` and `one()` take '?' placeholders on either engine."""

    def __init__(self, conn, postgres: bool):
        self.conn, self.postgres = conn, postgres

    def rows(self, sql: str, args: Sequence = ()) -> list[tuple]:
        cur = self.conn.execute(sql.replace("?", "%s") if self.postgres else sql, tuple(args))
        return list(cur.fetchall()) if cur.description else []

    def one(self, sql: str, args: Sequence = ()) -> tuple | None:
        found = self.rows(sql, args)
        return found[0] if found else None


class Database:
    """Where the state lives. `tx(write)` is one transaction on a fresh connection (any thread)."""

    postgres = False
    for_update = ""  # appended to a SELECT that must lock its rows until the transaction ends

    def __init__(self, schemas: Sequence[str] = ()):
        self.schemas = list(schemas)
        self.migrations: list = []  # SQLite: callables(connection) run after the schema, on every use

    def add_schema(self, ddl: str) -> None:
        """Statements (';'-separated, idempotent: CREATE ... IF NOT EXISTS) run before first use."""
        if ddl not in self.schemas:
            self.schemas.append(ddl)

    def describe(self) -> str:
        raise NotImplementedError

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Tx]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _explain(self, exc: Exception) -> str:
        text = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        lower = text.lower()
        if "locked" in lower or "busy" in lower or "could not obtain lock" in lower:
            fix = "another process holds it; try again in a moment"
        elif "full" in lower or getattr(exc, "errno", None) == 28:
            fix = "the disk is full; free some space"
        elif "not a database" in lower or "malformed" in lower:
            fix = "the file is damaged; move it aside to start a new history (it is left as it is)"
        elif self.postgres:
            fix = "check DATABASE_URL, that the PostgreSQL server runs, and its user's rights"
        else:
            fix = "check the folder's permissions and free space"
        return f"the state database {self.describe()} could not be used ({text}): {fix}"


class SQLiteDatabase(Database):
    """One SQLite file (WAL: readers never wait for a writer). A read before anything was written
    sees an empty store and creates no file."""

    def __init__(self, path: Path | str, schemas: Sequence[str] = ()):
        super().__init__(schemas)
        self.path = Path(path)

    def describe(self) -> str:
        return str(self.path)

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Tx]:
        db = None
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.exists():
                db = sqlite3.connect(":memory:")
            db = db or sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None)
            db.create_function("lower", 1, _lower, deterministic=True)  # any script, as PostgreSQL's
            db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            db.execute("PRAGMA foreign_keys=ON")
            if write:
                db.execute("PRAGMA journal_mode=WAL")
            for ddl in self.schemas:
                db.executescript(ddl)
            for migrate in self.migrations:  # a file from an older release, brought up to date when used
                migrate(db)
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield Tx(db, postgres=False)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(self._explain(exc)) from exc
        finally:
            if db is not None:
                db.close()


class PostgresDatabase(Database):
    """A PostgreSQL server through psycopg 3 (one short connection per transaction). The schema is
    created on first use, under an advisory lock so two processes starting at once do not race."""

    postgres = True
    for_update = " FOR UPDATE"

    def __init__(self, url: str, schemas: Sequence[str] = ()):
        super().__init__(schemas)
        self.url = url
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    def describe(self) -> str:
        return redact(self.url)

    @contextmanager
    def tx(self, write: bool = False) -> Iterator[Tx]:
        import psycopg

        try:
            with psycopg.connect(self.url, connect_timeout=CONNECT_TIMEOUT_S, autocommit=False) as conn:
                self._ensure_schema(conn)
                with conn.transaction():
                    yield Tx(conn, postgres=True)
        except psycopg.Error as exc:
            raise HistoryError(self._explain(exc)) from exc

    def _ensure_schema(self, conn) -> None:
        with self._lock:
            todo = [ddl for ddl in self.schemas if ddl not in self._ready]
            if not todo:
                return
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(424242)")
                for ddl in todo:
                    for statement in filter(str.strip, ddl.split(";")):
                        conn.execute(statement)
            self._ready.update(todo)


def _lower(value):
    return value.lower() if isinstance(value, str) else value


def open_database(url: str, data_dir: Path) -> Database:
    """PostgreSQL for a postgresql:// URL, else the SQLite file DATA_DIR/conversations.sqlite."""
    if url:
        return PostgresDatabase(url)
    return SQLiteDatabase(data_dir / "conversations.sqlite")
