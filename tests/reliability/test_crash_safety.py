"""kill -9 at 39 points of ingest, delete, re-index and a collection change; a full disk mid-commit.

Each case copies a committed index, runs the real CLI in a child process with AI_CHAT_FAILPOINT set so
the child SIGKILLs itself at exactly that point (see rag/failpoints.py), then opens the index the way
the app does at start and checks: it loads; it is the last committed version (the old one before the
CURRENT swap, the new one after it); FAISS count == SQLite count == manifest count; every vector
finds its own chunk; no temporary files are left; nothing committed before the kill is lost, the
documents' collections included.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from rag.config import PROJECT_ROOT
from rag.errors import IndexWriteError
from rag.index import IndexStore
from rag.ingest import ingest

pytestmark = pytest.mark.slow  # kill -9 at 36 points, each a child process

BEFORE_SWAP = [
    "commit.begin",
    "commit.sqlite",
    "commit.faiss",
    "commit.manifest",
    "commit.fsynced",
    "commit.renamed",
    "commit.pointer-written",
]
AFTER_SWAP = ["commit.swapped", "commit.done"]
CASES = (
    [("ingest", f"ingest.parsed:{n}", "old") for n in (1, 2, 3)]
    + [("ingest", f"ingest.embedded:{n}", "old") for n in (1, 2, 3)]
    + [("ingest", f"commit.document:{n}", "old") for n in (1, 3)]
    + [("ingest", p, "old") for p in BEFORE_SWAP]
    + [("ingest", p, "new") for p in AFTER_SWAP]
    + [("delete", p, "old") for p in BEFORE_SWAP]
    + [("delete", p, "new") for p in AFTER_SWAP]
    + [("reindex", "ingest.embedded:2", "old")]
    + [("reindex", p, "old") for p in BEFORE_SWAP]
    + [("reindex", p, "new") for p in AFTER_SWAP]
    + [("collect", p, "old") for p in ("commit.sqlite", "commit.pointer-written")]
    + [("collect", "commit.swapped", "new")]
)
BASE_DOCS = {"alpha.md": "ALPHAWORD", "beta.md": "BETAWORD"}
NEW_DOCS = {"gamma.md": "GAMMAWORD", "delta.md": "DELTAWORD", "epsilon.md": "EPSILONWORD"}


def write_docs(folder: Path, docs: dict[str, str]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    for name, token in docs.items():
        (folder / name).write_text(
            f"# {name}\n\n"
            + " ".join(f"Paragraph {i} of {name} mentions {token} and the rules about item {i}." for i in range(40))
        )
    return [folder / name for name in docs]


@pytest.fixture(scope="module")
def base(tmp_path_factory, embedder):
    """A committed index (two documents, two versions) and three new documents to add."""
    root = tmp_path_factory.mktemp("crash")
    store = IndexStore(root / "index")
    for path in write_docs(root / "base", BASE_DOCS):
        ingest([path], embedder, store, 900, 150, collection="Greek" if path.name == "alpha.md" else "")
    return root, write_docs(root / "new", NEW_DOCS)


def memberships(store: IndexStore) -> dict[str, list[str]]:
    return {d["source"]: d["collections"] for d in store.documents()}


def run_until_killed(root: Path, case_dir: Path, op: str, point: str, new_files: list[Path]):
    index = case_dir / "index"
    shutil.copytree(root / "index", index)
    args = {
        "ingest": ["ingest", *map(str, new_files)],
        "reindex": ["reindex"],
        "delete": ["delete", IndexStore(index).documents()[0]["doc_id"][:12]],
        "collect": ["collections", "set", IndexStore(index).documents()[1]["doc_id"][:12], "Greek", "Letters"],
    }[op]
    env = {
        **os.environ,
        "INDEX_DIR": str(index),
        "CACHE_DIR": str(case_dir / "cache"),
        "MODELS_DIR": str(case_dir),
        "AI_CHAT_FAILPOINT": point,
    }
    return subprocess.run(
        [sys.executable, "-m", "rag", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )


def check_consistent(store: IndexStore) -> None:
    with store.reading() as version:
        rows = version.query("SELECT id FROM chunks")
        assert version.faiss.ntotal == len(rows) == store.count() > 0
        assert version.query("SELECT count(*) FROM chunks_fts")[0][0] == len(rows)  # the lexical leg too
        for (chunk_id,) in rows:
            vector = version.faiss.reconstruct(chunk_id)
            top = store.search(np.asarray(vector, dtype=np.float32), 1)[0]
            assert np.isclose(top.score, 1.0, atol=1e-4)  # itself (or an identical chunk), never a dangling id


def test_kill_minus_nine_at_every_point(base, tmp_path):
    root, new_files = base
    old = IndexStore(root / "index")
    old_version, old_sources = old.version, {d["source"] for d in old.documents()}
    old_members = memberships(old)
    assert old_members == {"alpha.md": ["Greek"], "beta.md": []}
    assert len(CASES) >= 30

    def one(case):
        op, point, _ = case
        case_dir = tmp_path / f"{op}-{point.replace(':', '-')}"
        return case, run_until_killed(root, case_dir, op, point, new_files), case_dir

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(one, CASES))
    for (op, point, expect), proc, case_dir in results:
        where = f"{op} killed at {point}"
        assert proc.returncode == -9, f"{where}: the failpoint was not reached (rc {proc.returncode}): {proc.stderr}"
        store = IndexStore(case_dir / "index")  # what the app does at start
        leftovers = [
            p.name
            for p in (case_dir / "index").iterdir()
            if p.name.startswith(".tmp-")
            or p.name == "CURRENT.tmp"
            or (p.name.startswith("v") and p.name > store.version)
        ]
        assert not leftovers, f"{where}: {leftovers}"
        check_consistent(store)
        sources = {d["source"] for d in store.documents()}
        if expect == "old":
            assert store.version == old_version and sources == old_sources, where
            assert memberships(store) == old_members, where  # the collections too
        else:
            assert store.version > old_version, where
            assert (
                sources
                == {
                    "ingest": old_sources | set(NEW_DOCS),
                    "reindex": old_sources,
                    "delete": old_sources - {old.documents()[0]["source"]},
                    "collect": old_sources,
                }[op]
            ), where
            members = memberships(store)
            assert (
                members
                == {
                    "ingest": {**old_members, **{name: [] for name in NEW_DOCS}},
                    "reindex": old_members,
                    "delete": {"beta.md": []},
                    "collect": {"alpha.md": ["Greek"], "beta.md": ["Greek", "Letters"]},
                }[op]
            ), where


def test_full_disk_mid_commit_is_a_clean_error_and_loses_nothing(base, tmp_path, embedder, monkeypatch, tiny_model):
    """ENOSPC while the FAISS file is written: the ingest reports it, the previous version stays
    committed and searchable, no temporary files remain, chat still answers, and the next ingest works."""
    from rag import failpoints
    from rag.config import Settings
    from rag.engine import Engine
    from rag.events import Done

    root, new_files = base
    shutil.copytree(root / "index", tmp_path / "index", dirs_exist_ok=True)
    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    monkeypatch.setenv("MAX_TOKENS", "8")
    engine = Engine(Settings.from_env(), embedder=embedder)
    before = engine.index.get().version
    monkeypatch.setenv(failpoints.ENV, "commit.faiss=enospc")
    failpoints.reset()
    with pytest.raises(IndexWriteError, match="No space left on device.*nothing was changed"):
        engine.ingest(new_files)
    store = engine.index.get()
    assert store.version == before and not list((tmp_path / "index").glob(".tmp-*"))
    assert not (tmp_path / "index" / f"v{int(before[1:]) + 1:06d}").exists()
    done = [e for e in engine.ask("What mentions ALPHAWORD?", wait_for_model=True) if isinstance(e, Done)][-1]
    assert done.completion_tokens > 0 and not done.retrieval_only
    monkeypatch.delenv(failpoints.ENV)
    assert engine.ingest(new_files).chunks_added > 0
    assert IndexStore(tmp_path / "index").version > before
