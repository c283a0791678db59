import re
import subprocess
import sys
from dataclasses import replace

import pytest

from rag.config import Settings
from rag.errors import ConfigError
from rag.llm import planner as memory
from rag.llm.gguf import GGUFMeta, read_meta
from rag.modelgen import Shape, write_model

GiB, MiB = 1024**3, 1024**2


def qwen_1_5b_like() -> GGUFMeta:
    """Metadata of a 1.5B Q4_0 model (28 layers, GQA 12/2, head_dim 128): planner input, no file needed."""
    return GGUFMeta(
        path=None,
        file_size=930 * MiB,
        architecture="qwen2",
        n_layer=28,
        n_embd=1536,
        n_head=12,
        n_head_kv=2,
        key_length=128,
        value_length=128,
        context_length=32768,
        n_vocab=151936,
        quantization="Q4_0",
        layer_bytes=[26 * MiB] * 28,
        other_bytes=200 * MiB,
    )


def reading(gpu_free: int | None = None, ram_free: int = 16 * GiB) -> memory.Reading:
    gpus = [] if gpu_free is None else [memory.Gpu(0, "Test GPU", 24 * GiB, 24 * GiB - gpu_free, gpu_free)]
    return memory.Reading(24 * GiB, ram_free, 100 * MiB, 4, 8, gpus, "" if gpus else "no NVIDIA GPU")


def test_cpu_only_plan_has_reasons():
    plan = memory.plan(qwen_1_5b_like(), Settings.from_env({}), reading())
    assert plan["n_gpu_layers"] == 0 and plan["n_threads"] == 4 and plan["flash_attn"] is False
    assert plan["n_ctx"] == 8192 and plan["use_mmap"] is True
    assert all(choice.reason for choice in plan.choices.values())
    assert plan.kv_bytes == 8192 * 28 * 2 * 256 * 2


def test_big_gpu_offloads_everything():
    plan = memory.plan(qwen_1_5b_like(), Settings.from_env({}), reading(gpu_free=20 * GiB))
    assert plan["n_gpu_layers"] == 29 and plan["n_ctx"] == 8192 and plan["flash_attn"] is True
    assert "fit in 80%" in plan.choices["n_gpu_layers"].reason


def test_small_gpu_shrinks_context_before_dropping_layers():
    meta = qwen_1_5b_like()
    # enough for all layers at 4096 context but not at 8192
    at_4096 = meta.weight_bytes + meta.kv_bytes(4096) + memory.compute_estimate(meta, 4096, 512, True)
    plan = memory.plan(meta, Settings.from_env({}), reading(gpu_free=int(at_4096 / 0.8) + MiB))
    assert plan["n_gpu_layers"] == 29 and plan["n_ctx"] == 4096
    tight = memory.plan(meta, Settings.from_env({}), reading(gpu_free=int(0.5 * meta.weight_bytes / 0.8)))
    assert tight["n_ctx"] == 4096 and 0 < tight["n_gpu_layers"] < 28
    assert "layers fit" in tight.choices["n_gpu_layers"].reason


def test_low_vram_quantizes_kv_and_shrinks_batches():
    plan = memory.plan(qwen_1_5b_like(), Settings.from_env({"LOW_VRAM": "1"}), reading(gpu_free=20 * GiB))
    assert plan["type_k"] == plan["type_v"] == memory.GGML_TYPE_Q8_0
    assert (plan["n_batch"], plan["n_ubatch"]) == (256, 128)
    odd_heads = replace(qwen_1_5b_like(), key_length=40, value_length=40)
    assert (
        memory.plan(odd_heads, Settings.from_env({"LOW_VRAM": "1"}), reading(gpu_free=20 * GiB))["type_k"]
        == memory.GGML_TYPE_F16
    )


def test_explicit_values_win_but_warn():
    settings = Settings.from_env({"N_GPU_LAYERS": "-1", "N_CTX": "32768"})
    plan = memory.plan(qwen_1_5b_like(), settings, reading(gpu_free=1 * GiB))
    assert plan["n_gpu_layers"] == 29 and plan["n_ctx"] == 32768
    assert plan.warnings and "expect out-of-memory" in plan.warnings[0]


def test_n_ctx_above_training_context_is_refused():
    with pytest.raises(ConfigError, match="N_CTX=65536 exceeds the model's training context 32768"):
        memory.plan(qwen_1_5b_like(), Settings.from_env({"N_CTX": "65536"}), reading())


def test_pressure_levels():
    def level(ram_free_fraction):
        return memory.pressure(reading(ram_free=int(24 * GiB * ram_free_fraction)))[0]

    assert [level(f) for f in (0.5, 0.15, 0.07, 0.01)] == ["SAFE", "WARNING", "CRITICAL", "EMERGENCY"]


def test_probe_without_gpu_is_not_an_error():
    r = memory.probe()
    assert r.ram_total > 0 and r.rss > 0 and r.physical_cores >= 1
    if not r.gpus:
        assert r.gpu_note.startswith("no")


KV_SCRIPT = """
import sys
from llama_cpp import Llama
Llama(sys.argv[1], n_ctx=int(sys.argv[2]), n_gpu_layers=0, verbose=True)
"""


@pytest.mark.parametrize(
    "shape",
    [
        Shape(n_vocab=512, n_embd=64, n_layer=2, n_head=4, n_head_kv=2, n_ff=128),  # grouped-query
        Shape(n_vocab=512, n_embd=128, n_layer=3, n_head=4, n_head_kv=4, n_ff=256),  # multi-head
        Shape(n_vocab=512, n_embd=256, n_layer=2, n_head=2, n_head_kv=1, n_ff=256),  # head_dim 128, one KV head
    ],
    ids=["gqa", "mha", "mqa-hd128"],
)
def test_kv_prediction_matches_llama_cpp(tmp_path, shape):
    path = write_model(tmp_path / "m.gguf", shape)
    meta = read_meta(path)
    n_ctx = memory.plan(meta, Settings.from_env({}), reading())["n_ctx"]
    out = subprocess.run(
        [sys.executable, "-c", KV_SCRIPT, str(path), str(n_ctx)], capture_output=True, text=True, timeout=120
    )
    sizes = [float(x) for x in re.findall(r"KV buffer size =\s+([\d.]+) MiB", out.stderr)]
    assert sizes, out.stderr[-2000:]
    actual = sum(sizes) * MiB
    assert abs(meta.kv_bytes(n_ctx) - actual) <= 0.10 * actual
