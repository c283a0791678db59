"""Sidebar documents: the collections to ask within, upload (stored under generated names, into a
collection when one is named), ingest with progress, list with each document's collections, delete,
re-index."""

from __future__ import annotations

import streamlit as st

from rag import RagError

from .text import md_escape

TYPES = ["pdf", "md", "markdown", "txt", "html", "htm", "docx"]


ALL = "All documents"


def scope() -> list[str]:
    """The collections this tab asks within (empty: all documents)."""
    return list(st.session_state.get("scope") or [])


def render(engine) -> None:
    st.subheader("Documents")
    named = sorted(engine.collections())
    st.multiselect(
        "Ask within",
        [*named, *(c for c in scope() if c not in named)],
        key="scope",
        placeholder=ALL,
        help="Answers come only from documents in these collections; none chosen: all documents",
    )
    round_ = st.session_state.setdefault("upload_round", 0)
    files = st.file_uploader(
        "Add documents",
        type=TYPES,
        accept_multiple_files=True,
        key=f"uploads-{round_}",
        help=f"PDF, Markdown, HTML, Word or text; up to {engine.settings.max_upload_mb} MB each",
    )
    target = st.selectbox(
        "Into collection",
        [ALL, *named],
        key=f"into-{round_}",
        accept_new_options=True,
        help="Type a new name to start a collection; every document is also in All documents",
    )
    if files and st.button(f"Add {len(files)} file(s) to the index", type="primary"):
        st.session_state["ingest_notes"] = _ingest(engine, files, "" if target in (None, ALL) else target)
        st.session_state["upload_round"] = round_ + 1
        st.rerun()
    for kind, note in st.session_state.pop("ingest_notes", []):
        (st.success if kind == "ok" else st.warning)(note)
    _document_list(engine)


def _ingest(engine, files, collection: str) -> list[tuple[str, str]]:
    """Store and index uploads through the engine; returns (kind, Markdown) notes."""
    bar = st.progress(0.0, text="Loading the embedder…")

    def progress(done: int, total: int, name: str) -> None:
        bar.progress(done / total, text=f"Indexing {md_escape(name)} ({done + 1}/{total})" if name else "Committing…")

    notes = engine.add_uploads([(upload.name, upload.getvalue()) for upload in files], progress, collection)
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
    named = sorted(engine.collections())
    for doc in docs:
        name_col, tag_col, button_col = st.columns([4, 1, 1])
        tags = f" · {', '.join(md_escape(c) for c in doc['collections'])}" if doc["collections"] else ""
        name_col.markdown(f"{md_escape(doc['source'])} · {doc['chunks']} passages{tags}")
        with tag_col.popover("🏷", help="Collections"):
            st.multiselect(
                "Collections",
                sorted({*named, *doc["collections"]}),
                default=doc["collections"],
                key=f"coll-{doc['doc_id']}",
                accept_new_options=True,
                placeholder="Only in All documents",
                on_change=_move,
                args=(engine, doc["doc_id"]),
            )
        button_col.button(
            "🗑",
            key=f"del-{doc['doc_id']}",
            help="Remove from the index",
            on_click=engine.delete_document,
            args=(doc["doc_id"],),
        )
    if docs and st.button("Re-index all", use_container_width=True):
        _reindex(engine)


def _move(engine, doc_id: str) -> None:
    """Put the document in the collections its selector now names."""
    try:
        engine.set_collections(doc_id, st.session_state.get(f"coll-{doc_id}") or [])
    except RagError as exc:
        st.session_state["ingest_notes"] = [("warn", md_escape(str(exc)))]


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
