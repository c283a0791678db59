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
    if named or scope():  # pills, not a select box: its script is fetched with the page and delays it
        st.pills(
            "Ask within",
            [*named, *(c for c in scope() if c not in named)],
            selection_mode="multi",
            key="scope",
            help="Answers come only from documents in the chosen collections; none chosen: all documents",
        )
    round_ = st.session_state.setdefault("upload_round", 0)
    files = st.file_uploader(
        "Add documents",
        type=TYPES,
        accept_multiple_files=True,
        key=f"uploads-{round_}",
        help=f"PDF, Markdown, HTML, Word or text; up to {engine.settings.max_upload_mb} MB each",
    )
    target = ""
    if files:
        target = st.text_input(
            "Into collection (optional)",
            key=f"into-{round_}",
            placeholder=", ".join(named[:3]) or "e.g. HR handbook",
            help="A collection's name, new or existing; every document is also in All documents",
        )
    if files and st.button(f"Add {len(files)} file(s) to the index", type="primary"):
        chosen = " ".join(target.split())
        st.session_state["ingest_notes"] = _ingest(engine, files, "" if chosen.casefold() == ALL.casefold() else chosen)
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
            if named:
                st.pills(
                    "Collections",
                    sorted({*named, *doc["collections"]}),
                    default=doc["collections"],
                    selection_mode="multi",
                    key=f"coll-{doc['doc_id']}",
                    on_change=_move,
                    args=(engine, doc["doc_id"]),
                )
            st.text_input("Add to a new collection", key=f"new-{doc['doc_id']}", on_change=_add, args=(engine, doc))
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
    _set(engine, doc_id, st.session_state.get(f"coll-{doc_id}") or [])


def _add(engine, doc: dict) -> None:
    """Put the document in the collection typed for it too."""
    name = " ".join(str(st.session_state.get(f"new-{doc['doc_id']}") or "").split())
    if name:
        _set(engine, doc["doc_id"], [*doc["collections"], name])
    st.session_state[f"new-{doc['doc_id']}"] = ""


def _set(engine, doc_id: str, names: list[str]) -> None:
    try:
        engine.set_collections(doc_id, names)
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
