"""The reader benchmark's answer scoring (bench/reader.py): SQuAD EM/F1 on SQuAD-tokenized gold
answers. Pure functions: no model is loaded."""

from __future__ import annotations

import pytest

from bench.qa import QAItem
from bench.reader import (
    ReaderAnswer,
    detokenize,
    exact_match,
    f1_score,
    normalize_answer,
    summarise,
)


def test_normalize_follows_squad() -> None:
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("Theatre") == "theatre"  # "the" only as a whole word


@pytest.mark.parametrize(
    ("tokenized", "written"),
    [
        ("Earth ' s", "Earth's"),
        ("40 , 000", "40,000"),
        ("3 . 5 million", "3.5 million"),
        ("well - known", "well-known"),
        ("1990 – 1995", "1990-1995"),
        ("don ' t", "don’t"),
    ],
)
def test_tokenization_costs_no_points(tokenized: str, written: str) -> None:
    assert normalize_answer(tokenized) == normalize_answer(written)
    assert exact_match(written, [tokenized]) == 1.0


def test_detokenize_keeps_separate_words_apart() -> None:
    assert detokenize("Paris , France") == "Paris , France"
    assert normalize_answer("Paris , France") == "paris france"
    assert detokenize("players ' union") == "players ' union"


def test_exact_match_takes_any_gold_answer() -> None:
    assert exact_match("the Vistula", ["plain", "Vistula"]) == 1.0
    assert exact_match("Vistula river", ["Vistula"]) == 0.0
    assert exact_match("anything", []) == 0.0


def test_f1_is_squad_token_f1_and_the_best_over_golds() -> None:
    assert f1_score("randomized algorithms", ["randomized algorithms"]) == 1.0
    # one shared token: precision 1/2, recall 1/2
    assert f1_score("random algorithms", ["randomized algorithms"]) == pytest.approx(0.5)
    # "Algeria" in a 5-token answer ("the" is dropped): precision 1/5, recall 1 -> 1/3
    assert f1_score("Algeria won the war in Vietnam", ["Algeria"]) == pytest.approx(1 / 3)
    assert f1_score("200,000 Danish krone", ["nothing", "200 , 000 Danish krone"]) == 1.0
    assert f1_score("no overlap", ["Wales"]) == 0.0
    assert f1_score("", ["Wales"]) == 0.0
    assert f1_score("the", ["a"]) == 1.0  # both normalise to nothing


def test_summarise_rows_and_time_saved() -> None:
    items = [
        QAItem("a", "Where?", ["Wales"], "gold a", []),
        QAItem("b", "How many?", ["40 , 000"], "gold b", []),
    ]
    contexts = {
        "original": ["He lived in Wales.", "About 40 , 000 people."],
        "short": ["He lived.", "About 40 , 000."],
    }
    answers = {
        "original": [
            ReaderAnswer("Wales", 100, 400.0, 500.0),
            ReaderAnswer("40,000", 80, 200.0, 300.0),
        ],
        "short": [
            ReaderAnswer("London", 30, 100.0, 200.0),
            ReaderAnswer("40,000", 20, 50.0, 150.0),
        ],
    }
    original, short = summarise(items, contexts, answers)
    assert (original["method"], original["EM_%"], original["F1_%"]) == ("original", 100.0, 100.0)
    assert original["prompt_time_saved_%"] == 0.0
    assert (short["EM_%"], short["F1_%"], short["answer_survives_%"]) == (50.0, 50.0, 50.0)
    assert short["prompt_tokens"] == 25.0 and short["prefill_ms"] == 75.0
    assert short["prompt_time_saved_%"] == 75.0  # 75 ms against 300 ms
    rows = summarise(items, {"short": contexts["short"]}, {"short": answers["short"]})
    assert rows[0]["prompt_time_saved_%"] is None  # no "original" to compare with
