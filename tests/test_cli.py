"""The CLI end to end in child processes, as a user runs it."""

import json
import re

import pytest

from .conftest import run_cli

pytestmark = pytest.mark.slow  # each test runs the CLI in child processes


def one_error_line(proc) -> str:
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_full_flow_from_make_model_to_cached_answer(tmp_path, corpus):
    model = tmp_path / "t.gguf"
    made = run_cli("make-model", str(model), "--preset", "tiny")
    assert made.returncode == 0 and model.exists()
    env = {"MODEL_PATH": str(model)}
    ingested = run_cli("ingest", str(corpus[0]), env=env)
    assert ingested.returncode == 0, ingested.stderr
    assert "index v000001: " in ingested.stdout and "5 file" not in ingested.stdout

    asked = run_cli("ask", "How is the service hatch key labelled?", env=env)
    assert asked.returncode == 0, asked.stderr
    assert "Sources:\n  [1] manual.pdf, page 2" in asked.stdout and "cache miss" in asked.stderr

    again = run_cli("ask", "How is the service hatch key labelled?", "--json", env=env)
    answer = json.loads(again.stdout)
    # served from the cache without loading the model (the <= 50 ms bar is measured by `make bench`)
    assert answer["cache"] == "exact" and answer["first_token_ms"] is None and answer["total_ms"] < 1000
    assert answer["sources"][0]["source"] == "manual.pdf" and answer["sources"][0]["page"] == 2

    status = json.loads(run_cli("status", "--json", env=env).stdout)
    assert status["cache"]["exact"] == 1 and {p["name"]: p["state"] for p in status["parts"]}["model"] == "ready"
    assert status["index"]["documents"] == 5


def test_no_model_answers_retrieval_only_and_exits_zero(corpus):
    assert run_cli("ingest", str(corpus[0])).returncode == 0
    asked = run_cli("ask", "What is the guest Wi-Fi code?")
    assert asked.returncode == 0, asked.stderr
    assert "Retrieval only" in asked.stdout and "MARBLEFALCON" in asked.stdout and "Traceback" not in asked.stderr


@pytest.mark.parametrize(
    "env, words",
    [
        ({"N_CTX": "abc"}, "N_CTX='abc' is not a whole number"),
        ({"N_CTX": "-1"}, "N_CTX=-1 is out of range"),
        ({"MODEL_PATH": "/nonexistent/model.gguf"}, "does not exist"),
    ],
)
def test_bad_settings_give_one_line(env, words):
    assert words in one_error_line(run_cli("plan", env=env))


def test_bad_model_files_give_one_line(tmp_path, tiny_model):
    text = tmp_path / "notes.gguf"
    text.write_text("meeting notes, not a model\n")
    assert "not a GGUF file" in one_error_line(run_cli("plan", env={"MODEL_PATH": str(text)}))
    truncated = tmp_path / "cut.gguf"
    truncated.write_bytes(tiny_model.read_bytes()[:50_000])
    assert "truncated" in one_error_line(run_cli("plan", env={"MODEL_PATH": str(truncated)}))


def test_bad_model_keeps_ask_working(tmp_path, corpus):
    text = tmp_path / "notes.gguf"
    text.write_text("meeting notes, not a model\n")
    run_cli("ingest", str(corpus[0]))
    asked = run_cli("ask", "What is the parking permit number?", env={"MODEL_PATH": str(text)})
    assert asked.returncode == 0 and "not a GGUF file" in asked.stdout and "COPPERLANTERN" in asked.stdout


def test_a_cpu_crash_in_llama_cpp_leaves_ask_and_status_working(corpus, tiny_model):
    """The model's probe child dies by SIGILL at its first prompt, as llama.cpp's AMX kernel does."""
    env = {"MODEL_PATH": str(tiny_model), "AI_CHAT_FAILPOINT": "probe.decode=sigill"}
    run_cli("ingest", str(corpus[0]))
    asked = run_cli("ask", "What is the parking permit number?", env=env)
    assert asked.returncode == 0 and "COPPERLANTERN" in asked.stdout and "Traceback" not in asked.stderr
    crashed = "tiny.gguf: llama.cpp crashed running this model on this CPU (SIGILL: an instruction this CPU"
    assert crashed in asked.stdout and "make install" in asked.stdout
    status = run_cli("status", env=env)
    assert status.returncode == 0 and re.search(
        r"^model     failed in [\d.]+s: " + re.escape(crashed), status.stdout, re.M
    ), status.stdout
    assert "llama.cpp native build" in status.stdout


def test_index_from_another_embedder_is_refused(tmp_path, corpus):
    import shutil

    from rag.config import default_embed_model
    from rag.embeddings import find_model_dir

    assert run_cli("ingest", str(corpus[0] / "notes.txt")).returncode == 0
    other = tmp_path / "other-embedder"
    shutil.copytree(find_model_dir(default_embed_model()), other)
    line = one_error_line(run_cli("ask", "anything?", env={"EMBED_MODEL": str(other)}))
    assert "built with embedder" in line and "re-index" in line


def test_corrupt_pdf_among_good_files(tmp_path, corpus):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "broken.pdf").write_bytes(b"%PDF-1.4 this is not really a pdf")
    (folder / "good.txt").write_text("The locker combination is FERNTIDE.")
    proc = run_cli("ingest", str(folder))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "broken.pdf" in errors[0]
    assert "added" in proc.stdout and "good.txt" in proc.stdout


def test_plan_prints_reasons(tiny_model):
    proc = run_cli("plan", env={"MODEL_PATH": str(tiny_model)})
    assert proc.returncode == 0
    for name in ("n_gpu_layers", "n_ctx", "n_batch", "n_ubatch", "type_k", "flash_attn", "n_threads"):
        assert name in proc.stdout


def test_cache_commands(tmp_path, tiny_model, corpus):
    env = {"MODEL_PATH": str(tiny_model)}
    run_cli("ingest", str(corpus[0]), env=env)
    questions = tmp_path / "faq.txt"
    questions.write_text("What is the guest Wi-Fi code?\nWhat is the parking permit number?\n")
    warmed = run_cli("cache", "warm", str(questions), env=env)
    assert warmed.returncode == 0 and warmed.stdout.count("cached") == 2
    stats = json.loads(run_cli("cache", "stats", env=env).stdout)
    assert stats["entries"] == 2
    assert run_cli("cache", "clear", env=env).returncode == 0
    assert json.loads(run_cli("cache", "stats", env=env).stdout)["entries"] == 0


def test_config_check_and_status_never_print_secrets():
    env = {
        "LLM_API_KEY": "sk-secret-123",
        "LLM_BASE_URL": "http://u:pw-secret@127.0.0.1:9/v1",
        "FALLBACKS": "openai:http://a:pw-other@127.0.0.1:9/v1#m,local",
        "LLM_CONNECT_TIMEOUT_S": "0.2",
        "LLM_TOTAL_TIMEOUT_S": "0.5",
        "LLM_BACKEND": "openai",
    }
    checked = run_cli("config", "--check", env=env)
    assert checked.returncode == 0, checked.stderr
    assert "llm_api_key      *** (set)" in checked.stdout and "http://***@127.0.0.1:9/v1" in checked.stdout
    status = run_cli("status", "--json", "--timeout", "1", env=env)
    for out in (checked.stdout + checked.stderr, status.stdout + status.stderr):
        assert "sk-secret-123" not in out and "pw-secret" not in out and "pw-other" not in out
