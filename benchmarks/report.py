"""Turn benchmark results into bench.json, bench.md (the README table) and bench.png, and print them."""

from __future__ import annotations

import json
from pathlib import Path

ROWS = [  # (label, key, comparison key or None, bar key, format)
    ("1. model ready: engine vs bare Llama()", "engine_s", "bare_s", "load_ratio", "{:.3f} s"),
    ("1. a new model file's first load adds the crash probe (once)", "probe_s", None, None, "{:.2f} s"),
    (
        "2. decode tok/s: Engine.ask vs create_completion",
        "decode_tps_engine",
        "decode_tps_bare",
        "decode_ratio",
        "{:.1f}",
    ),
    ("2. memory-bandwidth roofline reached", "roofline_fraction", None, None, "{:.0%}"),
    ("3. prompt processing tok/s (first turn)", "prompt_tps", None, None, "{:.0f}"),
    ("3. time to first token, first turn (prompt tokens)", "first_ttft_ms", "first_prompt_tokens", None, "{:.0f} ms"),
    (
        "3. second turn: uncached / first turn's uncached",
        "second_uncached_tokens",
        None,
        "second_turn_uncached",
        "{:.0f} tok",
    ),
    ("3. a drifting follow-up (new passages): uncached / first", "drifting_turn_uncached", None, None, "{:.2f}"),
    ("6. peak RSS vs GGUF + KV (overhead MB)", "rss_peak_mb", "rss_model_plus_kv_mb", "rss_overhead_mb", "{:.0f} MB"),
    (
        "6. same with USE_MMAP=0 N_UBATCH=128",
        "rss_peak_mb_nommap",
        "rss_model_plus_kv_mb_nommap",
        "rss_overhead_mb_nommap",
        "{:.0f} MB",
    ),
    ("6. the embedder alone (torch + MiniLM)", "rss_embedder_alone_mb", None, None, "{:.0f} MB"),
    (
        "7. ingest s: ours vs LangChain",
        "peer_ours_ingest_s",
        "peer_langchain_ingest_s",
        "peer_ratio_ingest_s",
        "{:.1f} s",
    ),
    (
        "7. time to first token s: ours vs LangChain",
        "peer_ours_ttft_s",
        "peer_langchain_ttft_s",
        "peer_ratio_ttft_s",
        "{:.2f} s",
    ),
    ("7. peak RSS: ours vs LangChain", "peer_ours_peak_rss", "peer_langchain_peak_rss", "peer_ratio_peak_rss", "{}"),
]
SHARED = [
    ("4. cached answer p50 / p95, exact", "cache_exact_p50_ms", "cache_exact_p95_ms", "cache_exact_p95_ms"),
    ("4. cached answer p50 / p95, semantic", "cache_semantic_p50_ms", "cache_semantic_p95_ms", "cache_semantic_p95_ms"),
    ("5. query embed + search p50 / p95, 10k chunks", "retrieval_p50_ms_10k", "retrieval_p95_ms_10k", None),
    (
        "5. hybrid (dense + BM25, fused) p50 / p95, 10k chunks",
        "hybrid_p50_ms_10k",
        "hybrid_p95_ms_10k",
        "hybrid_p50_ms_10k",
    ),
    (
        "5. query embed + search p50 / p95, 100k chunks",
        "retrieval_p50_ms_100k",
        "retrieval_p95_ms_100k",
        "retrieval_p50_ms_100k",
    ),
    ("5. hybrid p50 / p95, 100k chunks", "hybrid_p50_ms_100k", "hybrid_p95_ms_100k", None),
]


def _fmt(fmt: str, value) -> str:
    if value is None:
        return "–"
    if fmt == "{}" and isinstance(value, (int, float)):
        return f"{value / 2**20:,.0f} MB"
    return fmt.format(value)


def _verdict(key: str | None, value) -> str:
    from .suite import BARS

    if key is None or key not in BARS or value is None:
        return ""
    op, bar = BARS[key]
    ok = value <= bar if op == "<=" else value >= bar
    return f"{'✅' if ok else '❌'} {op} {bar}"


def markdown(results: dict, presets: list[str]) -> str:
    lines = ["| figure | model | ours | comparison | ratio / key figure | bar |", "|---|---|---|---|---|---|"]
    for preset in presets:
        r = results[preset]
        for label, key, other, ratio_key, fmt in ROWS:
            ratio = r.get(ratio_key) if ratio_key else None
            shown = (
                "" if ratio is None else (f"{ratio:.0f} MB" if ratio_key.startswith("rss_overhead") else f"{ratio:.2f}")
            )
            comparison = (
                ""
                if other is None
                else (str(r.get(other)) if other == "first_prompt_tokens" else _fmt(fmt, r.get(other)))
            )
            lines.append(
                f"| {label} | {preset} | {_fmt(fmt, r.get(key))} | {comparison} | {shown} | "
                f"{_verdict(ratio_key, ratio)} |"
            )
    shared = {**results["cache"], **results["retrieval"]}
    for label, k50, k95, bar_key in SHARED:
        if k50 in shared:
            lines.append(
                f"| {label} | – | {shared[k50]:.1f} ms | {shared[k95]:.1f} ms (p95) | | "
                f"{_verdict(bar_key, shared.get(bar_key))} |"
            )
    lines.append(
        f"| 5. ingestion | – | {shared['ingest_chunks_per_s']:.1f} chunks/s | "
        f"{shared['ingest_chunks']} chunks | {shared['ingest_embedding_share']:.0%} of the time embedding | |"
    )
    return "\n".join(lines)


def chart(results: dict, presets: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        ("load_ratio", "load\n(engine/bare)", 1.1),
        ("decode_ratio", "decode tok/s\n(engine/bare)", 0.95),
        ("second_turn_uncached", "2nd-turn\nuncached", 0.30),
        ("peer_ratio_ttft_s", "TTFT\n(ours/LangChain)", None),
        ("peer_ratio_peak_rss", "peak RSS\n(ours/LangChain)", None),
        ("peer_ratio_ingest_s", "ingest\n(ours/LangChain)", None),
    ]
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / len(presets)
    for i, preset in enumerate(presets):
        values = [results[preset].get(k) or 0 for k, _, _ in keys]
        ax.bar([x + i * width for x in range(len(keys))], values, width, label=preset)
    for x, (_, _, bar) in enumerate(keys):
        if bar is not None:
            ax.hlines(bar, x - 0.1, x + 0.8, colors="red", linestyles="dashed")
    ax.set_xticks([x + width * (len(presets) - 1) / 2 for x in range(len(keys))], [label for _, label, _ in keys])
    ax.set_ylabel("ratio (red: bar)")
    ax.legend()
    ax.set_title("AI-CHAT benchmark ratios, measured side by side in one run")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def write_reports(results: dict, out_dir: Path, presets: list[str]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(results, indent=1, default=str))
    table = markdown(results, presets)
    m = results["machine"]
    header = (
        f"Machine: {m['cores']} cores ({m['threads']} threads), {m['ram_gib']} GiB RAM, GPU: {m['gpu']}. "
        f"{'Quick' if results['quick'] else 'Full'} run, {results['seconds']:.0f} s.\n\n"
    )
    (out_dir / "bench.md").write_text(header + table + "\n")
    chart(results, presets, out_dir / "bench.png")
    print("\n" + header + table)
    print(f"\nwrote {out_dir / 'bench.json'}, {out_dir / 'bench.md'}, {out_dir / 'bench.png'}")
