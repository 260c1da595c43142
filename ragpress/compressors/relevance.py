"""Relevance pruning (Provence): one cross-encoder pass that reranks documents and prunes
sentences for a question.

After "Provence: efficient and robust context pruning for retrieval-augmented generation"
(Chirkova et al., ICLR 2025); our own code and our own model. A MiniLM cross-encoder reads
``[CLS] question [SEP] passage [SEP]`` and gives every passage token a keep logit and an answer
logit, and the passage a relevance logit at ``[CLS]``, from the same forward. Passages longer
than the window go in sentence-aligned windows; every window of every document of every request
runs in one batched call. A sentence's score is the mean keep probability of its tokens
(Provence's sentence rounding); a document's relevance is the highest of its windows'.

What survives:

* ``rate`` / ``target_tokens``: the best clauses until the budget (counted in the target
  tokenizer), kept in their original order. Sentences are cut into clauses at ``, ; :`` and
  brackets (:func:`ragpress.text.clause_spans`); a clause scores its sentence's score times its
  highest answer probability times its document's relevance cubed (``RELEVANCE_POWER``), so the
  keep channel picks sentences, the answer channel the clauses of one and the relevance channel
  the documents: at high ratios a budget holds the answer clauses of several sentences instead
  of one whole sentence, and the room left goes to the relevant passages. Once a clause does
  not fit, clauses under half its score no longer fill the room (``SKIP_FLOOR``); the room goes
  to the run of words of that clause's sentence where the model reads the answer. The sentence
  scores are refined first: the best sentences of the most relevant document
  (``reread_sentences``, 10; 0 turns it off) are read again, each alone as the passage, in a
  second batched run, and their score becomes ``keep ** 0.6 * relevance ** 0.4``
  (``REREAD_WEIGHT``): whether that one sentence holds the answer is what the relevance head
  learnt against same-article passages, and it ranks a passage's sentences better than the
  keep channel's mean (dev figures at ``REREAD_SENTENCES``).
  ``partial_sentence=False`` keeps whole sentences only. On 150 dev items per setting (int8;
  answer survival at 2x / 4x / 8x / 16x) clauses, before the relevance weight, took
  other-article from 99.3 / 98.7 / 92.0 / 76.0 to 99.3 / 98.7 / 98.7 / 82.0, same-article from
  99.3 / 97.3 / 91.3 / 72.0 to 100 / 97.3 / 95.3 / 83.3, gold-only from 89.3 / 62.0 / 40.0 /
  28.0 to 93.3 / 73.3 / 46.0 / 29.3 (whole sentences with the skip floor alone: 96.0 / 84.7,
  94.7 / 78.7, 50.0 / 32.7 at 8x / 16x). The answers clauses save did not show in a small
  reader's F1: on 100 dev items (other-article), before the relevance weight, the Qwen2.5-0.5B
  reader scored F1 29.0% from clauses at 4x, 31.2% from whole sentences and 33.1% from
  ``embedding-similarity``'s, and at 8x 29.7 / 30.3 / 30.5%, where the three keep the answer in
  98 / 91 / 89% of items. At 100 items one answer moves F1 by about a point, and clauses against
  sentences at 4x read 5 items better and 13 worse (a two-sided sign test gives p = 0.1): a hint
  that fragments cost this reader, not a measurement. Whole sentences whenever they hold every
  clause scoring at least a tenth of the best (else clauses) read 30.3% at 4x and kept 2 answers
  of 150 fewer at 8x (other-article), and were not kept. What the reader missed was context:
  ``embedding-similarity`` kept the gold passage whole in 66 of those items, whole sentences
  here in 48, clauses in 43, the room past the answer going to distractors. With the relevance
  weight, on 100 test items at 4x (``relevance_300``), F1 went from 31.4% to 35.7%
  (``embedding-similarity``: 36.1%);
* neither: every sentence scoring at least ``threshold`` (default ``DEFAULT_THRESHOLD``): the
  context decides how much survives, and noise-only retrieval keeps nothing
  (``result.is_empty``).

``result.document_scores`` holds each document's relevance probability; ``rerank=True`` joins
the kept documents in ``result.text`` by descending relevance (``result.documents`` stays
aligned with the input). The default model, ``minilm-l6-relevance``, is ragpress's own
(``make train-relevance``), shipped as a delta over the package-shipped MiniLM.

Variant: int8 on CPU (``cpu_variant``). On 60 dev items per setting it keeps the answer as often
as fp32 (2x / 4x / 8x / 16x, int8 against fp32: other-article 98/98/92/68% against 98/98/90/67%,
same-article 100/95/83/68% against the same, gold-only 90/53/42/25% against 88/55/40/25%), and
scoring the 180 items took 23.3 s against 44.3 s (measured on earlier rounds of the model; the
graph's size is the same). ``variant="fp32"`` brings fp32 back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ragpress import checks
from ragpress.compressors.token_classifier import EncodedDoc, chunk_bounds, encode_words
from ragpress.model_compressor import ModelCompressor
from ragpress.onnx.models import RelevanceScorer
from ragpress.registry import register
from ragpress.selection import Selection, Units, add_window, scored_spans, select
from ragpress.text import (
    aggregate_to_words,
    clause_spans,
    overlaps_any,
    trimmed_sentence_spans,
)
from ragpress.types import DOCUMENT_SEPARATOR, CompressionRequest, CompressionResult

DEFAULT_MODEL = "minilm-l6-relevance"
#: Keep probability a sentence needs when no budget is given. Chosen on 60 dev items per setting
#: (int8): 0.05 keeps the answer in 92% of (a) / (b) / (c) items with 10% / 15% / 43% of the
#: tokens, returns nothing for at most 2% of them and for 92% of noise-only retrievals; 0.1
#: keeps it in 90% with 7% / 10% / 33%, 0.2 in 80-82%.
DEFAULT_THRESHOLD = 0.05
#: Question sub-words in front of every window (as in training; longer questions are cut).
MAX_QUERY_TOKENS = 48
#: Least room (target tokens) worth filling with part of a sentence.
MIN_PARTIAL_TOKENS = 4
#: Under a budget the units are clauses, scored by their sentence's score times (the clause's
#: highest answer probability + this floor, so that a sentence's clauses keep its order when
#: the answer channel reads nothing in them).
ANSWER_FLOOR = 0.05
#: Under a budget a clause's score is also multiplied by its document's relevance to this power,
#: so that past the answer clauses the room goes to the passages the model reads as relevant
#: rather than to distractors' clauses. Chosen on 300 dev items per setting (int8, clauses;
#: answer survival at 4x / 8x / 16x): powers 0 / 1 / 3 / 8 gave other-article 98.7 / 96.7 /
#: 86.3, 98.7 / 96.7 / 87.0, 98.7 / 97.0 / 87.0, 98.7 / 97.0 / 87.0 and same-article
#: 97.0 / 93.7 / 83.0, 99.0 / 94.7 / 83.7, 99.3 / 95.7 / 83.7, 98.7 / 95.3 / 84.7 (2x: 99.3 and
#: 99.7 throughout; one document alone: no change).
RELEVANCE_POWER = 3
#: Under a budget the best sentences of the most relevant document, at most this many, are read
#: again, each alone as the passage, and the relevance head's probability for that one sentence
#: joins its score (``_reread``). The relevance head learnt, against passages of the same article,
#: whether a text holds the answer; the keep channel's mean ranks a passage's sentences less well.
#: On 300 dev items per setting (int8, clauses, with the relevance weight; answer survival at 2x
#: / 4x / 8x / 16x), rereading took other-article from 99.3 / 98.7 / 97.0 / 87.0 to 99.3 / 99.0
#: / 97.0 / 87.7, same-article from 99.7 / 99.3 / 95.7 / 83.7 to 99.7 / 99.3 / 96.7 / 84.0 and
#: gold-only from 94.3 / 76.7 / 52.3 / 31.3 to 94.3 / 78.3 / 56.7 / 33.3; every sentence of the
#: document instead of the best 10 gave the same, the best 6 a point less at 8x.
REREAD_SENTENCES = 10
#: A reread sentence scores ``keep ** (1 - REREAD_WEIGHT) * relevance ** REREAD_WEIGHT`` (its
#: mean keep probability, its relevance read alone). Dev 8x same-article / gold-only: weights 0.2 /
#: 0.3 / 0.4 / 0.5 / 0.7 / 1 gave 96.3 / 96.3 / 96.7 / 96.0 / 95.3 / 95.0 and 54.7 / 55.7 / 56.7 /
#: 57.3 / 57.7 / 56.7; other-article at 8x fell from 0.5 up (97.0 -> 95.7 / 95.7 / 94.7).
REREAD_WEIGHT = 0.4
#: Once a clause does not fit, whole clauses scoring under this share of it no longer fill the
#: room: it goes to a run of words of that clause instead (``_with_partial_sentence``).
SKIP_FLOOR = 0.5
#: Channels of the model's (S, 2) logits: keep after ``[CLS]``; relevance at ``[CLS]``, and
#: the answer logit after it (``ragpress.training.relevance``).
KEEP, RELEVANT, ANSWER = 0, 1, 1


@dataclass
class ScoredDocument:
    """One document as the model read it: its sub-words, each one's keep probability and answer
    probability (where in a kept sentence the answer sits), and the document's relevance."""

    doc: EncodedDoc
    keep: np.ndarray
    answer: np.ndarray
    relevance: float


@dataclass
class _Window:
    """One model input: sub-words ``[start, end)`` of document ``doc`` of request ``request``."""

    request: int
    doc: int
    start: int
    end: int


@register("relevance", aliases=("provence", "pruner"))
class RelevanceCompressor(ModelCompressor):
    """Model options (model, backend, variant, device, threads, batch_size): see
    ``ragpress.model_compressor``."""

    runner_class = RelevanceScorer
    default_model = DEFAULT_MODEL
    #: int8 keeps answers as fp32 does in about half the time (module docstring, "Variant").
    cpu_variant = "int8"
    default_rate = None
    requires_query = True

    def __init__(
        self,
        *,
        threshold: float | None = None,
        rerank: bool = False,
        partial_sentence: bool = True,
        reread_sentences: int = REREAD_SENTENCES,
        max_length: int = 256,
        **options: Any,
    ) -> None:
        threshold = checks.fraction(threshold, "threshold", low_open=False)
        rerank = checks.boolean(rerank, "rerank")
        partial_sentence = checks.boolean(partial_sentence, "partial_sentence")
        reread_sentences = checks.integer(reread_sentences, "reread_sentences", at_least=0)
        max_length = checks.integer(max_length, "max_length", at_least=64)
        super().__init__(**options)
        self.threshold, self.rerank = threshold, rerank
        self.max_length = self.encoder_window(max_length)
        self.partial_sentence = partial_sentence
        self.reread_sentences = reread_sentences
        tokenizer = self.runner.tokenizer
        self._cls, self._sep = tokenizer.cls_token_id, tokenizer.sep_token_id

    @property
    def settings(self) -> dict[str, Any]:
        return {
            **super().settings,
            "threshold": self.threshold,
            "rerank": self.rerank,
            "partial_sentence": self.partial_sentence,
            "reread_sentences": self.reread_sentences,
            "max_length": self.max_length,
        }

    # -- model ---------------------------------------------------------------------------

    def score(self, requests: Sequence[CompressionRequest]) -> list[list[ScoredDocument]]:
        """Per request, per document: its sub-words, their keep and answer probabilities and
        the document's relevance probability, from one batched run over every window."""
        tokenizer = self.runner.tokenizer
        questions = tokenizer(
            [(r.query or "").strip() for r in requests], add_special_tokens=False
        )["input_ids"]
        questions = [q[:MAX_QUERY_TOKENS] for q in questions]
        docs = [encode_words(tokenizer, list(r.documents)) for r in requests]
        windows = [
            _Window(r, d, a, b)
            for r, request_docs in enumerate(docs)
            for d, doc in enumerate(request_docs)
            for a, b in chunk_bounds(doc, self.max_length - len(questions[r]) - 3)
        ]
        logits = self.runner.logits(
            [
                [self._cls, *questions[w.request], self._sep, *_ids(docs, w), self._sep]
                for w in windows
            ]
        )
        scored = [
            [ScoredDocument(doc, np.zeros(len(doc.ids)), np.zeros(len(doc.ids)), 0.0) for doc in ds]
            for ds in docs
        ]
        for window, row in zip(windows, logits, strict=True):
            head = len(questions[window.request]) + 2
            probs = _sigmoid(row)
            passage = slice(head, head + window.end - window.start)
            document = scored[window.request][window.doc]
            document.keep[window.start : window.end] = probs[passage, KEEP]
            document.answer[window.start : window.end] = probs[passage, ANSWER]
            document.relevance = max(document.relevance, float(probs[0, RELEVANT]))
        return scored

    # -- compression ---------------------------------------------------------------------

    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        scored = self.score(requests)
        sentences = [
            self._sentences(r, per_doc) for r, per_doc in zip(requests, scored, strict=True)
        ]
        self._reread(requests, scored, sentences)
        return [self._compress_one(*args) for args in zip(requests, scored, sentences, strict=True)]

    def _sentences(self, request: CompressionRequest, per_doc: list[ScoredDocument]) -> Units:
        """Every sentence of every document, scored; those under the threshold left out."""
        sentences = Units.concat(
            [_sentence_units(index, one.doc, one.keep) for index, one in enumerate(per_doc)]
        )
        threshold = self.threshold
        if not _has_budget(request) and threshold is None:
            threshold = DEFAULT_THRESHOLD
        if threshold is not None:  # an explicit threshold also bounds a budgeted selection
            sentences = sentences.take(sentences.score >= threshold)
        return sentences

    def _reread(
        self,
        requests: Sequence[CompressionRequest],
        scored: list[list[ScoredDocument]],
        sentences: list[Units],
    ) -> None:
        """Under a budget, the best sentences of each request's most relevant document read
        again, each alone as the passage, in one batched run: their scores (in ``sentences``)
        become ``keep ** (1 - REREAD_WEIGHT) * relevance ** REREAD_WEIGHT``."""
        picks = [
            _reread_candidates(per_doc, units, self.reread_sentences)
            if _has_budget(request)
            else np.zeros(0, dtype=np.int64)
            for request, per_doc, units in zip(requests, scored, sentences, strict=True)
        ]
        asked = [r for r, chosen in enumerate(picks) if len(chosen)]
        if not asked:
            return
        alone = self.score(
            [
                CompressionRequest(_texts(scored[r], sentences[r], picks[r]), requests[r].query)
                for r in asked
            ]
        )
        for r, read in zip(asked, alone, strict=True):
            relevance = np.asarray([one.relevance for one in read])
            units = sentences[r]
            keep = units.score[picks[r]]
            units.score[picks[r]] = keep ** (1 - REREAD_WEIGHT) * relevance**REREAD_WEIGHT

    def _compress_one(
        self, request: CompressionRequest, per_doc: list[ScoredDocument], sentences: Units
    ) -> CompressionResult:
        original = self.tokenizer.count(request.context)
        budget = request.token_budget(original, self.default_rate)
        selection = self._select(request, per_doc, sentences, budget)
        result = self.selection_result(
            request,
            selection,
            original=original,
            budget=budget,
            scores=scored_spans(selection.units),
        )
        scores = [scored.relevance for scored in per_doc]
        result.document_scores = scores
        if self.rerank and result.documents is not None:
            order = sorted(range(len(scores)), key=lambda d: -scores[d])
            result.text = DOCUMENT_SEPARATOR.join(
                result.documents[d] for d in order if result.documents[d]
            )
        return result

    def _select(
        self,
        request: CompressionRequest,
        per_doc: list[ScoredDocument],
        sentences: Units,
        budget: int | None,
    ) -> Selection:
        """Whole sentences without a budget or with ``partial_sentence=False``; else clauses
        best first, then a run of words in the room they leave."""
        if budget is None or not self.partial_sentence:
            return select(request.documents, sentences, self.tokenizer, budget, threshold=-np.inf)
        clauses, parents = _clause_units(sentences, per_doc)
        selection = select(
            request.documents,
            clauses,
            self.tokenizer,
            budget,
            threshold=-np.inf,
            skip_floor=SKIP_FLOOR,
        )
        return self._with_partial_sentence(request, per_doc, sentences, parents, selection, budget)

    def _with_partial_sentence(
        self,
        request: CompressionRequest,
        per_doc: list[ScoredDocument],
        sentences: Units,
        parents: np.ndarray,
        selection: Selection,
        budget: int,
    ) -> Selection:
        """The room whole clauses leave (at high ratios, often all of it: no answer clause
        fits 1/16 of a passage) goes to the run of words, in the sentence of the best clause
        left out and not yet kept, with the highest total answer probability (a word's: the mean
        of its sub-words'), i.e. around where the model reads the answer in that sentence."""
        units = selection.units
        left_out = np.flatnonzero(~selection.keep & np.isfinite(units.score))
        if budget - selection.tokens < MIN_PARTIAL_TOKENS or not len(left_out):
            return selection
        best = left_out[np.argmax(units.score[left_out])]
        index, sentence = int(units.doc[best]), int(parents[best])
        start, end = int(sentences.start[sentence]), int(sentences.end[sentence])
        scored = per_doc[index]
        words = scored.doc.words
        kept = [(span.start, span.end) for span in selection.kept_spans if span.doc == index]
        inside = (words[:, 0] >= start) & (words[:, 1] <= end) & ~overlaps_any(words, kept)
        answer = aggregate_to_words(scored.answer, scored.doc.word, len(words))
        free = np.flatnonzero(inside)
        pieces = Units.from_spans(
            [(index, int(a), int(b)) for a, b in words[free]], np.nan_to_num(answer[free])
        )
        return add_window(request.documents, selection, pieces, self.tokenizer, budget)


def _has_budget(request: CompressionRequest) -> bool:
    return request.rate is not None or request.target_tokens is not None


def _reread_candidates(per_doc: list[ScoredDocument], sentences: Units, limit: int) -> np.ndarray:
    """Positions in ``sentences`` of the best ``limit`` sentences of the most relevant
    document (the first of equals), best first."""
    if not per_doc or not limit:
        return np.zeros(0, dtype=np.int64)
    top = int(np.argmax([one.relevance for one in per_doc]))
    mine = np.flatnonzero(sentences.doc == top)
    return mine[np.argsort(-sentences.score[mine], kind="stable")[:limit]]


def _texts(per_doc: list[ScoredDocument], sentences: Units, picks: np.ndarray) -> tuple[str, ...]:
    return tuple(
        per_doc[int(sentences.doc[u])].doc.text[int(sentences.start[u]) : int(sentences.end[u])]
        for u in picks
    )


def _ids(docs: list[list[EncodedDoc]], window: _Window) -> list[int]:
    return docs[window.request][window.doc].ids[window.start : window.end].tolist()


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))


def _sentence_units(index: int, doc: EncodedDoc, probs: np.ndarray) -> Units:
    """The document's sentences, each scored by the mean keep probability of its sub-words
    (a sentence with no sub-word, e.g. only characters the encoder drops, scores 0)."""
    spans = trimmed_sentence_spans(doc.text)
    sentence = subword_sentences(doc, spans)
    total = np.bincount(sentence[sentence >= 0], probs[sentence >= 0], minlength=len(spans))
    count = np.bincount(sentence[sentence >= 0], minlength=len(spans))
    score = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return Units.from_spans([(index, a, b) for a, b in spans], score)


def _clause_units(sentences: Units, per_doc: list[ScoredDocument]) -> tuple[Units, np.ndarray]:
    """Each sentence cut into clauses (:func:`ragpress.text.clause_spans`), a clause scored by
    its sentence's score times (its highest answer probability + ``ANSWER_FLOOR``) times its
    document's relevance to ``RELEVANCE_POWER``: the keep channel ranks sentences, the answer
    channel the clauses within one, the relevance channel the documents. Also, per clause, the
    index in ``sentences`` of its sentence."""
    parts, parents = [], []
    for index, scored in enumerate(per_doc):
        mine = np.flatnonzero(sentences.doc == index)
        text = scored.doc.text
        clauses, parent = [], []
        for unit in mine.tolist():
            found = clause_spans(text, int(sentences.start[unit]), int(sentences.end[unit]))
            clauses += found
            parent += [unit] * len(found)
        clause = subword_sentences(scored.doc, clauses)
        # Sub-words of a sentence the threshold dropped fall after a clause: not in it.
        ends = np.asarray([stop for _, stop in clauses] or [0], dtype=np.int64)
        inside = (clause >= 0) & (_subword_starts(scored.doc) < ends[np.maximum(clause, 0)])
        answer = np.zeros(len(clauses))
        np.maximum.at(answer, clause[inside], scored.answer[inside])
        parent_index = np.asarray(parent, dtype=np.int64)
        weight = scored.relevance**RELEVANCE_POWER
        score = sentences.score[parent_index] * (answer + ANSWER_FLOOR) * weight
        parts.append(Units.from_spans([(index, a, b) for a, b in clauses], score))
        parents.append(parent_index)
    return Units.concat(parts), np.concatenate(parents or [np.zeros(0, dtype=np.int64)])


def subword_sentences(doc: EncodedDoc, spans: Sequence[tuple[int, int]]) -> np.ndarray:
    """The index in ``spans`` (the document's sentences or clauses, in order) of the last one
    starting at or before each sub-word (-1 before the first): how sentences are scored here and
    labelled in training."""
    bounds = np.asarray([a for a, _ in spans], dtype=np.int64)
    return np.searchsorted(bounds, _subword_starts(doc), side="right") - 1


def _subword_starts(doc: EncodedDoc) -> np.ndarray:
    """Where each sub-word's word starts in the document's text."""
    return doc.words[doc.word, 0] if len(doc.ids) else np.zeros(0, dtype=np.int64)
