"""Index writes that must not lose data: other processes opening the index mid-commit, file names
that are not UTF-8, and a disk that fills while FAISS writes."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import textwrap
import time

import pytest

from rag.config import PROJECT_ROOT
from rag.index import IndexStore

from ..conftest import run_cli
from ..test_index import DIM, doc


def python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def test_opening_the_index_leaves_a_commit_in_progress_alone(tmp_path):
    root = tmp_path / "idx"
    IndexStore(root).commit([doc("a", ["kept"], 1)], embedder_id="e", dim=DIM)
    holder = python(
        """
        import fcntl, sys, time
        fh = open(sys.argv[1] + "/.lock", "a")
        fcntl.flock(fh, fcntl.LOCK_EX)  # what a committing process holds
        print("holding", flush=True)
        time.sleep(60)
    """,
        str(root),
    )
    try:
        assert holder.stdout.readline().strip() == "holding"
        in_progress = root / ".tmp-v000002-5f3a"
        in_progress.mkdir()
        (in_progress / "chunks.sqlite").write_bytes(b"being written")
        assert run_cli("docs", env={"INDEX_DIR": str(root)}).returncode == 0
        IndexStore(root)
        assert in_progress.exists()  # not the reader's to remove
    finally:
        holder.kill()
        holder.wait()
    IndexStore(root)  # now nobody commits: it was abandoned
    assert not in_progress.exists()


def test_readers_in_other_processes_never_break_a_commit(tmp_path):
    """One process commits 25 times while three others open and read the index in a loop."""
    root = tmp_path / "idx"
    IndexStore(root).commit([doc("seed", ["seed"], 0)], embedder_id="e", dim=DIM)
    readers = [
        python(
            """
        import sys, time
        from rag.index import IndexStore
        end, opened = time.time() + 120, 0
        while time.time() < end:
            store = IndexStore(sys.argv[1])
            store.documents()
            opened += 1
            if opened % 50 == 0 and open(sys.argv[1] + "/../done").read() == "1":
                break
        print(opened)
    """,
            str(root),
        )
        for _ in range(3)
    ]
    (tmp_path / "done").write_text("0")
    writer = python(
        """
        import sys
        sys.path.insert(0, ".")
        from rag.index import IndexStore
        from tests.test_index import DIM, doc
        store = IndexStore(sys.argv[1])
        for i in range(25):
            store.commit([doc(f"d{i}", [f"text {i} " * 40] * 30, i)], embedder_id="e", dim=DIM)
        print(store.version, store.count())
    """,
        str(root),
    )
    out, err = writer.communicate(timeout=300)
    (tmp_path / "done").write_text("1")
    opened = [int(r.communicate(timeout=120)[0] or 0) for r in readers]
    assert writer.returncode == 0, err[-2000:]
    assert out.split() == ["v000026", str(1 + 25 * 30)]
    assert min(opened) > 25, opened  # the readers really ran alongside
    assert IndexStore(root).count() == 1 + 25 * 30


def test_file_names_that_are_not_utf8_are_indexed_with_the_batch(tmp_path, engine):
    folder = tmp_path / "unzipped"
    folder.mkdir()
    korean = os.fsdecode("휴가 규정.txt".encode("cp949"))  # a Korean Windows zip's name bytes
    garbage = os.fsdecode(b"notes-\xff\xfe.md")  # neither UTF-8 nor CP949
    (folder / korean).write_text("연차 휴가는 매년 15일이며 ORCHIDVALE 코드로 신청한다.\n", encoding="utf-8")
    (folder / garbage).write_text("The storeroom code is TEALHARBOR.\n")
    (folder / "plain.txt").write_text("The canteen opens at HALFPAST seven.\n")
    report = engine.ingest([folder])
    assert not report.errors and len(report.results) == 3
    sources = {d["source"] for d in engine.index.get().documents()}
    assert {"휴가 규정.txt", "notes-%FF%FE.md", "plain.txt"} <= sources
    listed = run_cli("docs", env={"INDEX_DIR": str(engine.settings.index_dir)})
    assert "휴가 규정.txt" in listed.stdout and "Traceback" not in listed.stderr
    again = engine.ingest([folder])  # the same files again: recognised, nothing duplicated
    assert {r.status for r in again.results} == {"unchanged"}


@pytest.mark.slow
def test_names_cannot_forge_cli_output_or_reach_the_terminal_raw(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    forged = "x\nindex v999999: 999 chunks added, 0 file(s) failed\nreport.txt"
    (folder / forged).write_text("The annual report is due in MARCH.\n")
    (folder / "red\x1b[31malert.md").write_text("Escape sequences stay text: COBALTRIDGE.\n")
    env = {"INDEX_DIR": str(tmp_path / "index")}
    ingested = run_cli("ingest", str(folder), env=env)
    assert ingested.returncode == 0, ingested.stderr
    for out in (ingested.stdout, ingested.stderr, run_cli("docs", env=env).stdout):
        assert "\x1b" not in out
        assert not any(line.startswith("index v999999") for line in out.splitlines()), out
    assert "x\\nindex v999999" in ingested.stdout and "red\\x1b[31malert.md" in ingested.stdout
    docs = run_cli("docs", env=env).stdout
    assert len(docs.strip().splitlines()) == 2


@pytest.mark.parametrize("limit, what", [(150_000, "FAISS"), (12_000, "SQLite")])
def test_a_disk_that_fills_mid_commit_is_a_clean_error(tmp_path, limit, what):
    """RLIMIT_FSIZE makes the real writes fail (EFBIG): with 150 kB the SQLite file fits and FAISS's
    does not; with 12 kB SQLite's own write fails first."""
    root = tmp_path / "idx"
    proc = python(
        """
        import resource, sys
        import numpy as np
        from rag.chunking import Chunk
        from rag.errors import IndexWriteError
        from rag.index import IndexStore, NewDocument

        def document(name, n):
            chunks = [Chunk(f"{name} {i}", 1, 0, 1, i) for i in range(n)]
            return NewDocument(name, f"{name}.txt", f"/{name}.txt", chunks, np.ones((n, 4096), np.float32) / 64)

        store = IndexStore(sys.argv[1])
        store.commit([document("kept", 1)], embedder_id="e", dim=4096)
        resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]),) * 2)
        try:
            store.commit([document("big", 20)])
        except IndexWriteError as exc:
            print("clean:", exc)
    """,
        str(root),
        str(limit),
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and "Traceback" not in err, f"{what}: {err[-1500:]}"
    assert out.startswith("clean: could not write the index") and "nothing was changed" in out, out
    store = IndexStore(root)
    assert store.version == "v000001" and store.count() == 1
    assert sorted(p.name for p in root.iterdir() if p.name != ".lock") == ["CURRENT", "v000001"]


def test_lock_file_protocol_is_flock_on_dot_lock(tmp_path):
    """Other tools (and the test above) rely on it: a commit holds flock(LOCK_EX) on INDEX_DIR/.lock."""
    root = tmp_path / "idx"
    store = IndexStore(root)
    with open(root / ".lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        began = time.monotonic()
        committer = python(
            """
            import sys
            sys.path.insert(0, ".")
            from rag.index import IndexStore
            from tests.test_index import DIM, doc
            print(IndexStore(sys.argv[1]).commit([doc("a", ["x"], 1)], embedder_id="e", dim=DIM))
        """,
            str(root),
        )
        time.sleep(1.0)
        assert committer.poll() is None  # waiting for the lock
        fcntl.flock(fh, fcntl.LOCK_UN)
    assert committer.communicate(timeout=60)[0].strip() == "v000001" and time.monotonic() - began >= 1.0
    assert store.commit([doc("b", ["y"], 2)]) == "v000002"
