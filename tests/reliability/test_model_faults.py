"""A model file that llama.cpp refuses or crashes on is tried in a child process first: the app
goes on retrieval-only with the reason, and the server process is never at risk."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import gguf
import pytest

from rag.engine import Engine
from rag.events import Done
from rag.llm.probe import RECORD
from rag.modelgen import PRESETS, write_model

from ..conftest import write_unknown_architecture


def refused_by_llama_cpp(path, monkeypatch):
    """A well-formed GGUF whose header our reader accepts but llama.cpp rejects (0 KV heads)."""
    real = gguf.GGUFWriter.add_head_count_kv
    monkeypatch.setattr(gguf.GGUFWriter, "add_head_count_kv", lambda self, n: real(self, 0))
    try:
        return write_model(path, PRESETS["tiny"])
    finally:
        monkeypatch.setattr(gguf.GGUFWriter, "add_head_count_kv", real)


def answer(engine):
    return [e for e in engine.ask("What is the parking permit number?", wait_for_model=True) if isinstance(e, Done)][-1]


@pytest.fixture
def indexed(settings, embedder, corpus):
    def make(model_path):
        engine = Engine(replace(settings, model_path=model_path, max_tokens=8), embedder=embedder)
        engine.ingest([corpus[0]])
        return engine

    return make


BAD_FILES = {  # name -> (how to make it from the tiny model's bytes, words in the reason)
    "empty.gguf": (lambda good, path: path.write_bytes(b""), "empty"),
    "random.gguf": (lambda good, path: path.write_bytes(bytes(range(256)) * 64), "not a GGUF file"),
    "lfs-pointer.gguf": (
        lambda good, path: path.write_bytes(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 4683073536\n"
        ),
        "Git LFS pointer",
    ),
    "login-page.gguf": (lambda good, path: path.write_bytes(b"<!DOCTYPE html><html>Sign in</html>"), "HTML"),
    "odd-arch.gguf": (lambda good, path: write_unknown_architecture(path), "architecture 'frobnicator'"),
    "cut-1pct.gguf": (lambda good, path: path.write_bytes(good[: len(good) // 100]), "truncated"),
    "cut-50pct.gguf": (lambda good, path: path.write_bytes(good[: len(good) // 2]), "truncated"),
    "cut-99.9pct.gguf": (lambda good, path: path.write_bytes(good[: len(good) * 999 // 1000]), "truncated"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_bad_model_files_leave_the_app_answering_with_the_reason(name, indexed, tiny_model, tmp_path):
    make, words = BAD_FILES[name]
    make(tiny_model.read_bytes(), tmp_path / name)
    done = answer(indexed(tmp_path / name))
    assert done.retrieval_only and "COPPERLANTERN" in done.answer
    assert words in done.reason and name in done.reason, done.reason


def test_file_llama_cpp_refuses_is_reported_with_its_reason(indexed, tmp_path, monkeypatch):
    engine = indexed(refused_by_llama_cpp(tmp_path / "zero-kv-heads.gguf", monkeypatch))
    done = answer(engine)
    assert done.retrieval_only and "COPPERLANTERN" in done.answer
    assert "zero-kv-heads.gguf: llama.cpp cannot load it" in done.reason
    assert "error loading model" in done.reason or "Failed to load" in done.reason


def test_llama_cpp_crash_while_loading_spares_the_server(indexed, tiny_model, monkeypatch):
    """The child is killed mid-load (the failpoint stands in for an abort or the OOM killer)."""
    monkeypatch.setenv("AI_CHAT_FAILPOINT", "probe.load=kill")
    engine = indexed(tiny_model)
    done = answer(engine)
    assert done.retrieval_only and "COPPERLANTERN" in done.answer
    assert "llama.cpp crashed while loading it (SIGKILL" in done.reason
    assert engine.chain.local.model.state == "failed"


def test_a_file_that_passed_is_not_probed_again(indexed, tiny_model, settings, monkeypatch):
    engine = indexed(tiny_model)
    assert answer(engine).completion_tokens > 0
    record = json.loads((settings.cache_dir / RECORD).read_text())
    fingerprint = engine.chain.local.fingerprint()
    assert list(record) == [str(tiny_model)] and record[str(tiny_model)].startswith(fingerprint + ":")
    monkeypatch.setenv("AI_CHAT_FAILPOINT", "probe.load=kill")  # a probe now would fail: none runs
    again = indexed(tiny_model)
    again.chain.local.model.get(timeout=60)
    assert again.chain.local.model.state == "ready"


@pytest.mark.parametrize(
    "signal_name, meaning",
    [
        ("SIGILL", "an instruction this CPU does not allow"),
        ("SIGSEGV", "an invalid memory access"),
        ("SIGBUS", "a bus error"),
    ],
)
def test_cpu_kernel_crash_while_running_spares_the_server(signal_name, meaning, indexed, tiny_model, monkeypatch):
    """The probe child loads the model, then dies evaluating the prompt (as an AMX kernel does)."""
    monkeypatch.setenv("AI_CHAT_FAILPOINT", f"probe.decode={signal_name.lower()}")
    engine = indexed(tiny_model)
    done = answer(engine)
    assert done.retrieval_only and "COPPERLANTERN" in done.answer
    assert f"llama.cpp crashed running this model on this CPU ({signal_name}: {meaning}" in done.reason
    assert "make install" in done.reason and engine.chain.local.model.state == "failed"


def test_the_probe_evaluates_a_prompt_and_decodes(tiny_model):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "rag.llm.probe", str(tiny_model)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-500:]
    match = re.search(r"probe: ok \((\d+) prompt tokens, (\d+) decoded\)", out.stdout)
    assert match and int(match.group(1)) == 64 and int(match.group(2)) == 4, out.stdout


def test_a_pass_is_remembered_per_build_cpu_and_kernel_settings(tiny_model):
    from rag.llm.probe import probe_key, probe_kwargs

    base = probe_kwargs({"n_threads": 2, "n_batch": 512, "flash_attn": False, "type_k": 1, "type_v": 1})
    assert base["n_ctx"] == 256 and base["n_gpu_layers"] == 0 and base["n_batch"] == 256
    same = probe_kwargs({**base, "n_threads": 8, "n_ctx": 8192})  # follows free memory: not a kernel choice
    assert probe_key("f", base) == probe_key("f", same)
    assert probe_key("f", base) != probe_key("f", {**base, "type_k": 8})
    assert probe_key("f", base) != probe_key("g", base)
