"""A damaged or foreign index is detected when it opens, with a message that says what to do;
it never answers with wrong chunks."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from rag.config import Settings
from rag.engine import Engine
from rag.events import Done, Error


def truncate(path, fraction=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def flip_byte(path, where=0.6):
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0xFF
    path.write_bytes(bytes(data))


def other_embedder(version):
    manifest = json.loads((version / "manifest.json").read_text())
    manifest.update(embedder="multilingual-e5-small-0123456789", dim=768)
    (version / "manifest.json").write_text(json.dumps(manifest))


DAMAGE = {
    "truncated index.faiss": (lambda v: truncate(v / "index.faiss"), "index.faiss does not match its checksum"),
    "flipped byte in index.faiss": (lambda v: flip_byte(v / "index.faiss"), "index.faiss does not match"),
    "flipped byte in chunks.sqlite": (lambda v: flip_byte(v / "chunks.sqlite"), "chunks.sqlite does not match"),
    "deleted chunks.sqlite": (lambda v: (v / "chunks.sqlite").unlink(), "chunks.sqlite does not match"),
    "deleted manifest": (lambda v: (v / "manifest.json").unlink(), "has no readable manifest"),
    "garbage CURRENT": (lambda v: (v.parent / "CURRENT").write_text("../../etc"), "CURRENT is corrupt"),
    "CURRENT names a missing version": (lambda v: shutil.rmtree(v), "has no readable manifest"),
    "another embedder's dimension": (other_embedder, "built with embedder multilingual-e5-small"),
}


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, embedder, corpus):
    root = tmp_path_factory.mktemp("pristine")
    settings = replace(Settings.from_env(), index_dir=root / "index", cache_dir=root / "cache")
    Engine(settings, start=False, embedder=embedder).ingest([corpus[0]])
    return root / "index"


@pytest.mark.parametrize("damage", DAMAGE)
def test_damage_is_detected_at_start_with_advice(damage, pristine, tmp_path, embedder):
    index = tmp_path / "index"
    shutil.copytree(pristine, index)
    version = index / (index / "CURRENT").read_text().strip()
    harm, words = DAMAGE[damage]
    harm(version)
    engine = Engine(replace(Settings.from_env(), index_dir=index), embedder=embedder)
    events = list(engine.ask("What is the planted token?"))
    errors = [e.message for e in events if isinstance(e, Error)]
    assert errors and words in errors[0], (damage, errors)
    assert "reindex" in errors[0] or "re-ingest" in errors[0] or "INDEX_DIR" in errors[0]
    assert not any(isinstance(e, Done) for e in events)  # no answer from a damaged index


def test_undamaged_copy_answers(pristine, tmp_path, embedder):
    shutil.copytree(pristine, tmp_path / "index")
    engine = Engine(replace(Settings.from_env(), index_dir=tmp_path / "index"), embedder=embedder)
    assert any(isinstance(e, Done) for e in engine.ask("What is the planted token?"))
