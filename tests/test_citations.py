"""Citations an answer may show, the grounding gate's measure, and the answer scorer."""

from __future__ import annotations

import pytest

from rag.answer_eval import abstains, f1, normalize, score
from rag.citations import CitationFilter, cited
from rag.evaluate import Question
from rag.grounding import NOTHING_FOUND, answer_support, attribute, evidence, support


def stream(pieces: list[str], known: set[int]) -> tuple[str, list[int]]:
    f = CitationFilter(known)
    return "".join(f.feed(p) for p in pieces) + f.finish(), f.dropped


@pytest.mark.parametrize(
    "pieces, shown, dropped",
    [
        (["Paris [1][7]."], "Paris [1].", [7]),
        (["Paris [", "1", "] and [", "9", "]."], "Paris [1] and .", [9]),  # markers split across tokens
        (["see [2, 9] and [3; 1]"], "see [2] and [3, 1]", [9]),
        (["a list [x] stays", " [1"], "a list [x] stays [1", []),  # not a marker; an unclosed one at the end
        (["no citations at all"], "no citations at all", []),
        (["[12345] is a number"], "[12345] is a number", []),  # too long to be a citation
    ],
)
def test_invented_citation_numbers_never_reach_the_screen(pieces, shown, dropped):
    assert stream(pieces, {1, 2, 3}) == (shown, dropped)


def test_cited_lists_numbers_in_order_of_first_use():
    assert cited("a [2] b [1, 2] c [3]") == [2, 1, 3] and cited("none") == []


def test_support_is_the_share_of_the_question_a_passage_covers():
    passages = ["The K7 pump impeller bolt is tightened to 38 newton-metres.", "Vacation is 25 days."]
    assert support("What is the torque of the K7 pump impeller bolt?", passages) >= 0.75
    assert support("Who founded the Byzantine navy?", passages) == 0.0
    assert support("what is it?", passages) == 1.0  # only stopwords: nothing to check


def test_answer_support_is_the_share_of_the_answers_own_words_found_in_the_passages():
    passages = ["The K7 pump impeller bolt is tightened to 38 newton-metres.", "Vacation is 25 days."]
    question = "What torque is the K7 impeller bolt tightened to?"
    assert answer_support("It is tightened to 38 newton-metres [1].", question, passages) == 1.0
    # invented: "45", "foot", "pounds" and "1998" occur in no passage (the question's words do not count)
    assert answer_support("The K7 bolt takes 45 foot pounds since 1998.", question, passages) < 0.3
    assert answer_support("The K7 impeller bolt is tightened to.", question, passages) == 0.0  # an echo
    assert answer_support("Yes.", "Is the bolt tightened?", passages) is None  # nothing to check
    # a copied passage label is not an answer found in the passage
    assert answer_support("The answer is: [1] pump-manual.md", question, passages, ["pump-manual.md"]) == 0.0
    assert abstains("문서에서 찾을 수 없습니다.") and abstains("The passages do not say.")


def test_an_uncited_answer_is_attributed_to_the_passage_its_words_are_from():
    passages = [
        (1, "Vacation is 27 days per year.", "leave.md"),
        (2, "The K7 pump impeller bolt is tightened to 38 newton-metres.", "pump.md"),
    ]
    question = "What torque is the K7 impeller bolt tightened to?"
    assert attribute("It is tightened to 38 newton-metres.", question, passages) == 2
    assert attribute("It is 45 foot pounds.", question, passages) is None  # from no passage: no source
    assert attribute("The answer is: pump.md", question, passages) is None  # a label is not a source


def test_the_scorer_reads_gold_answers_citations_and_abstentions():
    q = Question("In what country is Normandy located?", ["France"], "normans.md")
    passages = {1: "Normandy is a region in France.", 2: "Rollo was a Viking."}
    s = score(q, "Normandy is in France [1]. It was settled by Vikings [2][4].", passages, 120.0, 900.0)
    assert s.contains_gold and s.cited == [1, 2, 4] and s.invalid_citations == [4] and s.cited_gold
    assert s.f1 == pytest.approx(f1("Normandy is in France .", "France")) and not s.exact
    assert score(q, "France.", passages, None, 1.0).exact
    impossible = Question("Who named Normandy in 1200?", [], "normans.md", impossible=True)
    assert score(impossible, NOTHING_FOUND, passages, None, 1.0).abstained
    # "nothing found" quoting the passage that holds the gold is still no answer
    quoted = score(
        q, NOTHING_FOUND + " The closest passages:\n\n[1] *normans.md*: Normandy is in France.", passages, None, 1.0
    )
    assert quoted.abstained and not quoted.contains_gold and quoted.f1 == 0.0
    assert score(impossible, "The passages do not mention who named it.", passages, None, 1.0).abstained
    assert not abstains("Rollo named it in 911 [2].")
    assert normalize("The  Normans!") == "normans"


MANUAL = (
    "Maintenance. The torque for the K7 impeller bolt is 38 newton-metres. Use a calibrated wrench. "
    "Staff notes. The canteen opens at 8 am. New staff get 25 vacation days in their first year."
)


def test_evidence_is_how_much_of_the_question_the_answers_sentence_and_its_neighbours_cover():
    asked = "What is the torque for the K7 impeller bolt?"
    assert evidence("38 newton-metres [1].", asked, [MANUAL]) == 1.0
    # the same span offered for a question the passage does not answer: its sentences are about a bolt
    off = evidence("38 newton-metres.", "How many sick days do contractors get?", [MANUAL])
    assert off is not None and off < 0.3
    # the right span for it sits two sentences further on, and is found there
    assert evidence("25 vacation days.", "How many vacation days do new staff get?", [MANUAL]) > 0.8
    assert evidence("An answer from nowhere: 1492.", "When?", [MANUAL]) == 0.0  # no sentence holds its words
    assert evidence("The K7 impeller bolt.", asked, [MANUAL]) is None  # it adds no word: nothing to locate
