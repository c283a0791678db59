"""Remote OpenAI-compatible backends against real servers on loopback.

llama-cpp-python's own server (`python -m llama_cpp.server`) runs generated GGUFs on 127.0.0.1;
the engine, MiniLM, FAISS and the answer cache are the real ones. A stalled server and a scripted
one (fixed HTTP statuses) are the tests' own tiny servers. Every wait is bounded.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict

import pytest

from rag.config import Settings
from rag.engine import Engine
from rag.events import Done, Notice, Status, Token
from rag.modelgen import Shape, write_model

from .servers import FullBacklogServer, LlamaServer, ScriptedServer, StalledServer, free_port, sse_event

pytestmark = pytest.mark.slow  # real llama_cpp.server processes

DOC = (
    "The Harbor Lantern Festival takes place every October on the north pier. Tickets cost twelve euros. "
    "The festival ends with a parade of paper boats at midnight."
)
QUESTION = "When does the Harbor Lantern Festival take place?"


@pytest.fixture(scope="module")
def slow_model(tmp_path_factory):
    """~50 MB: 300 tokens take about 4 s through llama_cpp.server (one thread), time to kill it mid-answer."""
    shape = Shape(n_vocab=2048, n_embd=1024, n_layer=8, n_head=16, n_head_kv=4, n_ff=2816, n_ctx_train=8192)
    return write_model(tmp_path_factory.mktemp("slow") / "slow.gguf", shape)


@pytest.fixture(scope="module")
def server_a(tiny_model, tmp_path_factory):
    server = LlamaServer(tiny_model, tmp_path_factory.mktemp("logs") / "a.log").start()
    yield server
    server.kill()


@pytest.fixture(scope="module")
def server_b(tiny_model, tmp_path_factory):
    server = LlamaServer(tiny_model, tmp_path_factory.mktemp("logs") / "b.log").start()
    yield server
    server.kill()


@pytest.fixture
def make_engine(isolated, embedder, monkeypatch):
    """An Engine for `env` with one small document indexed."""
    doc = isolated / "festival.txt"
    doc.write_text(DOC)
    engines = []

    def make(**env) -> Engine:
        base = {
            "LLM_CTX": "4096",
            "MAX_TOKENS": "24",
            "TEMPERATURE": "0",
            "LLM_CONNECT_TIMEOUT_S": "1",
            "LLM_READ_TIMEOUT_S": "20",
        }
        for name, value in {**base, **env}.items():
            monkeypatch.setenv(name, str(value))
        engine = Engine(Settings.from_env(), embedder=embedder)
        engine.ingest([doc])
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.cache.close()


def ask(engine: Engine, question: str = QUESTION, on_token=None) -> tuple[list, Done]:
    events = []
    for event in engine.ask(question, wait_for_model=True):
        events.append(event)
        if isinstance(event, Token) and on_token:
            on_token(sum(isinstance(e, Token) for e in events))
    done = events[-1]
    assert isinstance(done, Done), events[-1]
    return events, done


def timed_ask(engine: Engine) -> tuple[list, Done, float]:
    began = time.monotonic()
    events, done = ask(engine)
    return events, done, time.monotonic() - began


def backend(engine: Engine, name_part: str) -> dict:
    """A server's health in the status, as a dict. Example: backend(engine, server.url)["breaker"] -> "closed"."""
    b = next(b for b in engine.status().backends if name_part in b.name)
    return {"name": b.name, **asdict(b.remote)}


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there


def test_streams_an_answer_through_an_openai_server(make_engine, server_a):
    engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server_a.url, LLM_CTX="0")
    events, done = ask(engine)
    tokens = [e for e in events if isinstance(e, Token)]
    assert len(tokens) >= 2 and not done.retrieval_only and done.finish_reason in ("stop", "length")
    assert done.backend == f"openai:{server_a.url}" and done.first_token_ms is not None
    assert done.answer == "".join(t.text for t in tokens).strip()
    # the prompt was counted by the server's own tokenizer, and the answer was cached with its backend
    remote = engine.chain.first
    assert remote.token_counter == "/extras/tokenize/count" and done.prompt_tokens > 50
    assert engine.chain.local is None and "model" not in [p.name for p in engine.load_states()]
    _, again = ask(engine)
    assert again.cache == "exact" and again.answer == done.answer and again.backend == done.backend
    health = backend(engine, server_a.url)
    assert health["reachable"] is True and health["served"] == 1 and health["p50_ms"] is not None
    assert health["breaker"] == "closed" and health["errors"] == {}
    assert health["n_ctx"] == 4096 and health["n_ctx_source"].startswith("default")  # llama_cpp.server says none


def test_two_askers_at_once_both_get_answers(make_engine, server_a):
    engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server_a.url, SEMANTIC_CACHE="0")
    results = {}

    def worker(i):
        results[i] = ask(engine, f"{QUESTION} ({i})")[1]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(not d.retrieval_only and d.backend.endswith(server_a.url) for d in results.values())
    assert len(results) == 2


def test_fails_over_when_the_first_server_was_killed_before_the_request(make_engine, tiny_model, server_b, tmp_path):
    a = LlamaServer(tiny_model, tmp_path / "a.log").start()
    a.kill()
    engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=a.url, FALLBACKS=f"openai:{server_b.url}")
    events, done = ask(engine)
    assert done.backend == f"openai:{server_b.url}" and not done.retrieval_only and done.answer
    failover = [e for e in events if isinstance(e, Status) and e.stage == "failover"]
    assert failover and a.url in failover[0].detail and "connection failed" in failover[0].detail
    assert backend(engine, a.url)["errors"]["connect"] == 3  # the first try and LLM_RETRIES=2
    assert done.extra["failures"] and a.url in done.extra["failures"][0]


def _kill_after(server: LlamaServer, n_tokens: int):
    def on_token(count: int) -> None:
        if count == n_tokens:
            server.kill()

    return on_token


def test_a_server_dying_mid_stream_leaves_the_partial_answer_and_a_note_and_caches_nothing(
    make_engine, slow_model, tmp_path
):
    a = LlamaServer(slow_model, tmp_path / "a.log").start()
    try:
        engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=a.url, MAX_TOKENS="300")
        events, done = ask(engine, on_token=_kill_after(a, 3))
    finally:
        a.kill()
    partial = "".join(e.text for e in events if isinstance(e, Token))
    notices = [e for e in events if isinstance(e, Notice)]
    assert len(notices) == 1 and "failed mid-answer" in notices[0].text and "not kept" in notices[0].text
    assert done.finish_reason == "error" and done.answer == partial.strip() and done.turn == []
    assert not done.retrieval_only and done.backend == f"openai:{a.url}"
    assert len(partial) > 0
    assert engine.cache.stats()["entries"] == 0  # nothing partial is cached
    assert backend(engine, a.url)["errors"]["midstream"] == 1


def test_a_server_dying_mid_stream_hands_over_to_the_next(make_engine, slow_model, server_b, tmp_path):
    a = LlamaServer(slow_model, tmp_path / "a.log").start()
    try:
        engine = make_engine(
            LLM_BACKEND="openai", LLM_BASE_URL=a.url, FALLBACKS=f"openai:{server_b.url}", MAX_TOKENS="300"
        )
        events, done = ask(engine, on_token=_kill_after(a, 3))
    finally:
        a.kill()
    notice = next(i for i, e in enumerate(events) if isinstance(e, Notice))
    partial = "".join(e.text for e in events[:notice] if isinstance(e, Token))
    rest = "".join(e.text for e in events[notice:] if isinstance(e, Token))
    assert partial and "answering again with the next backend" in events[notice].text
    assert done.backend == f"openai:{server_b.url}" and done.finish_reason in ("stop", "length")
    assert done.answer == rest.strip()  # the answer kept is the second server's, whole
    cached = engine.cache.lookup_exact(QUESTION, _scope(engine))
    assert cached is not None and cached.answer == done.answer and cached.backend == done.backend


def _scope(engine: Engine) -> str:
    from rag.cache import scope_key

    return scope_key(engine.index.get().version, engine.chain.fingerprint(), engine.gen_params(), [])


@pytest.mark.parametrize("read_s, total_s", [(1.0, 60.0), (30.0, 1.5)], ids=["read-timeout", "total-timeout"])
def test_a_stalled_server_times_out_within_its_bound_and_fails_over(make_engine, server_b, read_s, total_s):
    stalled = StalledServer()
    try:
        engine = make_engine(
            LLM_BACKEND="openai",
            LLM_BASE_URL=stalled.url,
            FALLBACKS=f"openai:{server_b.url}",
            LLM_READ_TIMEOUT_S=read_s,
            LLM_TOTAL_TIMEOUT_S=total_s,
        )
        began = time.monotonic()
        failed_over_after = None
        for event in engine.ask(QUESTION):
            if isinstance(event, Status) and event.stage == "failover":
                failed_over_after = time.monotonic() - began
            done = event
    finally:
        stalled.stop()
    bound = min(read_s, total_s)
    assert failed_over_after is not None and bound <= failed_over_after < bound + 2.0
    assert done.backend == f"openai:{server_b.url}" and not done.retrieval_only
    assert backend(engine, stalled.url)["errors"] == {"timeout": 1}  # a timeout is not retried
    assert stalled.accepted == 1


def test_a_connection_that_never_completes_hits_the_connect_timeout_and_fails_over(make_engine, server_b):
    unreachable = FullBacklogServer()
    try:
        engine = make_engine(
            LLM_BACKEND="openai",
            LLM_BASE_URL=unreachable.url,
            FALLBACKS=f"openai:{server_b.url}",
            LLM_CONNECT_TIMEOUT_S="0.5",
        )
        _, done, elapsed = timed_ask(engine)
    finally:
        unreachable.stop()
    assert done.backend == f"openai:{server_b.url}" and 0.5 <= elapsed < 3.0
    assert backend(engine, unreachable.url)["errors"] == {"timeout": 1}


def test_retries_back_off_on_5xx_and_429_then_succeed(make_engine):
    server = ScriptedServer([(503, {}), (429, {"Retry-After": "0.3"}), (502, {})])
    try:
        engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server.url, LLM_RETRIES="3")
        began = time.monotonic()
        _, done = ask(engine)
        elapsed = time.monotonic() - began
    finally:
        server.stop()
    assert done.answer == "Scripted answer [1]." and done.backend == f"openai:{server.url}"
    assert server.chat_requests == 4 and elapsed >= 0.3  # Retry-After was honoured
    health = backend(engine, server.url)
    assert health["errors"] == {"http_5xx": 2, "http_429": 1} and health["breaker"] == "closed"
    remote = engine.chain.first
    assert remote.token_counter == "estimate" and remote.model == "scripted"  # estimated tokens, first listed model


@pytest.mark.parametrize(
    "fields, props, expected, source",
    [
        ({"max_model_len": 1024}, None, 1024, "server (max_model_len)"),  # vLLM's /v1/models
        ({}, {"default_generation_settings": {"n_ctx": 2048}}, 2048, "server (/props)"),  # llama.cpp's server
        ({}, None, 4096, "default: the server does not report it; set LLM_CTX"),  # Ollama, LM Studio
    ],
    ids=["vllm", "llama.cpp", "neither"],
)
def test_the_context_size_is_asked_from_the_server_when_llm_ctx_is_unset(make_engine, fields, props, expected, source):
    server = ScriptedServer([], model_fields=fields, props=props)
    try:
        engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server.url, LLM_CTX="0", MAX_TOKENS="24")
        assert backend(engine, server.url)["n_ctx"] is None  # not asked before it is needed
        _, done = ask(engine)
    finally:
        server.stop()
    state = backend(engine, server.url)
    assert (state["n_ctx"], state["n_ctx_source"]) == (expected, source)
    assert not done.retrieval_only and done.prompt_tokens <= expected - 24 - 16


def test_llm_ctx_wins_over_the_server(make_engine, server_a):
    engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server_a.url, LLM_CTX="1024")
    _, done = ask(engine)
    assert (backend(engine, server_a.url)["n_ctx"], backend(engine, server_a.url)["n_ctx_source"]) == (1024, "LLM_CTX")
    assert done.prompt_tokens <= 1024 - 24 - 16


def test_retries_stop_when_exhausted(make_engine):
    server = ScriptedServer([(503, {})] * 10)
    try:
        engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server.url, LLM_RETRIES="2")
        _, done = ask(engine)
    finally:
        server.stop()
    assert server.chat_requests == 3 and done.retrieval_only
    assert "HTTP 503" in done.reason and "3 attempts" in done.reason


@pytest.mark.parametrize("status", [400, 404, 422])
def test_no_retry_on_4xx(make_engine, status):
    server = ScriptedServer([(status, {})] * 5)
    try:
        engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server.url, LLM_RETRIES="5")
        _, done = ask(engine)
    finally:
        server.stop()
    assert server.chat_requests == 1 and done.retrieval_only and f"HTTP {status}" in done.reason
    assert backend(engine, server.url)["breaker"] == "closed"  # a 4xx says the server is up


def test_a_real_server_rejecting_the_key_gets_one_request_and_the_key_is_never_shown(
    make_engine, tiny_model, tmp_path, caplog
):
    secret = "sk-test-very-secret-123"
    server = LlamaServer(tiny_model, tmp_path / "auth.log", api_key="right-key").start()
    try:
        caplog.set_level(logging.DEBUG)
        engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server.url, LLM_API_KEY=secret, LLM_RETRIES="3")
        _, done = ask(engine)
        assert done.retrieval_only and "HTTP 401" in done.reason and "LLM_API_KEY" in done.reason
        assert len(server.requests("/extras/tokenize/count")) == 1  # no retry after a 401
        assert len(server.requests("/v1/chat/completions")) == 0
        shown = json.dumps(engine.status(), default=str) + repr(engine.settings) + done.reason + caplog.text
        assert secret not in shown
        good = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server.url, LLM_API_KEY="right-key")
        _, answered = ask(good)
        assert not answered.retrieval_only and answered.backend == f"openai:{server.url}"
    finally:
        server.kill()


def test_the_breaker_opens_skips_the_server_and_closes_after_a_good_probe(make_engine, tiny_model, server_b, tmp_path):
    a = LlamaServer(tiny_model, tmp_path / "a.log")  # not started: its port refuses connections
    engine = make_engine(
        LLM_BACKEND="openai",
        LLM_BASE_URL=a.url,
        FALLBACKS=f"openai:{server_b.url}",
        LLM_RETRIES="0",
        LLM_BREAKER_FAILURES="2",
        LLM_BREAKER_COOLDOWN_S="2",
        SEMANTIC_CACHE="0",
    )
    for i in range(2):
        assert ask(engine, f"{QUESTION} {i}")[1].backend == f"openai:{server_b.url}"
    state = backend(engine, a.url)
    assert state["breaker"] == "open" and state["errors"] == {"connect": 2}
    events, done = ask(engine, f"{QUESTION} 2")  # skipped without a request
    assert done.backend == f"openai:{server_b.url}"
    assert backend(engine, a.url)["requests"] == 2
    assert any(isinstance(e, Status) and "circuit breaker open" in e.detail for e in events)
    a.start()
    try:
        breaker = engine.chain.first.breaker
        deadline = time.monotonic() + 10
        while breaker.remaining_s() > 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        _, done = ask(engine, f"{QUESTION} 3")  # probed, half-open, answered: closed
        assert done.backend == f"openai:{a.url}"
        state = backend(engine, a.url)
        assert state["breaker"] == "closed" and state["reachable"] is True and state["breaker_opened"] == 1
    finally:
        a.kill()


def test_every_backend_down_answers_from_the_documents(make_engine):
    first, second = dead_url(), dead_url()
    engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=first, FALLBACKS=f"openai:{second},local", LLM_RETRIES="0")
    events, done = ask(engine)
    assert done.retrieval_only and "October" in done.answer
    for part in (first, second, "local: no GGUF"):
        assert part in done.reason
    assert engine.cache.stats()["entries"] == 0


def test_the_local_model_is_the_last_resort(make_engine, tiny_model):
    engine = make_engine(
        LLM_BACKEND="openai", LLM_BASE_URL=dead_url(), FALLBACKS="local", MODEL_PATH=str(tiny_model), LLM_RETRIES="0"
    )
    assert engine.chain.local.model.state == "idle"  # a local fallback loads when first needed
    _, done = ask(engine)
    assert done.backend == "local" and not done.retrieval_only and done.answer


def test_the_app_answers_through_a_server_and_the_panel_shows_its_health(server_a, monkeypatch):
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from .test_app import APP, engine, wait_ready

    for name, value in {"LLM_BACKEND": "openai", "LLM_BASE_URL": server_a.url, "MAX_TOKENS": "24"}.items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60).run()
        wait_ready(engine(), "embedder")
        at.chat_input[0].set_value("How do I add documents?").run()
        assert not at.exception
        answer = at.chat_message[-1]
        assert answer.markdown[0].value.strip() and f"by openai:{server_a.url}" in answer.caption[-1].value
        at.run()
        sidebar = "\n".join(m.value for m in at.sidebar.markdown)
        assert "**Backends**" in sidebar and "breaker closed" in sidebar and "first token p50" in sidebar
        assert "Model" not in "\n".join(c.value for c in at.sidebar.caption)  # no local model in the chain
    finally:
        st.cache_resource.clear()


def test_stop_closes_the_stream_and_caches_nothing(make_engine, server_a):
    engine = make_engine(LLM_BACKEND="openai", LLM_BASE_URL=server_a.url, MAX_TOKENS="200")
    cancel = threading.Event()
    events = []
    for event in engine.ask(QUESTION, cancel=cancel):
        events.append(event)
        if isinstance(event, Token):
            cancel.set()  # Stop after the first piece
    done = events[-1]
    assert done.finish_reason == "cancelled" and done.reason == "stopped by the user" and done.turn == []
    assert sum(isinstance(e, Token) for e in events) == 1 and engine.cache.stats()["entries"] == 0


def test_cli_status_and_ask_report_the_backends(server_a):
    from .conftest import run_cli

    env = {
        "LLM_BACKEND": "openai",
        "LLM_BASE_URL": f"{dead_url()},{server_a.url}",
        "LLM_RETRIES": "0",
        "MAX_TOKENS": "16",
    }
    status = run_cli("status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    dead, live = (b["remote"] for b in json.loads(status.stdout)["backends"])
    assert (dead["reachable"], live["reachable"]) == (False, True) and "connection failed" in dead["last_error"]
    assert dead["breaker"] == live["breaker"] == "closed"
    assert [p["name"] for p in json.loads(status.stdout)["parts"]] == ["embedder", "index"]  # no local model
    answer = run_cli("ask", "--json", "What is AI-CHAT?", env=env)
    assert answer.returncode == 0, answer.stderr
    reply = json.loads(answer.stdout)
    assert reply["backend"] == f"openai:{server_a.url}" and "connection failed" in reply["extra"]["failures"][0]
    assert "connection failed" in answer.stderr  # logged as a warning


def test_the_remote_benchmark_runs_one_round(isolated, monkeypatch):
    from benchmarks import remote

    result = remote.run(rounds=1, preset="tiny")
    assert result["first_token_ms"]["bare_client"] > 0 and result["first_token_ms"]["ai_chat_backend"] > 0
    assert 900 <= result["failover_extra_ms"]["stalled_read_timeout_1s"] < 2000


def _keepalives_after(first: str | None, seconds: float):
    """A stream body: optionally one token, then only SSE keep-alive comments for `seconds`."""

    def body(write):
        if first is not None:
            write(sse_event({"role": "assistant"}) + sse_event({"content": first}))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            write(": keep-alive\n\n")
            time.sleep(0.1)

    return body


def test_keepalives_after_the_first_token_cannot_outlast_gen_timeout(make_engine):
    server = ScriptedServer([], stream_body=_keepalives_after("Partial", 30))
    try:
        engine = make_engine(
            LLM_BACKEND="openai", LLM_BASE_URL=server.url, GEN_TIMEOUT_S="1.5", LLM_READ_TIMEOUT_S="20"
        )
        _, done, elapsed = timed_ask(engine)
    finally:
        server.stop()
    assert elapsed < 4.0, elapsed  # not the 30 s of keep-alives, nor the 20 s read timeout they reset
    assert done.answer.startswith("Partial") and done.finish_reason == "timeout"


def test_keepalives_only_do_not_reset_the_read_timeout(make_engine, server_b):
    server = ScriptedServer([], stream_body=_keepalives_after("Partial", 30))
    try:
        engine = make_engine(
            LLM_BACKEND="openai", LLM_BASE_URL=server.url, LLM_READ_TIMEOUT_S="1", FALLBACKS=f"openai:{server_b.url}"
        )
        events, done, elapsed = timed_ask(engine)
    finally:
        server.stop()
    notes = " ".join(e.text for e in events if isinstance(e, Notice))
    assert "failed mid-answer: no token for LLM_READ_TIMEOUT_S=1 s" in notes, notes
    assert done.backend == f"openai:{server_b.url}" and elapsed < 15


@pytest.mark.parametrize("where", ["first chunk", "mid-answer"])
def test_invalid_json_in_the_stream_is_a_broken_stream(make_engine, server_b, where):
    def body(write):
        if where == "mid-answer":
            write(sse_event({"role": "assistant"}) + sse_event({"content": "Half"}))
        write("data: {this is not json\n\n")

    server = ScriptedServer([], stream_body=body)
    try:
        engine = make_engine(
            LLM_BACKEND="openai", LLM_BASE_URL=server.url, FALLBACKS=f"openai:{server_b.url}", LLM_RETRIES="0"
        )
        events, done = ask(engine)
    finally:
        server.stop()
    assert done.backend == f"openai:{server_b.url}" and done.completion_tokens > 0  # the next one answered
    said = " ".join(getattr(e, "text", "") or getattr(e, "detail", "") for e in events)
    assert "not valid JSON" in said, events
