import re

import pytest

from rag.config import PROJECT_ROOT, Settings, settings_table
from rag.errors import ConfigError


def test_defaults():
    s = Settings.from_env({})
    assert (s.max_tokens, s.n_ctx, s.n_gpu_layers, s.low_vram, s.vram_budget) == (512, 0, None, False, 0.8)
    assert s.semantic_cache is True
    assert (s.embed_model / "modules.json").exists() or any(s.embed_model.glob("*/modules.json"))
    assert s.index_dir == PROJECT_ROOT / "index"


@pytest.mark.parametrize("env, fragments", [
    ({"N_CTX": "abc"}, ["N_CTX", "'abc'", "integer"]),
    ({"N_CTX": "-1"}, ["N_CTX=-1", "out of range", "0 to"]),
    ({"MAX_TOKENS": "0"}, ["MAX_TOKENS=0", "1 to"]),
    ({"LOW_VRAM": "maybe"}, ["LOW_VRAM", "'maybe'", "true/false"]),
    ({"VRAM_BUDGET": "1.5"}, ["VRAM_BUDGET=1.5", "above 0.0 to 1.0"]),
    ({"VRAM_BUDGET": "nan"}, ["VRAM_BUDGET"]),
    ({"TEMPERATURE": "hot"}, ["TEMPERATURE", "'hot'", "number"]),
    ({"CHUNK_TOKENS": "100", "CHUNK_OVERLAP": "100"}, ["CHUNK_OVERLAP=100", "below CHUNK_TOKENS=100"]),
    ({"N_BATCH": "64", "N_UBATCH": "128"}, ["N_UBATCH=128", "N_BATCH=64"]),
    ({"N_GPU_LAYERS": "-2"}, ["N_GPU_LAYERS=-2"]),
])
def test_bad_values_name_variable_value_and_range(env, fragments):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_parsing():
    s = Settings.from_env({"LOW_VRAM": "yes", "N_GPU_LAYERS": "-1", "N_CTX": " 4096 ", "SEMANTIC_CACHE": "0"})
    assert (s.low_vram, s.n_gpu_layers, s.n_ctx, s.semantic_cache) == (True, -1, 4096, False)
    assert Settings.from_env({"N_GPU_LAYERS": "auto"}).n_gpu_layers is None


def test_model_path_defaults_to_first_gguf_in_models_dir(tmp_path):
    (tmp_path / "b.gguf").write_bytes(b"x")
    (tmp_path / "a.gguf").write_bytes(b"x")
    assert Settings.from_env({"MODELS_DIR": str(tmp_path)}).model_path == tmp_path / "a.gguf"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert Settings.from_env({"MODELS_DIR": str(empty)}).model_path is None


def test_readme_table_matches_settings():
    readme = (PROJECT_ROOT / "README.md").read_text()
    match = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", readme, re.S)
    assert match, "README.md lacks the settings table markers"
    assert match.group(1).strip() == settings_table(), "README table is stale: paste `python -m rag config`"
