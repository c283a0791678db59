"""The chat: streamed answers with numbered, expandable citations, each exchange saved as it completes.

While the model loads, a question gets the retrieval-only answer at once and then the generated
answer in the same reply. The Stop button interrupts the stream (a Streamlit rerun); what arrived
is kept, marked as stopped, and never cached. The tab's messages live in its session state; each
finished exchange is also saved in the engine's conversation history (unless HISTORY=off), and the
conversation's id is put in the page's URL (`?chat=...`), so a reload or a restarted server reopens it.
"""

from __future__ import annotations

import threading

import streamlit as st

from rag import Done, Error, HistoryError, Hits, Notice, Status, Token, history_owner

from . import documents
from .text import md_escape, safe_markdown, safe_stream

HISTORY_TURNS = 4  # question/answer pairs offered to the engine; its prompt budget trims further
UNWIND_WAIT_S = 5.0


def render(engine, question: str | None, viewer=None) -> None:
    wanted = st.query_params.get("chat")
    if wanted and wanted != st.session_state.get("conversation") and engine.history is not None:
        open_conversation(engine, wanted, viewer)  # a reload, or a link to a saved conversation
    messages = st.session_state.setdefault("messages", [])
    # Stop (any click) makes Streamlit start a new run at once while the interrupted one is still
    # unwinding; wait for it to store its partial answer before drawing the history.
    answering = st.session_state.setdefault("answering", threading.Lock())
    if answering.acquire(timeout=UNWIND_WAIT_S):
        answering.release()
    for message in messages:
        _show(message)
    if question and question.strip():
        _answer(engine, messages, question.strip(), viewer)


def _show(message: dict) -> None:
    with st.chat_message(message["role"]):
        if message["role"] == "user":
            st.markdown(md_escape(message["content"]))
            return
        st.markdown(safe_markdown(message["content"]))
        if message.get("draft"):
            _draft(message["draft"], message.get("draft_label", ""))
        _sources(message.get("sources", []), set(message.get("cited", [])), message.get("attributed"))
        if message.get("meta"):
            st.caption(message["meta"])


def draft_label(done: Done) -> str:
    if done.extra.get("off_question"):
        return "The model's answer, withdrawn: the passage it comes from is about something else"
    if done.extra.get("withdrawn"):
        return "The model's answer, withdrawn: its words are not in your documents"
    n = done.extra.get("dropped_sentences", 0)
    return f"The model's full answer: {n} sentence{'s' if n != 1 else ''} not found in your documents removed"


def _draft(text: str, label: str) -> None:
    """The model's answer before the answer check removed what no passage supports, kept visible as such."""
    with st.expander(label):
        st.text(text)


def _sources(sources: list[dict], cited: set[int], attributed: int | None = None) -> None:
    """The passages the answer cites first, marked; then the ones merely retrieved. `attributed`: the
    model cited nothing and this passage holds most of its answer's words (the engine named it)."""
    for src in sorted(sources, key=lambda s: s["n"] not in cited):
        page = f" · page {src['page']}" if src.get("page") else ""
        found = src.get("found_by") or f"score {src['score']:.2f}"  # e.g. "dense 0.61 + BM25 8.20"
        mark = (
            " · 📌 the answer's words are from here"
            if src["n"] == attributed
            else " · 📌 cited in the answer"
            if src["n"] in cited
            else ""
        )
        with st.expander(f"[{src['n']}] {md_escape(src['source'])}{page} · {found}{mark}"):
            st.text(src["text"])  # plain text: never Markdown or HTML from a document


class _Stream:
    """Feeds tokens to st.write_stream and keeps every other event for after the stream."""

    def __init__(self, status_box):
        self.status_box = status_box
        self.parts: list[str] = []
        self.sources: list[dict] = []
        self.done: Done | None = None
        self.error: str | None = None

    def tokens(self, events):
        for event in events:
            if isinstance(event, Token):
                self.parts.append(event.text)
                yield event.text
            elif isinstance(event, Notice):  # a backend failed mid-answer: the note goes where the text stopped
                note = f"\n\n*({md_escape(event.text)})*\n\n"
                self.parts.append(note)
                yield note
            elif isinstance(event, Status):
                self.status_box.caption(_status_text(event))
            elif isinstance(event, Hits):
                self.sources = [
                    {
                        "n": p.n,
                        "source": p.source,
                        "page": p.page,
                        "score": p.score,
                        "found_by": p.found_by,
                        "text": p.text,
                    }
                    for p in event.hits
                ]
            elif isinstance(event, Done):
                self.done = event
            elif isinstance(event, Error):
                self.error = event.message


def _status_text(event: Status) -> str:
    if event.stage == "queued":
        return f"⏳ Waiting for another answer to finish — {event.position} ahead of you"
    by = f" ({event.detail})" if event.detail.startswith("openai:") else ""
    return {
        "retrieving": "🔎 Searching your documents…",
        "generating": f"✍️ Writing the answer…{by}",
        "loading": f"⏳ Loading the {event.detail}…",
        "failover": f"↪️ {event.detail}",
    }.get(event.stage, event.stage)


def meta_line(done: Done, collections=()) -> str:
    """The caption under an answer (Markdown): how it was made, and the collections searched."""
    within = f" · within {md_escape(', '.join(collections))}" if collections else ""
    return _made(done) + within


def _made(done: Done) -> str:
    if done.retrieval_only:
        return f"retrieval only · retrieval {done.retrieval_ms:.0f} ms"
    by = [f"by {done.backend}"] if done.backend else []
    if done.cache:
        return " · ".join([f"cache hit ({done.cache})", *by, f"{done.total_ms:.0f} ms"])
    parts = ["cache miss", *by, f"retrieval {done.retrieval_ms:.0f} ms"]
    if done.first_token_ms is not None:
        parts.append(f"first token {done.first_token_ms:.0f} ms")
    parts += [f"{done.tokens_per_s:.1f} tokens/s", f"{done.prompt_tokens} prompt tokens"]
    if done.reason:
        parts.append(done.reason)
    return " · ".join(parts)


def _run(engine, question: str, history: list[dict], wait: bool, record: dict, key: str, viewer=None) -> _Stream:
    status_box, stop_box = st.empty(), st.empty()
    stop_box.button("⏹ Stop", key=key, help="Stop generating; the text so far is kept")
    stream = _Stream(status_box)
    events = engine.ask(
        question, history, wait_for_model=wait, collections=record.get("collections", ()), viewer=viewer
    )
    record["stream"] = stream
    box = st.empty()
    try:
        with box.container():
            st.write_stream(safe_stream(stream.tokens(events)))
    finally:
        events.close()  # on Stop (a rerun) this releases the model lock at once
    status_box.empty()
    stop_box.empty()
    if stream.error:
        st.error(stream.error)
    if stream.done and stream.done.extra.get("draft"):  # the streamed draft gives way to the checked answer
        box.markdown(safe_markdown(stream.done.answer))
        _draft(stream.done.extra["draft"], draft_label(stream.done))
    done = stream.done
    _sources(stream.sources, set(done.cited) if done else set(), done.extra.get("attributed") if done else None)
    if stream.done:
        st.caption(meta_line(stream.done, record.get("collections", ())))
    return stream


def _answer(engine, messages: list[dict], question: str, viewer=None) -> None:
    messages.append({"role": "user", "content": question})
    _show(messages[-1])
    # earlier exchanges exactly as the engine sent them (Done.turn), so llama.cpp reuses their KV cache
    turns = [m["turn"] for m in messages[:-1] if m.get("turn")][-HISTORY_TURNS:]
    history = [message for turn in turns for message in turn]
    record: dict = {"role": "assistant", "content": "", "sources": [], "meta": "", "collections": documents.scope()}
    turn = len(messages)
    with st.session_state["answering"]:
        try:
            _reply(engine, question, history, record, turn, viewer)
        finally:
            if _record(messages, record):
                _save(engine, question, record, viewer)


def _save(engine, question: str, record: dict, viewer=None) -> None:
    """Save the exchange in the conversation history; a failure is shown and the chat goes on."""
    if engine.history is None:
        return
    try:
        conversation = engine.history.add(
            st.session_state.get("conversation"), question, record, owner=history_owner(viewer)
        )
    except HistoryError as exc:
        st.warning(f"This exchange was not saved: {md_escape(str(exc))}")
        return
    st.session_state["conversation"] = conversation
    st.query_params["chat"] = conversation


def open_conversation(engine, conversation_id: str, viewer=None) -> None:
    """Show a saved conversation as it was (answers, sources, citations) and continue it."""
    try:
        conv = engine.history.get(conversation_id, history_owner(viewer))
    except HistoryError as exc:
        st.session_state["history_notice"] = str(exc)
        return
    if conv is None:
        st.session_state["history_notice"] = "That conversation is not in the history any more."
        clear()
        return
    messages: list[dict] = []
    for exchange in conv.exchanges:
        messages += [{"role": "user", "content": exchange.question}, {"role": "assistant", **exchange.record}]
    st.session_state["messages"] = messages
    st.session_state["conversation"] = conv.id
    st.query_params["chat"] = conv.id


def _reply(engine, question: str, history: list[dict], record: dict, turn: int, viewer=None) -> None:
    with st.chat_message("assistant"):
        stream = _run(engine, question, history, False, record, f"stop-{turn}-a", viewer)
        if stream.done and stream.done.retrieval_only and engine.model_loading():
            st.caption("The model is still loading — its answer follows here when it is ready.")
            st.divider()
            _run(engine, question, history, True, record, f"stop-{turn}-b", viewer)


def _record(messages: list[dict], record: dict) -> bool:
    """Keep the answer in the session history, also when Stop interrupted it; False when nothing
    arrived to keep."""
    stream: _Stream | None = record.pop("stream", None)
    if stream is None:
        return False
    record["content"] = "".join(stream.parts).strip() or (stream.error or "")
    if stream.done is not None and stream.done.extra.get("draft"):
        record["content"], record["draft"] = stream.done.answer, stream.done.extra["draft"]
        record["draft_label"] = draft_label(stream.done)
    record["sources"] = stream.sources
    if stream.done is None and stream.error is None:
        record["content"] += "\n\n*(stopped)*"
    elif stream.done is not None:
        record["meta"] = meta_line(stream.done, record.get("collections", ()))
        record["turn"] = stream.done.turn
        record["cited"] = stream.done.cited
        record["attributed"] = stream.done.extra.get("attributed")
        done = stream.done
        record["backend"], record["cache"] = done.backend, done.cache
        record["timings"] = {
            "retrieval_ms": done.retrieval_ms,
            "first_token_ms": done.first_token_ms,
            "total_ms": done.total_ms,
            "tokens_per_s": done.tokens_per_s,
            "prompt_tokens": done.prompt_tokens,
        }
    messages.append(record)
    return True


def clear() -> None:
    """A new conversation: this tab's messages go; saved ones stay in the history."""
    st.session_state["messages"] = []
    st.session_state["conversation"] = None
    st.query_params.pop("chat", None)
