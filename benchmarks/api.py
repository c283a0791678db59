"""Overhead of the OpenAI-compatible API: time to first token through the API (streamed, the official
`openai` client, over loopback HTTP) vs `Engine.ask` directly, same engine, same question, in
alternation, on a cached prompt prefix: the same question's prompt is in llama.cpp's KV cache from
the call before, so what differs is the way in (retrieval included in both). The answer cache is
cleared before every call, so every answer is generated. Bar: median API / median direct <= 1.1.

    .venv/bin/python -m benchmarks.api [--rounds 21]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from rag import api
from rag.config import SAMPLE_GUIDE, Settings, bundled_model
from rag.engine import Engine
from rag.events import Token

BAR = 1.1
QUESTIONS = [
    "How do I add documents?",
    "What does the answer cache do?",
    "How do I delete a document?",
    "What is the memory optimizer panel?",
    "How do I ask within a collection?",
    "Which file types can I upload?",
    "What happens when the model is still loading?",
    "How do I stop an answer?",
    "Where are uploads stored?",
    "How do I export a conversation?",
]


def direct(engine: Engine, question: str) -> float:
    began = time.perf_counter()
    events = engine.ask(question, wait_for_model=True)
    try:
        for event in events:
            if isinstance(event, Token):
                return time.perf_counter() - began
    finally:
        events.close()
    raise RuntimeError("no token")


def through_api(client, question: str) -> float:
    began = time.perf_counter()
    stream = client.chat.completions.create(
        model="ai-chat", messages=[{"role": "user", "content": question}], stream=True
    )
    try:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                return time.perf_counter() - began
    finally:
        stream.close()
    raise RuntimeError("no token")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args()
    import openai

    from benchmarks.first_paint import free_port

    work = Path(tempfile.mkdtemp(prefix="api-bench-"))
    model = bundled_model()
    if model is None:
        parser.error("the bundled demo model is not installed: run make install")
    settings = replace(
        Settings.from_env({"INDEX_DIR": str(work / "i"), "CACHE_DIR": str(work / "c"), "DATA_DIR": str(work / "d")}),
        model_path=model,
        temperature=0.0,
        max_tokens=16,
        semantic_cache=False,
        api_port=free_port(),
    )
    engine = Engine(settings)
    engine.ingest([SAMPLE_GUIDE])
    engine.chain.local.model.get(timeout=120)
    server = api.serve_in_thread(engine)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{settings.api_port}/v1", api_key="unused", max_retries=0)
    for _ in range(60):
        try:
            client.models.list()
            break
        except openai.APIConnectionError:
            time.sleep(0.1)
    print(f"model {model.name}; {args.rounds} rounds; first token, the same question's prompt cached", flush=True)
    direct(engine, "Warm-up: what is AI-CHAT?")
    through_api(client, "Warm-up: what can I ask?")
    times: dict[str, list[float]] = {"direct": [], "api": []}
    for r in range(args.rounds):
        question = QUESTIONS[r % len(QUESTIONS)]
        engine.cache.clear()
        direct(engine, question)  # its prompt into the KV cache: both ways then start from a cached prefix
        order = ("direct", "api") if r % 2 == 0 else ("api", "direct")
        for way in order:
            engine.cache.clear()  # generated, not served from the answer cache
            t = direct(engine, question) if way == "direct" else through_api(client, question)
            times[way].append(t)
        print(f"round {r + 1}: direct {times['direct'][-1] * 1000:.0f} ms, api {times['api'][-1] * 1000:.0f} ms")
    server.should_exit = True
    med = {way: statistics.median(t) for way, t in times.items()}
    ratio = med["api"] / med["direct"]
    print(
        f"\nmedian time to first token: direct {med['direct'] * 1000:.0f} ms, API {med['api'] * 1000:.0f} ms "
        f"[{min(times['api']) * 1000:.0f}-{max(times['api']) * 1000:.0f}], ratio {ratio:.2f} (bar <= {BAR})"
    )
    return 0 if ratio <= BAR else 1


if __name__ == "__main__":
    sys.exit(main())
