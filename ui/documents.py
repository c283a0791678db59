"""Sidebar documents: upload (stored under generated names), ingest with progress, list, delete, re-index."""

from __future__ import annotations

import streamlit as st

from rag.errors import IngestError, RagError
from rag.uploads import display_name, save_upload

from . import chat
from .text import md_escape

TYPES = ["pdf", "md", "markdown", "txt", "html", "htm", "docx"]


def render(engine) -> None:
    st.subheader("Documents")
    round_ = st.session_state.setdefault("upload_round", 0)
    files = st.file_uploader("Add documents", type=TYPES, accept_multiple_files=True, key=f"uploads-{round_}",
                             help=f"PDF, Markdown, HTML, Word or text; up to {engine.settings.max_upload_mb} MB each")
    if files and st.button(f"Add {len(files)} file(s) to the index", type="primary"):
        st.session_state["ingest_notes"] = _ingest(engine, files)
        st.session_state["upload_round"] = round_ + 1
        st.rerun()
    for kind, note in st.session_state.pop("ingest_notes", []):
        (st.success if kind == "ok" else st.warning)(note)
    _document_list(engine)
    st.button("Clear chat", on_click=chat.clear, use_container_width=True)


def _ingest(engine, files) -> list[tuple[str, str]]:
    """Store and index uploads; returns (kind, message) notes. A bad file never stops the others."""
    notes, paths, names = [], [], {}
    limit = engine.settings.max_upload_mb * 1024 * 1024
    for upload in files:
        try:
            path = save_upload(upload.getvalue(), upload.name, engine.uploads_dir, limit)
        except IngestError as exc:
            notes.append(("warn", md_escape(str(exc))))
            continue
        paths.append(path)
        names[str(path)] = display_name(upload.name)
    if not paths:
        return notes
    bar = st.progress(0.0, text="Loading the embedder…")

    def progress(done: int, total: int, name: str) -> None:
        bar.progress(done / total, text=f"Indexing {md_escape(name)} ({done + 1}/{total})" if name else "Committing…")

    try:
        report = engine.ingest(paths, progress, names)
    except RagError as exc:
        return notes + [("warn", md_escape(str(exc)))]
    for result in report.results:
        label = md_escape(names.get(result.path, result.path))
        if result.status in ("added", "replaced"):
            plural = "" if result.chunks == 1 else "s"
            notes.append(("ok", f"{label}: {result.chunks} passage{plural} indexed"))
            continue
        engine.forget_upload(result.path)  # nothing indexed from it: do not keep the copy
        notes.append(("warn", md_escape(result.message) if result.status == "error" else f"{label}: already indexed"))
    return notes


@st.fragment(run_every=3.0)
def _document_list(engine) -> None:
    store = engine.index.peek()
    if store is None:
        st.caption("Loading the index…" if engine.index.state != "failed" else md_escape(str(engine.index.error)))
        return
    docs = store.documents()
    st.caption(f"{len(docs)} document(s), {store.count()} passages · index {store.version}")
    for doc in docs:
        name_col, button_col = st.columns([5, 1])
        name_col.markdown(f"{md_escape(doc['source'])} · {doc['chunks']} passages")
        button_col.button("🗑", key=f"del-{doc['doc_id']}", help="Remove from the index",
                          on_click=engine.delete_document, args=(doc["doc_id"],))
    if docs and st.button("Re-index all", use_container_width=True):
        _reindex(engine)


def _reindex(engine) -> None:
    with st.spinner("Re-indexing every document…"):
        report = engine.reindex()
    st.session_state["ingest_notes"] = [("ok", f"Re-indexed: {report.chunks_added} passages")] + [
        ("warn", md_escape(r.message)) for r in report.errors]
    st.rerun()
