"""Self-corrected training questions: the retraction names another sentence of the passage, the
repair is the question itself, and the label does not move."""

from __future__ import annotations

from ragpress.training.corrections import EDITING_PHRASES, corrected_questions
from ragpress.training.qa import QAItem, answer_in

PASSAGE = (
    "Dewar liquefied oxygen in 1891 at the Royal Institution . "
    "Linde built an air liquefaction machine in 1895 in Munich . "
    "The gas is stored in Dewar flasks ."
)


def _item(question: str, answer: str, passage: str = PASSAGE) -> QAItem:
    return QAItem(id=question, question=question, answers=[answer], gold=passage, distractors=[])


DEWAR = _item("In what year did Dewar liquefy oxygen ?", "1891")
LINDE = _item("Where did Linde build his machine ?", "Munich")


def _corrections(items: list[QAItem], seed: int = 0) -> dict[str, str]:
    return {item.id: question for item, question in corrected_questions(items, 1.0, seed)}


def test_the_question_is_repaired_after_an_editing_phrase():
    for seed in range(20):
        question = _corrections([DEWAR, LINDE], seed)[DEWAR.id]
        assert any(f" {phrase} " in question for phrase in EDITING_PHRASES)
        # both shapes keep every word of the question, in order, after the retraction
        words = iter(question.split())
        assert all(word in words for word in DEWAR.question.split())


def test_what_is_retracted_points_to_a_sentence_that_does_not_answer():
    answer_sentence = PASSAGE.split(" . ")[0]
    for seed in range(20):
        question = _corrections([DEWAR, LINDE], seed)[DEWAR.id]
        retracted = set(question.split()) - set(DEWAR.question.split())
        retracted -= {w for phrase in EDITING_PHRASES for w in phrase.split()}
        assert retracted, question
        assert not retracted <= set(answer_sentence.split()), question


def test_nothing_to_retract_gives_no_question():
    # one question, and no name or number outside its answer sentence
    alone = _item("In what year did Dewar liquefy oxygen ?", "1891", "Dewar did it in 1891 .")
    assert _corrections([alone]) == {}


def test_share_zero_adds_nothing_and_labels_stay_the_items_own():
    assert list(corrected_questions([DEWAR, LINDE], 0.0, 0)) == []
    for item, _ in corrected_questions([DEWAR, LINDE], 1.0, 0):
        assert any(answer_in(item, s) for s in PASSAGE.split(" . "))
