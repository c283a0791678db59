"""Ingest files: load -> chunk in characters -> embed -> commit a new index version.

Content-hash dedup: a file whose bytes are already indexed (by the same owner) adds nothing; a
changed file at a known path replaces its owner's old version in the same commit. A file that fails is reported with its
reason and the batch goes on. Commits happen every COMMIT_CHUNKS chunks and at the end, so a
crash loses at most the uncommitted tail and never a committed version.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import failpoints, loaders
from .chunking import chunk_sections, document_title, embedder_read
from .embeddings import Embedder
from .errors import IngestError
from .index import IndexStore, NewDocument
from .parse_worker import ParseWorker
from .uploads import display_name

log = logging.getLogger(__name__)
COMMIT_CHUNKS = 2000
Progress = Callable[[int, int, str], None]


@dataclass
class FileResult:
    path: str
    status: str  # added | replaced | unchanged | error | skipped
    chunks: int = 0
    message: str = ""
    read: float = 1.0  # share of its text the embedder reads (the lexical leg reads all of it)
    doc_id: str = ""  # the document it is (added, replaced or unchanged)


@dataclass
class IngestReport:
    results: list[FileResult] = field(default_factory=list)
    version: str = ""

    @property
    def errors(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "error"]

    @property
    def embedder_read(self) -> float:
        """Share of the added text the embedder reads, weighted by chunks (1.0: all of it)."""
        added = [r for r in self.results if r.status in ("added", "replaced") and r.chunks]
        total = sum(r.chunks for r in added)
        return sum(r.read * r.chunks for r in added) / total if total else 1.0

    def read_note(self) -> str:
        """A line for the user when the embedder reads only part of the text, else ""."""
        share = self.embedder_read
        if share >= 0.995:
            return ""
        return (
            f"The embedder reads {share:.0%} of this text (its tokenizer splits the script below the character "
            "level, e.g. Hangul for the English-only MiniLM); keyword search covers all of it. For better "
            "search in that language set EMBED_MODEL to a multilingual embedder (README, Configure)."
        )

    @property
    def chunks_added(self) -> int:
        return sum(r.chunks for r in self.results if r.status in ("added", "replaced"))


def expand(paths: Iterable[Path | str]) -> tuple[list[Path], list[FileResult]]:
    """Files to ingest: given files as they are, folders searched recursively for supported types.
    Links to folders inside a folder are not followed (one can loop back to its parent); each is
    reported as skipped. Returns (files, skipped)."""
    out: list[Path] = []
    skipped: list[FileResult] = []
    for raw in paths:
        path = Path(raw)
        if not path.is_dir():
            out.append(path)
            continue
        found = []
        for folder, dirs, names in os.walk(path, followlinks=False):
            for name in sorted(dirs):
                if (Path(folder) / name).is_symlink():
                    skipped.append(
                        FileResult(
                            str(Path(folder) / name),
                            "skipped",
                            message=(
                                f"{display_name(name)}: a link to a folder, not followed (it could loop); "
                                "add its target folder itself to index it"
                            ),
                        )
                    )
            found += [
                Path(folder) / n
                for n in names
                if Path(n).suffix.lower() in loaders.SUPPORTED and (Path(folder) / n).is_file()
            ]
        out += sorted(found)
    return out, skipped


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def document_id(digest: str, owner: str = "") -> str:
    """A document's id: its content's SHA-256, salted with its owner's name when it has one, so two
    users who add the same file each have their own copy (and deleting one leaves the other)."""
    return digest if not owner else hashlib.sha256(f"{owner}\x00{digest}".encode()).hexdigest()


def ingest(
    paths: Iterable[Path | str],
    embedder: Embedder,
    store: IndexStore,
    chunk_chars: int,
    chunk_overlap: int,
    progress: Progress | None = None,
    names: dict[str, str] | None = None,
    reset: bool = False,
    collection: str = "",
    owner: str = "",
    owners: dict[str, str] | None = None,
) -> IngestReport:
    """Ingest `paths` into `store`; `names` maps a path to the name shown in citations; `collection`:
    a named collection the files join (an already indexed file joins it too). A changed file keeps
    the collections of the version it replaces. `owner`: the user the new documents belong to ("": the
    shared library); `owners` maps a path to its own owner (re-indexing keeps each document's).

    reset=True rebuilds the index from these files alone, in one commit (re-indexing), keeping
    every document's collections."""
    files, skipped = expand(paths)
    report, pending, deletes = IngestReport(results=skipped), [], []
    kept = {d["doc_id"]: d["collections"] for d in store.documents() if d["collections"]}
    members: dict[str, list[str]] = dict(kept) if reset else {}
    seen: set[str] = set()
    with ParseWorker() as parser:
        for done, path in enumerate(files):
            if progress:
                progress(done, len(files), (names or {}).get(str(path), path.name))
            result, doc, replaced = _one(
                path,
                parser,
                embedder,
                None if reset else store,
                (chunk_chars, chunk_overlap),
                seen,
                names or {},
                (owners or {}).get(str(path), owner),
            )
            report.results.append(result)
            if doc is not None:
                inherited = [n for old in replaced for n in kept.get(old, [])]
                doc.collections = tuple({*inherited, *([collection] if collection else [])})
                pending.append(doc)
                deletes += replaced
            elif result.status == "unchanged" and collection:
                members[result.doc_id] = [*kept.get(result.doc_id, []), collection]
            if not reset and sum(len(d.chunks) for d in pending) >= COMMIT_CHUNKS:
                store.commit(pending, deletes, embedder.id, embedder.dim, members=members)
                pending, deletes, members = [], [], {}
    if pending or deletes or reset or members:
        store.commit(pending, deletes, embedder.id, embedder.dim, reset=reset, members=members)
    if progress:
        progress(len(files), len(files), "")
    report.version = store.version
    return report


def _one(
    path: Path,
    parser: ParseWorker,
    embedder: Embedder,
    store: IndexStore | None,
    sizes: tuple[int, int],
    seen: set,
    names: dict,
    owner: str,
):
    """(result, document to add or None, doc ids it replaces) for one file; store=None skips dedup."""
    label = names.get(str(path)) or display_name(path.name)  # the user's upload name, or a safe file name
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO or device would block or never end
            raise IngestError(f"{label}: not a regular file; copy the document into a folder and add that")
        digest = document_id(file_digest(path), owner)
        if digest in seen or (store is not None and store.has_document(digest)):
            return FileResult(str(path), "unchanged", message="already indexed", doc_id=digest), None, []
        sections = parser.load(path)  # in a child process with a time and memory cap
        failpoints.hit("ingest.parsed")
        chunks = chunk_sections(sections, embedder, *sizes)
        vectors = embedder.embed_batch([c.text for c in chunks])
        failpoints.hit("ingest.embedded")
    except IngestError as exc:
        message = str(exc).replace(path.name, label)
        log.warning("%s", message)
        return FileResult(str(path), "error", message=message), None, []
    except OSError as exc:
        return FileResult(str(path), "error", message=f"{label}: cannot be read ({exc.strerror or exc})"), None, []
    seen.add(digest)
    key = os.fsencode(path.resolve()).decode("utf-8", "backslashreplace")  # storable whatever its bytes
    replaced = store.doc_ids_for_path(key, owner) if store is not None else []
    doc = NewDocument(digest, label, key, chunks, vectors, document_title(label, sections), owner=owner)
    status = "replaced" if replaced else "added"
    return FileResult(str(path), status, len(chunks), read=embedder_read(chunks), doc_id=digest), doc, replaced
