"""The lossless contract: decompress(compress(x)) == x, for text and for token ids."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ragpress
from ragpress.compressors._repeats import find_repeats
from ragpress.compressors.metatoken import (
    MARKER_PAIRS,
    choose_markers,
    compress_ids,
    compress_text,
    decompress_ids,
    decompress_text,
)


@pytest.fixture(scope="module")
def compressor():
    return ragpress.get_compressor("metatoken")


LOG = "".join(
    f"2026-11-23 10:{i % 60:02d}:01 INFO worker-{i % 4} GET /api/v1/items status=200\n"
    for i in range(200)
)


def test_repetitive_log_round_trips_and_shrinks(compressor):
    result = compressor.compress(LOG)
    assert compressor.decompress(result.text) == LOG
    assert result.compressed_tokens == compressor.tokenizer.count(result.text)
    assert result.ratio > 2.0
    assert result.original_tokens == compressor.tokenizer.count(LOG)


def test_text_without_repeats_is_returned_unchanged(compressor):
    text = "A short sentence with nothing repeated."
    result = compressor.compress(text)
    assert result.text == text
    assert result.ratio == 1.0


def test_ids_rendering_round_trips_and_uses_reserved_ids(compressor):
    encoded = compressor.compress_ids(LOG)
    ids = compressor.tokenizer.encode(LOG)
    assert compressor.decompress_ids(encoded) == ids
    assert len(encoded.ids) < len(ids) / 2
    assert max(encoded.ids) > encoded.meta_base  # meta-tokens are used
    assert encoded.meta_base in encoded.ids  # the dictionary separator


def test_paper_condition_on_ids():
    # N=2 needs K >= 4 (2K > 3 + K); with the dictionary separator, five uses save a token.
    assert compress_ids([1, 2, 9, 1, 2, 8, 1, 2, 7, 1, 2], meta_base=100).entries == 0
    five = [1, 2, 9, 1, 2, 8, 1, 2, 7, 1, 2, 6, 1, 2]
    encoded = compress_ids(five, meta_base=100)
    assert encoded.entries == 1
    assert len(encoded.ids) == len(five) - 1
    assert decompress_ids(encoded.ids, 100) == five


def test_longest_run_is_chosen_first():
    run = list(range(10, 30))
    codes = np.array([*run, 1, *run, 2, *run])
    repeats = find_repeats(codes)
    assert repeats[0].length == 20
    assert repeats[0].positions.tolist() == [0, 21, 42]
    assert repeats[0].groups == 1


def test_runs_of_one_symbol_do_not_overlap():
    codes = np.zeros(100, dtype=np.int64)
    for repeat in find_repeats(codes):
        gaps = np.diff(np.sort(repeat.positions))
        assert (gaps >= repeat.length).all()
    encoded = compress_ids(codes.tolist(), meta_base=5)
    assert decompress_ids(encoded.ids, 5) == codes.tolist()
    assert len(encoded.ids) < 60  # longest first: two runs of 47, not the optimum


def test_header_lookalike_input_is_framed(compressor):
    fake = "«meta 1»\n«1=hello»\n«1» world"
    result = compressor.compress(fake)
    assert compressor.decompress(result.text) == fake
    assert choose_markers(fake) != ("«", "»")


def test_markers_fall_back_when_every_pair_is_present():
    text = "".join(a + b for a, b in MARKER_PAIRS)
    opening, closing = choose_markers(text)
    assert opening not in text and closing not in text and opening != closing
    pieces = list(text * 5)
    rendered, _ = compress_text(text * 5, pieces, ref_cost=1, def_cost=1)
    assert decompress_text(rendered) == text * 5


def test_documents_are_compressed_each_on_its_own(compressor):
    docs = [LOG, "plain text", ""]
    result = compressor.compress(docs)
    assert [compressor.decompress(doc) for doc in result.documents] == docs
    assert compressor.decompress(result.text) == "\n\n".join(docs)


def test_malformed_rendering_raises():
    with pytest.raises(ValueError, match="entry 1"):
        decompress_text("«meta 1»\nbroken")
    with pytest.raises(ValueError, match="not in the dictionary"):
        decompress_text("«meta 0»\n«3»")
    with pytest.raises(ValueError, match="meta_base"):
        compress_ids([1, 200], meta_base=100)


text_strategy = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("ab «»‹›⟦⟧【】meta0123=\n")),
        st.characters(blacklist_categories=("Cs",)),  # type: ignore[arg-type]
    ),
    max_size=300,
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=text_strategy, repeat=st.integers(1, 6))
def test_text_round_trip_property(compressor, text, repeat):
    source = text * repeat
    assert compressor.decompress(compressor.compress(source).text) == source


@settings(max_examples=1500, deadline=None)
@given(
    ids=st.lists(st.integers(0, 7), max_size=400),
    ref_cost=st.integers(1, 4),
)
def test_ids_round_trip_property(ids, ref_cost):
    encoded = compress_ids(ids, meta_base=8)
    assert decompress_ids(encoded.ids, 8) == ids
    assert len(encoded.ids) <= len(ids)
    pieces = [chr(0x41 + i) for i in ids]
    rendered, _ = compress_text("".join(pieces), pieces, ref_cost=ref_cost, def_cost=ref_cost)
    assert decompress_text(rendered) == "".join(pieces)
