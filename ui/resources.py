"""The one Engine per server process, shared by all browser sessions."""

from __future__ import annotations

import logging
import threading

import streamlit as st

from rag import SAMPLE_GUIDE, Engine, RagError, Settings

log = logging.getLogger(__name__)
LOAD_DELAY_S = 2.0


@st.cache_resource(show_spinner=False)
def get_engine() -> Engine:
    """Create the engine; `start_loading` begins loading its parts once the first page is drawn.
    With API_PORT, the OpenAI-compatible API starts beside it, on the same engine (rag/api.py):
    at server start when launched by `python -m ui.launch` (make run), else at the first page."""
    engine = Engine(Settings.from_env(), start=False)
    if engine.settings.api_port:
        from rag import serve_in_thread

        serve_in_thread(engine)
    return engine


def start_loading(engine: Engine) -> None:
    """Start loading the engine's parts in background threads (once per engine).

    The index starts at once. The embedder's torch import is CPU-bound and holds the GIL: on 2 cores
    it slowed the browser's fetch of the page by ~0.5 s; the model's first load runs a crash-probe
    child process and llama.cpp's load, which compete with the browser for the same cores. Both start
    LOAD_DELAY_S later, once the page is drawn (the model first), followed by the bundled sample.
    A question asked before then loads what it needs on demand."""
    with _once_lock:
        if engine in _started:
            return
        _started.add(engine)
    engine.start(("index",))
    timer = threading.Timer(LOAD_DELAY_S, _load_model_embedder_and_sample, args=(engine,))
    timer.daemon = True
    timer.start()


def _load_model_embedder_and_sample(engine: Engine) -> None:
    engine.start(("model", "embedder"))
    _offer_sample(engine)


_once_lock = threading.Lock()
_started: set = set()


def _offer_sample(engine: Engine) -> None:
    try:
        engine.ingest_sample_if_new(SAMPLE_GUIDE)
    except RagError as exc:
        log.warning("the bundled sample was not indexed: %s", exc)


def engine_or_stop() -> Engine:
    """The shared engine, or a clear error on the page (bad env values) and stop."""
    try:
        return get_engine()
    except RagError as exc:
        st.error(f"AI-CHAT cannot start: {exc}")
        st.stop()
