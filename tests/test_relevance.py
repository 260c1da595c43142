"""The relevance pruner: sentence rounding, budgets, thresholds, reranking, windows, and the real
shipped cross-encoder on real passages."""

from __future__ import annotations

from importlib import resources

import numpy as np
import pytest

import ragpress
from ragpress.compressors.relevance import (
    ANSWER_FLOOR,
    RELEVANCE_POWER,
    REREAD_SENTENCES,
    ScoredDocument,
    _clause_units,
    _reread_candidates,
    _sentence_units,
)
from ragpress.compressors.token_classifier import EncodedDoc
from ragpress.selection import Units
from ragpress.text import trimmed_sentence_spans, word_spans

QUESTION = "What is the first sign of fuel dilution?"
ANSWER = "a level that rises between services is the first sign of fuel dilution"
NOISE = [
    "The Eiffel Tower was completed in 1889 for the World's Fair. It is 330 metres tall.",
    "Photosynthesis turns light, water and carbon dioxide into sugar and oxygen in plants.",
]


def _sample_documents() -> list[str]:
    text = resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")
    return [part for part in text.split("\n\n") if part.strip()]


def _recorded_runs(compressor, monkeypatch) -> list[list[list[int]]]:
    """The sequences of each model run ``compressor`` makes from now on."""
    calls: list[list[list[int]]] = []
    run = compressor.runner.run

    def recorded(sequences: list[list[int]]) -> object:
        calls.append(sequences)
        return run(sequences)

    monkeypatch.setattr(compressor.runner, "run", recorded)
    return calls


def test_sentence_score_is_the_mean_keep_probability_of_its_subwords():
    text = "One two. Three four five."
    words = np.array([[0, 3], [4, 7], [7, 8], [9, 14], [15, 19], [20, 24], [24, 25]])
    doc = EncodedDoc(text, np.arange(8), np.array([0, 1, 2, 3, 4, 5, 5, 6]), words)
    probs = np.array([0.2, 0.4, 0.6, 1.0, 0.5, 0.0, 0.0, 0.5])
    units = _sentence_units(3, doc, probs)
    assert units.doc.tolist() == [3, 3]
    assert [text[a:b] for a, b in zip(units.start, units.end, strict=True)] == [
        "One two.",
        "Three four five.",
    ]
    np.testing.assert_allclose(units.score, [0.4, 0.4])


def test_clauses_take_their_sentence_score_times_their_best_answer_probability():
    text = "Dogs bark at night, cats sleep all day. Rain."
    words = np.array(word_spans(text))
    doc = EncodedDoc(text, np.arange(len(words)), np.arange(len(words)), words)
    keep = np.array([0.2, 0.4, 0.6, 0.6, 0.2, 0.4, 0.6, 0.6, 0.2, 0.2, 0.9, 0.9])
    answer = np.array([0.1, 0.1, 0.3, 0.0, 0.0, 0.0, 0.7, 0.0, 0.0, 0.0, 0.5, 0.0])
    sentences = _sentence_units(0, doc, keep)
    clauses, parents = _clause_units(sentences, [ScoredDocument(doc, keep, answer, 0.9)])
    assert parents.tolist() == [0, 0, 1]
    assert [text[a:b] for a, b in zip(clauses.start, clauses.end, strict=True)] == [
        "Dogs bark at night,",
        "cats sleep all day.",
        "Rain.",
    ]
    weight = 0.9**RELEVANCE_POWER  # the document's relevance
    np.testing.assert_allclose(
        clauses.score,
        np.array([0.4 * (0.3 + ANSWER_FLOOR), 0.4 * (0.7 + ANSWER_FLOOR), 0.9 * 0.55]) * weight,
    )
    answer[10] = 0.95  # "Rain": in a sentence a threshold dropped, so in no clause
    first_only, _ = _clause_units(
        sentences.take(slice(0, 1)), [ScoredDocument(doc, keep, answer, 0.9)]
    )
    np.testing.assert_allclose(first_only.score, clauses.score[:2])


def test_the_clauses_of_a_more_relevant_document_rank_above_the_same_clauses_elsewhere():
    text = "Dogs bark at night, cats sleep all day."
    words = np.array(word_spans(text))
    doc = EncodedDoc(text, np.arange(len(words)), np.arange(len(words)), words)
    keep, answer = np.full(len(words), 0.5), np.full(len(words), 0.5)
    sentences = Units.concat([_sentence_units(d, doc, keep) for d in (0, 1)])
    per_doc = [ScoredDocument(doc, keep, answer, r) for r in (0.2, 0.8)]
    clauses, parents = _clause_units(sentences, per_doc)
    assert clauses.doc.tolist() == [0, 0, 1, 1] and parents.tolist() == [0, 0, 1, 1]
    np.testing.assert_allclose(clauses.score[2:] / clauses.score[:2], 4.0**RELEVANCE_POWER)


def test_the_reread_takes_the_best_sentences_of_the_most_relevant_document_only():
    doc = EncodedDoc("", np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, 2)))
    per_doc = [ScoredDocument(doc, np.zeros(0), np.zeros(0), r) for r in (0.3, 0.7, 0.2)]
    spans = [(0, 0, 5), (1, 0, 5), (1, 6, 10), (1, 11, 15), (2, 0, 5)]
    sentences = Units.from_spans(spans, np.array([0.9, 0.1, 0.5, 0.3, 0.8]))
    assert _reread_candidates(per_doc, sentences, 2).tolist() == [2, 3]  # best first
    assert _reread_candidates(per_doc, sentences, 9).tolist() == [2, 3, 1]
    assert _reread_candidates(per_doc, sentences, 0).tolist() == []
    assert _reread_candidates([], sentences.take(slice(0, 0)), 9).tolist() == []


@pytest.fixture(scope="module")
def relevance():
    return ragpress.get_compressor("relevance")


@pytest.mark.real_model
def test_keeps_the_answering_document_over_unrelated_ones_within_the_budget(relevance):
    documents = [NOISE[0], _sample_documents()[0], NOISE[1]]
    result = relevance.compress(documents, QUESTION, rate=0.4)
    assert result.compressed_tokens <= result.budget_tokens
    assert "fuel dilution" in result.text.lower()
    assert not any(sentence in result.text for sentence in NOISE)
    for span in result.kept_spans:  # extractive: every kept span is input text
        assert span.doc == 1
        assert documents[span.doc][span.start : span.end] in result.text


@pytest.mark.real_model
def test_scores_the_answering_document_highest_and_reranks(relevance):
    documents = [*NOISE, _sample_documents()[0]]
    result = relevance.compress(documents, QUESTION, rate=0.5)
    scores = result.document_scores
    assert scores is not None and len(scores) == 3
    assert int(np.argmax(scores)) == 2
    assert scores[2] > 0.5 > max(scores[:2])
    reranked = ragpress.get_compressor("relevance", rerank=True)
    text = reranked.compress(documents, QUESTION, rate=1.0).text
    assert text.startswith(documents[2][:40])
    assert reranked.compress(documents, QUESTION, rate=1.0).documents == documents


@pytest.mark.real_model
def test_without_a_budget_noise_only_retrieval_keeps_nothing(relevance):
    noise = relevance.compress(NOISE, QUESTION)
    assert noise.is_empty and noise.budget_tokens is None
    found = relevance.compress([*NOISE, _sample_documents()[0]], QUESTION)
    assert ANSWER in found.text
    assert not any(sentence in found.text for sentence in NOISE)


@pytest.mark.real_model
def test_long_documents_go_in_windows_of_one_batched_run(relevance, monkeypatch):
    filler = " ".join(f"Sentence {i} is about the weather in town number {i}." for i in range(80))
    long_doc = filler + " " + _sample_documents()[0]
    calls = _recorded_runs(relevance, monkeypatch)
    results = relevance.compress_batch(
        [
            {"context": [long_doc, NOISE[0]], "query": QUESTION, "rate": 0.1},
            {"context": NOISE[1], "query": "What do plants make?", "rate": 0.5},
        ]
    )
    assert len(calls) == 2 and len(calls[0]) > 3  # the long document needs several windows
    assert max(len(sequence) for sequence in calls[0]) <= relevance.max_length
    assert len(calls[1]) == REREAD_SENTENCES + 1  # both requests' rereads in one run
    assert "fuel dilution" in results[0].text.lower()
    assert results[1].text in NOISE[1]


@pytest.mark.real_model
def test_onnx_matches_torch_and_int8_keeps_decisions():
    documents = _sample_documents()
    onnx = ragpress.get_compressor("relevance", variant="fp32")
    torch = ragpress.get_compressor("relevance", backend="torch")
    int8 = ragpress.get_compressor("relevance")  # the CPU default
    a = onnx.compress(documents, QUESTION, rate=0.3)
    b = torch.compress(documents, QUESTION, rate=0.3)
    c = int8.compress(documents, QUESTION, rate=0.3)
    np.testing.assert_allclose(a.document_scores, b.document_scores, atol=1e-3)
    assert a.kept_spans == b.kept_spans
    assert c.document_scores == pytest.approx(a.document_scores, abs=0.1)


@pytest.mark.real_model
def test_needs_a_query_and_checks_its_options(relevance):
    with pytest.raises(ValueError, match="query"):
        relevance.compress(_sample_documents(), None, rate=0.5)
    with pytest.raises(ValueError, match="threshold"):
        ragpress.get_compressor("relevance", threshold=1.5)
    with pytest.raises(ValueError, match="reread_sentences"):
        ragpress.get_compressor("relevance", reread_sentences=-1)
    for bad in (True, 2.0):  # not an int: the wrong type
        with pytest.raises(TypeError, match="reread_sentences"):
            ragpress.get_compressor("relevance", reread_sentences=bad)
    assert ragpress.get_compressor("provence").name == "relevance"


@pytest.mark.real_model
def test_relevance_then_entropy_meets_a_high_ratio():
    pipeline = ragpress.get_compressor("relevance+entropy")
    documents = _sample_documents()
    result = pipeline.compress(documents, QUESTION, rate=1 / 8)
    assert result.compressed_tokens <= result.budget_tokens
    assert [stage.method for stage in result.stages] == ["relevance", "entropy"]
    assert "a level that rises between services" in result.text


@pytest.mark.real_model
def test_when_no_sentence_fits_it_keeps_a_run_of_words_of_the_best_one(relevance):
    manual = _sample_documents()[0].split("\n", 1)[1]  # the service bulletin, without its title
    question = "Which version of the engine control software should be installed?"
    whole = ragpress.get_compressor("relevance", partial_sentence=False)
    assert whole.compress(manual, question, rate=1 / 8).is_empty  # every sentence is too long
    result = relevance.compress(manual, question, rate=1 / 8)
    assert 0 < result.compressed_tokens <= result.budget_tokens
    answer_sentence = manual[manual.index("If the oil smells") :]
    assert result.text in answer_sentence  # one run of words of it, as written
    assert "version 4.2.1" in result.text  # the window sits on the answer (answer channel)


@pytest.mark.real_model
def test_under_a_budget_the_best_sentences_of_the_top_document_are_read_again_alone(
    relevance, monkeypatch
):
    documents = [NOISE[0], _sample_documents()[0]]
    calls = _recorded_runs(relevance, monkeypatch)
    assert "first sign of fuel dilution" in relevance.compress(documents, QUESTION, rate=0.3).text
    encode = relevance.runner.tokenizer
    head = len(encode(QUESTION, add_special_tokens=False)["input_ids"]) + 2  # [CLS] q [SEP]
    sentences = [documents[1][a:b] for a, b in trimmed_sentence_spans(documents[1])]
    ids = [tuple(encode(s, add_special_tokens=False)["input_ids"]) for s in sentences]
    read_alone = [tuple(sequence[head:-1]) for sequence in calls[1]]
    assert len(calls) == 2 and len(read_alone) == min(REREAD_SENTENCES, len(sentences))
    assert set(read_alone) <= set(ids)
    assert ids[[ANSWER in s for s in sentences].index(True)] in read_alone
    calls.clear()
    relevance.compress(documents, QUESTION)  # no budget: the threshold decides, nothing reread
    assert len(calls) == 1
    once = ragpress.get_compressor("relevance", reread_sentences=0)
    calls = _recorded_runs(once, monkeypatch)
    once.compress(documents, QUESTION, rate=0.3)
    assert len(calls) == 1
