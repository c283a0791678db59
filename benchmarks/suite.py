"""`python -m rag bench [--quick]`: speed and memory, each figure beside its comparison, in one run.

Writes bench.json, bench.md and bench.png to --out (default bench-results/) and prints the ratios.
Models are generated realistic-shape presets (random weights: meaningless text, real speed and
memory). This machine is noisy: figures are medians of repeated rounds taken side by side.
"""

from __future__ import annotations

import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rag import retrieve
from rag.config import PROJECT_ROOT, Settings
from rag.events import Done
from rag.llm import planner as memory
from rag.llm.gguf import read_meta
from rag.modelgen import PRESETS, write_model

from .corpus import QUESTION, write_corpus

FOLLOW_UP = "What is it labelled?"  # drills into the first answer's passage
DRIFTING_FOLLOW_UP = "And who checks it?"  # pulls in new passages, which must be evaluated

MiB = 2**20
BARS = {
    "load_ratio": ("<=", 1.1),
    "decode_ratio": (">=", 0.95),
    "second_turn_uncached": ("<=", 0.30),
    "cache_exact_p95_ms": ("<=", 50),
    "cache_semantic_p95_ms": ("<=", 50),
    "retrieval_p50_ms_100k": ("<=", 30),
    "hybrid_p50_ms_10k": ("<=", 30),
    "rss_overhead_mb": ("<=", 600),
    "rss_overhead_mb_nommap": ("<=", 600),
}


def median(xs):
    return statistics.median(xs)


def p95(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]


def log(msg: str) -> None:
    print(msg, flush=True)


class Bench:
    def __init__(self, work: Path, quick: bool):
        self.work, self.quick = work, quick
        self.rounds = 3 if quick else 7
        self.results: dict = {"quick": quick, "machine": machine()}

    def settings(self, model: Path | None, name: str, **env) -> Settings:
        base = {
            "INDEX_DIR": str(self.work / name / "index"),
            "CACHE_DIR": str(self.work / name / "cache"),
            "DATA_DIR": str(self.work / name / "data"),
            "MODELS_DIR": str(self.work / "no-models"),
            "TEMPERATURE": "0",
            **env,
        }
        if model:
            base["MODEL_PATH"] = str(model)
        return Settings.from_env(base)

    def env(self, model: Path, name: str, **env) -> dict:
        s = self.settings(model, name, **env)
        return {
            **os.environ,
            "MODEL_PATH": str(model),
            "INDEX_DIR": str(s.index_dir),
            "CACHE_DIR": str(s.cache_dir),
            "DATA_DIR": str(s.data_dir),
            "TEMPERATURE": "0",
            **env,
        }


def machine() -> dict:
    import psutil

    return {
        "cores": psutil.cpu_count(logical=False),
        "threads": psutil.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "gpu": memory.probe_gpus()[1] or "yes",
    }


def bench_load(b: Bench, model: Path) -> dict:
    """1. Model ready through the engine vs a bare llama_cpp.Llama() with the same parameters."""
    from llama_cpp import Llama

    from rag.engine import Engine

    settings = b.settings(model, f"load-{model.stem}")
    kwargs = memory.plan(read_meta(model), settings, memory.probe()).llama_kwargs()
    engine_s, bare_s = [], []
    for r in range(b.rounds + 1):  # the first round warms the page cache and is dropped
        for which in ("engine", "bare") if r % 2 else ("bare", "engine"):
            gc.collect()
            began = time.perf_counter()
            if which == "engine":
                loaded = Engine(settings, start=False)
                loaded.chain.local.model.get()
            else:
                loaded = Llama(str(model), verbose=False, **kwargs)
            took = time.perf_counter() - began  # freeing the model is outside the timed region for both
            del loaded
            if r:
                (engine_s if which == "engine" else bare_s).append(took)
    # the first load of a new file also loads and runs it once in a child process (rag/llm/probe.py: a
    # short prompt and a few decoded tokens), so that a file or CPU kernel llama.cpp crashes on cannot
    # take the app down; later loads skip it. Timed apart, once:
    from rag.llm.probe import probe

    began = time.perf_counter()
    probe(model, Engine(settings, start=False).chain.local.fingerprint(), b.work / f"probe-{model.stem}", kwargs)
    probe_s = time.perf_counter() - began
    return {
        "engine_s": median(engine_s),
        "bare_s": median(bare_s),
        "load_ratio": median(engine_s) / median(bare_s),
        "probe_s": probe_s,
    }


def bandwidth_gbs() -> float:
    import numpy as np

    a = np.ones(256 * MiB // 8)
    best = 0.0
    for _ in range(5):
        began = time.perf_counter()
        a.copy()
        best = max(best, 2 * a.nbytes / (time.perf_counter() - began))  # read + write
    return best / 1e9


def bench_generation(b: Bench, model: Path, corpus: Path, embedder) -> dict:
    """2 + 3. Decode tok/s through Engine.ask vs bare create_completion on the same prompt tokens;
    prompt processing, time to first token, and the second turn's uncached prompt tokens."""
    from rag.engine import Engine

    n_tokens = 24 if b.quick else 96
    settings = b.settings(model, f"gen-{model.stem}", MAX_TOKENS=str(n_tokens), TOP_K="3" if b.quick else "5")
    engine = Engine(settings, embedder=embedder)
    engine.ingest([corpus])
    llm = engine.chain.local.model.get()
    first = [e for e in engine.ask(QUESTION, wait_for_model=True) if isinstance(e, Done)][-1]
    second = [e for e in engine.ask(FOLLOW_UP, history=first.turn, wait_for_model=True) if isinstance(e, Done)][-1]
    drifting = [
        e for e in engine.ask(DRIFTING_FOLLOW_UP, history=first.turn, wait_for_model=True) if isinstance(e, Done)
    ][-1]
    prompt_ids = list(llm._last_sequence[1][: second.prompt_tokens])
    ours, bare = [], []
    for r in range(b.rounds):
        done = [e for e in engine.ask(f"{QUESTION} ({r})", wait_for_model=True) if isinstance(e, Done)][-1]
        ours.append(done.tokens_per_s)
        bare.append(bare_decode(llm, prompt_ids[: done.prompt_tokens], n_tokens))
    meta = read_meta(model)
    per_token = meta.weight_bytes - meta.input_embedding_bytes  # every weight but the embedding table
    bw = bandwidth_gbs()
    uncached1 = first.prompt_tokens - first.reused_tokens
    uncached2 = second.prompt_tokens - second.reused_tokens
    return {
        "decode_tps_engine": median(ours),
        "decode_tps_bare": median(bare),
        "decode_ratio": median(ours) / median(bare),
        "roofline_fraction": per_token * median(ours) / (bw * 1e9),
        "copy_bandwidth_gbs": bw,
        "first_prompt_tokens": first.prompt_tokens,
        "first_ttft_ms": first.first_token_ms,
        "prompt_tps": uncached1 / (first.first_token_ms / 1000),
        "second_prompt_tokens": second.prompt_tokens,
        "second_uncached_tokens": uncached2,
        "second_ttft_ms": second.first_token_ms,
        "second_turn_uncached": uncached2 / uncached1,
        "drifting_turn_uncached": (drifting.prompt_tokens - drifting.reused_tokens) / uncached1,
    }


def bare_decode(llm, prompt_ids: list[int], n_tokens: int) -> float:
    """Decode tok/s of create_completion: (n - 1) tokens over the time from the first to the last."""
    bare = llm.llama
    bare.reset()
    stamps = [
        time.perf_counter()
        for _ in bare.create_completion(
            prompt_ids,
            max_tokens=n_tokens,
            stream=True,
            temperature=0.0,
            top_k=40,
            top_p=0.95,
            min_p=0.05,
            repeat_penalty=1.1,
        )
    ]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def bench_cache(b: Bench, corpus: Path, embedder) -> dict:
    """4. Cached answer latency inside the engine, exact and semantic."""
    from rag.engine import Engine

    tiny = write_model(b.work / "tiny.gguf", PRESETS["tiny"])
    engine = Engine(b.settings(tiny, "cache"), embedder=embedder)
    engine.ingest([corpus])
    q, paraphrase = "How do I reset my password?", "How can I reset my password?"
    list(engine.ask(q, wait_for_model=True))
    timings = {"exact": [], "semantic": []}
    for kind, question in (("exact", q), ("semantic", paraphrase)):
        for _ in range(30 if b.quick else 100):
            began = time.perf_counter()
            done = [e for e in engine.ask(question) if isinstance(e, Done)][-1]
            timings[kind].append((time.perf_counter() - began) * 1000)
            assert done.cache == kind, (kind, done.cache)
    return {f"cache_{k}_{s}_ms": f(v) for k, v in timings.items() for s, f in (("p50", median), ("p95", p95))}


def bench_retrieval(b: Bench, corpus: Path, embedder) -> dict:
    """5. Query embedding + search at 10k and 100k chunks; ingestion throughput and embedding share."""
    import numpy as np

    from rag.chunking import Chunk
    from rag.index import IndexStore, NewDocument
    from rag.ingest import ingest

    out = {}
    store = IndexStore(b.work / "retrieval")
    rng = np.random.default_rng(0)
    have = 0
    queries = [f"{QUESTION} variant {i}" for i in range(50)]
    # synthetic rows (search cost depends on the count, not the meaning): 40 words each from a 3,000-word
    # vocabulary that includes the question's words, so BM25 has long posting lists to merge
    vocab = np.array(QUESTION.lower().rstrip("?").split() + [f"w{i}" for i in range(3000)])
    for size in (10_000,) if b.quick else (10_000, 100_000):
        while have < size:
            n = min(10_000, size - have)
            vectors = rng.normal(size=(n, embedder.dim)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            chunks = [Chunk(" ".join(rng.choice(vocab, 40)), 1, 0, 10, i) for i in range(n)]
            store.commit(
                [NewDocument(f"doc{have}", f"synthetic-{have}.md", f"/x/{have}", chunks, vectors)],
                embedder_id=embedder.id,
                dim=embedder.dim,
            )
            have += n
        for mode, key in (("dense", "retrieval"), ("hybrid", "hybrid")):
            times = []
            for q in queries:
                began = time.perf_counter()
                retrieve.search(embedder, store, q, 5, mode=mode)
                times.append((time.perf_counter() - began) * 1000)
            out[f"{key}_p50_ms_{size // 1000}k"] = median(times)
            out[f"{key}_p95_ms_{size // 1000}k"] = p95(times)
    timed = TimedEmbedder(embedder)
    began = time.perf_counter()
    report = ingest([corpus], timed, IndexStore(b.work / "ingest"), 900, 150)
    took = time.perf_counter() - began
    out.update(
        {
            "ingest_chunks": report.chunks_added,
            "ingest_chunks_per_s": report.chunks_added / took,
            "ingest_embedding_share": timed.seconds / took,
        }
    )
    return out


class TimedEmbedder:
    """The real embedder, with the time spent in embed_batch added up."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0
        self.id, self.dim, self.max_tokens = inner.id, inner.dim, inner.max_tokens

    def embed_batch(self, texts):
        began = time.perf_counter()
        try:
            return self.inner.embed_batch(texts)
        finally:
            self.seconds += time.perf_counter() - began

    def embed_queries(self, texts):
        return self.inner.embed_queries(texts)

    def count_tokens(self, texts):
        return self.inner.count_tokens(texts)

    def token_offsets(self, texts):
        return self.inner.token_offsets(texts)


def child(args: list[str], env: dict) -> dict:
    proc = subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    if proc.returncode:
        raise RuntimeError(f"{args[:2]} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench_rss(b: Bench, model: Path, corpus: Path) -> dict:
    """6. Peak RSS with model + embedder loaded vs GGUF size + planned KV cache, by default and with
    USE_MMAP=0 N_UBATCH=128; plus the embedder alone, to show what the overhead is made of."""
    out = {}
    for tag, env in (("", {}), ("_nommap", {"USE_MMAP": "0", "N_UBATCH": "128"})):
        got = child(
            ["-m", "benchmarks.probe_rss", str(corpus), QUESTION],
            b.env(model, f"rss{tag}-{model.stem}", MAX_TOKENS="8", **env),
        )
        expected = got["file_bytes"] + got["kv_bytes"]
        out.update(
            {
                f"rss_peak_mb{tag}": got["peak_rss"] / MiB,
                f"rss_model_plus_kv_mb{tag}": expected / MiB,
                f"rss_overhead_mb{tag}": (got["peak_rss"] - expected) / MiB,
            }
        )
    out["rss_embedder_alone_mb"] = (
        child(["-m", "benchmarks.probe_rss", "--embedder-only"], dict(os.environ))["peak_rss"] / MiB
    )
    return out


def bench_peer(b: Bench, model: Path, corpus: Path) -> dict:
    """7. Our pipeline vs LangChain's on the same files, model, embedder, k and chunking."""
    out = {}
    for which in ("ours", "langchain"):
        got = child(
            ["-m", "benchmarks.peer", which, str(corpus), QUESTION],
            b.env(model, f"peer-{which}-{model.stem}", MAX_TOKENS="8", TOP_K="3" if b.quick else "5"),
        )
        for key, value in got.items():
            out[f"peer_{which}_{key}"] = value
    for key in ("ingest_s", "ttft_s", "peak_rss"):
        out[f"peer_ratio_{key}"] = out[f"peer_ours_{key}"] / out[f"peer_langchain_{key}"]
    return out


def run(quick: bool, out_dir: Path, presets: list[str] | None = None) -> dict:
    from rag.config import default_embed_model
    from rag.embeddings import load_embedder

    began = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="ai-chat-bench-"))
    b = Bench(work, quick)
    presets = presets or (["0.5b"] if quick else ["0.5b", "1.5b"])
    corpus = write_corpus(work / "corpus", 20 if quick else 60)
    embedder = load_embedder(default_embed_model())
    for preset in presets:
        model = write_model(work / f"{preset}.gguf", PRESETS[preset])
        log(f"[{preset}] model {model.stat().st_size / MiB:.0f} MiB")
        figures = {}
        for name, step, args in (
            ("load", bench_load, (b, model)),
            ("generation", bench_generation, (b, model, corpus, embedder)),
            ("rss", bench_rss, (b, model, corpus)),
            ("peer", bench_peer, (b, model, corpus)),
        ):
            t0 = time.perf_counter()
            figures.update(step(*args))
            log(f"[{preset}] {name} done in {time.perf_counter() - t0:.0f} s")
        b.results[preset] = figures
        model.unlink()
    b.results["cache"] = bench_cache(b, corpus, embedder)
    log("cache done")
    b.results["retrieval"] = bench_retrieval(b, corpus, embedder)
    log("retrieval done")
    b.results["seconds"] = time.perf_counter() - began
    from .report import write_reports

    write_reports(b.results, out_dir, presets)
    return b.results
