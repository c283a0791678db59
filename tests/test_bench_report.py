"""The benchmark report's verdicts and table (the suite itself runs with `make bench`)."""

from benchmarks.report import _verdict, markdown


def test_verdicts_follow_the_bars():
    assert _verdict("load_ratio", 1.05).startswith("✅") and _verdict("load_ratio", 1.2).startswith("❌")
    assert _verdict("decode_ratio", 0.97).startswith("✅") and _verdict("decode_ratio", 0.9).startswith("❌")
    assert _verdict("rss_overhead_mb", 700) == "❌ <= 600"
    assert _verdict("not_a_bar", 1.0) == "" and _verdict("load_ratio", None) == ""


def test_markdown_table_has_every_figure():
    per_model = {
        "engine_s": 0.3,
        "bare_s": 0.31,
        "load_ratio": 0.97,
        "decode_tps_engine": 60.0,
        "decode_tps_bare": 61.0,
        "decode_ratio": 0.98,
        "second_uncached_tokens": 100,
        "second_turn_uncached": 0.2,
        "rss_peak_mb": 1400,
        "rss_model_plus_kv_mb": 437,
        "rss_overhead_mb": 963,
        "peer_ours_peak_rss": 2**30,
        "peer_langchain_peak_rss": 2**30,
    }
    results = {
        "0.5b": per_model,
        "cache": {"cache_exact_p50_ms": 0.1, "cache_exact_p95_ms": 0.2},
        "retrieval": {
            "retrieval_p50_ms_100k": 13.0,
            "retrieval_p95_ms_100k": 18.0,
            "ingest_chunks": 400,
            "ingest_chunks_per_s": 38.0,
            "ingest_embedding_share": 0.98,
        },
    }
    table = markdown(results, ["0.5b"])
    assert "| 1. model ready: engine vs bare Llama() | 0.5b | 0.300 s | 0.310 s | 0.97 | ✅ <= 1.1 |" in table
    assert "| 963 MB | ❌ <= 600 |" in table and "1,024 MB" in table
    assert "13.0 ms | 18.0 ms (p95) | | ✅ <= 30 |" in table and "98% of the time embedding" in table
