"""The OpenAI-compatible API, driven by the official `openai` client and by a third-party client
(the `llm` CLI) against a real uvicorn server on the real engine: answers from the documents with
their sources, streamed and whole, collections as model names, keys per user, and every error with
OpenAI's shape (400, 401, 404, 413, 429, 503)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace

import openai
import pytest

from rag import api
from rag.accounts import Accounts, Viewer
from rag.config import bundled_model
from rag.engine import Engine

from .servers import free_port

FACT = "Service hatch. The access code for the service hatch is VELVETORCHID-17. Guards keep the spare key."
OTHER = "Canteen. The canteen opens at 07:30 and closes at 15:00; the menu changes on Mondays."
QUESTION = "What is the access code for the service hatch?"


def start(engine: Engine):
    """The API on a free loopback port, as API_PORT starts it; returns (base URL, uvicorn server)."""
    port = free_port()
    engine.settings = replace(engine.settings, api_port=port)
    server = api.serve_in_thread(engine)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1)
            return f"http://127.0.0.1:{port}/v1", server
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the API did not start")


def client(base: str, key: str = "unused", **kw) -> openai.OpenAI:
    return openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120, **kw)


@pytest.fixture
def served(settings, embedder, tmp_path):
    """The bundled demo model (real text) over a small indexed folder, with the API serving it."""
    model = bundled_model()
    if model is None:
        pytest.skip("the bundled demo model is not installed (make install)")
    engine = Engine(replace(settings, model_path=model, temperature=0.0, max_tokens=48), embedder=embedder)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "hatch.txt").write_text(FACT)
    (docs / "canteen.txt").write_text(OTHER)
    engine.ingest([docs / "hatch.txt"], collection="Keys")
    engine.ingest([docs / "canteen.txt"])
    engine.chain.local.model.get(timeout=120)
    base, server = start(engine)
    yield engine, base
    server.should_exit = True
    engine.close()


def test_models_and_health(served):
    engine, base = served
    assert [m.id for m in client(base).models.list()] == ["ai-chat", "ai-chat:Keys"]
    health = json.load(urllib.request.urlopen(base.removesuffix("/v1") + "/health"))
    assert health["status"] == "ok" and health["parts"]["model"] == "ready"


def test_a_whole_answer_carries_the_fact_its_source_and_usage(served):
    _, base = served
    reply = client(base).chat.completions.create(model="ai-chat", messages=[{"role": "user", "content": QUESTION}])
    text = reply.choices[0].message.content
    assert "VELVETORCHID-17" in text, text
    sources = reply.model_extra["sources"]
    assert sources[0]["source"] == "hatch.txt" and "VELVETORCHID-17" in sources[0]["text"]
    assert reply.usage.prompt_tokens > 50 and reply.usage.completion_tokens > 0
    assert reply.model_extra["ai_chat"]["cache"] is None and reply.choices[0].finish_reason in ("stop", "length")
    again = client(base).chat.completions.create(model="ai-chat", messages=[{"role": "user", "content": QUESTION}])
    assert again.model_extra["ai_chat"]["cache"] == "exact" and again.choices[0].message.content == text


def test_a_streamed_answer_carries_the_fact_and_its_sources_at_the_end(served):
    _, base = served
    stream = client(base).chat.completions.create(
        model="ai-chat:Keys",
        messages=[{"role": "system", "content": "be brief"}, {"role": "user", "content": QUESTION}],
        stream=True,
        stream_options={"include_usage": True},
        extra_body={"sources_in_text": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 3  # it streamed
    assert "VELVETORCHID-17" in text and "Sources:\n[1] hatch.txt" in text
    last = next(c for c in reversed(chunks) if c.choices)
    assert last.choices[0].finish_reason in ("stop", "length")
    assert {s["source"] for s in last.model_extra["sources"]} == {"hatch.txt"}  # only the Keys collection
    assert chunks[-1].usage.completion_tokens > 0


def test_errors_have_openai_shapes(served, monkeypatch):
    engine, base = served
    c = client(base)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        c.chat.completions.create(model="ai-chat:Nobody", messages=[{"role": "user", "content": QUESTION}])
    with pytest.raises(openai.BadRequestError, match="last message must be the user's question"):
        c.chat.completions.create(model="ai-chat", messages=[{"role": "assistant", "content": "hi"}])
    raw = urllib.request.Request(base + "/chat/completions", data=b"{not json", method="POST")
    with pytest.raises(urllib.error.HTTPError) as bad:
        urllib.request.urlopen(raw)
    assert bad.value.code == 400 and json.load(bad.value)["error"]["code"] == "invalid_json"
    port = int(base.split(":")[-1].split("/")[0])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:  # refused before the body is read
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\n{")
        answer = b""
        while b"}}" not in answer and (part := sock.recv(65536)):
            answer += part
        head, _, body = answer.partition(b"\r\n\r\n")
    assert b" 413 " in head.split(b"\r\n")[0] and b"invalid_request_error" in body
    monkeypatch.setattr(engine, "model_loading", lambda: True)  # as while a model loads
    with pytest.raises(openai.InternalServerError) as loading:
        c.chat.completions.create(model="ai-chat", messages=[{"role": "user", "content": QUESTION + " Now?"}])
    assert loading.value.status_code == 503 and loading.value.response.headers["retry-after"] == "5"
    quick = c.chat.completions.create(
        model="ai-chat",
        messages=[{"role": "user", "content": QUESTION + " Quickly?"}],
        extra_body={"retrieval_only_while_loading": True},
    )
    assert quick.model_extra["sources"][0]["source"] == "hatch.txt"  # answered at once, not refused


def test_keys_are_required_when_set_and_per_user_with_accounts(settings, embedder, tmp_path):
    keyed = Engine(replace(settings, api_keys=("k" * 20,)), embedder=embedder)
    base, server = start(keyed)
    try:
        with pytest.raises(openai.AuthenticationError, match="API_KEYS"):
            client(base, "wrong-key-wrong-key").models.list()
        assert [m.id for m in client(base, "k" * 20).models.list()] == ["ai-chat"]
    finally:
        server.should_exit = True
    accounts_engine = Engine(replace(settings, auth="local", api_keys=()), embedder=embedder)
    accounts: Accounts = accounts_engine.accounts
    accounts.add("alice", "correct horse battery")
    accounts.add("bob", "correct horse battery")
    for who in ("alice", "bob"):
        text = f"Private note of {who}. The locker code of {who} is {who.upper()}-LOCKER-99."
        notes = accounts_engine.add_uploads([(f"{who}.txt", text.encode())], viewer=Viewer(who), collection=who)
        assert notes[0].ok
    base, server = start(accounts_engine)
    try:
        with pytest.raises(openai.AuthenticationError, match="rag users apikey"):
            client(base, "k" * 20).models.list()
        key = accounts.new_api_key("bob")
        assert [m.id for m in client(base, key).models.list()] == ["ai-chat", "ai-chat:bob"]  # not alice's
        reply = client(base, key).chat.completions.create(
            model="ai-chat", messages=[{"role": "user", "content": "What is the locker code of alice?"}]
        )
        assert {s["source"] for s in reply.model_extra["sources"]} == {"bob.txt"}
        assert "ALICE-LOCKER" not in json.dumps(reply.model_dump())
        with pytest.raises(openai.NotFoundError):
            client(base, key).chat.completions.create(
                model="ai-chat:alice", messages=[{"role": "user", "content": "?"}]
            )
        accounts.set_disabled("bob")
        with pytest.raises(openai.AuthenticationError):
            client(base, key).models.list()
    finally:
        server.should_exit = True


def test_a_full_queue_gets_429_and_a_disconnect_frees_the_model_within_a_second(settings, embedder, tmp_path):
    """A generated model that writes slowly and long: one streamed answer holds the model."""
    from rag.modelgen import Shape, write_model

    shape = Shape(n_vocab=2048, n_embd=1024, n_layer=8, n_head=16, n_head_kv=4, n_ff=2816, n_ctx_train=8192)
    model = write_model(tmp_path / "slow.gguf", shape)
    engine = Engine(replace(settings, model_path=model, max_tokens=2000, api_queue=1), embedder=embedder)
    (tmp_path / "a.txt").write_text(FACT)
    engine.ingest([tmp_path / "a.txt"])
    engine.chain.local.model.get(timeout=60)
    base, server = start(engine)
    root = base.removesuffix("/v1")
    try:
        stream = client(base).chat.completions.create(
            model="ai-chat", messages=[{"role": "user", "content": QUESTION}], stream=True
        )
        pieces = 0
        for chunk in stream:
            pieces += bool(chunk.choices and chunk.choices[0].delta.content)
            if pieces >= 3:
                break
        with pytest.raises(openai.RateLimitError) as full:  # API_QUEUE=1 and one answer is streaming
            client(base).chat.completions.create(model="ai-chat", messages=[{"role": "user", "content": "Another?"}])
        assert full.value.response.headers["retry-after"] == "5"
        assert json.load(urllib.request.urlopen(root + "/health"))["model_queue"] == 1
        stream.close()  # the client goes away mid-answer
        gone = time.perf_counter()
        while json.load(urllib.request.urlopen(root + "/health"))["model_queue"] != 0:
            assert time.perf_counter() - gone < 1.0, "the model was not released within 1 s"
            time.sleep(0.02)
        freed = time.perf_counter() - gone
        assert freed < 1.0
        while json.load(urllib.request.urlopen(root + "/health"))["api_requests"] != 0:
            assert time.perf_counter() - gone < 2.0
            time.sleep(0.02)
        after = client(base).chat.completions.create(
            model="ai-chat", messages=[{"role": "user", "content": "And now?"}], max_tokens=8
        )
        assert after.choices[0].message.content is not None
    finally:
        server.should_exit = True


@pytest.mark.skipif(shutil.which("llm", path=os.path.dirname(sys.executable)) is None, reason="llm CLI not installed")
def test_the_llm_cli_gets_a_cited_answer(served, tmp_path):
    """A third-party client nobody here wrote: Simon Willison's `llm`, with an OpenAI-compatible model entry."""
    _, base = served
    home = tmp_path / "llm-home"
    home.mkdir()
    (home / "extra-openai-models.yaml").write_text(
        f'- model_id: ai-chat\n  model_name: ai-chat\n  api_base: "{base}"\n  headers:\n    X-Sources: text\n'
    )
    llm = os.path.join(os.path.dirname(sys.executable), "llm")
    done = subprocess.run(
        [llm, "-m", "ai-chat", "--no-log", QUESTION],
        env={**os.environ, "LLM_USER_PATH": str(home), "OPENAI_API_KEY": "unused"},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    assert "VELVETORCHID-17" in done.stdout and "[1] hatch.txt" in done.stdout, done.stdout


def test_passthrough_asks_the_model_alone(served):
    _, base = served
    reply = client(base).chat.completions.create(
        model="ai-chat",
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": QUESTION},
        ],
        extra_body={"retrieval": False},
    )
    assert reply.model_extra["sources"] == [] and "VELVETORCHID-17" not in reply.choices[0].message.content
    assert reply.usage.prompt_tokens > 10 and reply.model_extra["ai_chat"]["backend"] == "local"


def test_rag_serve_runs_the_api_alone(tmp_path):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rag", "serve", "--port", str(port)],
        env={**os.environ, "API_KEYS": "k" * 20},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                health = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2))
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, proc.stderr.read()[-2000:]
                time.sleep(0.2)
        assert health["status"] == "ok"
        with pytest.raises(openai.AuthenticationError):
            client(f"http://127.0.0.1:{port}/v1", "not-the-key-at-all").models.list()
        assert [m.id for m in client(f"http://127.0.0.1:{port}/v1", "k" * 20).models.list()] == ["ai-chat"]
    finally:
        proc.terminate()
        proc.wait(10)
    bad = subprocess.run(
        [sys.executable, "-m", "rag", "serve", "--host", "0.0.0.0", "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "would let anyone on the network ask" in bad.stderr


def test_clients_gone_before_their_first_chunk_give_their_slots_back(served):
    _, base = served
    root = base.removesuffix("/v1")
    port = int(root.rsplit(":", 1)[1])
    for i in range(3):
        body = json.dumps(
            {"model": "ai-chat", "stream": True, "messages": [{"role": "user", "content": f"{QUESTION} ({i})"}]}
        ).encode()
        head = f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(head + body)  # and gone at once
    deadline = time.time() + 10
    while json.load(urllib.request.urlopen(root + "/health"))["api_requests"] != 0:
        assert time.time() < deadline, "a slot of API_QUEUE was never given back"
        time.sleep(0.05)
    assert client(base).models.list()  # and the API still answers
