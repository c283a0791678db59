"""Saved conversations: every exchange is stored as it completes, so a reload, a closed tab or a
server restart loses nothing, and yesterday's answer can be found again.

`ConversationStore` is the small interface the UI and the CLI use; `Conversations` implements it on
the state database (db.py): one SQLite file under DATA_DIR by default, PostgreSQL with DATABASE_URL.
Every conversation has an owner (the signed-in user; "" when sign-in is off) and every call names
the owner it acts for: another user's conversation is never listed, opened, renamed or deleted.
An exchange keeps the question and the assistant message exactly as the UI shows it (answer,
numbered passages, which were cited, the draft the answer check cut, the meta line) plus `turn`,
the exchange as the engine sent it to the model, so a reopened conversation continues with the
same prompt prefix. Every failure (a locked, corrupt or full database) is a `HistoryError` naming
the file and the fix; nothing here ever deletes or rewrites a file it cannot read.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Protocol

from .db import Database, SQLiteDatabase
from .errors import HistoryError

TITLE_CHARS = 80  # a conversation is titled from its first question, cut here
LIST_LIMIT = 50  # conversations listed at once (newest first); a search finds the older ones
# SQLite files written before accounts lack `owner`: Conversations adds it (as "") on first use
SCHEMA = """
CREATE TABLE IF NOT EXISTS conversations (
    id TEXT PRIMARY KEY, title TEXT NOT NULL, created DOUBLE PRECISION NOT NULL,
    updated DOUBLE PRECISION NOT NULL, owner TEXT NOT NULL DEFAULT '');
CREATE INDEX IF NOT EXISTS conversations_updated ON conversations(updated);
CREATE TABLE IF NOT EXISTS exchanges (
    conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    ordinal INTEGER NOT NULL, question TEXT NOT NULL, answer TEXT NOT NULL, record TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, PRIMARY KEY (conversation_id, ordinal));
"""
OWNER_COLUMN = "ALTER TABLE conversations ADD COLUMN owner TEXT NOT NULL DEFAULT ''"


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
    """`owner`: whose conversations (the signed-in user's name; "" with sign-in off)."""

    def add(self, conversation_id: str | None, question: str, record: dict, owner: str = "") -> str: ...

    def list(self, search: str = "", limit: int = LIST_LIMIT, owner: str = "") -> list[Summary]: ...

    def get(self, conversation_id: str, owner: str = "") -> Conversation | None: ...

    def rename(self, conversation_id: str, title: str, owner: str = "") -> None: ...

    def delete(self, conversation_id: str, owner: str = "") -> None: ...

    def resolve(self, prefix: str, owner: str = "") -> str: ...


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


class Conversations:
    """ConversationStore on the state database (db.py)."""

    def __init__(self, db: Database):
        self.db = db
        db.add_schema(SCHEMA)
        if not db.postgres and _add_owner_column not in db.migrations:
            db.migrations.append(_add_owner_column)

    def add(self, conversation_id: str | None, question: str, record: dict, owner: str = "") -> str:
        """Append one exchange (to a new conversation when `conversation_id` is None or not one of
        `owner`'s); returns the conversation's id. Two tabs appending to one conversation both keep theirs."""
        now = time.time()
        body = _json({k: v for k, v in record.items() if k != "stream"})
        with self.db.tx(write=True) as tx:
            row = None
            if conversation_id:
                row = tx.one(f"SELECT owner FROM conversations WHERE id=?{self.db.for_update}", (conversation_id,))
            if row is not None and row[0] != owner:
                conversation_id, row = None, None  # someone else's id: never written into; a new one instead
            if row is None:
                conversation_id = conversation_id or uuid.uuid4().hex
                tx.rows(
                    "INSERT INTO conversations (id, title, created, updated, owner) VALUES (?,?,?,?,?)",
                    (conversation_id, title_of(question), now, now, owner),
                )
            else:
                tx.rows("UPDATE conversations SET updated=? WHERE id=?", (now, conversation_id))
            found = tx.one(
                "SELECT coalesce(max(ordinal), 0) + 1 FROM exchanges WHERE conversation_id=?", (conversation_id,)
            )
            assert found is not None
            tx.rows(
                "INSERT INTO exchanges (conversation_id, ordinal, question, answer, record, created)"
                " VALUES (?,?,?,?,?,?)",
                (conversation_id, found[0], question, str(record.get("content", "")), body, now),
            )
        assert conversation_id is not None
        return conversation_id

    def list(self, search: str = "", limit: int = LIST_LIMIT, owner: str = "") -> list[Summary]:
        """`owner`'s conversations, newest first; with `search`, those whose title, a question or an
        answer contains it (case-insensitive for Latin letters, any script)."""
        sql = "SELECT c.id, c.title, c.updated, (SELECT count(*) FROM exchanges e WHERE e.conversation_id = c.id)"
        sql += " FROM conversations c WHERE c.owner = ?"
        args: list = [owner]
        if search.strip():
            term = search.strip().lower()
            like = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            # SQLite's LIKE folds ASCII case itself; lower() (a Python function there, 3x slower at 10k
            # exchanges) is needed only for PostgreSQL's case-sensitive LIKE and for cased non-ASCII terms
            fold = "lower" if self.db.postgres or any(not c.isascii() and c != c.upper() for c in term) else ""
            sql += (
                f" AND ({fold}(c.title) LIKE ? ESCAPE '\\' OR c.id IN (SELECT conversation_id FROM exchanges"
                f" WHERE {fold}(question) LIKE ? ESCAPE '\\' OR {fold}(answer) LIKE ? ESCAPE '\\'))"
            )
            args += [like, like, like]
        sql += " ORDER BY c.updated DESC LIMIT ?"
        with self.db.tx() as tx:
            rows = tx.rows(sql, [*args, limit])
        return [Summary(*row) for row in rows]

    def get(self, conversation_id: str, owner: str = "") -> Conversation | None:
        with self.db.tx() as tx:
            row = tx.one(
                "SELECT id, title, created, updated FROM conversations WHERE id=? AND owner=?", (conversation_id, owner)
            )
            if row is None:
                return None
            rows = tx.rows(
                "SELECT question, record, created FROM exchanges WHERE conversation_id=? ORDER BY ordinal",
                (conversation_id,),
            )
        return Conversation(row[0], row[1], row[2], row[3], [Exchange(q, json.loads(r), c) for q, r, c in rows])

    def rename(self, conversation_id: str, title: str, owner: str = "") -> None:
        title = " ".join(title.split())[:200]
        if not title:
            raise HistoryError("a conversation's title cannot be empty")
        with self.db.tx(write=True) as tx:
            tx.rows("UPDATE conversations SET title=? WHERE id=? AND owner=?", (title, conversation_id, owner))

    def delete(self, conversation_id: str, owner: str = "") -> None:
        with self.db.tx(write=True) as tx:
            if tx.one("SELECT 1 FROM conversations WHERE id=? AND owner=?", (conversation_id, owner)):
                tx.rows("DELETE FROM exchanges WHERE conversation_id=?", (conversation_id,))
                tx.rows("DELETE FROM conversations WHERE id=?", (conversation_id,))

    def resolve(self, prefix: str, owner: str = "") -> str:
        """The one conversation id of `owner` starting with `prefix` (the CLI shows 8 characters)."""
        like = prefix.replace("%", "").replace("_", "").replace("\\", "") + "%"
        with self.db.tx() as tx:
            ids = [
                r[0] for r in tx.rows("SELECT id FROM conversations WHERE id LIKE ? AND owner=? LIMIT 2", (like, owner))
            ]
        if len(ids) != 1:
            what = "no conversation" if not ids else "more than one conversation"
            raise HistoryError(f"{what} has an id starting with {prefix!r}: see `python -m rag chats list`")
        return ids[0]


def _add_owner_column(conn) -> None:
    """A history saved before accounts existed: its conversations get the owner "" (sign-in off)."""
    if "owner" not in [row[1] for row in conn.execute("PRAGMA table_info(conversations)")]:
        conn.execute(OWNER_COLUMN)


def SQLiteConversations(path: Path | str) -> Conversations:  # noqa: N802 - reads as the class it was
    """Conversations in one SQLite file (the embedded default; tests and benchmarks)."""
    return Conversations(SQLiteDatabase(path))
