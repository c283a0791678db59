"""Shared fixtures: every test gets its own index and cache dirs; heavy real parts load once.

Real components only: a generated tiny GGUF run by real llama.cpp, the bundled MiniLM embedder,
real FAISS and SQLite, real files in every supported format.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from rag.config import PROJECT_ROOT, Settings
from rag.modelgen import PRESETS, write_model

from .docs_factory import make_corpus

ENV_VARS = [f.metadata["env"] for f in fields(Settings)]


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Point every data dir at tmp_path and clear the app's env vars."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    (tmp_path / "models").mkdir()
    monkeypatch.setenv("MODELS_DIR", str(tmp_path / "models"))  # empty: no model unless a test sets one
    monkeypatch.setenv("BUNDLED_MODEL", "0")  # nor the bundled demo model (tests that want it say so)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    return write_model(tmp_path_factory.mktemp("models") / "tiny.gguf", PRESETS["tiny"])


@pytest.fixture(scope="session")
def embedder():
    from rag.config import default_embed_model
    from rag.embeddings import load_embedder

    return load_embedder(default_embed_model())


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return folder, make_corpus(folder)


@pytest.fixture
def settings(isolated) -> Settings:
    """Settings with no model (MODELS_DIR is an empty folder), isolated data dirs."""
    return Settings.from_env()


def write_unknown_architecture(path: Path) -> Path:
    """A well-formed GGUF header whose architecture no llama.cpp knows."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch="frobnicator")
    writer.add_block_count(1)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def run_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run `python -m rag ARGS` in a child process with the test's environment plus `env`."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "rag", *args],
        cwd=PROJECT_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_older_index(store, *statements: str, **manifest_changes) -> Path:
    """Turn the store's committed version into what an older release wrote: run SQL `statements` on
    its chunks.sqlite, update its manifest (checksum, plus `manifest_changes`). Returns the version dir."""
    import json
    import sqlite3

    from rag.index import file_checksum

    version = store.root / store.version
    db = sqlite3.connect(version / "chunks.sqlite")
    for sql in statements:
        db.execute(sql)
    db.commit()
    db.close()
    manifest = json.loads((version / "manifest.json").read_text())
    manifest["checksums"]["chunks.sqlite"] = file_checksum(version / "chunks.sqlite")
    manifest.update(manifest_changes)
    (version / "manifest.json").write_text(json.dumps(manifest))
    return version


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for this test run (tests/postgres.py), or a skip saying why not."""
    from .postgres import Server

    try:
        server = Server()
    except (FileNotFoundError, RuntimeError) as exc:
        pytest.skip(f"no PostgreSQL server for the store tests: {exc}")
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_db(request, tmp_path):
    """The state database on each backend: an SQLite file, and a fresh database on a real PostgreSQL."""
    from rag.db import PostgresDatabase, SQLiteDatabase

    if request.param == "sqlite":
        return SQLiteDatabase(tmp_path / "state.sqlite")
    return PostgresDatabase(request.getfixturevalue("postgres").new_database())


@pytest.fixture
def fresh_engine():
    """For AppTests: the app's engine (a process-wide st.cache_resource) made anew for the test."""
    import streamlit as st

    st.cache_resource.clear()
    yield
    st.cache_resource.clear()
