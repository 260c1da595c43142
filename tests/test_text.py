"""Shared text utilities: sentences, words, alignment, protected spans."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from ragpress.text import (
    aggregate_to_words,
    align_tokens_to_words,
    clause_spans,
    merge_intervals,
    overlaps_any,
    protected_spans,
    sentence_spans,
    token_spans,
    word_spans,
)
from ragpress.tokenization import get_target_tokenizer


def test_sentences_tile_the_text_and_respect_abbreviations():
    text = "Dr. Smith paid $3.50 at 5 p.m. on Jan. 3. He left! Did he?\n\nYes."
    spans = sentence_spans(text)
    assert "".join(text[a:b] for a, b in spans) == text
    sentences = [text[a:b].strip() for a, b in spans]
    assert sentences[0] == "Dr. Smith paid $3.50 at 5 p.m. on Jan. 3."
    assert sentences[1:] == ["He left!", "Did he?", "Yes."]


def test_pre_tokenized_text_keeps_decimals_initials_and_citations_whole():
    # SQuAD / PTB-style text puts spaces around every period; Punkt alone cuts "91 . 3" in two.
    text = (
        "It was 91 . 3 % of men . David G . Booth said , i . e . the X . 25 networks . "
        "See 268 U . S . 510 . He was born in 1990 . He died ."
    )
    sentences = [text[a:b].strip() for a, b in sentence_spans(text)]
    assert sentences == [
        "It was 91 . 3 % of men .",
        "David G . Booth said , i . e . the X . 25 networks .",
        "See 268 U . S . 510 .",
        "He was born in 1990 .",
        "He died .",
    ]


@given(st.text(max_size=200))
def test_sentence_spans_always_tile(text):
    spans = sentence_spans(text)
    assert "".join(text[a:b] for a, b in spans) == text


def test_clauses_cut_at_marks_and_brackets_but_not_inside_numbers():
    text = (
        "Private schools , also known as independent schools , are not run by the state "
        "(they charge fees) ; by 1883 , engines could provide 10 , 000 hp , or 12 : 30 a day ."
    )
    clauses = [text[a:b] for a, b in clause_spans(text, 0, len(text))]
    assert clauses == [
        "Private schools , also known as independent schools ,",
        "are not run by the state",
        "(they charge fees) ; by 1883 ,",
        "engines could provide 10 , 000 hp ,",
        "or 12 : 30 a day .",
    ]


@given(st.text(alphabet=" ,;:()[ab1.", max_size=120), st.integers(1, 6))
def test_clauses_tile_a_span_in_order_but_for_whitespace(text, min_words):
    start, end = 1, max(1, len(text) - 1)
    clauses = clause_spans(text, start, end, min_words)
    if start == end:
        assert clauses == []
        return
    assert clauses[0][0] == start and clauses[-1][1] == end
    assert all(a <= b for a, b in clauses)
    for (_, before), (after, _) in itertools.pairwise(clauses):
        assert before < after and text[before:after].isspace()


def test_word_alignment_of_subword_tokens():
    text = "Unbelievably, fuel-dilution rose 12.5%."
    words = word_spans(text)
    assert [text[a:b] for a, b in words] == [
        "Unbelievably",
        ",",
        "fuel-dilution",
        "rose",
        "12.5",
        "%",
        ".",
    ]
    tokenizer = get_target_tokenizer()._tokenizer
    encoding = tokenizer.encode(text, add_special_tokens=False)
    mapping = align_tokens_to_words(encoding.offsets, words)
    assert len(mapping) == len(encoding.ids)
    for (start, end), word in zip(encoding.offsets, mapping, strict=True):
        piece = text[start:end].strip()
        if piece:
            a, b = words[word]
            assert a < end and start < b  # the token overlaps its word
    scores = np.arange(len(mapping), dtype=float)
    pooled = aggregate_to_words(scores, mapping, len(words), "max")
    assert pooled[0] == max(scores[mapping == 0])
    first = aggregate_to_words(scores, mapping, len(words), "first")
    assert first[2] == scores[np.flatnonzero(mapping == 2)[0]]
    mean = aggregate_to_words(scores, mapping, len(words), "mean")
    assert mean[2] == scores[mapping == 2].mean()


def test_token_spans_trim_whitespace_and_merge_tokens_sharing_a_character():
    text = "Fuel  dilution\n\nrose ☃ 12%"
    offsets = [(0, 4), (4, 6), (6, 14), (14, 16), (16, 20), (20, 22), (21, 22), (22, 22), (22, 26)]
    spans, owner = token_spans(text, offsets)
    assert [text[a:b] for a, b in spans] == ["Fuel", "dilution", "rose", "☃", "12%"]
    assert owner.tolist() == [0, -1, 1, -1, 2, 3, 3, -1, 4]
    tokenizer = get_target_tokenizer()._tokenizer
    encoding = tokenizer.encode(text, add_special_tokens=False)
    spans, owner = token_spans(text, encoding.offsets)
    assert all(a < b <= c for (a, b), (c, _) in itertools.pairwise(spans))  # ordered, disjoint
    assert "".join(text[a:b] for a, b in spans) == "".join(text.split())  # nothing but spaces lost
    visible = [bool(text[a:b].strip()) for a, b in encoding.offsets]
    assert ((owner >= 0) == np.array(visible)).all() and owner.max() == len(spans) - 1


def test_protected_spans_cover_code_json_urls_numbers_and_forced():
    text = (
        'See https://example.org/a?b=1 and {"id": 7, "ok": true}. Call `run()` now.\n'
        "```python\nprint(1)\n```\nPrice 3,400.50 EUR on 2024-05-01. KEEP-ME please."
    )
    spans = protected_spans(text, force_tokens=["KEEP-ME"])
    covered = [text[a:b] for a, b in spans]
    for needle in [
        "https://example.org/a?b=1",
        '{"id": 7, "ok": true}',
        "`run()`",
        "```python\nprint(1)\n```",
        "3,400.50",
        "2024-05-01",
        "KEEP-ME",
    ]:
        assert any(needle in piece for piece in covered), needle
    assert not any("please" in piece for piece in covered)


def test_interval_helpers():
    assert merge_intervals([(5, 8), (0, 2), (1, 3), (8, 9), (4, 4)]) == [(0, 3), (5, 9)]
    flags = overlaps_any([(0, 1), (2, 4), (9, 10), (12, 20)], [(3, 5), (15, 16)])
    assert flags.tolist() == [False, True, False, True]
