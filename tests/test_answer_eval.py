"""`rag eval --answers` end to end: the real pipeline with a random-weight model on a small SQuAD v2 set."""

import json
from dataclasses import replace

from rag.answer_eval import EVIDENCE_THRESHOLDS, GRID_CHECKS, evaluate_answers, table

SET = {
    "data": [
        {
            "title": "Pumps",
            "paragraphs": [
                {
                    "context": "The torque for the K7 impeller bolt is 38 newton-metres. Use a calibrated wrench. "
                    "The K9 pump has no impeller bolt.",
                    "qas": [
                        {
                            "question": "What is the torque for the K7 impeller bolt?",
                            "answers": [{"text": "38 newton-metres"}],
                        },
                        {
                            "question": "What is the torque for the K9 impeller bolt?",
                            "answers": [],
                            "is_impossible": True,
                        },
                    ],
                }
            ],
        }
    ]
}


def test_eval_answers_scores_every_question_and_sweeps_both_checks(tmp_path, settings, tiny_model, embedder):
    path = tmp_path / "set.json"
    path.write_text(json.dumps(SET))
    result = evaluate_answers(path, replace(settings, model_path=tiny_model, temperature=0.0), embedder=embedder)
    s = result["summary"]
    assert (s["questions"], s["answerable"], s["impossible"], s["errors"]) == (2, 1, 1, 0)
    assert s["retrieved_gold"] == 1.0 and s["invalid_citations"] == 0
    assert (result["answer_check"], result["evidence_check"]) == (0.0, 0.0)  # off for a model one places
    assert len(result["evidence_sweep"]) == len(GRID_CHECKS) * len(EVIDENCE_THRESHOLDS)
    for answer in result["answers"]:
        assert set(answer["evidence_check"]) == {f"{t:g}/{te:g}" for t in GRID_CHECKS for te in EVIDENCE_THRESHOLDS}
        # both checks off: the grid's first cell is what the model wrote, scored
        assert answer["evidence_check"]["0/0"] == [answer["contains_gold"], answer["abstained"]]
    assert "| EVIDENCE_MIN |" in table(result) and "ANSWER_CHECK_MIN 0.3" in table(result)
