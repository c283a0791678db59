"""Answer cache on disk (diskcache): an exact layer and an optional semantic layer.

A scope ties entries to what produced them: index version, model fingerprint, generation
parameters, prompt version and the conversation so far. A new index version therefore makes old
entries unreachable. Exact key: the normalised question (NFKC, case-folded, whitespace collapsed).
Semantic hit: cosine >= SEMANTIC_THRESHOLD with a cached question of the same scope that has the
same numbers and quoted terms. Only complete answers are stored (the engine decides). Hit/miss
counters persist in the cache itself. A broken cache database is rebuilt, logged once, never fatal.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import shutil
import sqlite3
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
SEMANTIC_THRESHOLD = 0.95
SEMANTIC_MAX = 2000  # newest entries kept per scope
MAX_ANSWER_CHARS = 100_000  # a longer "answer" (a runaway server, a 10 MB token) is served but not kept
SEMANTIC_SCOPES = 8  # scopes whose vectors are held in memory
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']+)'")
_ERRORS = (sqlite3.Error, OSError)
LOCK_WAIT_S = 2.0
# diskcache opens one SQLite connection per thread, each with a 32 MB page cache and a 64 MB mmap by
# default: with 8 tabs answering, RSS grew with the database (measured +90 MB in 80 s). 4 MB, no mmap.
SQLITE_CACHE_PAGES = 1024


def _is_busy(exc: Exception) -> bool:
    """A lock held by another process (or diskcache's Timeout for it): not damage, nothing to rebuild."""
    text = str(exc).lower()
    return type(exc).__name__ == "Timeout" or (
        isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)
    )


def normalize(question: str) -> str:
    """Example: '  What IS   RAG? ' -> 'what is rag'."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return " ".join(text.split()).rstrip("?!. ")


def signature(question: str) -> list[str]:
    """Numbers and quoted terms: two questions differing in these never share an answer."""
    text = unicodedata.normalize("NFKC", question).casefold()
    quoted = ["".join(groups) for groups in _QUOTED.findall(text)]
    return sorted(set(_NUMBER.findall(text)) | set(quoted))


_FOLLOW_UP = re.compile(
    r"^(and|but|so|also|then|what about|how about|why|how so|and why|really|ok|okay)\b"
    r"|\b(it|its|it's|this|that|these|those|they|them|their|he|she|him|her|one|ones|former|latter|above|"
    r"previous|earlier|first|second|third|last|same|more|else|again)\b"
    r"|(그거|그것|이거|이것|저거|저것|그럼|그러면|그리고|그건|그게|위의|앞의|첫\s?번째|두\s?번째|세\s?번째|마지막|다시|더)",
    re.IGNORECASE,
)


def depends_on_history(question: str) -> bool:
    """True for questions that lean on the conversation ("what about the second one?", "why?").

    A self-contained question gets the same answer whatever came before, so its cache entry is shared
    across turns and browser sessions; a follow-up is cached only for the same conversation."""
    text = normalize(question)
    return len(text.split()) <= 3 or bool(_FOLLOW_UP.search(text))


def scope_key(index_version: str, model_fp: str, params: dict, history: list[dict]) -> str:
    """What an answer depends on besides the question: index, model, parameters, prompt, conversation."""
    from .prompt import PROMPT_VERSION

    turns = [(m["role"], normalize(m["content"])) for m in history]
    payload = json.dumps([index_version, model_fp, params, PROMPT_VERSION, turns], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


@dataclass
class CachedAnswer:
    answer: str
    hits: list[dict]
    kind: str  # exact | semantic
    stored_at: float
    backend: str = ""  # who wrote it ("local", "openai:URL"); "" in entries from before backends


class _Vectors:
    """One scope's cached questions: keys, signatures and a matrix of their unit vectors (ring order)."""

    def __init__(self):
        self.keys: list[str] = []
        self.sigs: list[list[str]] = []
        self.rows: list = []
        self._matrix = None

    @property
    def matrix(self):
        import numpy as np

        if self._matrix is None or len(self._matrix) != len(self.rows):
            self._matrix = np.vstack(self.rows)
        return self._matrix

    def add(self, n: int, key: str, packed: str, sig: list[str]) -> None:
        import numpy as np

        row = np.frombuffer(base64.b64decode(packed), dtype=np.float32)
        i = n % SEMANTIC_MAX
        if i < len(self.keys):  # the ring wrapped: this slot is reused
            self.keys[i], self.sigs[i], self.rows[i] = key, sig, row
            self._matrix = None
        elif i == len(self.keys):
            self.keys.append(key)
            self.sigs.append(sig)
            self.rows.append(row)
        else:  # another process stored in between: reload from disk on the next lookup
            raise LookupError(i)


class AnswerCache:
    def __init__(self, directory: Path, semantic: bool = True):
        self.directory = Path(directory)
        self.semantic = semantic
        self._db = None
        self._broken_logged = False
        self._busy_logged = False
        self._tables: dict[str, _Vectors] = {}  # scope -> vectors, least recently used first

    @property
    def db(self):
        if self._db is None:
            self._db = self._open()
        return self._db

    def _open(self):
        import diskcache

        def make():  # JSONDisk: values are JSON, never pickle, so a tampered cache cannot run code
            # timeout: seconds to wait for another process's lock; the cache is an optimisation, so a
            # locked database means "answer uncached", not "wait a minute" (diskcache's default)
            return diskcache.Cache(
                str(self.directory),
                size_limit=512 * 1024 * 1024,
                disk=diskcache.JSONDisk,
                timeout=LOCK_WAIT_S,
                sqlite_cache_size=SQLITE_CACHE_PAGES,
                sqlite_mmap_size=0,
            )

        try:
            return make()
        except _ERRORS as exc:
            self._log_broken(exc)
            shutil.rmtree(self.directory, ignore_errors=True)
            return make()

    def _log_broken(self, exc: Exception) -> None:
        if not self._broken_logged:
            log.warning(
                "answer cache at %s is unusable (%s); rebuilding it, answers are uncached meanwhile",
                self.directory,
                exc,
            )
            self._broken_logged = True

    def _safely(self, action, default=None):
        try:
            return action()
        except Exception as exc:
            if _is_busy(exc):
                if not self._busy_logged:
                    log.warning(
                        "answer cache at %s is locked by another writer (%s); answering uncached until it is free",
                        self.directory,
                        exc,
                    )
                    self._busy_logged = True
                return default
            if not isinstance(exc, _ERRORS):
                raise
            self._log_broken(exc)
            self._rebuild()
            return default

    def _rebuild(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except _ERRORS:
                pass  # closing a broken database can fail too; it is being replaced
        self._db = None
        self._tables.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    @staticmethod
    def _key(scope: str, question: str) -> str:
        return "a:" + hashlib.sha256(f"{scope}\n{normalize(question)}".encode()).hexdigest()

    def lookup_exact(self, question: str, scope: str) -> CachedAnswer | None:
        entry = self._safely(lambda: self.db.get(self._key(scope, question)))
        return self._hit(entry, "exact") if entry else None

    def lookup_semantic(self, question: str, scope: str, vector) -> CachedAnswer | None:
        if not self.semantic or vector is None:
            return None
        import numpy as np

        table = self._table(scope)
        sig = signature(question)
        rows = [i for i, s in enumerate(table.sigs) if s == sig]
        if not rows:
            return None
        scores = table.matrix[rows] @ np.asarray(vector, dtype=np.float32)
        best = int(np.argmax(scores))
        if scores[best] < SEMANTIC_THRESHOLD:
            return None
        entry = self._safely(lambda: self.db.get(table.keys[rows[best]]))
        return self._hit(entry, "semantic") if entry else None

    def semantic_entries(self, scope: str) -> int:
        """How many question vectors the scope keeps for semantic lookups (at most SEMANTIC_MAX)."""
        return len(self._table(scope).keys)

    def _table(self, scope: str) -> _Vectors:
        """The scope's question vectors, read from disk once per process and then kept up to date.

        On disk they are a ring of SEMANTIC_MAX slots (`sv:<scope>:<slot>`, each [key, vector, signature])
        plus a counter, so a store writes one small slot instead of rewriting a growing list."""
        table = self._tables.pop(scope, None)
        if table is None:
            table = _Vectors()

            def load() -> None:
                total = int(self.db.get(f"sn:{scope}", 0))
                for i in range(min(total, SEMANTIC_MAX)):  # in slot order: position == slot
                    slot = self.db.get(f"sv:{scope}:{i}")
                    if not slot:
                        break
                    table.add(i, *slot)

            self._safely(load)
        self._tables[scope] = table  # most recently used last
        while len(self._tables) > SEMANTIC_SCOPES:
            self._tables.pop(next(iter(self._tables)))
        return table

    def _hit(self, entry: dict, kind: str) -> CachedAnswer:
        return CachedAnswer(entry["answer"], entry["hits"], kind, entry["stored_at"], entry.get("backend", ""))

    def count(self, outcome: str) -> None:
        """Record 'exact', 'semantic' or 'miss'."""
        self._safely(lambda: self._bump(f"stat:{outcome}"))

    def _bump(self, key: str) -> None:
        """Increment a counter (diskcache's incr needs pickled ints; JSONDisk stores JSON)."""
        with self.db.transact():
            self.db.set(key, int(self.db.get(key, 0)) + 1)

    def store(self, question: str, scope: str, answer: str, hits: list[dict], vector=None, backend: str = "") -> None:
        import numpy as np

        if len(answer) > MAX_ANSWER_CHARS:
            log.warning("answer of %d characters not cached (limit %d)", len(answer), MAX_ANSWER_CHARS)
            return
        key = self._key(scope, question)
        slot: tuple[str, str, list[str]] | None = None  # key, packed vector, signature
        if self.semantic and vector is not None:
            slot = (key, base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode(), signature(question))

        def write() -> int | None:
            with self.db.transact():
                if key not in self.db:
                    self._bump("stat:entries")
                self.db.set(key, {"answer": answer, "hits": hits, "stored_at": time.time(), "backend": backend})
                if slot is None:
                    return None
                n = int(self.db.get(f"sn:{scope}", 0))
                self.db.set(f"sv:{scope}:{n % SEMANTIC_MAX}", list(slot))  # stored as JSON: a list
                self.db.set(f"sn:{scope}", n + 1)
                return n

        n = self._safely(write)
        if n is not None and slot is not None and scope in self._tables:
            try:
                self._tables[scope].add(n, *slot)
            except LookupError:
                del self._tables[scope]

    def stats(self) -> dict:
        def read() -> dict:
            return {k: int(self.db.get(f"stat:{k}", 0)) for k in ("exact", "semantic", "miss", "entries")}

        counts = self._safely(read, {"exact": 0, "semantic": 0, "miss": 0, "entries": 0})
        lookups = counts["exact"] + counts["semantic"] + counts["miss"]
        counts["hit_rate"] = (counts["exact"] + counts["semantic"]) / lookups if lookups else 0.0
        return counts

    def clear(self) -> None:
        self._tables.clear()
        self._safely(lambda: self.db.clear())

    @property
    def is_open(self) -> bool:
        """Whether the diskcache handle is open (memory pressure closes it; the next use reopens it)."""
        return self._db is not None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
