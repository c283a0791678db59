"""The one Engine per server process, shared by all browser sessions."""

from __future__ import annotations

import logging
import threading

import streamlit as st

from rag.config import PROJECT_ROOT, Settings
from rag.engine import Engine
from rag.errors import RagError

log = logging.getLogger(__name__)
SAMPLE_DOCS = PROJECT_ROOT / "docs"


@st.cache_resource(show_spinner=False)
def get_engine() -> Engine:
    """Create the engine (its parts load in background threads) and offer the bundled sample."""
    engine = Engine(Settings.from_env())
    threading.Thread(target=_offer_sample, args=(engine,), name="sample-docs", daemon=True).start()
    return engine


def _offer_sample(engine: Engine) -> None:
    try:
        engine.ingest_sample_if_new(SAMPLE_DOCS)
    except RagError as exc:
        log.warning("the bundled sample was not indexed: %s", exc)


def engine_or_stop() -> Engine:
    """The shared engine, or a clear error on the page (bad env values) and stop."""
    try:
        return get_engine()
    except RagError as exc:
        st.error(f"AI-CHAT cannot start: {exc}")
        st.stop()
