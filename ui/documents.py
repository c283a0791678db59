"""Sidebar documents: upload (stored under generated names), ingest with progress, list, delete, re-index."""

from __future__ import annotations

import streamlit as st

from rag import RagError

from .text import md_escape

TYPES = ["pdf", "md", "markdown", "txt", "html", "htm", "docx"]


def render(engine) -> None:
    st.subheader("Documents")
    round_ = st.session_state.setdefault("upload_round", 0)
    files = st.file_uploader(
        "Add documents",
        type=TYPES,
        accept_multiple_files=True,
        key=f"uploads-{round_}",
        help=f"PDF, Markdown, HTML, Word or text; up to {engine.settings.max_upload_mb} MB each",
    )
    if files and st.button(f"Add {len(files)} file(s) to the index", type="primary"):
        st.session_state["ingest_notes"] = _ingest(engine, files)
        st.session_state["upload_round"] = round_ + 1
        st.rerun()
    for kind, note in st.session_state.pop("ingest_notes", []):
        (st.success if kind == "ok" else st.warning)(note)
    _document_list(engine)


def _ingest(engine, files) -> list[tuple[str, str]]:
    """Store and index uploads through the engine; returns (kind, Markdown) notes."""
    bar = st.progress(0.0, text="Loading the embedder…")

    def progress(done: int, total: int, name: str) -> None:
        bar.progress(done / total, text=f"Indexing {md_escape(name)} ({done + 1}/{total})" if name else "Committing…")

    notes = engine.add_uploads([(upload.name, upload.getvalue()) for upload in files], progress)
    bar.empty()
    return [("ok" if note.ok else "warn", md_escape(note.text)) for note in notes]


@st.fragment(run_every=3.0)
def _document_list(engine) -> None:
    listing = engine.documents()
    if not listing.ready:
        st.caption(md_escape(listing.problem) if listing.problem else "Loading the index…")
        return
    docs = listing.documents
    st.caption(f"{len(docs)} document(s), {listing.chunks} passages · index {listing.version}")
    for doc in docs:
        name_col, button_col = st.columns([5, 1])
        name_col.markdown(f"{md_escape(doc['source'])} · {doc['chunks']} passages")
        button_col.button(
            "🗑",
            key=f"del-{doc['doc_id']}",
            help="Remove from the index",
            on_click=engine.delete_document,
            args=(doc["doc_id"],),
        )
    if docs and st.button("Re-index all", use_container_width=True):
        _reindex(engine)


def _reindex(engine) -> None:
    with st.spinner("Re-indexing every document…"):
        try:
            report = engine.reindex()
        except RagError as exc:
            st.session_state["ingest_notes"] = [("warn", md_escape(str(exc)))]
            st.rerun()
    st.session_state["ingest_notes"] = [("ok", f"Re-indexed: {report.chunks_added} passages")] + [
        ("warn", md_escape(r.message)) for r in report.errors
    ]
    st.rerun()
