"""Sidebar panels refreshed live with st.fragment (no chat rerun): load states and the memory optimizer."""

from __future__ import annotations

import streamlit as st

from rag import DEMO_MODEL_NOTE, BackendStatus, EngineStatus

from .text import md_escape

MiB = 1024 * 1024
LABELS = {"embedder": "Embedder", "index": "Index", "model": "Model"}
KV_TYPES: dict[object, str] = {1: "f16", 8: "q8_0"}  # GGML type ids


@st.fragment(run_every=1.0)
def render_load_states(engine) -> None:
    for part in engine.load_states():
        name = LABELS[part.name]
        if part.state == "ready":
            st.caption(f"✅ {name} ready in {part.load_seconds:.1f} s")
        elif part.state == "loading":
            st.caption(f"⏳ {name} loading…")
        elif part.state == "failed":
            st.caption(f"⚠️ {name}: {md_escape(part.error or '')}")
        else:
            st.caption(f"⏸ {name} loads on first use")
    if engine.uses_demo_model():
        st.caption(f"ℹ️ {md_escape(DEMO_MODEL_NOTE)}")


@st.fragment(run_every=2.0)
def render_memory_panel(engine) -> None:
    status = engine.status()
    st.subheader("Memory optimizer")
    _readings(status)
    _backends(status)
    _plan(status)
    c = status.cache
    st.markdown(
        f"**Answer cache** · hit rate {c.hit_rate:.0%} · {c.exact} exact + {c.semantic} semantic "
        f"hits · {c.miss} misses · {c.entries} entries"
    )
    _chart(status.history)


def _readings(status: EngineStatus) -> None:
    mem = status.memory
    for gpu in mem.gpus:
        label = f"GPU {gpu.index} {md_escape(gpu.name)}: {gpu.used // MiB:,} / {gpu.total // MiB:,} MiB"
        st.progress(min(1.0, gpu.used / gpu.total), text=label)
    if not mem.gpus:
        st.caption(f"VRAM: {md_escape(mem.gpu_note or 'no NVIDIA GPU')}")
    used = mem.ram_total - mem.ram_available
    st.progress(
        min(1.0, used / mem.ram_total),
        text=f"RAM {used // MiB:,} / {mem.ram_total // MiB:,} MiB · this process {mem.rss // MiB:,} MiB",
    )
    low = "on" if status.low_vram else "off"
    st.caption(f"Pressure: **{mem.pressure}** ({mem.used_fraction:.0%} used) · LOW_VRAM {low}")


def backend_line(b: BackendStatus) -> str:
    """One backend of the chain as the panel shows it. Example:
    '🟢 **openai:http://gpu-a:8000/v1** · breaker closed · first token p50 120 ms, p95 310 ms (12 answers)'."""
    r = b.remote
    if r is None:  # the local model: its load state
        icon = {"ready": "🟢", "failed": "🔴", "loading": "⏳"}.get(b.state, "⚪")
        return f"{icon} **{md_escape(b.name)}** · model {b.state}"
    icon = "🔴" if r.breaker == "open" or r.reachable is False else "🟢" if r.reachable else "⚪"
    parts = [f"{icon} **{md_escape(b.name)}**", f"breaker {r.breaker}"]
    if r.n_ctx:
        parts.append(f"n_ctx {r.n_ctx} ({md_escape(r.n_ctx_source)})")
    if r.breaker == "open":
        parts.append(f"probed again in {r.probe_in_s:.0f} s")
    if r.p50_ms is not None and r.p95_ms is not None:
        parts.append(f"first token p50 {r.p50_ms:.0f} ms, p95 {r.p95_ms:.0f} ms ({r.window} answers)")
    if r.errors:
        parts.append("errors " + ", ".join(f"{k} {v}" for k, v in sorted(r.errors.items())))
    line = " · ".join(parts)
    if r.last_error and r.reachable is not True:
        line += f"  \n  last error: {md_escape(r.last_error)}"
    return line


def _backends(status: EngineStatus) -> None:
    if len(status.backends) == 1 and status.model is not None:
        return  # the default, the local model alone: the load states above say it all
    st.markdown("**Backends** (tried in this order)  \n" + "  \n".join(backend_line(b) for b in status.backends))


def mib(n: float) -> str:
    """Example: 1536 * 1024 -> '1.5 MiB'; 734003200 -> '700 MiB'."""
    return f"{n / MiB:,.1f} MiB" if n < 10 * MiB else f"{n / MiB:,.0f} MiB"


def _plan(status: EngineStatus) -> None:
    model = status.model
    if model is None:
        st.caption("No local model in the backend chain: the servers above write the answers.")
        return
    plan = model.plan
    if plan is None or model.path is None or model.file_bytes is None:
        st.caption("No tuned plan yet: it is made when a model loads.")
        return
    st.markdown(
        f"**Model** {md_escape(model.path.rsplit('/', 1)[-1])} · {mib(model.file_bytes)} "
        f"{model.quantization}, memory-mapped  \nweights: GPU {mib(plan.weights_gpu)}, "
        f"CPU {mib(plan.weights_cpu)} · KV cache {mib(plan.kv_bytes)}"
    )
    if model.bundled:
        st.caption("the bundled demo model: put a bigger GGUF in models/ for better answers")
    if build := model.llama_build:
        st.caption(
            f"llama.cpp {build['mode']} build · CPU code: {build['cpu_variant'] or 'not loaded'}"
            + (" · CUDA" if build["cuda"] == "on" else "")
        )
    lines = []
    for name in ("n_ctx", "n_batch", "n_ubatch", "n_gpu_layers", "n_threads", "type_k", "flash_attn", "swa_full"):
        if name not in plan.choices:  # swa_full: only for a model with sliding-window layers
            continue
        choice = plan.choices[name]
        value = KV_TYPES.get(choice.value, choice.value) if name == "type_k" else choice.value
        lines.append(f"- **{name} = {value}** — {md_escape(choice.reason)}")
    st.markdown("\n".join(lines))
    for warning in plan.warnings + ([model.template_problem] if model.template_problem else []):
        st.warning(md_escape(warning))


def _chart(history: list) -> None:
    if len(history) < 2:
        return
    import pandas as pd  # type: ignore[import-untyped]

    frame = pd.DataFrame(history, columns=["time", "RSS MiB", "VRAM MiB"])
    frame["time"] = pd.to_datetime(frame["time"], unit="s")
    frame[["RSS MiB", "VRAM MiB"]] = frame[["RSS MiB", "VRAM MiB"]] / MiB
    st.line_chart(frame.set_index("time"), height=140)
