from dataclasses import replace

import pytest

from rag.engine import Engine


@pytest.fixture
def engine(settings, embedder, tiny_model, corpus):
    """An engine on the tiny GGUF (greedy, short answers) with the test corpus indexed."""
    eng = Engine(replace(settings, model_path=tiny_model, temperature=0.0, max_tokens=16), embedder=embedder)
    assert not eng.ingest([corpus[0]]).errors
    eng.chain.local.model.get(timeout=60)
    return eng
