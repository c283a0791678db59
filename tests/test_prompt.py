import pytest

from rag.config import Settings
from rag.index import Hit
from rag.llm import planner as memory
from rag.llm.gguf import read_meta
from rag.llm.local import LocalLLM
from rag.prompt import SYSTEM_PROMPT, build, turn_record


@pytest.fixture(scope="module")
def llm(tiny_model):
    meta = read_meta(tiny_model)
    return LocalLLM(tiny_model, memory.plan(meta, Settings.from_env({}), memory.probe()), meta.chat_template)


def hits(n: int, words: int) -> list[Hit]:
    return [
        Hit(i, 1 - i / 100, " ".join(f"passage{i} word{j}" for j in range(words)), f"doc{i}.pdf", i + 1, "d")
        for i in range(n)
    ]


def test_everything_fits_when_there_is_room(llm):
    built = build("What is in doc 0?", [], hits(3, 10), llm.count_chat, 4000)
    assert built.messages[0] == {"role": "system", "content": SYSTEM_PROMPT}
    user = built.messages[-1]["content"]
    assert user.startswith("Passages:\n\n[1] (doc0.pdf, page 1) ") and "\n\n[3] (doc2.pdf, page 3) " in user
    assert user.endswith("Question: What is in doc 0?") and built.dropped_hits == 0


@pytest.mark.parametrize("room", [40, 400, 1200])
def test_never_over_budget(llm, room):
    budget = llm.count_chat(build("What next?", [], [], llm.count_chat, 10**6).messages) + room
    history = [{"role": r, "content": "earlier turn " * 60} for r in ("user", "assistant") * 4]
    built = build("What next?", history, hits(10, 80), llm.count_chat, budget)
    assert built.n_tokens == llm.count_chat(built.messages) <= budget
    assert built.messages[0]["content"] == SYSTEM_PROMPT
    kept = [p.chunk_id for p in built.citations]
    assert kept == sorted(kept)  # lowest-ranked passages go first
    assert built.dropped_hits + built.dropped_turns > 0


def test_oldest_history_goes_before_passages(llm):
    history = [
        {"role": "user", "content": f"old question {i} " * 30}
        if i % 2 == 0
        else {"role": "assistant", "content": f"old answer {i} " * 30}
        for i in range(6)
    ]
    full = llm.count_chat(build("Q?", history, hits(4, 20), llm.count_chat, 100000).messages)
    built = build("Q?", history, hits(4, 20), llm.count_chat, full - 50)
    assert built.dropped_turns == 2 and built.dropped_hits == 0
    assert built.messages[1]["content"].startswith("old question 2")


def test_follow_up_reuses_earlier_passages_with_their_numbers(llm):
    first = build("What is in doc 0?", [], hits(3, 10), llm.count_chat, 4000)
    history = turn_record(first, "What is in doc 0?", " An answer [1].")
    overlapping = hits(4, 10)[1:]  # docs 1, 2 were sent already; doc 3 is new
    second = build("And doc 3?", history, overlapping, llm.count_chat, 4000)
    assert [p.n for p in second.citations] == [2, 3, 4] and [p.n for p in second.new_passages] == [4]
    assert second.messages[:3] == first.messages[:2] + [{"role": "assistant", "content": " An answer [1]."}]
    assert second.messages[-1]["content"].startswith("Passages:\n\n[4] (doc3.pdf, page 4) ")
    again = build("Say more?", history, hits(3, 10), llm.count_chat, 4000)
    assert again.new_passages == []
    assert again.messages[-1]["content"] == "(Use the passages above.)\n\nQuestion: Say more?"
