"""Information-bottleneck noise filter on the real SmolLM2 NLL graph."""

from __future__ import annotations

import pytest

import ragpress
from tests.test_entropy import FUEL, NOISE, assert_extractive

pytestmark = pytest.mark.real_model
QUESTION = "What is the first sign of fuel dilution?"


@pytest.fixture(scope="module")
def ib():
    return ragpress.get_compressor("ib")


def test_answer_sentence_kept_and_unrelated_passage_dropped(ib):
    documents = [NOISE[0], FUEL, NOISE[1]]
    result = ib.compress(documents, QUESTION)
    assert "rises between services" in result.text
    assert "Lyon" not in result.text
    assert result.budget_tokens is None and result.compressed_tokens < result.original_tokens
    assert not result.settings["nothing_relevant"]
    assert_extractive(documents, result)


def test_noise_only_retrieval_can_return_nothing(ib):
    result = ib.compress(NOISE, QUESTION)
    assert result.is_empty and result.text == "" and result.compressed_tokens == 0
    assert result.settings["nothing_relevant"]
    assert len(result.scores) == len(NOISE)  # every sentence was scored, none was worth it


def test_budget_caps_the_output(ib):
    documents = [FUEL, *NOISE]
    result = ib.compress_batch(
        [{"context": documents, "query": QUESTION, "target_tokens": 20}] * 2
    )[0]
    assert result.budget_tokens == 20 and 0 < result.compressed_tokens <= 20
    assert_extractive(documents, result)


def test_bad_input_errors_and_empty_context_passes_through(ib):
    with pytest.raises(ValueError, match="query"):
        ib.compress(FUEL)
    with pytest.raises(ValueError, match="query"):
        ib.compress(FUEL, "   ")
    with pytest.raises(ValueError, match="beta"):
        ragpress.get_compressor("ib-filter", beta=0)
    with pytest.raises(ValueError, match="rate"):
        ib.compress(FUEL, QUESTION, rate=1.5)
    empty = ib.compress(["", "  "], QUESTION)
    assert empty.text == "\n\n  " and empty.compressed_tokens == empty.original_tokens
