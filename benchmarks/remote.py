"""Remote backends, side by side in one run, against real llama_cpp.server processes on loopback.

first token: the bare `openai` client sending AI-CHAT's own prompt vs AI-CHAT's openai backend
             (Done.first_token_ms: token counting + request + first streamed piece), alternating
             rounds on the same server; the ratio is AI-CHAT's overhead. End-to-end (ask() to the
             first Token event, with embedding and retrieval) is printed beside it.
failover:    time to the first token with the chain [refused port, live server] and with
             [stalled server, live server] (LLM_READ_TIMEOUT_S=1), each minus [live server] alone,
             and again once the dead server's breaker is open (it is skipped).
Medians over --rounds. The answer cache is cleared before every ask, so each one generates.

    .venv/bin/python -m benchmarks.remote [--rounds 7] [--preset tiny|0.5b]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rag.config import PROJECT_ROOT, SAMPLE_GUIDE, Settings
from rag.engine import Engine
from rag.events import Done, Token
from rag.modelgen import PRESETS, write_model
from tests.servers import LlamaServer, StalledServer, free_port

QUESTION = "How do I add documents?"


def engine_for(work: Path, name: str, embedder, **env) -> Engine:
    environ = {
        "INDEX_DIR": str(work / "index"),
        "CACHE_DIR": str(work / f"cache-{name}"),
        "MODELS_DIR": str(work / "empty"),
        "MAX_TOKENS": "8",
        "TEMPERATURE": "0",
        "LLM_CTX": "4096",
        "SEMANTIC_CACHE": "0",
        "LLM_BACKEND": "openai",
        **env,
    }
    return Engine(Settings.from_env(environ), embedder=embedder)


def ask(engine: Engine) -> tuple[float, Done]:
    """(seconds from ask() to the first Token, Done); the cache is cleared first."""
    engine.cache.clear()
    began, first = time.perf_counter(), None
    for event in engine.ask(QUESTION):
        if isinstance(event, Token) and first is None:
            first = time.perf_counter() - began
        done = event
    assert isinstance(done, Done) and not done.retrieval_only, done
    return first, done


def bare_first_token(url: str, messages: list[dict]) -> float:
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
    began = time.perf_counter()
    stream = client.chat.completions.create(model="x", messages=messages, max_tokens=8, temperature=0, stream=True)
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta and chunk.choices[0].delta.content:
                return time.perf_counter() - began
    finally:
        stream.close()
    raise RuntimeError("no token")


def median_ms(xs) -> float:
    return round(statistics.median(xs) * 1000, 1)


def run(rounds: int, preset: str) -> dict:
    from rag.config import default_embed_model
    from rag.embeddings import load_embedder

    work = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    (work / "empty").mkdir()
    model = write_model(work / f"{preset}.gguf", PRESETS[preset])
    embedder = load_embedder(default_embed_model())
    live = LlamaServer(model, work / "live.log").start()
    stalled = StalledServer()
    try:
        alone = engine_for(work, "alone", embedder, LLM_BASE_URL=live.url)
        alone.ingest([SAMPLE_GUIDE])
        remote = alone.chain.first
        sent: list = []
        stream = remote.stream
        remote.stream = lambda messages, *a, **k: (sent.append(messages), stream(messages, *a, **k))[1]
        ask(alone)  # warm: model name, tokenizer route, counted texts, the server's prompt cache
        messages = sent[-1]
        refused = engine_for(
            work,
            "refused",
            embedder,
            LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
            FALLBACKS=f"openai:{live.url}",
            LLM_BREAKER_FAILURES="100",
        )
        stuck = engine_for(
            work,
            "stalled",
            embedder,
            LLM_BASE_URL=stalled.url,
            FALLBACKS=f"openai:{live.url}",
            LLM_READ_TIMEOUT_S="1",
            LLM_BREAKER_FAILURES="100",
        )
        skipped = engine_for(
            work,
            "skipped",
            embedder,
            LLM_BASE_URL=f"http://127.0.0.1:{free_port()}/v1",
            FALLBACKS=f"openai:{live.url}",
            LLM_BREAKER_FAILURES="1",
            LLM_BREAKER_COOLDOWN_S="3600",
        )
        for engine in (refused, stuck, skipped):
            ask(engine)  # warm, and opens `skipped`'s breaker
        r = {k: [] for k in ("bare", "backend", "e2e", "refused", "stalled", "skipped")}
        for i in range(rounds):
            order = ["bare", "alone"] if i % 2 == 0 else ["alone", "bare"]
            for which in order:
                if which == "bare":
                    r["bare"].append(bare_first_token(live.url, messages))
                else:
                    first, done = ask(alone)
                    r["e2e"].append(first)
                    r["backend"].append(done.first_token_ms / 1000)
            for name, engine in (("refused", refused), ("stalled", stuck), ("skipped", skipped)):
                r[name].append(ask(engine)[0])
            print(f"round {i + 1}/{rounds}", file=sys.stderr)
    finally:
        live.kill()
        stalled.stop()
    base = statistics.median(r["e2e"])
    return {
        "preset": preset,
        "rounds": rounds,
        "prompt_tokens": alone.chain.first.count_chat(messages),
        "first_token_ms": {
            "bare_client": median_ms(r["bare"]),
            "ai_chat_backend": median_ms(r["backend"]),
            "ratio": round(statistics.median(r["backend"]) / statistics.median(r["bare"]), 2),
            "ai_chat_end_to_end": median_ms(r["e2e"]),
        },
        "failover_extra_ms": {
            "refused_port_3_attempts": round((statistics.median(r["refused"]) - base) * 1000, 1),
            "stalled_read_timeout_1s": round((statistics.median(r["stalled"]) - base) * 1000, 1),
            "breaker_open_skip": round((statistics.median(r["skipped"]) - base) * 1000, 1),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="tiny")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result = run(args.rounds, args.preset)
    print(json.dumps(result, indent=1))
    out = PROJECT_ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / f"remote-{args.preset}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
