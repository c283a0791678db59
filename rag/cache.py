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
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_QUOTED = re.compile(r"\"([^\"]+)\"|“([^”]+)”|'([^']+)'")
_ERRORS = (sqlite3.Error, OSError)
LOCK_WAIT_S = 0.5


def _is_busy(exc: Exception) -> bool:
    """A lock held by another process (or diskcache's Timeout for it): not damage, nothing to rebuild."""
    text = str(exc).lower()
    return type(exc).__name__ == "Timeout" or (isinstance(exc, sqlite3.OperationalError)
                                               and ("locked" in text or "busy" in text))


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
    re.IGNORECASE)


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


class AnswerCache:
    def __init__(self, directory: Path, semantic: bool = True):
        self.directory = Path(directory)
        self.semantic = semantic
        self._db = None
        self._broken_logged = False
        self._busy_logged = False

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
            return diskcache.Cache(str(self.directory), size_limit=512 * 1024 * 1024, disk=diskcache.JSONDisk,
                                   timeout=LOCK_WAIT_S)

        try:
            return make()
        except _ERRORS as exc:
            self._log_broken(exc)
            shutil.rmtree(self.directory, ignore_errors=True)
            return make()

    def _log_broken(self, exc: Exception) -> None:
        if not self._broken_logged:
            log.warning("answer cache at %s is unusable (%s); rebuilding it, answers are uncached meanwhile",
                        self.directory, exc)
            self._broken_logged = True

    def _safely(self, action, default=None):
        try:
            return action()
        except Exception as exc:
            if _is_busy(exc):
                if not self._busy_logged:
                    log.warning("answer cache at %s is locked by another process (%s); answering uncached "
                                "until it is free", self.directory, exc)
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

        entries = self._safely(lambda: self.db.get("s:" + scope)) or []
        sig = signature(question)
        candidates = [(key, vec) for key, vec, s in entries if s == sig]
        if not candidates:
            return None
        raw = b"".join(base64.b64decode(v) for _, v in candidates)
        matrix = np.frombuffer(raw, dtype=np.float32).reshape(len(candidates), -1)
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        best = int(np.argmax(scores))
        if scores[best] < SEMANTIC_THRESHOLD:
            return None
        entry = self._safely(lambda: self.db.get(candidates[best][0]))
        return self._hit(entry, "semantic") if entry else None

    def _hit(self, entry: dict, kind: str) -> CachedAnswer:
        return CachedAnswer(entry["answer"], entry["hits"], kind, entry["stored_at"])

    def count(self, outcome: str) -> None:
        """Record 'exact', 'semantic' or 'miss'."""
        self._safely(lambda: self._bump(f"stat:{outcome}"))

    def _bump(self, key: str) -> None:
        """Increment a counter (diskcache's incr needs pickled ints; JSONDisk stores JSON)."""
        with self.db.transact():
            self.db.set(key, int(self.db.get(key, 0)) + 1)

    def store(self, question: str, scope: str, answer: str, hits: list[dict], vector=None) -> None:
        import numpy as np

        key = self._key(scope, question)

        def write() -> None:
            with self.db.transact():
                if key not in self.db:
                    self._bump("stat:entries")
                self.db.set(key, {"answer": answer, "hits": hits, "stored_at": time.time()})
                if self.semantic and vector is not None:
                    entries = self.db.get("s:" + scope) or []
                    packed = base64.b64encode(np.asarray(vector, dtype=np.float32).tobytes()).decode()
                    entries.append([key, packed, signature(question)])
                    self.db.set("s:" + scope, entries[-SEMANTIC_MAX:])

        self._safely(write)

    def stats(self) -> dict:
        def read() -> dict:
            return {k: int(self.db.get(f"stat:{k}", 0)) for k in ("exact", "semantic", "miss", "entries")}

        counts = self._safely(read, {"exact": 0, "semantic": 0, "miss": 0, "entries": 0})
        lookups = counts["exact"] + counts["semantic"] + counts["miss"]
        counts["hit_rate"] = (counts["exact"] + counts["semantic"]) / lookups if lookups else 0.0
        return counts

    def clear(self) -> None:
        self._safely(lambda: self.db.clear())

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
