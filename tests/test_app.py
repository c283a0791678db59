"""Streamlit AppTest: the real app.py and the real engine, headless, in this process."""

import threading
import time

import pytest
from streamlit.testing.v1 import AppTest

from rag.config import PROJECT_ROOT

# the whole app under AppTest, parts loading in the background; each test with its own engine
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("fresh_engine")]

APP = str(PROJECT_ROOT / "app.py")


def engine():
    from ui.resources import get_engine

    return get_engine()  # the same cached object the app run created


def wait_ready(eng, *parts, timeout=120):
    for part in parts:
        (eng.chain.local.model if part == "model" else getattr(eng, part)).get(timeout=timeout)
    deadline = time.time() + timeout
    while eng.index.get().count() == 0 and time.time() < deadline:  # the bundled sample is being indexed
        time.sleep(0.2)


def captions(at) -> str:
    return "\n".join(c.value for c in at.caption) + "\n".join(c.value for c in at.sidebar.caption)


def test_page_renders_before_anything_is_loaded(tiny_model, monkeypatch):
    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert at.title[0].value == "AI-CHAT" and len(at.chat_input) == 1
    assert "Embedder loads on first use" in captions(at)  # nothing had loaded when the page was drawn
    assert "Memory optimizer" in [s.value for s in at.sidebar.subheader]
    eng = engine()
    # the model and torch wait LOAD_DELAY_S after the first page (they compete with the browser for the cores)
    assert eng.chain.local.model.state == "idle" and eng.embedder.state == "idle"
    deadline = time.monotonic() + 30
    while eng.chain.local.model.state == "idle" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert eng.chain.local.model.state in ("loading", "ready")  # started without a question
    eng.embedder.get(timeout=60)
    at.run()
    assert not at.exception and "Embedder ready" in captions(at)


def test_chat_round_trip_with_a_generated_model(tiny_model, monkeypatch):
    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    at = AppTest.from_file(APP, default_timeout=60).run()
    wait_ready(engine(), "embedder", "model")
    at.chat_input[0].set_value("How do I add documents?").run()
    assert not at.exception
    user, assistant = at.chat_message[0], at.chat_message[-1]
    assert user.markdown[0].value == "How do I add documents?"
    assert assistant.markdown[0].value.strip()  # the streamed answer
    assert "cache miss" in assistant.caption[-1].value and "prompt tokens" in assistant.caption[-1].value
    labels = [e.label for e in assistant.expander]
    assert labels and labels[0].startswith("[1] user\\-guide\\.md")


def test_a_withdrawn_answer_shows_nothing_found_and_keeps_the_draft(tiny_model, monkeypatch):
    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    monkeypatch.setenv("ANSWER_CHECK_MIN", "0.9")  # the random model's words are in no passage
    at = AppTest.from_file(APP, default_timeout=60).run()
    wait_ready(engine(), "embedder", "model")
    at.chat_input[0].set_value("How do I add documents?").run()
    assert not at.exception
    assistant = at.chat_message[-1]
    assert assistant.markdown[0].value.startswith("I found nothing about this in your documents.")
    labels = [e.label for e in assistant.expander]
    assert labels[0].startswith("The model's answer, withdrawn") and assistant.expander[0].text[0].value.strip()
    assert "withdrawn" in assistant.caption[-1].value
    at.chat_input[0].set_value("And how do I delete one?").run()  # the history is drawn again
    first = at.chat_message[1]
    assert first.markdown[0].value.startswith("I found nothing") and "withdrawn" in first.expander[0].label


def test_retrieval_only_without_a_model():
    at = AppTest.from_file(APP, default_timeout=60).run()
    wait_ready(engine(), "embedder")
    at.chat_input[0].set_value("What is LOW_VRAM for?").run()
    answer = at.chat_message[-1]
    assert "Retrieval only" in answer.markdown[0].value and "no GGUF in models/" in answer.markdown[0].value
    assert answer.caption[-1].value.startswith("retrieval only")
    assert "no GGUF in models/" in captions(at)  # the model's load state says why


def test_a_cpu_crash_in_llama_cpp_is_explained_and_retrieval_goes_on(tiny_model, monkeypatch):
    """The model's probe child dies by SIGILL at its first prompt: the server stays up, says why."""
    from rag.errors import ModelError

    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    monkeypatch.setenv("AI_CHAT_FAILPOINT", "probe.decode=sigill")
    at = AppTest.from_file(APP, default_timeout=60).run()
    eng = engine()
    with pytest.raises(ModelError, match="crashed running this model on this CPU"):
        eng.chain.local.model.get(timeout=120)
    wait_ready(eng, "embedder")
    at.chat_input[0].set_value("What is LOW_VRAM for?").run()
    assert not at.exception
    answer = at.chat_message[-1].markdown[0].value
    assert "Retrieval only" in answer and "SIGILL: an instruction this CPU does not allow" in answer
    assert "crashed running this model on this CPU" in captions(at)


def test_quick_answer_while_loading_then_the_full_answer(tiny_model, monkeypatch, tmp_path):
    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    loaded = tmp_path / "disk-answered"  # the model's load waits for this file: a slow disk
    monkeypatch.setenv("AI_CHAT_FAILPOINT", f"model.load=wait:{loaded}")
    at = AppTest.from_file(APP, default_timeout=60).run()
    eng = engine()
    wait_ready(eng, "embedder")
    assert eng.model_loading()  # loading since the first run, held by the failpoint
    threading.Timer(1.5, loaded.touch).start()  # the disk answers while the question is asked
    at.chat_input[0].set_value("How do I add documents?").run()
    answer = at.chat_message[-1]
    texts = [m.value for m in answer.markdown]
    assert texts[0].startswith("**Retrieval only**") and "still loading" in texts[0]
    assert any("its answer follows" in c.value for c in answer.caption)
    assert "cache miss" in answer.caption[-1].value  # the generated answer came after


def test_panel_shows_the_plan_and_a_hit_rate_after_a_repeated_question(tiny_model, monkeypatch):
    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    at = AppTest.from_file(APP, default_timeout=60).run()
    wait_ready(engine(), "embedder", "model")
    at.chat_input[0].set_value("What is the answer cache?").run()
    at.chat_input[0].set_value("What is the answer cache?").run()
    assert "cache hit (exact)" in at.chat_message[-1].caption[-1].value
    at.run()  # the panel is drawn before the chat; in a browser its fragment refreshes every 2 s
    panel = "\n".join(m.value for m in at.sidebar.markdown)
    assert "**n_ctx = 4096**" in panel and "**n_gpu_layers = 0**" in panel and "**n_threads =" in panel
    assert "hit rate 50%" in panel and "1 exact" in panel
    assert "Q4_0" in panel and "KV cache 1.0 MiB" in panel
    assert "llama.cpp native build · CPU code: native" in captions(at)


def test_bad_env_value_is_shown_not_raised(monkeypatch):
    monkeypatch.setenv("N_CTX", "lots")
    at = AppTest.from_file(APP, default_timeout=30).run()
    assert not at.exception
    assert "N_CTX='lots' is not a whole number" in at.error[0].value


def test_delete_a_document_and_clear_the_chat(tiny_model, monkeypatch):
    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    at = AppTest.from_file(APP, default_timeout=60).run()
    eng = engine()
    wait_ready(eng, "embedder", "model")
    at.chat_input[0].set_value("What is the answer cache?").run()
    assert len(at.chat_message) == 2
    at.run()  # the document list (a fragment) now shows the sample
    doc = eng.index.get().documents()[0]
    at.sidebar.button(key=f"del-{doc['doc_id']}").click().run()
    assert eng.index.get().documents() == []
    next(b for b in at.sidebar.button if b.label == "➕ New chat").click().run()
    assert len(at.chat_message) == 0


def test_ui_imports_none_of_the_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import sys, ui.chat, ui.conversations, ui.documents, ui.panel, ui.resources; "
        "heavy = {'torch', 'sentence_transformers', 'llama_cpp', 'faiss', 'transformers'} & set(sys.modules); "
        "print(sorted(heavy)); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def messages(at) -> list:
    """Each chat message as the page shows it: text, expander labels, captions."""
    return [
        ([m.value for m in msg.markdown], [e.label for e in msg.expander], [c.value for c in msg.caption])
        for msg in at.chat_message
    ]


def test_a_conversation_is_saved_reopened_after_a_reload_and_continued(tiny_model, monkeypatch):
    monkeypatch.setenv("MODEL_PATH", str(tiny_model))
    at = AppTest.from_file(APP, default_timeout=60).run()
    eng = engine()
    wait_ready(eng, "embedder", "model")
    at.chat_input[0].set_value("How do I add documents?").run()
    at.chat_input[0].set_value("And how do I delete one?").run()
    chat_id = at.query_params["chat"]
    chat_id = chat_id[0] if isinstance(chat_id, list) else chat_id
    assert len(eng.history.get(chat_id).exchanges) == 2
    shown = messages(at)
    assert len(shown) == 4 and shown[1][1][0].startswith("[1] user\\-guide\\.md")  # sources with the answer

    reloaded = AppTest.from_file(APP, default_timeout=60)  # a reload: a new session, the same URL
    reloaded.query_params["chat"] = chat_id
    reloaded.run()
    assert not reloaded.exception and messages(reloaded) == shown  # answers, sources, captions as they were
    listed = reloaded.sidebar.button(key=f"conv-{chat_id}")
    assert listed.label == "How do I add documents?" and listed.proto.type == "primary"  # the open one
    reloaded.chat_input[0].set_value("Where are uploads stored?").run()
    assert len(reloaded.chat_message) == 6 and len(eng.history.get(chat_id).exchanges) == 3
    from rag import to_markdown
    from ui.conversations import _export

    exported = _export(eng, chat_id, "", to_markdown)  # what the Markdown button downloads when clicked
    assert exported.startswith("# How do I add documents?\n") and "## 3. Where are uploads stored?" in exported

    next(b for b in reloaded.sidebar.button if b.label == "➕ New chat").click().run()
    assert len(reloaded.chat_message) == 0 and "chat" not in reloaded.query_params
    reloaded.sidebar.button(key=f"conv-{chat_id}").click().run()
    assert len(reloaded.chat_message) == 6
    reloaded.sidebar.button(key=f"delete-{chat_id}").click().run()
    assert eng.history.get(chat_id) is None and len(reloaded.chat_message) == 0


def test_a_stored_question_is_shown_as_plain_text_in_the_list():
    at = AppTest.from_file(APP, default_timeout=60).run()
    wait_ready(engine(), "embedder")
    at.chat_input[0].set_value("**bold** <b>tag</b> [link](http://example.com)").run()
    at.run()
    labels = [b.label for b in at.sidebar.button if b.key and b.key.startswith("conv-")]
    assert labels == ["\\*\\*bold\\*\\* \\<b\\>tag\\</b\\> \\[link\\]\\(http://example\\.com\\)"]


def test_a_damaged_history_does_not_stop_the_chat(monkeypatch, isolated):
    history = isolated / "data" / "conversations.sqlite"
    history.parent.mkdir(parents=True)
    history.write_bytes(b"not a database " * 100)
    at = AppTest.from_file(APP, default_timeout=60).run()
    wait_ready(engine(), "embedder")
    at.chat_input[0].set_value("What is LOW_VRAM for?").run()
    assert not at.exception and "Retrieval only" in at.chat_message[-1].markdown[0].value
    warnings = "\n".join(w.value for w in at.warning)
    assert "This exchange was not saved" in warnings and "move it aside" in warnings
    assert history.read_bytes() == b"not a database " * 100


def test_history_off_saves_nothing(monkeypatch, isolated):
    monkeypatch.setenv("HISTORY", "off")
    at = AppTest.from_file(APP, default_timeout=60).run()
    wait_ready(engine(), "embedder")
    at.chat_input[0].set_value("What is LOW_VRAM for?").run()
    assert len(at.chat_message) == 2 and "chat" not in at.query_params
    assert "History is off" in captions(at)
    assert not (isolated / "data" / "conversations.sqlite").exists()


def test_ask_within_a_collection_and_move_a_document(monkeypatch, tmp_path):
    at = AppTest.from_file(APP, default_timeout=60).run()
    eng = engine()
    wait_ready(eng, "embedder")
    for name, text, collection in (
        ("hr.txt", "The access code for the archive room is KESTREL-4471.", "HR"),
        ("pumps.txt", "The access code for the pump room is OSPREY-9920.", "Pumps"),
    ):
        (tmp_path / name).write_text(text)
        eng.ingest([tmp_path / name], collection=collection)
    at.run()
    scope = at.sidebar.button_group(key="scope")
    assert list(scope.options) == ["HR", "Pumps"] and scope.value == []
    scope.set_value(["Pumps"]).run()
    at.chat_input[0].set_value("What is the access code?").run()
    answer = at.chat_message[-1]
    labels = [e.label for e in answer.expander]
    assert labels and all("pumps\\.txt" in label for label in labels), labels
    assert "within Pumps" in answer.caption[-1].value
    hr = next(d for d in eng.documents().documents if d["source"] == "hr.txt")
    at.sidebar.button_group(key=f"coll-{hr['doc_id']}").set_value(["HR", "Pumps"]).run()  # the document's 🏷
    assert next(d for d in eng.documents().documents if d["source"] == "hr.txt")["collections"] == ["HR", "Pumps"]
    at.sidebar.text_input(key=f"new-{hr['doc_id']}").input("Archive").run()  # a new collection, typed
    assert next(d for d in eng.documents().documents if d["source"] == "hr.txt")["collections"] == [
        "Archive",
        "HR",
        "Pumps",
    ]
