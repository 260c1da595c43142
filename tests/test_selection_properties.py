"""Property tests for ``select``: whatever the units, scores and budget, the selection keeps
forced units, stays within the budget unless forced units alone exceed it, and renders the
kept units in order, pointing at the input."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragpress.selection import Selection, Units, add_window, best_window, select
from ragpress.text import word_spans
from ragpress.tokenization import get_target_tokenizer

WORDS = get_target_tokenizer(str.split)
SMOLLM2 = get_target_tokenizer()

word = st.text(alphabet="abcdefgh,.;0123456789", min_size=1, max_size=8)
document = st.lists(word, min_size=0, max_size=12).map(" ".join)


@st.composite
def problems(draw: st.DrawFn) -> tuple[list[str], Units]:
    documents = draw(st.lists(document, min_size=1, max_size=4))
    spans = [(d, a, b) for d, text in enumerate(documents) for a, b in word_spans(text)]
    scores = draw(st.lists(st.floats(-5, 5), min_size=len(spans), max_size=len(spans)))
    units = Units.from_spans(spans, np.asarray(scores, dtype=np.float64))
    forced = draw(st.lists(st.booleans(), min_size=len(spans), max_size=len(spans)))
    units.forced = np.asarray(forced, dtype=bool) & (np.arange(len(spans)) % 3 == 0)
    return documents, units


def kept_text(documents: list[str], selection: Selection) -> list[str]:
    return [
        "".join(documents[s.doc][s.start : s.end] for s in selection.kept_spans if s.doc == d)
        for d in range(len(documents))
    ]


@settings(max_examples=60, deadline=None)
@given(problems(), st.integers(0, 40), st.sampled_from([WORDS, SMOLLM2]))
def test_selection_keeps_forced_units_within_budget_in_order(problem, budget, tokenizer):
    documents, units = problem
    selection = select(documents, units, tokenizer, budget)
    forced_only = select(documents, units, tokenizer, 0)
    # the budget holds unless the forced units alone exceed it
    assert selection.tokens <= max(budget, forced_only.tokens)
    assert selection.tokens == tokenizer.count(selection.text)
    # every forced unit is kept
    for doc, start, end in zip(units.doc[units.forced], units.start[units.forced],
                               units.end[units.forced], strict=True):  # fmt: skip
        assert any(s.doc == doc and s.start <= start and end <= s.end for s in selection.kept_spans)
    # kept spans point into the input, in order, and are what each output document says
    for d, (source, output) in enumerate(zip(documents, selection.documents, strict=True)):
        spans = [s for s in selection.kept_spans if s.doc == d]
        assert all(0 <= s.start < s.end <= len(source) for s in spans)
        assert all(a.end < b.start or a.end <= b.start for a, b in itertools.pairwise(spans))
        assert re.sub(r"\s+", "", output) == re.sub(r"\s+", "", kept_text(documents, selection)[d])


def inside(selection: Selection, doc: int, start: int, end: int) -> bool:
    return any(s.doc == doc and s.start <= start and end <= s.end for s in selection.kept_spans)


@settings(max_examples=40, deadline=None)
@given(problems(), st.floats(-5, 5))
def test_threshold_keeps_exactly_the_units_scoring_at_least_it(problem, threshold):
    documents, units = problem
    selection = select(documents, units, WORDS, None, threshold=threshold)
    keep = units.forced | (units.score >= threshold)
    for index in range(len(units)):
        span = (int(units.doc[index]), int(units.start[index]), int(units.end[index]))
        assert inside(selection, *span) == bool(keep[index])


@settings(max_examples=40, deadline=None)
@given(problems())
def test_a_budget_that_holds_everything_keeps_everything(problem):
    documents, units = problem
    selection = select(documents, units, WORDS, 10**6)
    for index in range(len(units)):
        assert inside(
            selection, int(units.doc[index]), int(units.start[index]), int(units.end[index])
        )
    assert [o.split() for o in selection.documents] == [d.split() for d in documents]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 5), st.integers(0, 6)), max_size=12),
    st.integers(0, 15),
)
def test_best_window_is_the_best_fitting_run(pieces, room):
    scores = np.asarray([s for s, _ in pieces], dtype=np.float64)
    costs = np.asarray([c for _, c in pieces], dtype=np.int64)
    runs = [
        (float(scores[a:b].sum()), a, b)
        for a in range(len(pieces))
        for b in range(a + 1, len(pieces) + 1)
        if costs[a:b].sum() <= room
    ]
    window = best_window(scores, costs, room)
    if not runs:
        assert window is None
        return
    assert window is not None and costs[window].sum() <= room
    assert scores[window].sum() >= max(total for total, _, _ in runs) - 1e-9


@settings(max_examples=60, deadline=None)
@given(problems(), st.integers(0, 40), st.sampled_from([WORDS, SMOLLM2]))
def test_a_window_added_to_a_selection_stays_within_budget_and_in_order(problem, budget, tokenizer):
    documents, units = problem
    units.forced[:] = False
    whole = select(documents, units.take(np.zeros(len(units), dtype=bool)), tokenizer, budget)
    words = units.take(units.doc == 0)  # a run of words of one document
    words.score = np.abs(words.score)
    widened = add_window(documents, whole, words, tokenizer, budget)
    assert widened.tokens <= budget and widened.tokens == tokenizer.count(widened.text)
    kept = [s for s in widened.kept_spans]
    assert all(0 <= s.start < s.end <= len(documents[s.doc]) for s in kept)
    # one run of consecutive words of that document: a piece of its text
    assert all(s.doc == 0 for s in kept)
    assert widened.text in documents[0]


def test_best_window_refuses_negative_scores():
    with pytest.raises(ValueError, match="scores >= 0"):
        best_window(np.array([1.0, -1.0]), np.array([1, 1]), 3)
