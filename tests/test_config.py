import re

import pytest

from rag.config import PROJECT_ROOT, Settings, bundled_model, settings_table
from rag.errors import ConfigError


def test_defaults():
    s = Settings.from_env({})
    assert (s.max_tokens, s.n_ctx, s.n_gpu_layers, s.low_vram, s.vram_budget) == (512, 0, None, False, 0.8)
    assert s.semantic_cache is True
    assert (s.embed_model / "modules.json").exists() or any(s.embed_model.glob("*/modules.json"))
    assert s.index_dir == PROJECT_ROOT / "index"


@pytest.mark.parametrize(
    "env, fragments",
    [
        ({"N_CTX": "abc"}, ["N_CTX", "'abc'", "integer"]),
        ({"N_CTX": "-1"}, ["N_CTX=-1", "out of range", "0 to"]),
        ({"MAX_TOKENS": "0"}, ["MAX_TOKENS=0", "1 to"]),
        ({"LOW_VRAM": "maybe"}, ["LOW_VRAM", "'maybe'", "true/false"]),
        ({"VRAM_BUDGET": "1.5"}, ["VRAM_BUDGET=1.5", "above 0.0 to 1.0"]),
        ({"VRAM_BUDGET": "nan"}, ["VRAM_BUDGET"]),
        ({"TEMPERATURE": "hot"}, ["TEMPERATURE", "'hot'", "number"]),
        ({"CHUNK_CHARS": "400", "CHUNK_OVERLAP": "400"}, ["CHUNK_OVERLAP=400", "below CHUNK_CHARS=400"]),
        ({"CHUNK_TOKENS": "200"}, ["CHUNK_TOKENS was replaced by CHUNK_CHARS", "unset CHUNK_TOKENS"]),
        ({"N_BATCH": "64", "N_UBATCH": "128"}, ["N_UBATCH=128", "N_BATCH=64"]),
        ({"N_GPU_LAYERS": "-2"}, ["N_GPU_LAYERS=-2"]),
        ({"LLM_BACKEND": "ollama"}, ["LLM_BACKEND", "'ollama'", "local, openai"]),
        ({"LLM_BACKEND": "openai"}, ["LLM_BACKEND=openai needs LLM_BASE_URL", "11434/v1"]),
        ({"LLM_BASE_URL": "localhost:11434"}, ["LLM_BASE_URL", "'localhost:11434'", "http(s) URL"]),
        ({"LLM_BASE_URL": "http://gpu:99999/v1"}, ["LLM_BASE_URL", "invalid port"]),
        ({"FALLBACKS": "gpu-b,local"}, ["FALLBACKS", "'gpu-b'", "openai:URL"]),
        ({"FALLBACKS": "openai:ftp://gpu-b/v1"}, ["FALLBACKS", "http(s) URL"]),
        ({"LLM_READ_TIMEOUT_S": "0"}, ["LLM_READ_TIMEOUT_S=0.0", "above 0.0"]),
        ({"LLM_RETRIES": "11"}, ["LLM_RETRIES=11", "0 to 10"]),
        ({"LLM_CTX": "100"}, ["LLM_CTX=100", "0 (auto) or at least 256"]),
    ],
)
def test_bad_values_name_variable_value_and_range(env, fragments):
    with pytest.raises(ConfigError) as info:
        Settings.from_env(env)
    for fragment in fragments:
        assert fragment in str(info.value)


def test_parsing():
    s = Settings.from_env({"LOW_VRAM": "yes", "N_GPU_LAYERS": "-1", "N_CTX": " 4096 ", "SEMANTIC_CACHE": "0"})
    assert (s.low_vram, s.n_gpu_layers, s.n_ctx, s.semantic_cache) == (True, -1, 4096, False)
    assert Settings.from_env({"N_GPU_LAYERS": "auto"}).n_gpu_layers is None


def test_the_backend_chain_is_llm_backend_then_fallbacks_without_duplicates():
    s = Settings.from_env(
        {
            "LLM_BACKEND": "openai",
            "LLM_BASE_URL": "http://gpu-a:8000/v1/, http://gpu-b:8000/v1",
            "FALLBACKS": "openai:http://gpu-b:8000/v1, openai:http://ollama:11434/v1#llama3.1:8b, local",
        }
    )
    assert [e.name for e in s.chain] == [
        "openai:http://gpu-a:8000/v1",
        "openai:http://gpu-b:8000/v1",
        "openai:http://ollama:11434/v1#llama3.1:8b",
        "local",
    ]
    assert s.chain[2].model == "llama3.1:8b"
    assert [e.name for e in Settings.from_env({}).chain] == ["local"]
    assert [e.name for e in Settings.from_env({"FALLBACKS": "openai:http://gpu-a:8000/v1"}).chain] == [
        "local",
        "openai:http://gpu-a:8000/v1",
    ]


def test_secrets_are_never_shown():
    s = Settings.from_env(
        {"LLM_BACKEND": "openai", "LLM_BASE_URL": "http://user:pw-123@gpu-a:8000/v1", "LLM_API_KEY": "sk-secret-456"}
    )
    shown = repr(s) + repr(s.chain) + " ".join(e.name for e in s.chain)
    assert "sk-secret-456" not in shown and "pw-123" not in shown
    assert s.chain[0].name == "openai:http://***@gpu-a:8000/v1"
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"LLM_BASE_URL": "nope://user:pw-123@gpu-a"})
    assert "pw-123" not in str(info.value)


def test_model_path_defaults_to_first_gguf_in_models_dir(tmp_path):
    (tmp_path / "b.gguf").write_bytes(b"x")
    (tmp_path / "a.gguf").write_bytes(b"x")
    assert Settings.from_env({"MODELS_DIR": str(tmp_path)}).model_path == tmp_path / "a.gguf"
    empty = tmp_path / "empty"
    empty.mkdir()
    bundled = Settings.from_env({"MODELS_DIR": str(empty)})  # nothing placed: the bundled demo model
    assert bundled.model_path == bundled_model() and bundled.model_is_bundled and bundled_model().stat().st_size > 9e7
    assert Settings.from_env({"MODELS_DIR": str(empty), "BUNDLED_MODEL": "0"}).model_path is None
    placed = Settings.from_env({"MODELS_DIR": str(tmp_path)})
    assert not placed.model_is_bundled  # a placed model always wins


def test_readme_table_matches_settings():
    readme = (PROJECT_ROOT / "README.md").read_text()
    match = re.search(r"<!-- settings-table:start -->\n(.*?)\n<!-- settings-table:end -->", readme, re.S)
    assert match, "README.md lacks the settings table markers"
    assert match.group(1).strip() == settings_table(), "README table is stale: paste `python -m rag config`"
