"""Inputs that used to end in wrong results or tracebacks: a stray byte in a Korean file, a PNG named
.md, a folder link that loops, MODEL_PATH set to a folder, a runaway answer for the cache."""

from __future__ import annotations

import os
import struct
import zlib

import pytest

from rag import loaders, retrieve
from rag.cache import MAX_ANSWER_CHARS, AnswerCache
from rag.errors import IngestError
from rag.index import IndexStore
from rag.ingest import ingest

from ..conftest import run_cli

KOREAN = (
    "소방 훈련은 매년 3월과 9월에 실시한다. 비상계단은 항상 비워 두어야 하며 소화기는 복도 끝 붉은 함에 있다. "
    "훈련 책임자는 시설팀 김민수 과장이다. "
) * 20


def png_bytes() -> bytes:
    raw = b"\x00\xff\x00\x00"

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    "name, data",
    [
        ("utf8-one-latin1-byte", KOREAN[:200].encode() + b" caf\xe9 " + KOREAN[200:].encode()),
        ("cp949-one-invalid-byte", KOREAN[:200].encode("cp949") + b"\xff" + KOREAN[200:].encode("cp949")),
    ],
)
def test_one_stray_byte_spoils_one_character_not_the_file(name, data):
    text = loaders.decode_text(data)
    assert "소방 훈련은 매년 3월과 9월에 실시한다" in text and "김민수 과장" in text
    assert text.count("\ufffd") <= 2  # only the stray byte (and at most its neighbour) is replaced


def test_a_stray_byte_file_is_still_found_by_its_words(tmp_path, embedder):
    path = tmp_path / "소방훈련.txt"
    path.write_bytes(KOREAN[:300].encode() + b"\xe9" + KOREAN[300:].encode())
    store = IndexStore(tmp_path / "index")
    report = ingest([path], embedder, store, 900, 150)
    assert not report.errors
    hits = retrieve.search(embedder, store, "훈련 책임자는 누구인가", 3, mode="lexical")
    assert hits and "김민수 과장" in hits[0].text and "Ã" not in hits[0].text


def test_latin1_and_clean_files_decode_as_before():
    assert loaders.decode_text("café au lait, naïve".encode("latin-1")).startswith("caf")
    assert loaders.decode_text(KOREAN.encode("cp949")) == KOREAN
    assert loaders.decode_text(KOREAN.encode()) == KOREAN


@pytest.mark.parametrize("name", ["notes.md", "readme.txt", "page.html"])
def test_a_png_renamed_to_text_is_refused_by_its_content(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(png_bytes())
    with pytest.raises(IngestError, match=f"{name}: the content is a PNG image, not text"):
        loaders.load(path)


def test_renamed_binaries_are_refused_in_a_batch_and_the_rest_goes_in(tmp_path, embedder):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "image.md").write_bytes(png_bytes())
    (folder / "program.txt").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(200))
    (folder / "archive.pdf").write_bytes(b"PK\x03\x04" + bytes(100))
    (folder / "real.md").write_text("# Parking\nPermits are renewed in JUNIPERGATE week.\n")
    report = ingest([folder], embedder, IndexStore(tmp_path / "index"), 900, 150)
    by_name = {os.path.basename(r.path): r for r in report.results}
    assert by_name["real.md"].status == "added"
    assert "a PNG image, not text" in by_name["image.md"].message
    assert "a program, not text" in by_name["program.txt"].message
    assert "not a readable PDF (the content is a ZIP archive" in by_name["archive.pdf"].message


@pytest.mark.slow
def test_a_folder_link_that_loops_is_reported_not_followed(tmp_path):
    folder = tmp_path / "docs"
    (folder / "team").mkdir(parents=True)
    (folder / "team" / "rota.txt").write_text("The weekend rota is posted on MONDAYS.\n")
    os.symlink(folder, folder / "team" / "back-to-docs")  # a loop
    ingested = run_cli("ingest", str(folder), env={"INDEX_DIR": str(tmp_path / "index")})
    assert ingested.returncode == 0, ingested.stderr
    assert "added" in ingested.stdout and "rota.txt" in ingested.stdout
    assert "skipped   back-to-docs: a link to a folder, not followed (it could loop)" in ingested.stdout


def test_model_path_set_to_a_folder_says_so(tmp_path, tiny_model):
    folder = tmp_path / "models-here"
    folder.mkdir()
    os.symlink(tiny_model, folder / "tiny.gguf")
    planned = run_cli("plan", env={"MODEL_PATH": str(folder)})
    assert planned.returncode != 0
    assert f"MODEL_PATH {folder} is a directory, not a model file" in planned.stderr
    assert "tiny.gguf" in planned.stderr and "MODELS_DIR" in planned.stderr


def test_a_runaway_answer_is_not_cached(tmp_path):
    cache = AnswerCache(tmp_path / "cache")
    cache.store("What is the code?", "scope", "x" * (MAX_ANSWER_CHARS + 1), [])
    cache.store("What is the name?", "scope", "A normal answer.", [])
    assert cache.lookup_exact("What is the code?", "scope") is None
    assert cache.lookup_exact("What is the name?", "scope").answer == "A normal answer."
