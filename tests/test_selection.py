"""Extractive selection: budget filling, protection, rendering."""

from __future__ import annotations

import numpy as np

from ragpress.selection import Units, select
from ragpress.tokenization import get_target_tokenizer

WORDS = get_target_tokenizer(str.split)


def test_a_unit_that_does_not_fit_is_skipped_not_the_rest():
    document = "Short one. " + "A very long middle sentence with many words in it. " + "Tiny."
    sentences = ["Short one.", "A very long middle sentence with many words in it.", "Tiny."]
    spans = [(0, document.index(x), document.index(x) + len(x)) for x in sentences]
    units = Units.from_spans(spans, np.array([0.9, 0.8, 0.1]))
    selection = select([document], units, WORDS, budget=4)
    assert selection.text == "Short one. Tiny."
    assert selection.tokens == 3


def test_skip_floor_leaves_the_room_to_units_near_the_one_that_did_not_fit():
    long = "A very long middle sentence with many words in it."
    sentences = ["Short one.", long, "Tiny.", "Small."]
    document = " ".join(sentences)
    spans = [(0, document.index(x), document.index(x) + len(x)) for x in sentences]
    units = Units.from_spans(spans, np.array([0.9, 0.8, 0.5, 0.1]))
    selection = select([document], units, WORDS, budget=4, skip_floor=0.5)
    assert selection.text == "Short one. Tiny."  # 0.5 >= 0.5 * 0.8; "Small." (0.1) is not tried
    assert selection.tokens == 3
    loose = select([document], units, WORDS, budget=4)
    assert loose.text == "Short one. Tiny. Small."


def test_forced_units_stay_and_words_never_fuse():
    document = "alpha,beta gamma delta epsilon"  # 4 tokens: the budget cannot keep it whole
    spans = [(0, 0, 5), (0, 5, 6), (0, 6, 10), (0, 11, 16), (0, 17, 22), (0, 23, 30)]
    units = Units.from_spans(spans, np.array([0.9, 0.0, 0.8, 0.1, 0.2, 0.05]))
    units.forced[4] = True
    selection = select([document], units, WORDS, budget=3)
    assert selection.text == "alpha beta delta"  # the dropped comma leaves a space
    assert [(s.start, s.end) for s in selection.kept_spans] == [(0, 5), (6, 10), (17, 22)]
