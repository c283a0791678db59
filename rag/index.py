"""Versioned on-disk index: FAISS vectors + SQLite chunk text/metadata + a JSON manifest.

Layout under INDEX_DIR:
    CURRENT              the committed version's name ("v000003"), replaced with os.replace
    v000003/index.faiss  IndexIDMap2(IndexFlatIP): normalised vectors, ids = chunk ids
    v000003/chunks.sqlite documents + chunks tables
    v000003/manifest.json format, embedder id, dimension, chunk parameters, counts
A commit builds the next version in a temporary directory, fsyncs it, renames it into place and
then swaps CURRENT; a crash at any point leaves the last committed version loadable, and opening
the store removes the leftovers. Reads use a memory-mapped FAISS file. No pickle anywhere.
Each document has an owner (the user who added it; "" = the shared library, which every user sees):
searches, listings and collections take the signed-in user's `Access` and see only what it allows.
This module does not embed or chunk text; ingest.py hands it finished vectors.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
import zlib
from collections.abc import Mapping, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from . import failpoints, lexical
from .errors import IndexMismatchError, IndexWriteError, RagError

log = logging.getLogger(__name__)
FORMAT = "ai-chat-index/1"
DATA_FILES = ("index.faiss", "chunks.sqlite")
SCHEMA = """
CREATE TABLE documents (doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, path TEXT NOT NULL,
                        chunks INTEGER NOT NULL, added REAL NOT NULL, title TEXT NOT NULL DEFAULT '',
                        owner TEXT NOT NULL DEFAULT '');
CREATE TABLE chunks (id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(doc_id),
                     ordinal INTEGER NOT NULL, page INTEGER, start INTEGER, end INTEGER, text TEXT NOT NULL);
CREATE INDEX chunks_doc ON chunks(doc_id);
"""
# Named collections a document belongs to (besides "All documents", which holds every document);
# versioned with the chunks, so a membership change is a commit like any other.
COLLECTIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (name TEXT NOT NULL, doc_id TEXT NOT NULL REFERENCES documents(doc_id),
                                        PRIMARY KEY (name, doc_id));
CREATE INDEX IF NOT EXISTS collections_doc ON collections(doc_id);
"""
ALL_DOCUMENTS = "All documents"
# The lexical leg: each chunk's tokens with its document's title (lexical.py), rowid = chunk id, in the
# same SQLite file as the chunks, so it is committed, versioned and rolled back with them.
FTS_SCHEMA = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS chunks_fts USING fts5(tokens, tokenize='unicode61 remove_diacritics 2')"
)
LEXICAL = "cjk-bigram-unigram-title-fts5/2"  # what the FTS table holds, recorded in the manifest
FOLLOW_S = 1.0  # how often a reader looks for a version another process committed (one small file read)


@dataclass
class NewDocument:
    doc_id: str  # sha256 of the file content
    source: str  # name shown to the user
    path: str
    chunks: list  # ingest.Chunk
    vectors: object  # float32 array, one normalised row per chunk
    title: str = ""  # what the document is known by (chunking.document_title), indexed with each chunk
    collections: tuple[str, ...] = ()  # named collections it joins (it is always in "All documents")
    owner: str = ""  # the user it belongs to; "": the shared library (every user sees it)


@dataclass
class Hit:
    chunk_id: int
    score: float
    text: str
    source: str
    page: int | None
    doc_id: str
    found_by: str = ""  # which retrieval leg(s) found it, with their scores (retrieve.search fills it)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def file_checksum(path: Path) -> str:
    """CRC-32 and size of a file: catches truncation and flipped bytes (not tampering) at ~1 GB/s."""
    crc = 0
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return f"crc32:{crc:08x}:{path.stat().st_size}"


def _is_write_failure(exc: BaseException) -> bool:
    """A full disk, a read-only mount, a quota: OSError, or how FAISS and SQLite report them."""
    text = str(exc).lower()
    return (
        isinstance(exc, OSError)
        or (isinstance(exc, RuntimeError) and "write" in text)  # faiss: "... write error"
        or (isinstance(exc, sqlite3.OperationalError) and ("full" in text or "disk i/o" in text))
    )


_IN_SCOPE = "doc_id IN (SELECT doc_id FROM collections WHERE name IN (SELECT value FROM json_each(?)))"


def _scope(collections: Sequence[str]) -> list:
    """The argument of _IN_SCOPE for these collections."""
    return [json.dumps(list(collections))]


@dataclass(frozen=True)
class Access:
    """What a signed-in user may read: their own documents, the shared library (owner ""), and the
    collections other users shared with them, as (owner, collection) pairs. None where sign-in is off:
    every document."""

    owner: str
    shared: tuple[tuple[str, str], ...] = ()


_OWN_OR_LIBRARY = "doc_id IN (SELECT doc_id FROM documents WHERE owner IN ('', ?))"
_SHARED_WITH = (
    "doc_id IN (SELECT c.doc_id FROM collections c JOIN documents d USING(doc_id) WHERE EXISTS (SELECT 1 FROM"
    " json_each(?) j WHERE json_extract(j.value, '$[0]') = d.owner AND json_extract(j.value, '$[1]') = c.name))"
)


def _where(version: _Version, collections: Sequence[str], access: Access | None) -> tuple[str, list] | None:
    """The condition on a doc_id column for this scope ("" when everything is in it), or None when
    nothing can be: named collections asked of a version from before collections."""
    parts, args = [], []
    if collections:
        if not version.has_collections:
            return None
        parts.append(_IN_SCOPE)
        args += _scope(collections)
    if access is not None and version.has_owner:  # a version from before accounts: all of it is shared
        if access.shared and version.has_collections:
            parts.append(f"({_OWN_OR_LIBRARY} OR {_SHARED_WITH})")
            args += [access.owner, json.dumps([list(pair) for pair in access.shared])]
        else:
            parts.append(_OWN_OR_LIBRARY)
            args.append(access.owner)
    return " AND ".join(parts), args


def _names(names) -> list[str]:
    """Collection names as stored: trimmed, one space between words, none empty, "All documents" left
    out (every document is in it)."""
    out = {" ".join(str(n).split())[:100] for n in names}
    return sorted(n for n in out if n and n.casefold() != ALL_DOCUMENTS.casefold())


def committed_version(root: Path) -> str | None:
    """The committed version's name from INDEX_DIR/CURRENT (one small read, no FAISS), or None."""
    try:
        name = (Path(root) / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    if not (name.startswith("v") and name[1:].isdigit()):
        raise RagError(f"{Path(root) / 'CURRENT'} is corrupt ({name[:20]!r}): delete {root} and re-ingest")
    return name


class _Version:
    """One committed version opened for reading: a mmapped FAISS index and a SQLite connection."""

    def __init__(self, path: Path, manifest: dict):
        import faiss

        self.path, self.manifest = path, manifest
        self.name = path.name
        try:
            self.faiss = faiss.read_index(str(path / "index.faiss"), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
        except RuntimeError:
            self.faiss = faiss.read_index(str(path / "index.faiss"))
        self.db = sqlite3.connect(f"file:{path / 'chunks.sqlite'}?mode=ro", uri=True, check_same_thread=False)
        self.lock = threading.Lock()
        self.readers, self.retired = 0, False  # searches in flight; replaced by a newer version
        self.has_fts = bool(self.query("SELECT 1 FROM sqlite_master WHERE name='chunks_fts'"))
        self.has_collections = bool(self.query("SELECT 1 FROM sqlite_master WHERE name='collections'"))
        self.has_owner = "owner" in {row[1] for row in self.query("PRAGMA table_info(documents)")}

    def query(self, sql: str, args=()) -> list:
        with self.lock:
            return self.db.execute(sql, args).fetchall()

    @contextmanager
    def reading(self):
        """Hold this version open for a search; a retired version closes when its last reader is done."""
        with self.lock:
            self.readers += 1
        try:
            yield self
        finally:
            with self.lock:
                self.readers -= 1
                last = self.retired and self.readers == 0
            if last:
                self.close()

    def retire(self) -> None:
        """No new reader will get this version; close it now or when the searches in flight end."""
        with self.lock:
            self.retired = True
            idle = self.readers == 0
        if idle:
            self.close()

    def close(self) -> None:
        with self.lock:
            self.db.close()


class IndexStore:
    def __init__(self, root: Path | str, chunk_params: dict | None = None):
        self.root = Path(root)
        self.chunk_params = chunk_params or {}
        self._write_lock = threading.Lock()
        self._swap_lock = threading.Lock()  # taking the current version for a read vs swapping it
        self._current: _Version | None = None
        self._follow_lock = threading.Lock()
        self._next_follow = 0.0
        self.root.mkdir(parents=True, exist_ok=True)
        with self._locked(wait=False) as holding:
            if holding:  # no commit is in progress anywhere: what is left over was abandoned
                self._clean_leftovers()
        self._current = self._open_current()

    # ---- reading -------------------------------------------------------------------------
    @property
    def version(self) -> str:
        self._follow()
        return self._current.name if self._current else "v000000"

    @property
    def manifest(self) -> dict:
        return dict(self._current.manifest) if self._current else {}

    def count(self) -> int:
        return int(self._current.manifest["count"]) if self._current else 0

    def check_embedder(self, embedder_id: str, dim: int) -> None:
        """Refuse an index built with another embedder: its vectors would match the wrong chunks."""
        m = self.manifest
        if m and (m.get("embedder") != embedder_id or int(m.get("dim", -1)) != dim):
            raise IndexMismatchError(
                f"the index in {self.root} was built with embedder {m.get('embedder')} (dimension {m.get('dim')}) "
                f"but EMBED_MODEL is {embedder_id} (dimension {dim}): re-index with `python -m rag reindex`, "
                "or set INDEX_DIR to a new folder"
            )

    @contextmanager
    def reading(self):
        """The current version, held open while the block reads it (None before the first commit):
        a commit meanwhile swaps in a new version, and this one closes when its last reader leaves.
        Example: `with store.reading() as v: v.query("SELECT count(*) FROM chunks")`."""
        self._follow()
        with self._swap_lock:
            version = self._current
            held = version.reading() if version is not None else nullcontext()
            held.__enter__()
        try:
            yield version
        finally:
            held.__exit__(None, None, None)

    def search(self, vector, k: int, collections: Sequence[str] = (), access: Access | None = None) -> list[Hit]:
        """Top-k chunks by inner product (cosine on normalised vectors); with `collections`, only
        chunks of documents in one of them; with `access`, only documents the user may read."""
        import faiss
        import numpy as np

        with self.reading() as version:
            if version is None or version.faiss.ntotal == 0:
                return []
            params = None
            scope = _where(version, collections, access)
            if scope is None:
                return []
            where, args = scope
            if where:
                ids = [r[0] for r in version.query(f"SELECT id FROM chunks WHERE {where}", args)]
                if not ids:
                    return []
                selector = faiss.IDSelectorBatch(np.array(ids, dtype=np.int64))  # alive until the search is done
                params = faiss.SearchParameters(sel=selector)  # type: ignore[call-arg]  # SWIG keyword arguments
            n = min(k, version.faiss.ntotal)
            scores, found_ids = version.faiss.search(vector.reshape(1, -1), n, params=params)
            found = [(int(i), float(s)) for i, s in zip(found_ids[0], scores[0]) if i >= 0]
            return self._hits(version, found)

    def lexical_search(
        self, match: str, k: int, collections: Sequence[str] = (), access: Access | None = None
    ) -> list[Hit]:
        """Top-k chunks for an FTS5 MATCH expression (lexical.fts_query), scored by BM25 (higher is
        better); `collections` and `access` limit them as in search()."""
        with self.reading() as version:
            if version is None or not match or not version.has_fts:
                return []
            where, args = "chunks_fts MATCH ?", [match]
            scope = _where(version, collections, access)
            if scope is None:
                return []
            if scope[0]:
                where += f" AND rowid IN (SELECT id FROM chunks WHERE {scope[0]})"
                args += scope[1]
            rows = version.query(
                f"SELECT rowid, -bm25(chunks_fts) FROM chunks_fts WHERE {where} ORDER BY bm25(chunks_fts) LIMIT ?",
                [*args, k],
            )
            return self._hits(version, [(int(i), float(s)) for i, s in rows])

    def _hits(self, version: _Version, found: list[tuple[int, float]]) -> list[Hit]:
        if not found:
            return []
        marks = ",".join("?" * len(found))
        rows = version.query(
            f"SELECT c.id, c.text, d.source, c.page, c.doc_id FROM chunks c JOIN documents d USING(doc_id) "
            f"WHERE c.id IN ({marks})",
            [i for i, _ in found],
        )
        by_id = {r[0]: r for r in rows}
        missing = [i for i, _ in found if i not in by_id]
        if missing:
            raise RagError(
                f"index version {version.name} is inconsistent (vectors {missing[:5]} have no chunk): "
                "re-index with `python -m rag reindex`"
            )
        return [Hit(i, s, by_id[i][1], by_id[i][2], by_id[i][3], by_id[i][4]) for i, s in found]

    def _rows(self, sql: str, args=()) -> list:
        with self.reading() as version:
            return version.query(sql, args) if version else []

    def documents(self, access: Access | None = None) -> list[dict]:
        """Every document (with `access`: those the user may read): doc_id, source, path, chunks, added,
        owner ("" = the shared library) and its named `collections`."""
        with self.reading() as version:
            if version is None:
                return []
            where, args = _where(version, (), access) or ("", [])
            rows = version.query(
                "SELECT doc_id, source, path, chunks, added, "
                + ("owner FROM documents" if version.has_owner else "'' FROM documents")
                + (f" WHERE {where}" if where else "")
                + " ORDER BY added",
                args,
            )
            members = (
                version.query("SELECT doc_id, name FROM collections ORDER BY name") if version.has_collections else []
            )
        named: dict[str, list[str]] = {}
        for doc_id, name in members:
            named.setdefault(doc_id, []).append(name)
        keys = ("doc_id", "source", "path", "chunks", "added", "owner")
        return [{**dict(zip(keys, r)), "collections": named.get(r[0], [])} for r in rows]

    def collections(self, access: Access | None = None) -> dict[str, int]:
        """Named collections and how many documents each holds (with `access`: of those the user sees)."""
        with self.reading() as version:
            if version is None or not version.has_collections:
                return {}
            where, args = _where(version, (), access) or ("", [])
            return dict(
                version.query(
                    f"SELECT name, count(*) FROM collections {'WHERE ' + where if where else ''}"
                    " GROUP BY name ORDER BY name",
                    args,
                )
            )

    def has_document(self, doc_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM documents WHERE doc_id=?", (doc_id,)))

    def doc_ids_for_path(self, path: str, owner: str = "") -> list[str]:
        """The documents `owner` indexed from this path (a changed file replaces only its owner's)."""
        with self.reading() as version:
            if version is None:
                return []
            if not version.has_owner:
                return [r[0] for r in version.query("SELECT doc_id FROM documents WHERE path=?", (path,))]
            return [r[0] for r in version.query("SELECT doc_id FROM documents WHERE path=? AND owner=?", (path, owner))]

    def _follow(self) -> None:
        """Open the version another process committed (another app replica, the CLI), at most every
        FOLLOW_S; a version caught half-removed or unreadable is left for the next look."""
        now = time.monotonic()
        if now < self._next_follow or not self._follow_lock.acquire(blocking=False):
            return
        try:
            self._next_follow = now + FOLLOW_S
            name = self._pointer()
            if name is None or name == (self._current.name if self._current else None):
                return
            try:
                version = self._open_current()
            except (RagError, OSError) as exc:
                log.warning("index version %s committed elsewhere could not be opened yet: %s", name, exc)
                return
            if version is not None:
                self._swap(version)
        finally:
            self._follow_lock.release()

    # ---- opening -------------------------------------------------------------------------
    def _pointer(self) -> str | None:
        return committed_version(self.root)

    def _clean_leftovers(self) -> None:
        """Remove temporary and never-committed version directories left by a crash. Only while holding
        the write lock: another process's commit in progress looks exactly like a crash's leftovers."""
        current = self._pointer()
        for entry in self.root.iterdir():
            stray = entry.name.startswith(".tmp-") or entry.name == "CURRENT.tmp"
            uncommitted = entry.is_dir() and entry.name.startswith("v") and (current is None or entry.name > current)
            if stray or uncommitted:
                log.info("removing leftover %s", entry)
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)

    def _open_current(self) -> _Version | None:
        name = self._pointer()
        if name is None:
            return None
        path = self.root / name
        try:
            manifest = json.loads((path / "manifest.json").read_text())
        except (OSError, ValueError) as exc:
            raise RagError(
                f"index version {path} has no readable manifest ({exc}): "
                f"delete {self.root} and re-ingest, or restore it from a backup"
            ) from exc
        for filename, expected in manifest.get("checksums", {}).items():
            try:
                actual = file_checksum(path / filename)
            except OSError as exc:
                actual = f"unreadable ({exc.strerror or exc})"
            if actual != expected:
                raise RagError(
                    f"index version {path} is corrupt: {filename} does not match its checksum "
                    f"({actual} != {expected}); re-index with `python -m rag reindex`, "
                    "or restore INDEX_DIR from a backup"
                )
        if manifest.get("format") != FORMAT:
            raise IndexMismatchError(
                f"{path} has index format {manifest.get('format')!r}, this app reads {FORMAT}: "
                "re-index with `python -m rag reindex`"
            )
        try:
            version = _Version(path, manifest)
            n_rows = version.query("SELECT count(*) FROM chunks")[0][0]
        except (RuntimeError, sqlite3.Error) as exc:
            raise RagError(f"index version {path} is corrupt ({exc}): re-index with `python -m rag reindex`") from exc
        if not (version.faiss.ntotal == n_rows == manifest["count"]):
            raise RagError(
                f"index version {path} is inconsistent ({version.faiss.ntotal} vectors, {n_rows} chunks, "
                f"manifest {manifest['count']}): re-index with `python -m rag reindex`"
            )
        return version

    # ---- writing -------------------------------------------------------------------------
    @contextmanager
    def _locked(self, wait: bool = True):
        """One writer at a time, across threads and processes. With wait=False, yields whether the lock
        was free (and is now held) instead of waiting for it."""
        if not self._write_lock.acquire(blocking=wait):
            yield False
            return
        try:
            with open(self.root / ".lock", "a") as lock_file:
                try:
                    fcntl.flock(lock_file, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    yield False
                    return
                try:
                    yield True
                finally:
                    fcntl.flock(lock_file, fcntl.LOCK_UN)
        finally:
            self._write_lock.release()

    def commit(
        self,
        add: Sequence[NewDocument] = (),
        delete: Sequence[str] = (),
        embedder_id: str = "",
        dim: int = 0,
        reset: bool = False,
        members: Mapping[str, Sequence[str]] | None = None,
    ) -> str:
        """Write a new version with `add` added and documents `delete` removed; return its name.
        `members`: doc_id -> the named collections it belongs to from now on (its others are left)."""
        with self._locked():
            self._clean_leftovers()  # the lock is ours: a crashed commit's folders are abandoned
            if self._pointer() != (self._current.name if self._current else None):
                self._swap(self._open_current())  # another process committed meanwhile
            base = None if reset else self._current
            name = f"v{int(self.version[1:]) + 1:06d}"
            tmp = self.root / f".tmp-{name}-{uuid.uuid4().hex[:8]}"
            try:
                tmp.mkdir()
                failpoints.hit("commit.begin")
                manifest = self._build(tmp, base, list(add), list(delete), embedder_id, dim, members or {})
                os.rename(tmp, self.root / name)
                failpoints.hit("commit.renamed")
                _fsync_dir(self.root)
                pointer = self.root / "CURRENT.tmp"
                pointer.write_text(name)
                failpoints.hit("commit.pointer-written")
                _fsync_file(pointer)
                os.replace(pointer, self.root / "CURRENT")
            except BaseException as exc:
                # not committed: CURRENT still names the base version; remove what this commit wrote
                shutil.rmtree(tmp, ignore_errors=True)
                if self._pointer() != name:
                    shutil.rmtree(self.root / name, ignore_errors=True)
                (self.root / "CURRENT.tmp").unlink(missing_ok=True)
                if _is_write_failure(exc):
                    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
                    raise IndexWriteError(
                        f"could not write the index in {self.root} ({reason[:200]}); nothing was changed "
                        f"(version {self.version} is intact): free disk space or fix the folder's permissions, "
                        "then add the files again"
                    ) from exc
                raise
            failpoints.hit("commit.swapped")
            _fsync_dir(self.root)
            self._swap(_Version(self.root / name, manifest))
            self._drop_old(keep={name, base.name if base else name})
            failpoints.hit("commit.done")
            return name

    def _swap(self, version: _Version | None) -> None:
        with self._swap_lock:
            old, self._current = self._current, version
        if old is not None and old is not version:
            old.retire()  # closed when the searches still using it are done, not by the clock

    def _drop_old(self, keep: set[str]) -> None:
        for entry in self.root.glob("v[0-9]*"):
            if entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)

    def _build(self, tmp: Path, base: _Version | None, add, delete, embedder_id: str, dim: int, members) -> dict:
        import faiss
        import numpy as np

        db_path = tmp / "chunks.sqlite"
        db = sqlite3.connect(db_path)
        try:
            if base is not None:
                with base.lock:
                    base.db.backup(db)
                dim = dim or int(base.manifest["dim"])
                embedder_id = embedder_id or base.manifest["embedder"]
                index = faiss.read_index(str(base.path / "index.faiss"))
            else:
                db.executescript(SCHEMA)
                index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
            self._upgrade(db, base)
            if delete:
                marks = ",".join("?" * len(delete))
                ids = [r[0] for r in db.execute(f"SELECT id FROM chunks WHERE doc_id IN ({marks})", list(delete))]
                index.remove_ids(np.array(ids, dtype=np.int64))  # type: ignore[arg-type]  # faiss's SWIG wrapper converts
                db.executemany("DELETE FROM chunks_fts WHERE rowid=?", [(i,) for i in ids])
                db.execute(f"DELETE FROM collections WHERE doc_id IN ({marks})", list(delete))
                db.execute(f"DELETE FROM chunks WHERE doc_id IN ({marks})", list(delete))
                db.execute(f"DELETE FROM documents WHERE doc_id IN ({marks})", list(delete))
            next_id = (db.execute("SELECT max(id) FROM chunks").fetchone()[0] or 0) + 1
            for doc in add:
                next_id = self._add_document(db, index, doc, next_id)
                failpoints.hit("commit.document")
            for doc_id, names in members.items():
                if db.execute("SELECT 1 FROM documents WHERE doc_id=?", (doc_id,)).fetchone():
                    db.execute("DELETE FROM collections WHERE doc_id=?", (doc_id,))
                    db.executemany("INSERT INTO collections VALUES (?,?)", [(n, doc_id) for n in _names(names)])
            db.commit()
            failpoints.hit("commit.sqlite")
            count = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
            n_docs = db.execute("SELECT count(*) FROM documents").fetchone()[0]
        finally:
            db.close()
        faiss.write_index(index, str(tmp / "index.faiss"))
        failpoints.hit("commit.faiss")
        manifest = {
            "format": FORMAT,
            "version": tmp.name.split("-")[1],
            "embedder": embedder_id,
            "dim": dim,
            "chunking": self.chunk_params,
            "lexical": LEXICAL,
            "count": count,
            "documents": n_docs,
            "created": time.time(),
            "checksums": {name: file_checksum(tmp / name) for name in DATA_FILES},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1))
        failpoints.hit("commit.manifest")
        for name in (*DATA_FILES, "manifest.json"):
            _fsync_file(tmp / name)
        _fsync_dir(tmp)
        failpoints.hit("commit.fsynced")
        return manifest

    @staticmethod
    def _upgrade(db, base: _Version | None) -> None:
        """Bring a copied older version up to this schema: the collections table (empty), a title
        column for documents (the file name until the document is added again), and the FTS table
        filled, or refilled when it was written by another LEXICAL."""
        db.executescript(COLLECTIONS_SCHEMA)
        columns = {row[1] for row in db.execute("PRAGMA table_info(documents)")}
        if "title" not in columns:
            db.execute("ALTER TABLE documents ADD COLUMN title TEXT NOT NULL DEFAULT ''")
            db.execute("UPDATE documents SET title=source")
        if "owner" not in columns:  # indexed before accounts: the shared library
            db.execute("ALTER TABLE documents ADD COLUMN owner TEXT NOT NULL DEFAULT ''")
        has_fts = db.execute("SELECT 1 FROM sqlite_master WHERE name='chunks_fts'").fetchone()
        if has_fts and (base is None or base.manifest.get("lexical") == LEXICAL):
            return
        db.execute("DROP TABLE IF EXISTS chunks_fts")
        db.execute(FTS_SCHEMA)
        rows = db.execute("SELECT c.id, c.text, d.title FROM chunks c JOIN documents d USING(doc_id)").fetchall()
        db.executemany(
            "INSERT INTO chunks_fts(rowid, tokens) VALUES (?,?)",
            [(i, lexical.document_text(text, title)) for i, text, title in rows],
        )

    @staticmethod
    def _add_document(db, index, doc: NewDocument, next_id: int) -> int:
        import numpy as np

        ids = np.arange(next_id, next_id + len(doc.chunks), dtype=np.int64)
        db.execute(
            "INSERT OR REPLACE INTO documents(doc_id, source, path, chunks, added, title, owner)"
            " VALUES (?,?,?,?,?,?,?)",
            (doc.doc_id, doc.source, doc.path, len(doc.chunks), time.time(), doc.title, doc.owner),
        )
        db.executemany(
            "INSERT INTO chunks VALUES (?,?,?,?,?,?,?)",
            [(int(i), doc.doc_id, c.ordinal, c.page, c.start, c.end, c.text) for i, c in zip(ids, doc.chunks)],
        )
        db.executemany(
            "INSERT INTO chunks_fts(rowid, tokens) VALUES (?,?)",
            [(int(i), lexical.document_text(c.text, doc.title)) for i, c in zip(ids, doc.chunks)],
        )
        db.executemany(
            "INSERT OR IGNORE INTO collections VALUES (?,?)", [(n, doc.doc_id) for n in _names(doc.collections)]
        )
        if len(ids):
            index.add_with_ids(doc.vectors, ids)
        return next_id + len(doc.chunks)
