"""Sidebar documents: the collections to ask within, upload (stored under generated names, into a
collection when one is named), ingest with progress, list with each document's collections, delete,
re-index. With sign-in on, a user sees and changes their own documents and sees the shared library
and the collections others shared with them (AUTH=local: "Share a collection"); an admin can add to
the shared library, change it, and re-index."""

from __future__ import annotations

import streamlit as st

from rag import RagError

from .text import md_escape

TYPES = ["pdf", "md", "markdown", "txt", "html", "htm", "docx"]


ALL = "All documents"


def scope() -> list[str]:
    """The collections this tab asks within (empty: all documents)."""
    return list(st.session_state.get("scope") or [])


def render(engine, viewer=None) -> None:
    st.subheader("Documents")
    named = sorted(engine.collections(viewer))
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
    shared = False
    if files and viewer is not None and viewer.admin:
        shared = st.toggle(
            "Into the shared library", key=f"shared-{round_}", help="Every user can search it; only admins change it"
        )
    if files and st.button(f"Add {len(files)} file(s) to the index", type="primary"):
        chosen = " ".join(target.split())
        collection = "" if chosen.casefold() == ALL.casefold() else chosen
        st.session_state["ingest_notes"] = _ingest(engine, files, collection, viewer, shared)
        st.session_state["upload_round"] = round_ + 1
        st.rerun()
    for kind, note in st.session_state.pop("ingest_notes", []):
        (st.success if kind == "ok" else st.warning)(note)
    if viewer is not None and engine.accounts is not None:
        _sharing(engine, viewer)
    _document_list(engine, viewer)


def _sharing(engine, viewer) -> None:
    """Let another user read one of your collections (your documents in it, now and later), or stop."""
    with st.expander("Share a collection"):
        collection = st.text_input("Collection", key="share-collection", placeholder="e.g. Pump manuals")
        user = st.text_input("With user", key="share-user")
        if st.button("Share", key="share") and collection.strip() and user.strip():
            try:
                engine.accounts.share(viewer.name, collection, user.strip())
            except RagError as exc:
                st.warning(md_escape(str(exc)))
        try:
            shares = engine.accounts.shares(viewer.name)
        except RagError as exc:
            st.warning(md_escape(str(exc)))
            return
        for name, who in shares:
            st.button(
                f"Stop sharing {md_escape(name)} with {md_escape(who)}",
                key=f"unshare-{name}-{who}",
                on_click=engine.accounts.unshare,
                args=(viewer.name, name, who),
            )


def _ingest(engine, files, collection: str, viewer=None, shared: bool = False) -> list[tuple[str, str]]:
    """Store and index uploads through the engine; returns (kind, Markdown) notes."""
    bar = st.progress(0.0, text="Loading the embedder…")

    def progress(done: int, total: int, name: str) -> None:
        bar.progress(done / total, text=f"Indexing {md_escape(name)} ({done + 1}/{total})" if name else "Committing…")

    uploads = [(upload.name, upload.getvalue()) for upload in files]
    notes = engine.add_uploads(uploads, progress, collection, viewer, shared)
    bar.empty()
    return [("ok" if note.ok else "warn", md_escape(note.text)) for note in notes]


@st.fragment(run_every=3.0)
def _document_list(engine, viewer=None) -> None:
    listing = engine.documents(viewer)
    if not listing.ready:
        st.caption(md_escape(listing.problem) if listing.problem else "Loading the index…")
        return
    docs = listing.documents
    st.caption(f"{len(docs)} document(s), {listing.chunks} passages · index {listing.version}")
    named = sorted(engine.collections(viewer))
    for doc in docs:
        name_col, tag_col, button_col = st.columns([4, 1, 1])
        tags = f" · {', '.join(md_escape(c) for c in doc['collections'])}" if doc["collections"] else ""
        library = ""
        if viewer is not None and doc["owner"] != viewer.name:
            library = f" · shared by {md_escape(doc['owner'])}" if doc["owner"] else " · shared library"
        name_col.markdown(f"{md_escape(doc['source'])} · {doc['chunks']} passages{tags}{library}")
        if viewer is not None and doc["owner"] != viewer.name and not (viewer.admin and not doc["owner"]):
            continue  # the shared library (for users) and others' shared collections: read-only
        with tag_col.popover("🏷", help="Collections"):
            if named:
                st.pills(
                    "Collections",
                    sorted({*named, *doc["collections"]}),
                    default=doc["collections"],
                    selection_mode="multi",
                    key=f"coll-{doc['doc_id']}",
                    on_change=_move,
                    args=(engine, doc["doc_id"], viewer),
                )
            st.text_input(
                "Add to a new collection", key=f"new-{doc['doc_id']}", on_change=_add, args=(engine, doc, viewer)
            )
        button_col.button(
            "🗑", key=f"del-{doc['doc_id']}", help="Remove from the index", on_click=_delete, args=(engine, doc, viewer)
        )
    if docs and (viewer is None or viewer.admin) and st.button("Re-index all", use_container_width=True):
        _reindex(engine, viewer)


def _move(engine, doc_id: str, viewer=None) -> None:
    """Put the document in the collections its selector now names."""
    _set(engine, doc_id, st.session_state.get(f"coll-{doc_id}") or [], viewer)


def _add(engine, doc: dict, viewer=None) -> None:
    """Put the document in the collection typed for it too."""
    name = " ".join(str(st.session_state.get(f"new-{doc['doc_id']}") or "").split())
    if name:
        _set(engine, doc["doc_id"], [*doc["collections"], name], viewer)
    st.session_state[f"new-{doc['doc_id']}"] = ""


def _set(engine, doc_id: str, names: list[str], viewer=None) -> None:
    try:
        engine.set_collections(doc_id, names, viewer)
    except RagError as exc:
        st.session_state["ingest_notes"] = [("warn", md_escape(str(exc)))]


def _delete(engine, doc: dict, viewer=None) -> None:
    try:
        engine.delete_document(doc["doc_id"], viewer)
    except RagError as exc:
        st.session_state["ingest_notes"] = [("warn", md_escape(str(exc)))]


def _reindex(engine, viewer=None) -> None:
    with st.spinner("Re-indexing every document…"):
        try:
            report = engine.reindex(viewer=viewer)
        except RagError as exc:
            st.session_state["ingest_notes"] = [("warn", md_escape(str(exc)))]
            st.rerun()
    st.session_state["ingest_notes"] = [("ok", f"Re-indexed: {report.chunks_added} passages")] + [
        ("warn", md_escape(r.message)) for r in report.errors
    ]
    st.rerun()
