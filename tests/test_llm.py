import threading
import time

import pytest

from rag.config import Settings
from rag.errors import ModelError
from rag.llm import planner as memory
from rag.llm.base import GenerationStats
from rag.llm.gguf import read_meta
from rag.llm.local import LocalLLM
from rag.llm.ticket import TicketLock
from rag.modelgen import PRESETS, write_model

MESSAGES = [
    {"role": "system", "content": "You answer briefly."},
    {"role": "user", "content": "What colour is the sky on a clear day?"},
]


def load(path, **env) -> LocalLLM:
    meta = read_meta(path)
    plan = memory.plan(meta, Settings.from_env(env), memory.probe())
    return LocalLLM(path, plan, meta.chat_template)


@pytest.fixture(scope="module")
def llm(tiny_model):
    return load(tiny_model)


def test_streams_pieces_and_counts_tokens(llm):
    stats = GenerationStats()
    pieces = list(llm.stream(MESSAGES, 24, 0.0, stats))
    assert pieces and all(isinstance(p, str) for p in pieces)
    assert stats.prompt_tokens == llm.count_chat(MESSAGES) > 10
    assert 0 < stats.completion_tokens <= 24 and stats.finish_reason in ("stop", "length")
    assert stats.first_token_s is not None and stats.first_token_s <= stats.generate_s


def test_greedy_is_deterministic(llm):
    a = "".join(llm.stream(MESSAGES, 16, 0.0, GenerationStats()))
    b = "".join(llm.stream(MESSAGES, 16, 0.0, GenerationStats()))
    assert a == b


def test_prefix_of_the_previous_prompt_is_reused(llm):
    list(llm.stream(MESSAGES, 4, 0.0, GenerationStats()))
    follow_up = MESSAGES[:1] + [{"role": "user", "content": "And at night?"}]
    stats = GenerationStats()
    list(llm.stream(follow_up, 4, 0.0, stats))
    system_tokens = llm.count_chat(MESSAGES[:1])
    assert stats.reused_tokens >= system_tokens - 4  # the shared system prompt is not evaluated again


def test_cancel_between_tokens(llm):
    cancel, stats, got = threading.Event(), GenerationStats(), []
    for piece in llm.stream(MESSAGES, 200, 0.0, stats, cancel=cancel):  # greedy: no early EOS by chance
        got.append(piece)
        if len(got) == 3:
            cancel.set()
    assert stats.finish_reason == "cancelled" and len(got) <= 4


def test_deadline_stops_generation(llm):
    stats = GenerationStats()
    list(llm.stream(MESSAGES, 200, 0.0, stats, deadline=time.monotonic() - 1))
    assert stats.finish_reason == "timeout" and stats.completion_tokens <= 2


def test_ticket_lock_serves_in_order_and_reports_positions():
    lock, order, seen = TicketLock(), [], {}
    first = lock.take()

    def caller(name):
        ticket = lock.take()
        with lock.hold_reporting(ticket, poll=0.02) as waiting:
            seen[name] = list(waiting)
            order.append(name)

    threads = []
    for name in ("a", "b", "c"):
        threads.append(threading.Thread(target=caller, args=(name,)))
        threads[-1].start()
        time.sleep(0.1)
    assert lock.waiting == 4
    lock.release(first)
    for t in threads:
        t.join(5)
    assert order == ["a", "b", "c"]
    assert seen["c"][0] == 3 and lock.waiting == 0


def test_abandoned_ticket_does_not_block_the_queue():
    lock = TicketLock()
    holder, abandoned, later = lock.take(), lock.take(), lock.take()
    lock.release(abandoned)  # a closed tab gives up its place
    lock.release(holder)
    with lock.hold_reporting(later, poll=0.02) as waiting:
        assert list(waiting) == []


def test_concurrent_callers_queue_instead_of_crashing(llm):
    results, errors = [], []

    def ask():
        try:
            ticket = llm.lock.take()
            with llm.lock.hold_reporting(ticket) as waiting:
                list(waiting)
                stats = GenerationStats()
                results.append("".join(llm.stream(MESSAGES, 12, 0.7, stats)))
        except Exception as exc:  # the test reports any failure below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 4


def test_template_injection_in_a_gguf_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    evil = (
        "{{ cycler.__init__.__globals__.os.system('touch " + str(marker) + "') }}"
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    )
    path = write_model(tmp_path / "evil.gguf", PRESETS["tiny"], chat_template=evil)
    llm = load(path)
    assert "tried an unsafe operation, which the sandbox refused" in llm.template_fallback
    # the built-in template this vocabulary fits: it has no turn markers, so plain text
    assert llm.tokenize_chat(MESSAGES)[2].endswith("\n\nAnswer:")
    assert not marker.exists()


@pytest.mark.parametrize(
    "template, words",
    [
        # misbehaves only past the first message: the load-time render uses a multi-turn chat
        (
            "{% for m in messages %}{% if loop.index > 1 %}{{ m.__class__.__mro__ }}{% endif %}{{ m['content'] }}"
            "{% endfor %}",
            "unsafe operation",
        ),
        ("{% include 'system_prompt.j2' %}{% for m in messages %}{{ m['content'] }}{% endfor %}", "TemplateNotFound"),
    ],
)
def test_templates_that_fail_fall_back_to_a_built_in_one_with_the_reason(tmp_path, template, words):
    path = write_model(tmp_path / "odd.gguf", PRESETS["tiny"], chat_template=template)
    llm = load(path)
    assert words in llm.template_fallback and "built-in plain text" in llm.template_fallback
    long_chat = [{"role": "user", "content": "one"}, {"role": "assistant", "content": "two"}] * 3 + MESSAGES
    assert llm.count_chat(long_chat) > 0
    tokens, stops, text = llm.tokenize_chat(long_chat)
    assert "one\n\nAnswer: two\n\n" in text and "\nQuestion:" in stops  # rendered by the fallback now
    assert_generates(llm, long_chat)


def test_a_template_that_does_not_compile_is_a_clear_error(tmp_path):
    path = write_model(
        tmp_path / "typo.gguf",
        PRESETS["tiny"],
        chat_template="{% for m in messages %}{{ m['content'] | nosuchfilter }}{% endfor %}",
    )
    with pytest.raises(ModelError, match="typo.gguf: its chat template does not compile .*nosuchfilter"):
        load(path)


def test_a_template_that_fails_only_at_ask_time_falls_back_then(tmp_path):
    template = (
        "{% for m in messages %}{% if m['content'] == 'trigger' %}{{ m.__class__.__mro__ }}{% endif %}"
        "{{ m['content'] }}{% endfor %}"
    )
    llm = load(write_model(tmp_path / "late.gguf", PRESETS["tiny"], chat_template=template))
    assert llm.template_fallback == ""
    assert llm.count_chat([{"role": "user", "content": "trigger"}]) > 0
    assert "unsafe operation" in llm.template_fallback


def test_missing_template_falls_back_to_plain_text_without_turn_markers(tmp_path):
    """ChatML markers this vocabulary lacks would be plain text the model copies: a base model without
    turn tokens gets a prompt ending in 'Answer:' (tests/test_gemma.py covers a vocabulary with them)."""
    path = write_model(tmp_path / "plain.gguf", PRESETS["tiny"], chat_template=None)
    assert read_meta(path).chat_template is None
    llm = load(path)
    assert "no chat template" in llm.template_fallback and "plain text" in llm.template_fallback
    assert llm.count_chat(MESSAGES) > 0
    tokens, stops, text = llm.tokenize_chat(MESSAGES)
    assert text.endswith("\n\nAnswer:") and "<|im_start|>" not in text and "\nQuestion:" in stops
    assert_generates(llm, MESSAGES)


def assert_generates(llm, messages):
    """The chat was rendered, evaluated and decoded to a normal end (a random model may stop at once)."""
    stats = GenerationStats()
    "".join(llm.stream(messages, 4, 0.0, stats))
    assert stats.prompt_tokens > len(messages) and stats.finish_reason in ("stop", "length")
    assert stats.completion_tokens == 4 or stats.finish_reason == "stop"


def test_a_caller_stop_string_ends_the_answer_before_it(llm):
    with llm.queue():
        whole = "".join(llm.stream(MESSAGES, 24, 0.0, GenerationStats()))
    assert len(whole) > 12, whole
    marker = whole[6:10]  # text the greedy model writes: stopping on it must cut there
    stats = GenerationStats()
    with llm.queue():
        cut = "".join(llm.stream(MESSAGES, 24, 0.0, stats, stop=[marker]))
    assert cut == whole[: whole.find(marker)] and stats.finish_reason == "stop"
