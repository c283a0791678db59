import sqlite3

import pytest

from rag.cache import AnswerCache, depends_on_history, normalize, scope_key, signature

SCOPE = scope_key("v000001", "model-fp", {"max_tokens": 512}, [])


def test_normalize_and_signature():
    assert normalize("  What IS   RAG? ") == "what is rag"
    assert normalize("ＡＢＣ") == "abc"  # NFKC folds full-width letters
    assert signature('Is room 12 free on "Friday"?') == ["12", "friday"]


def test_exact_hit_ignores_case_and_spacing(tmp_path):
    cache = AnswerCache(tmp_path)
    cache.store("What is the WiFi code?", SCOPE, "It is X [1].", [{"chunk_id": 1}])
    hit = cache.lookup_exact("  what is the wifi   code ", SCOPE)
    assert hit and hit.answer == "It is X [1]." and hit.kind == "exact"
    assert cache.lookup_exact("What is the WiFi code?", scope_key("v000002", "model-fp", {}, [])) is None


def test_semantic_layer(tmp_path, embedder):
    cache = AnswerCache(tmp_path)
    q1, q2 = "How do I reset my password?", "How can I reset my password?"
    v1, v2 = embedder.embed_batch([q1, q2])
    assert float(v1 @ v2) >= 0.95
    cache.store(q1, SCOPE, "Use the portal.", [], v1)
    assert cache.lookup_semantic(q2, SCOPE, v2).kind == "semantic"
    q3, q4 = "Is room 12 free on Monday?", "Is room 13 free on Monday?"
    v3, v4 = embedder.embed_batch([q3, q4])
    cache.store(q3, SCOPE, "Yes.", [], v3)
    assert cache.lookup_semantic(q4, SCOPE, v4) is None  # numbers differ: never the same answer
    off = AnswerCache(tmp_path / "off", semantic=False)
    off.store(q1, SCOPE, "Use the portal.", [], v1)
    assert off.lookup_semantic(q2, SCOPE, v2) is None


def test_stats_persist_across_restarts(tmp_path):
    cache = AnswerCache(tmp_path)
    cache.store("q", SCOPE, "a", [])
    cache.count("exact")
    cache.count("miss")
    cache.close()
    stats = AnswerCache(tmp_path).stats()
    assert (stats["exact"], stats["miss"], stats["entries"], stats["hit_rate"]) == (1, 1, 1, 0.5)


def test_garbage_database_is_rebuilt_not_fatal(tmp_path, caplog):
    cache = AnswerCache(tmp_path)
    cache.store("q", SCOPE, "a", [])
    cache.close()
    (tmp_path / "cache.db").write_bytes(b"this is not sqlite" * 100)
    broken = AnswerCache(tmp_path)
    assert broken.lookup_exact("q", SCOPE) is None
    broken.store("q", SCOPE, "fresh", [])
    assert broken.lookup_exact("q", SCOPE).answer == "fresh"
    assert sum("rebuilding" in r.message for r in caplog.records) == 1


def test_values_are_json_not_pickle(tmp_path):
    cache = AnswerCache(tmp_path)
    cache.store("q", SCOPE, "a", [{"chunk_id": 1}])
    cache.close()
    with sqlite3.connect(tmp_path / "cache.db") as db:
        modes = {row[0] for row in db.execute("SELECT mode FROM Cache")}
    assert 4 not in modes  # diskcache MODE_PICKLE


@pytest.mark.parametrize("outcome", ["exact", "semantic", "miss"])
def test_hit_rate(tmp_path, outcome):
    cache = AnswerCache(tmp_path)
    cache.count(outcome)
    assert cache.stats()["hit_rate"] == (0.0 if outcome == "miss" else 1.0)


@pytest.mark.parametrize(
    "question, follow_up",
    [
        ("What is the guest Wi-Fi code?", False),
        ("How many vacation days do employees get per year?", False),
        ("What about the second one?", True),
        ("Why?", True),
        ("And how is it configured?", True),
        ("Can you explain that in more detail?", True),
        ("휴가 신청은 어떻게 하나요?", False),
        ("그럼 두 번째 방법은 뭐예요?", True),
    ],
)
def test_follow_ups_are_recognised(question, follow_up):
    assert depends_on_history(question) is follow_up


def test_semantic_entries_are_a_bounded_ring_that_survives_restarts(tmp_path, monkeypatch):
    import numpy as np

    from rag import cache as cache_module

    monkeypatch.setattr(cache_module, "SEMANTIC_MAX", 4)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(6, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cache = AnswerCache(tmp_path)
    for i, v in enumerate(vectors):
        cache.store(f"question {chr(97 + i)}", SCOPE, f"answer {i}", [], v)
    for c in (cache, AnswerCache(tmp_path)):  # in memory, and read back from disk by a new process
        assert c.lookup_semantic("question x", SCOPE, vectors[0]) is None  # the oldest two were dropped
        assert c.lookup_semantic("question x", SCOPE, vectors[1]) is None
        for i in range(2, 6):
            assert c.lookup_semantic("question x", SCOPE, vectors[i]).answer == f"answer {i}"
    assert AnswerCache(tmp_path).semantic_entries(SCOPE) == 4
