"""Sidebar conversations: new chat, search, the saved list (newest first), and for the open one
rename, export (Markdown, JSON) and delete. Titles are the user's words: always shown as plain text.
With sign-in on, each user's own conversations only (the store is asked for the viewer's)."""

from __future__ import annotations

from functools import partial

import streamlit as st

from rag import HistoryError, export_file_name, history_owner, to_json, to_markdown

from . import chat
from .text import md_escape

SHOWN = 15  # conversations listed at first (each is a button the browser draws with the page); "Show more" adds as many


def render(engine, viewer=None) -> None:
    st.subheader("Conversations")
    st.button("➕ New chat", on_click=chat.clear, use_container_width=True)
    if notice := st.session_state.pop("history_notice", None):
        st.warning(md_escape(notice))
    if engine.history is None:
        st.caption("History is off (HISTORY=off): conversations are not saved.")
        return
    search = st.text_input(
        "Search conversations", key="chat_search", placeholder="Search conversations", label_visibility="collapsed"
    )
    shown = st.session_state.setdefault("conversations_shown", SHOWN)
    try:
        summaries = engine.history.list(search, limit=shown + 1, owner=history_owner(viewer))
    except HistoryError as exc:
        st.warning(md_escape(str(exc)))
        return
    current = st.session_state.get("conversation")
    if not summaries:
        st.caption("No conversation matches." if search.strip() else "Saved conversations will be listed here.")
    more, summaries = len(summaries) > shown, summaries[:shown]
    for summary in summaries:
        st.button(
            md_escape(summary.title),
            key=f"conv-{summary.id}",
            help=f"{summary.exchanges} exchange(s)",
            type="primary" if summary.id == current else "secondary",
            on_click=chat.open_conversation,
            args=(engine, summary.id, viewer),
            use_container_width=True,
        )
    if more:
        st.button("Show more", on_click=_show_more, help="Older conversations; or search for them")
    if current:
        _manage(engine, current, history_owner(viewer))


def _show_more() -> None:
    st.session_state["conversations_shown"] += SHOWN


def _manage(engine, conversation_id: str, owner: str) -> None:
    try:
        conv = engine.history.get(conversation_id, owner)
    except HistoryError as exc:
        st.warning(md_escape(str(exc)))
        return
    if conv is None:
        return
    with st.expander("This conversation"):
        title = st.text_input("Title", value=conv.title, key=f"title-{conv.id}")
        if title != conv.title and st.button("Rename", key=f"rename-{conv.id}"):
            try:
                engine.history.rename(conv.id, title, owner)
            except HistoryError as exc:
                st.session_state["history_notice"] = str(exc)
            st.rerun()
        left, right = st.columns(2)
        # the export is built when a button is clicked, not on every run of the page
        for column, label, ext, mime, write in (
            (left, "Markdown", "md", "text/markdown", to_markdown),
            (right, "JSON", "json", "application/json", to_json),
        ):
            column.download_button(
                label,
                partial(_export, engine, conv.id, owner, write),
                export_file_name(conv, ext),
                mime,
                key=f"{ext}-{conv.id}",
                on_click="ignore",
            )
        st.button("🗑 Delete conversation", key=f"delete-{conv.id}", on_click=_delete, args=(engine, conv.id, owner))


def _export(engine, conversation_id: str, owner: str, write) -> str:
    """The conversation as saved now, written by `write` (to_markdown or to_json)."""
    conv = engine.history.get(conversation_id, owner)
    return write(conv) if conv is not None else ""


def _delete(engine, conversation_id: str, owner: str) -> None:
    try:
        engine.history.delete(conversation_id, owner)
    except HistoryError as exc:
        st.session_state["history_notice"] = str(exc)
        return
    chat.clear()
