import json
import threading
import time
from dataclasses import replace

import pytest

from rag.engine import Engine
from rag.events import Done, Error, Hits, Status, Token
from rag.grounding import NOTHING_FOUND


def run(engine, question, **kw):
    events = list(engine.ask(question, **kw))
    done = [e for e in events if isinstance(e, (Done, Error))]
    assert len(done) == 1, events
    hits = [e for e in events if isinstance(e, Hits)]
    return events, done[0], hits[-1].hits if hits else []


@pytest.fixture
def engine(settings, embedder, tiny_model, corpus):
    eng = Engine(replace(settings, model_path=tiny_model, temperature=0.0), embedder=embedder)  # greedy: repeatable
    report = eng.ingest([corpus[0]])
    assert not report.errors
    eng.chain.local.model.get(timeout=60)
    return eng


def test_answer_streams_with_cited_hits_then_repeats_from_cache(engine):
    events, done, hits = run(engine, "What is the backup passphrase for the archive?", wait_for_model=True)
    assert isinstance(events[0], Status) and events[0].stage == "retrieving"
    assert "ZEBRAQUARTZ" in hits[0].text and hits[0].source == "notes.txt"
    tokens = [e.text for e in events if isinstance(e, Token)]
    assert len(tokens) > 1 and "".join(tokens).strip() == done.answer
    assert not done.retrieval_only and done.cache is None and done.prompt_tokens > 0
    assert done.first_token_ms is not None and done.finish_reason in ("stop", "length")

    _, again, again_hits = run(engine, "what is the backup passphrase for the archive", wait_for_model=True)
    assert again.cache == "exact" and again.answer == done.answer and again.total_ms < 50
    assert [h.chunk_id for h in again_hits] == [h.chunk_id for h in hits]
    stats = engine.status().cache
    assert stats.exact == 1 and stats.miss == 1 and stats.hit_rate == 0.5


def test_new_index_version_makes_old_answers_unreachable(engine, tmp_path):
    _, first, _ = run(engine, "Which code opens the service hatch?", wait_for_model=True)
    extra = tmp_path / "extra.txt"
    extra.write_text("An unrelated note about the garden shed and its blue door.")
    engine.ingest([extra])
    _, second, _ = run(engine, "Which code opens the service hatch?", wait_for_model=True)
    assert first.cache is None and second.cache is None


def test_cancelled_answer_is_not_cached(engine):
    cancel = threading.Event()
    events = []
    for event in engine.ask("Tell me about the parking permit", cancel=cancel, wait_for_model=True):
        events.append(event)
        if isinstance(event, Token):
            cancel.set()
    done = events[-1]
    assert isinstance(done, Done) and done.finish_reason == "cancelled" and done.reason == "stopped by the user"
    _, again, _ = run(engine, "Tell me about the parking permit", wait_for_model=True)
    assert again.cache is None


def test_follow_up_reuses_the_first_turns_kv_cache(engine):
    _, first, hits = run(engine, "How is the service hatch key labelled?", wait_for_model=True)
    assert first.turn and first.turn[0]["passages"] and [p.n for p in hits] == list(range(1, len(hits) + 1))
    _, second, _ = run(engine, "And where is that key kept?", history=first.turn, wait_for_model=True)
    first_uncached = first.prompt_tokens - first.reused_tokens
    second_uncached = second.prompt_tokens - second.reused_tokens
    assert second.prompt_tokens > first.prompt_tokens  # the whole first exchange is in the prompt
    assert second_uncached <= 0.3 * first_uncached, (first_uncached, second_uncached)


def test_pdf_citation_has_its_page(engine):
    _, _, hits = run(engine, "How is the service hatch key labelled?", wait_for_model=True)
    top = hits[0]
    assert "VELVETORCHID" in top.text and (top.source, top.page) == ("manual.pdf", 2)


def test_no_model_answers_retrieval_only(settings, embedder, corpus):
    engine = Engine(settings, embedder=embedder)
    engine.ingest([corpus[0]])
    events, done, hits = run(engine, "What is the guest Wi-Fi code?", wait_for_model=True)
    assert done.retrieval_only and "no GGUF in models/" in done.reason
    assert "MARBLEFALCON" in done.answer and done.answer.startswith("**Retrieval only**")
    assert "[1]" in done.answer and hits
    assert engine.status().part("model").state == "failed"


def test_model_still_loading_gives_retrieval_only_then_the_full_answer(
    settings, embedder, tiny_model, corpus, monkeypatch
):
    loaded = settings.cache_dir.parent / "disk-answered"  # the load waits for this file: a slow disk
    monkeypatch.setenv("AI_CHAT_FAILPOINT", f"model.load=wait:{loaded}")
    engine = Engine(replace(settings, model_path=tiny_model), embedder=embedder, start=False)
    engine.start(("model",))
    engine.ingest([corpus[0]])
    _, done, _ = run(engine, "What is the conference room booking code?")
    assert done.retrieval_only and done.reason == "the model is still loading"
    assert "AMBERGLACIER" in done.answer and engine.model_loading()
    loaded.touch()
    _, full, _ = run(engine, "What is the conference room booking code?", wait_for_model=True)
    assert not full.retrieval_only and full.completion_tokens > 0


def test_broken_model_is_reported_and_chat_goes_on(settings, embedder, corpus, tmp_path):
    bad = tmp_path / "broken.gguf"
    bad.write_text("not a model")
    engine = Engine(replace(settings, model_path=bad), embedder=embedder)
    engine.ingest([corpus[0]])
    _, done, _ = run(engine, "What is the parking permit number?", wait_for_model=True)
    assert done.retrieval_only and "not a GGUF file" in done.reason and "COPPERLANTERN" in done.answer


def test_concurrent_askers_queue_and_all_finish(engine):
    lock = engine.chain.local.model.get().lock
    holder = lock.take()  # another tab is generating
    results, queued = [], {}

    def ask(i):
        for event in engine.ask(f"Question number {i} about deliveries and storage?", wait_for_model=True):
            if isinstance(event, Status) and event.stage == "queued":
                queued.setdefault(i, []).append(event.position)
            if isinstance(event, (Done, Error)):
                results.append(event)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while lock.waiting < 5 and time.time() < deadline:
        time.sleep(0.05)
    assert lock.waiting == 5
    lock.release(holder)
    for t in threads:
        t.join(120)
    assert len(results) == 4 and all(isinstance(r, Done) and not r.retrieval_only for r in results)
    assert sorted(positions[0] for positions in queued.values()) == [1, 2, 3, 4]
    assert all(p == sorted(p, reverse=True) for p in queued.values())  # places only move forward


def test_empty_question_is_an_error(engine):
    assert isinstance(list(engine.ask("   "))[-1], Error)


def test_status_has_everything_the_panel_needs(engine):
    status = engine.status()
    assert {p.name: p.state for p in status.parts} == {"embedder": "ready", "index": "ready", "model": "ready"}
    assert status.model.plan.choices["n_ctx"].reason and status.memory.rss > 0
    assert status.index.documents == 5 and status.model.quantization == "Q4_0"
    assert json.loads(json.dumps(status.as_dict(), default=str))["model"]["plan"]["choices"]["n_ctx"]["value"] > 0


def test_critical_memory_pressure_frees_caches_once(settings, caplog):
    engine = Engine(settings, start=False)
    engine.cache.stats()  # opens the cache handle
    engine.react_to_pressure("CRITICAL")
    engine.react_to_pressure("CRITICAL")
    assert not engine.cache.is_open
    assert sum("memory pressure CRITICAL" in r.message for r in caplog.records) == 1


def test_an_answer_whose_words_are_in_no_passage_is_withdrawn(settings, embedder, tiny_model, corpus):
    """The random-weight model writes words of its vocabulary, not of the passages: with the answer
    check on, its draft gives way to "nothing found" and the closest passages, and that is what is
    cached and carried into the next turn."""
    checked = replace(settings, model_path=tiny_model, temperature=0.0, answer_check_min=0.6)
    eng = Engine(checked, embedder=embedder)
    try:
        assert not eng.ingest([corpus[0]]).errors
        events, done, hits = run(eng, "What is the backup passphrase for the archive?", wait_for_model=True)
        draft = "".join(e.text for e in events if isinstance(e, Token)).strip()
        assert draft and done.extra["draft"] == draft and done.extra["withdrawn"]
        assert done.extra["answer_support"] < 0.6 and "withdrawn" in done.reason
        assert done.answer.startswith(NOTHING_FOUND) and "[1] *" in done.answer and done.cited
        assert done.turn[-1] == {"role": "assistant", "content": done.answer}
        _, again, _ = run(eng, "What is the backup passphrase for the archive?", wait_for_model=True)
        assert again.cache == "exact" and again.answer == done.answer
    finally:
        eng.close()
    # off (the default for a model other than the bundled demo): the same draft is the answer
    assert replace(settings, model_path=tiny_model).answer_check == 0.0
    assert replace(settings, model_path=tiny_model).evidence_check == 0.0


def test_the_evidence_check_withdraws_an_answer_taken_from_no_sentence_about_the_question(
    settings, tiny_model, embedder, corpus
):
    """The evidence check alone (sentence check off): the random model's words are in no passage
    sentence, so the text they come from covers none of the question, and the answer is withdrawn."""
    checked = replace(settings, model_path=tiny_model, temperature=0.0, answer_check_min=0.0, evidence_min=0.3)
    eng = Engine(checked, embedder=embedder)
    try:
        assert not eng.ingest([corpus[0]]).errors
        _, done, _ = run(eng, "What is the backup passphrase for the archive?", wait_for_model=True)
        assert done.extra["evidence"] is not None and done.extra["evidence"] < 0.3, done.extra
        assert done.extra["withdrawn"] and done.extra["off_question"] and "EVIDENCE_MIN 0.3" in done.reason
        assert done.answer.startswith(NOTHING_FOUND)
    finally:
        eng.close()
