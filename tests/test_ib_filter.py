"""Information-bottleneck noise filter on the real SmolLM2 NLL graph."""

from __future__ import annotations

import pytest

import ragpress
from tests.test_entropy import FUEL, NOISE, assert_extractive

pytestmark = pytest.mark.real_model
QUESTION = "What is the first sign of fuel dilution?"
LONG_ANSWER = (
    "The first sign of fuel dilution, which owners of small petrol engines that mostly run short "
    "trips in cold weather often notice only at the next scheduled service, is an oil level on "
    "the dipstick that rises between services instead of falling slowly as the engine burns a "
    "little oil."
)
LONG_FUEL = (
    "Fuel dilution of the engine oil occurs when unburned fuel passes the piston rings. "
    + LONG_ANSWER
    + " Technicians should then change the oil and update the engine software."
)


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
    with pytest.raises(ValueError, match="gain must be one of sum, mean"):
        ragpress.get_compressor("ib-filter", gain="max")
    with pytest.raises(ValueError, match="cost must be one of sum, mean, flat"):
        ragpress.get_compressor("ib-filter", cost="total")
    with pytest.raises(ValueError, match="share must be <= 1"):
        ragpress.get_compressor("ib-filter", share=2)
    with pytest.raises(ValueError, match="rate"):
        ib.compress(FUEL, QUESTION, rate=1.5)
    empty = ib.compress(["", "  "], QUESTION)
    assert empty.text == "\n\n  " and empty.compressed_tokens == empty.original_tokens


def test_a_long_answer_sentence_is_not_charged_for_its_length(ib):
    documents = [NOISE[0], LONG_FUEL, NOISE[1]]
    result = ib.compress(documents, QUESTION)
    assert result.text == LONG_ANSWER  # the best benefit, and the only one within share of it
    start = LONG_FUEL.index(LONG_ANSWER)
    assert _best(result.scores) == (1, start, start + len(LONG_ANSWER))
    # Summed self-information (the rule before the dev calibration) ranks the short opening
    # sentence above it, so a one-sentence budget would lose the answer.
    summed = ragpress.get_compressor("ib-filter", beta=10, gain="sum", cost="sum", share=0, floor=0)
    summed.runner = ib.runner  # same model, another rule
    assert _best(summed.compress(documents, QUESTION).scores)[:2] == (1, 0)  # the opening one


def _best(scores: list) -> tuple[int, int, int]:
    best = max(scores, key=lambda s: s.score)
    return best.doc, best.start, best.end


def test_the_floor_alone_can_make_it_abstain(ib):
    strict = ragpress.get_compressor("ib-filter", floor=50.0)  # nats per question token: never
    strict.runner = ib.runner
    result = strict.compress([FUEL], QUESTION)
    assert result.is_empty and result.settings["nothing_relevant"]
    assert max(s.score for s in result.scores) > 0  # the benefit alone would have kept some
