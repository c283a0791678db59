"""Saved conversations: every exchange is stored as it completes, so a reload, a closed tab or a
server restart loses nothing, and yesterday's answer can be found again.

`ConversationStore` is the small interface the UI and the CLI use; `SQLiteConversations` is the
embedded implementation, one SQLite file under DATA_DIR (WAL, so readers never wait for a writer).
An exchange keeps the question and the assistant message exactly as the UI shows it (answer,
numbered passages, which were cited, the draft the answer check cut, the meta line) plus `turn`,
the exchange as the engine sent it to the model, so a reopened conversation continues with the
same prompt prefix. Every failure (a locked, corrupt or full database) is a `HistoryError` naming
the file and the fix; nothing here ever deletes or rewrites a file it cannot read.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Protocol

from .errors import HistoryError

TITLE_CHARS = 80  # a conversation is titled from its first question, cut here
LIST_LIMIT = 50  # conversations listed at once (newest first); a search finds the older ones
BUSY_MS = 2000  # how long a write waits for another writer (a second tab, another process)
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL);
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated);
CREATE TABLE IF NOT EXISTS exchanges (
    id INTEGER PRIMARY KEY, conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, record TEXT NOT NULL,
    created REAL NOT NULL, UNIQUE (conversation_id, ordinal));
"""


@dataclass
class Summary:
    id: str
    title: str
    updated: float
    exchanges: int


@dataclass
class Exchange:
    question: str
    record: dict  # the assistant message as shown: content, sources, cited, attributed, meta, turn ...
    created: float


@dataclass
class Conversation:
    id: str
    title: str
    created: float
    updated: float
    exchanges: list[Exchange]


class ConversationStore(Protocol):
    def add(self, conversation_id: str | None, question: str, record: dict) -> str: ...

    def list(self, search: str = "", limit: int = LIST_LIMIT) -> list[Summary]: ...

    def get(self, conversation_id: str) -> Conversation | None: ...

    def rename(self, conversation_id: str, title: str) -> None: ...

    def delete(self, conversation_id: str) -> None: ...

    def resolve(self, prefix: str) -> str: ...


def title_of(question: str) -> str:
    """A conversation's default title: its first question on one line, cut at TITLE_CHARS."""
    line = " ".join(question.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"


def _json(value) -> str:
    """JSON of a message record; dataclasses (passages) become objects, anything else its text."""
    return json.dumps(
        value,
        ensure_ascii=False,
        default=lambda o: asdict(o) if is_dataclass(o) and not isinstance(o, type) else str(o),
    )


class SQLiteConversations:
    def __init__(self, path: Path | str):
        self.path = Path(path)

    @contextmanager
    def _db(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection for one operation (any thread); SQLite's errors become HistoryError."""
        db = None
        try:
            if write:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            elif not self.path.exists():
                db = sqlite3.connect(":memory:")  # nothing saved yet: read an empty store, create no file
            db = db or sqlite3.connect(self.path, timeout=BUSY_MS / 1000, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout={BUSY_MS}")
            db.execute("PRAGMA foreign_keys=ON")
            if write:
                db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            yield db
        except (sqlite3.Error, OSError) as exc:
            raise HistoryError(self._explain(exc)) from exc
        finally:
            if db is not None:
                db.close()

    def _explain(self, exc: Exception) -> str:
        text = str(exc)
        if "locked" in text or "busy" in text:
            fix = "another process holds it; try again in a moment"
        elif "full" in text or getattr(exc, "errno", None) == 28:
            fix = "the disk is full; free some space"
        elif "not a database" in text or "malformed" in text:
            fix = "the file is damaged; move it aside to start a new history (it is left as it is)"
        else:
            fix = "check the folder's permissions and free space"
        return f"the conversation history {self.path} could not be used ({text}): {fix}"

    def add(self, conversation_id: str | None, question: str, record: dict) -> str:
        """Append one exchange (to a new conversation when `conversation_id` is None or unknown);
        returns the conversation's id. Two tabs appending to one conversation both keep theirs."""
        now = time.time()
        body = _json({k: v for k, v in record.items() if k != "stream"})
        with self._db(write=True) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                known = (
                    conversation_id
                    and db.execute("SELECT 1 FROM conversations WHERE id=?", (conversation_id,)).fetchone()
                )
                if not known:
                    conversation_id = conversation_id or uuid.uuid4().hex
                    db.execute(
                        "INSERT INTO conversations VALUES (?,?,?,?)", (conversation_id, title_of(question), now, now)
                    )
                else:
                    db.execute("UPDATE conversations SET updated=? WHERE id=?", (now, conversation_id))
                ordinal = db.execute(
                    "SELECT coalesce(max(ordinal), 0) + 1 FROM exchanges WHERE conversation_id=?", (conversation_id,)
                ).fetchone()[0]
                db.execute(
                    "INSERT INTO exchanges(conversation_id, ordinal, question, answer, record, created)"
                    " VALUES (?,?,?,?,?,?)",
                    (conversation_id, ordinal, question, str(record.get("content", "")), body, now),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        assert conversation_id is not None
        return conversation_id

    def list(self, search: str = "", limit: int = LIST_LIMIT) -> list[Summary]:
        """Conversations, newest first; with `search`, those whose title, a question or an answer
        contains it (case-insensitive for Latin letters, any script)."""
        sql = "SELECT c.id, c.title, c.updated, (SELECT count(*) FROM exchanges e WHERE e.conversation_id = c.id)"
        sql += " FROM conversations c"
        args: list = []
        if search.strip():
            like = "%" + search.strip().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            sql += (
                " WHERE c.title LIKE ? ESCAPE '\\' OR c.id IN (SELECT conversation_id FROM exchanges"
                " WHERE question LIKE ? ESCAPE '\\' OR answer LIKE ? ESCAPE '\\')"
            )
            args = [like, like, like]
        sql += " ORDER BY c.updated DESC LIMIT ?"
        with self._db() as db:
            rows = db.execute(sql, [*args, limit]).fetchall()
        return [Summary(*row) for row in rows]

    def get(self, conversation_id: str) -> Conversation | None:
        with self._db() as db:
            head = db.execute("SELECT id, title, created, updated FROM conversations WHERE id=?", (conversation_id,))
            row = head.fetchone()
            if row is None:
                return None
            rows = db.execute(
                "SELECT question, record, created FROM exchanges WHERE conversation_id=? ORDER BY ordinal",
                (conversation_id,),
            ).fetchall()
        return Conversation(row[0], row[1], row[2], row[3], [Exchange(q, json.loads(r), c) for q, r, c in rows])

    def rename(self, conversation_id: str, title: str) -> None:
        title = " ".join(title.split())[:200]
        if not title:
            raise HistoryError("a conversation's title cannot be empty")
        with self._db(write=True) as db:
            db.execute("UPDATE conversations SET title=? WHERE id=?", (title, conversation_id))

    def delete(self, conversation_id: str) -> None:
        with self._db(write=True) as db:
            db.execute("DELETE FROM conversations WHERE id=?", (conversation_id,))

    def resolve(self, prefix: str) -> str:
        """The one conversation id starting with `prefix` (the CLI shows 8 characters)."""
        with self._db() as db:
            like = prefix.replace("%", "").replace("_", "") + "%"
            ids = [r[0] for r in db.execute("SELECT id FROM conversations WHERE id LIKE ? LIMIT 2", (like,))]
        if len(ids) != 1:
            what = "no conversation" if not ids else "more than one conversation"
            raise HistoryError(f"{what} has an id starting with {prefix!r}: see `python -m rag chats list`")
        return ids[0]
