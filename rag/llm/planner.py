"""Probe RAM/VRAM and plan llama.cpp parameters for this machine, each with a reason and a cost.

`probe()` reads psutil and pynvml (no GPU, no driver or no pynvml simply means no GPU).
`plan()` is a pure function of the model's metadata, the settings and a reading, so it can be
checked for any machine. `pressure()` grades a reading SAFE..EMERGENCY. This module does not load
models; llm.py passes the plan's values to llama.cpp.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Literal

from ..config import Settings
from ..errors import ConfigError
from .gguf import GGUFMeta

log = logging.getLogger(__name__)
MiB = 1024 * 1024
GGML_TYPE_F16, GGML_TYPE_Q8_0 = 1, 8
KV_BYTES = {GGML_TYPE_F16: 2.0, GGML_TYPE_Q8_0: 34 / 32}  # q8_0: 32 int8 + one f16 scale per block
KV_NAMES = {GGML_TYPE_F16: "f16", GGML_TYPE_Q8_0: "q8_0"}
PREFERRED_CTX, MIN_CTX = 8192, 4096


@dataclass
class Gpu:
    index: int
    name: str
    total: int
    used: int
    free: int


@dataclass
class Reading:
    ram_total: int
    ram_available: int
    rss: int
    physical_cores: int
    logical_cores: int
    gpus: list[Gpu] = field(default_factory=list)
    gpu_note: str = ""


def probe_gpus() -> tuple[list[Gpu], str]:
    """NVIDIA GPUs via pynvml; ([], reason) when there is none, no driver, or no pynvml."""
    try:
        import pynvml
    except ImportError:
        return [], "no NVIDIA GPU (pynvml not installed)"
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return [], f"no NVIDIA GPU ({exc})"
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            name = pynvml.nvmlDeviceGetName(handle)
            gpus.append(Gpu(i, name.decode() if isinstance(name, bytes) else name, mem.total, mem.used, mem.free))
        return gpus, "" if gpus else "no NVIDIA GPU"
    except pynvml.NVMLError as exc:
        return [], f"no usable NVIDIA GPU ({exc})"
    finally:
        pynvml.nvmlShutdown()


def probe() -> Reading:
    import psutil

    vm = psutil.virtual_memory()
    gpus, note = probe_gpus()
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    return Reading(
        ram_total=vm.total,
        ram_available=vm.available,
        rss=psutil.Process().memory_info().rss,
        physical_cores=psutil.cpu_count(logical=False) or logical,
        logical_cores=logical,
        gpus=gpus,
        gpu_note=note,
    )


@dataclass
class Choice:
    value: object
    reason: str
    bytes: int = 0


@dataclass
class Plan:
    choices: dict[str, Choice]
    warnings: list[str]
    weights_gpu: int
    weights_cpu: int
    kv_bytes: int
    compute_bytes: int

    def __getitem__(self, name: str):
        return self.choices[name].value

    def llama_kwargs(self) -> dict:
        """Keyword arguments for llama_cpp.Llama."""
        names = (
            "n_ctx",
            "n_batch",
            "n_ubatch",
            "n_gpu_layers",
            "n_threads",
            "n_threads_batch",
            "type_k",
            "type_v",
            "flash_attn",
            "use_mmap",
            "swa_full",
        )
        return {n: self[n] for n in names if n in self.choices}

    def summary(self) -> dict:
        return {
            "choices": {k: {"value": c.value, "reason": c.reason, "bytes": c.bytes} for k, c in self.choices.items()},
            "warnings": self.warnings,
            "weights_gpu": self.weights_gpu,
            "weights_cpu": self.weights_cpu,
            "kv_bytes": self.kv_bytes,
            "compute_bytes": self.compute_bytes,
        }


def compute_estimate(meta: GGUFMeta, n_ctx: int, n_ubatch: int, flash_attn: bool) -> int:
    """Rough compute-buffer size: activations of one micro-batch, the logits row, and (without
    flash attention) the attention score matrix. llama.cpp reports the real figure at load."""
    acts = n_ubatch * (4 * meta.n_embd + 2 * 4 * meta.n_embd + meta.n_vocab) * 4
    scores = 0 if flash_attn else n_ubatch * n_ctx * meta.n_head * 4
    return acts + scores


def _gpu_weights(meta: GGUFMeta, layers: int) -> int:
    """Bytes on the GPU when `layers` are offloaded; n_layer + 1 also moves the output layer."""
    if layers <= 0:
        return 0
    if layers > meta.n_layer:
        return meta.weight_bytes
    return sum(meta.layer_bytes[meta.n_layer - layers :])  # llama.cpp offloads the last layers first


def plan(meta: GGUFMeta, settings: Settings, reading: Reading) -> Plan:
    """Choose n_ctx, n_batch, n_ubatch, n_gpu_layers, KV type, flash_attn, mmap and threads."""
    if settings.n_ctx and settings.n_ctx > meta.context_length:
        raise ConfigError(
            f"N_CTX={settings.n_ctx} exceeds the model's training context {meta.context_length}; "
            "unset it to let the optimizer choose"
        )
    warnings: list[str] = []
    on_gpu = bool(reading.gpus) and settings.n_gpu_layers != 0
    flash = on_gpu
    quant_kv = settings.low_vram and flash and meta.key_length % 32 == 0 and meta.value_length % 32 == 0
    kv_type = GGML_TYPE_Q8_0 if quant_kv else GGML_TYPE_F16
    n_batch = settings.n_batch or (256 if settings.low_vram else 512)
    n_ubatch = min(settings.n_ubatch or (128 if settings.low_vram else 512), n_batch)
    min_ctx = min(MIN_CTX, meta.context_length)
    target_ctx = settings.n_ctx or min(PREFERRED_CTX, meta.context_length)
    bpe = KV_BYTES[kv_type]

    if on_gpu:
        layers, n_ctx, ctx_reason, layer_reason = _fit_gpu(
            meta, settings, reading, target_ctx, min_ctx, bpe, n_ubatch, warnings
        )
    else:
        layers = 0
        layer_reason = reading.gpu_note or "N_GPU_LAYERS=0: CPU only"
        n_ctx, ctx_reason = _fit_ram(meta, settings, reading, target_ctx, min_ctx, bpe, n_ubatch, warnings)
    n_batch = min(n_batch, n_ctx)
    n_ubatch = min(n_ubatch, n_batch)
    kv = meta.kv_bytes(n_ctx, bpe, n_ubatch=n_ubatch)
    compute = compute_estimate(meta, n_ctx, n_ubatch, flash)
    weights_gpu = _gpu_weights(meta, layers)
    threads = settings.n_threads or reading.physical_cores
    choices = {
        "n_gpu_layers": Choice(layers, layer_reason, weights_gpu),
        "n_ctx": Choice(n_ctx, ctx_reason, kv),
        "n_batch": Choice(
            n_batch,
            "N_BATCH set"
            if settings.n_batch
            else ("LOW_VRAM: smaller prompt batches" if settings.low_vram else "llama.cpp's default prompt batch"),
            0,
        ),
        "n_ubatch": Choice(
            n_ubatch,
            "N_UBATCH set"
            if settings.n_ubatch
            else (
                "LOW_VRAM: micro-batch 128 shrinks the compute buffer"
                if settings.low_vram
                else "one micro-batch per batch"
            ),
            compute,
        ),
        "type_k": Choice(kv_type, _kv_reason(settings, flash, quant_kv), 0),
        "type_v": Choice(kv_type, "same type as the keys", 0),
        "flash_attn": Choice(
            flash,
            "GPU: fused attention avoids the score matrix" if flash else "CPU: flash attention gains little here",
            0,
        ),
        "use_mmap": Choice(
            settings.use_mmap,
            "weights are memory-mapped: instant load, pages shared with the OS cache"
            if settings.use_mmap
            else "USE_MMAP=0: weights read into RAM once (no pages counted twice when llama.cpp repacks them)",
            meta.weight_bytes - weights_gpu,
        ),
        "n_threads": Choice(
            threads,
            "N_THREADS set"
            if settings.n_threads
            else f"{reading.physical_cores} physical cores (hyper-threads slow decoding)",
            0,
        ),
        "n_threads_batch": Choice(threads, "prompt processing uses the same cores", 0),
    }
    if any(meta.swa_layers):
        cells = meta.swa_cells(n_ctx, n_ubatch)
        choices["swa_full"] = Choice(
            False,
            f"{sum(meta.swa_layers)} of {meta.n_layer} layers attend to the last {meta.sliding_window} tokens: "
            f"they keep {cells} KV cells, not {n_ctx} (saves {(meta.kv_bytes(n_ctx, bpe) - kv) // MiB} MiB)",
            0,
        )
    return Plan(choices, warnings, weights_gpu, meta.weight_bytes - weights_gpu, kv, compute)


def _kv_reason(settings: Settings, flash: bool, quant: bool) -> str:
    if quant:
        return "LOW_VRAM: q8_0 KV cache halves its size (flash attention on)"
    if settings.low_vram:
        return "f16: a quantized KV cache needs flash attention (GPU) and head_dim % 32 == 0"
    return "f16 KV cache: full quality"


def _fit_ram(meta, settings, reading, target_ctx, min_ctx, bpe, n_ubatch, warnings) -> tuple[int, str]:
    budget = reading.ram_available

    def need(ctx: int) -> int:  # mmapped weights end up resident once they are read
        return (
            meta.weight_bytes
            + meta.kv_bytes(ctx, bpe, n_ubatch=n_ubatch)
            + compute_estimate(meta, ctx, n_ubatch, False)
        )

    if settings.n_ctx:
        if need(settings.n_ctx) > budget:
            warnings.append(
                f"N_CTX={settings.n_ctx} needs {need(settings.n_ctx) // MiB} MiB but "
                f"{budget // MiB} MiB RAM is available: expect swapping"
            )
        return settings.n_ctx, "N_CTX set"
    ctx = target_ctx
    while need(ctx) > budget and ctx > min_ctx:
        ctx = max(min_ctx, ctx // 2)
    if need(ctx) > budget:
        warnings.append(
            f"the model needs {need(ctx) // MiB} MiB at n_ctx={ctx} but only "
            f"{budget // MiB} MiB RAM is available: use a smaller quantization"
        )
    reason = (
        f"min(model context {meta.context_length}, {PREFERRED_CTX})"
        if ctx == target_ctx
        else f"shrunk to fit {budget // MiB} MiB of free RAM"
    )
    return ctx, reason


def _fit_gpu(meta, settings, reading, target_ctx, min_ctx, bpe, n_ubatch, warnings):
    free = sum(g.free for g in reading.gpus)
    budget = int(free * settings.vram_budget)
    all_layers = meta.n_layer + 1

    def need(layers: int, ctx: int) -> int:
        kv_layers = min(layers, meta.n_layer)
        return (
            _gpu_weights(meta, layers)
            + meta.kv_bytes(ctx, bpe, kv_layers, n_ubatch)
            + compute_estimate(meta, ctx, n_ubatch, True)
        )

    budget_note = f"{settings.vram_budget:.0%} of {free // MiB} MiB free VRAM"
    if settings.n_gpu_layers is not None:
        layers = all_layers if settings.n_gpu_layers < 0 else min(settings.n_gpu_layers, all_layers)
        ctx = settings.n_ctx or target_ctx
        if need(layers, ctx) > budget:
            warnings.append(
                f"N_GPU_LAYERS={settings.n_gpu_layers} with n_ctx={ctx} needs "
                f"{need(layers, ctx) // MiB} MiB but the budget is {budget_note}: expect out-of-memory"
            )
        return layers, ctx, "N_CTX set" if settings.n_ctx else "model context capped", "N_GPU_LAYERS set"
    ctx = settings.n_ctx or target_ctx
    while need(all_layers, ctx) > budget and ctx > min_ctx and not settings.n_ctx:
        ctx = max(min_ctx, ctx // 2)
    if need(all_layers, ctx) <= budget:
        ctx_reason = (
            "N_CTX set"
            if settings.n_ctx
            else (
                f"min(model context {meta.context_length}, {PREFERRED_CTX})"
                if ctx == target_ctx
                else f"shrunk before dropping GPU layers ({budget_note})"
            )
        )
        return all_layers, ctx, ctx_reason, f"all {meta.n_layer} layers + output fit in {budget_note}"
    layers = max((n for n in range(all_layers) if need(n, ctx) <= budget), default=0)
    return (
        layers,
        ctx,
        f"minimum context {min_ctx} before dropping layers",
        (f"{layers} of {all_layers} layers fit in {budget_note}; the rest run on the CPU"),
    )


Pressure = Literal["SAFE", "WARNING", "CRITICAL", "EMERGENCY"]
SAFE: Pressure = "SAFE"
WARNING: Pressure = "WARNING"
CRITICAL: Pressure = "CRITICAL"
EMERGENCY: Pressure = "EMERGENCY"


def pressure(reading: Reading) -> tuple[Pressure, float]:
    """Grade the fullest of RAM and each GPU: <80% SAFE, <90% WARNING, <95% CRITICAL, else EMERGENCY."""
    used = [1 - reading.ram_available / reading.ram_total] if reading.ram_total else [0.0]
    used += [g.used / g.total for g in reading.gpus if g.total]
    worst = max(used)
    level = SAFE if worst < 0.80 else WARNING if worst < 0.90 else CRITICAL if worst < 0.95 else EMERGENCY
    return level, worst
