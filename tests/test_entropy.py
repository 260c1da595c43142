"""Entropy pruning on the real SmolLM2 (ONNX): budget, protection, extractive order, question."""

from __future__ import annotations

import itertools
import re

import pytest

import ragpress
from ragpress.types import CompressionResult

pytestmark = pytest.mark.real_model

FUEL = (
    "Fuel dilution of the engine oil occurs when unburned fuel passes the piston rings. "
    "It is most common on engines that run short trips in cold weather. "
    "The first sign of fuel dilution is an oil level that rises between services. "
    "Technicians should then change the oil and update the engine software."
)
NOISE = [
    "The workshop in Lyon opens a second service lane in April, and the workshop in Grenoble "
    "moves to a new building next to the ring road near the river.",
    "Our spring campaign offers a free inspection of the cooling system and the air "
    "conditioning for every customer who books before the end of May.",
    "The annual dealer meeting takes place in Paris; dealers vote on the new logo, the "
    "colours of the showroom furniture and the music played in the waiting area.",
]


@pytest.fixture(scope="module")
def entropy():
    return ragpress.get_compressor("entropy")


def assert_extractive(documents: list[str], result: CompressionResult) -> None:
    """Every output document is its kept spans, in order, joined by whitespace only, and every
    span starts and ends at a word boundary (no cut or fused word)."""
    compressed = result.documents if result.documents is not None else [result.text]
    for index, (source, output) in enumerate(zip(documents, compressed, strict=True)):
        spans = [s for s in result.kept_spans if s.doc == index]
        assert all(a.end <= b.start for a, b in itertools.pairwise(spans)), "spans out of order"
        kept = "".join(source[s.start : s.end] for s in spans)
        assert re.sub(r"\s+", "", output) == re.sub(r"\s+", "", kept)
        for word in output.split():
            assert word in source, word
        for span in spans:
            assert not (span.start > 0 and source[span.start - 1 : span.start + 1].isalnum())
            assert not (span.end < len(source) and source[span.end - 1 : span.end + 1].isalnum())


@pytest.mark.parametrize("rate", [0.25, 0.5])
def test_budget_is_met_in_the_target_tokenizer(entropy, rate):
    documents = [FUEL, *NOISE]
    result = entropy.compress(documents, rate=rate)
    assert result.budget_tokens == round(rate * result.original_tokens + 0.4999)
    assert result.compressed_tokens == entropy.tokenizer.count(result.text)
    assert result.budget_tokens - 8 <= result.compressed_tokens <= result.budget_tokens
    assert_extractive(documents, result)


def test_fp32_by_default_int8_on_request(entropy):
    # int8 keeps fewer answers than fp32 on some CPUs (ragpress.model_compressor)
    assert entropy.settings["variant"] == "fp32"
    assert ragpress.get_compressor("entropy", variant="int8").settings["variant"] == "int8"


def test_target_tokens_and_a_custom_target_tokenizer(entropy):
    words = ragpress.get_compressor("entropy", target_tokenizer=str.split)
    result = words.compress(FUEL, target_tokens=20)
    assert len(result.text.split()) <= 20
    assert result.compressed_tokens >= 15
    assert_extractive([FUEL], result)


def test_protected_spans_survive_a_harsh_budget():
    compressor = ragpress.get_compressor(
        "entropy", protect=("urls", "numbers"), force_tokens=["piston rings"]
    )
    text = FUEL + " Details: https://example.org/sb-2291 and bulletin 4.2.1 of 2026."
    result = compressor.compress(text, rate=0.3)
    for needle in ("https://example.org/sb-2291", "4.2.1", "2026", "piston rings"):
        assert needle in result.text
    assert_extractive([text], result)


@pytest.mark.parametrize("coarse", [True, False], ids=["coarse (default)", "no coarse"])
def test_question_keeps_the_answer_sentence(entropy, coarse):
    documents = [NOISE[0], FUEL, NOISE[1], NOISE[2]]
    question = "What is the first sign of fuel dilution?"
    compressor = entropy if coarse else ragpress.get_compressor("entropy", coarse=False)
    result = compressor.compress(documents, question, rate=0.25)
    assert "rises between services" in result.text
    assert_extractive(documents, result)
    # the question moves the choice: without it the answer words are not favoured as much
    plain = entropy.compress(documents, rate=0.25)
    answer = next(s for s in result.scores if s.doc == 1 and FUEL[s.start : s.end] == "rises")
    plain_answer = next(s for s in plain.scores if s.doc == 1 and FUEL[s.start : s.end] == "rises")
    assert answer.score > plain_answer.score


def test_coarse_step_reads_only_the_kept_documents_after_the_question(entropy):
    coarse = entropy  # the coarse step is on by default
    assert coarse.settings["coarse"]
    documents = [NOISE[0], FUEL, NOISE[1], NOISE[2]]
    question = "What is the first sign of fuel dilution?"
    request = ragpress.CompressionRequest.create(documents, question, rate=0.25)
    docs = coarse._tokenize([request])
    coarse._score(docs, [request])
    dropped = {doc.index for doc in docs if doc.dropped}
    assert dropped and 1 not in dropped
    # the conditioned pass skipped the dropped documents: their scores are never used
    assert all((doc.conditioned is None) == (doc.index in dropped) for doc in docs)
    result = coarse.compress(documents, question, rate=0.25)
    assert "rises between services" in result.text
    assert not any(span.doc in dropped for span in result.kept_spans)


def test_batch_matches_single_calls(entropy):
    items = [{"context": FUEL, "rate": 0.5}, {"context": NOISE, "query": "Where?", "rate": 0.5}]
    batch = entropy.compress_batch(items)
    single = [entropy.compress(**item) for item in items]
    assert [r.text for r in batch] == [r.text for r in single]


def test_long_context_is_windowed(entropy):
    small = ragpress.get_compressor("entropy", window=128, overlap=32)
    long_text = " ".join([FUEL, *NOISE] * 4)
    result = small.compress(long_text, rate=0.4)
    assert result.original_tokens > 300
    assert result.compressed_tokens <= result.budget_tokens
    assert_extractive([long_text], result)


def test_token_units_prune_inside_words_without_fusing_them():
    tokens = ragpress.get_compressor("entropy", unit="token")
    documents = [FUEL, NOISE[0]]
    result = tokens.compress(documents, "What is the first sign of fuel dilution?", rate=0.3)
    assert result.compressed_tokens <= result.budget_tokens

    def cut(result: CompressionResult) -> int:  # word units never do (they are whole words)
        """Kept spans that start or end inside a word."""
        return sum(
            source[s.start - 1 : s.start + 1].isalnum() or source[s.end - 1 : s.end + 1].isalnum()
            for s in result.kept_spans
            for source in [documents[s.doc]]
        )

    assert cut(result) > 0  # finer than words, as LLMLingua prunes
    for index, output in enumerate(result.documents):
        source, spans = documents[index], [s for s in result.kept_spans if s.doc == index]
        pieces = " ".join(source[s.start : s.end] for s in spans)
        assert output.split() == pieces.split()  # a space at every gap: no fused pieces


def test_units_and_empty_input(entropy):
    sentences = ragpress.get_compressor("entropy", unit="sentence")
    result = sentences.compress(FUEL, rate=0.5)
    assert (result.text and result.text in FUEL) or all(
        part.strip() in FUEL for part in re.split(r"(?<=\.) ", result.text)
    )
    assert entropy.compress("   ").text == "   "
    with pytest.raises(ValueError, match="unit"):
        ragpress.get_compressor("entropy", unit="letters")
    with pytest.raises(ValueError, match="coarse_factor"):
        ragpress.get_compressor("entropy", coarse_factor=0.5)
    with pytest.raises(ValueError, match="protect"):
        ragpress.get_compressor("entropy", protect=("everything",))


def test_iterative_mode_scores_each_segment_after_what_was_kept():
    from ragpress.compressors.entropy import _pruned_segment

    iterative = ragpress.get_compressor("entropy", iterative=True, segment=24)
    documents = [FUEL, NOISE[0]]
    result = iterative.compress(documents, rate=0.4)
    assert result.compressed_tokens <= result.budget_tokens
    assert_extractive(documents, result)
    # Re-derive segment 2 of FUEL by hand: it must be scored after segment 1 pruned at 40%.
    request = ragpress.CompressionRequest.create(documents, rate=0.4)
    docs = iterative._tokenize([request])
    iterative._score(docs, [request])
    fuel = docs[0]
    share = iterative._keep_share(request)
    prefix = _pruned_segment(fuel, 0, 24, share)
    assert 0 < len(prefix) < 24
    expected = iterative.runner.nll([[*iterative._newline, *prefix, *fuel.ids[24:48]]])[0]
    assert fuel.plain[24:48] == pytest.approx(expected[-24:], abs=1e-4)
    with pytest.raises(ValueError, match="segment"):
        ragpress.get_compressor("entropy", iterative=True, segment=2048)
