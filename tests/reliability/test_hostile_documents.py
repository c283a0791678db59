"""Hostile documents are parsed or rejected in a child process with a time and memory cap; the batch
goes on and the server process's memory does not grow with what the parser allocates."""

from __future__ import annotations

import os

import psutil
import pytest

from rag.errors import IngestError
from rag.index import IndexStore
from rag.ingest import ingest
from rag.parse_worker import ParseWorker

from .hostile_files import all_hostile, html_huge_line

EXPECTED = {  # file -> (status, words in its message or its planted token)
    "encrypted.pdf": ("error", "password-protected"),
    "empty.pdf": ("error", "not a readable PDF"),
    "zip-renamed.pdf": ("error", "not a readable PDF"),
    "bomb.pdf": ("error", "decompression bomb"),
    "bomb.docx": ("error", "zip bomb"),
    "entities.docx": ("error", "not a readable DOCX"),
    "huge-line.html": ("added", "HTMLWORD"),
    "bad-bytes.txt": ("added", "TEXTWORD"),
    "good.pdf": ("added", "GOODWORD"),
}


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    return all_hostile(tmp_path_factory.mktemp("hostile"))


def test_batch_of_hostile_files(hostile, embedder, tmp_path):
    store = IndexStore(tmp_path / "index")
    ingest([hostile["good.pdf"]], embedder, store, 900, 150)  # warm up: the first embedding allocates
    rss_before = psutil.Process().memory_info().rss
    report = ingest(list(hostile.values()), embedder, store, 900, 150)
    grown_mb = (psutil.Process().memory_info().rss - rss_before) / 2**20
    by_name = {os.path.basename(r.path): r for r in report.results}
    for name, (status, words) in EXPECTED.items():
        result = by_name[name]
        if name == "good.pdf":
            assert result.status == "unchanged"  # already added by the warm-up
        elif status == "error":
            assert result.status == "error" and words in result.message and name in result.message, result
        else:
            assert result.status == "added", result
    with store.reading() as version:
        texts = " ".join(row[0] for row in version.query("SELECT text FROM chunks"))
    for token in ("HTMLWORD", "TEXTWORD", "GOODWORD"):
        assert token in texts
    assert "\x00" not in texts and "alert" not in texts and "steal" not in texts
    assert "SECRETWORD" not in texts and "root:" not in texts  # no /etc/passwd through an entity
    assert grown_mb < 40, f"the server process grew {grown_mb:.0f} MB parsing a 1 GB PDF bomb and others"


def test_memory_cap_stops_the_parser_and_the_next_file_still_parses(tmp_path, hostile):
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        for _ in range(300):
            fh.write(b"x" * (1 << 20))
    with ParseWorker(memory_mb=256) as worker:
        with pytest.raises(IngestError, match="big.txt: .*(memory|parser stopped)"):
            worker.load(big)
        assert "GOODWORD" in worker.load(hostile["good.pdf"])[0].text


def test_time_cap_stops_the_parser_and_the_next_file_still_parses(tmp_path, hostile):
    fifo = tmp_path / "never-ends.txt"
    os.mkfifo(fifo)  # reading it blocks forever
    with ParseWorker(timeout_s=1.0) as worker:
        with pytest.raises(IngestError, match="never-ends.txt: parsing took longer than 1 s"):
            worker.load(fifo)
        assert "HTMLWORD" in worker.load(html_huge_line(tmp_path / "page.html", mb=1))[0].text


def test_a_fifo_in_a_batch_is_refused_without_blocking(tmp_path, embedder, hostile):
    fifo = tmp_path / "pipe.md"
    os.mkfifo(fifo)
    report = ingest([fifo, hostile["good.pdf"]], embedder, IndexStore(tmp_path / "index"), 900, 150)
    assert [r.status for r in report.results] == ["error", "added"]
    assert "not a regular file" in report.results[0].message
