"""Entropy token pruning: Selective Context, LLMLingua and LongLLMLingua on one ONNX NLL graph.

A small causal LM scores every token by its negative log-likelihood (self-information). Scores
are pooled to lexical units (words, phrases or sentences; or ``unit="token"``, the model's own
sub-word tokens, as LLMLingua prunes) and the least informative units are dropped until the
budget, counted in the target tokenizer, is met. Token units may keep part of a word; where one
was dropped between two kept pieces the output has a space, so pieces never fuse into new words.

With a question (LongLLMLingua), two passes per document run in one batch:

* ``document + instruction + question``: plain token NLLs, and the NLL of the question after
  the document, which ranks documents (a document that makes the question likely is relevant);
* ``question + document``: token NLLs given the question. The *contrast*, plain minus
  conditioned, is high where the question makes the text predictable: the text it is about.

Unit score = z(information) + ``relevance`` x (z(sentence contrast) + z(document rank)). The
document rank also drives the coarse step (on by default, as in LongLLMLingua): documents are
kept best-ranked first until they hold ``coarse_factor`` x the budget, the others are dropped
whole, and the question-conditioned pass reads only the kept ones.
Long documents are scored in windows with overlap (linear time, bounded memory).

``iterative=True`` is LLMLingua's iterative step: each document is read in segments of
``segment`` tokens, each scored after the words kept so far (the previous segments, pruned at the
request's rate, at most ``window - segment`` tokens), so text made redundant by what was dropped
is judged as the reader will see it. Segment k of every document runs in one batch; the final
selection is still global over the whole request. What a segment is scored after is chosen by
words, whatever the unit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal, get_args

import numpy as np

from ragpress import checks
from ragpress.model_compressor import ModelCompressor
from ragpress.onnx.models import TokenScorer
from ragpress.registry import register
from ragpress.selection import Units
from ragpress.text import (
    PROTECT_KINDS,
    aggregate_to_words,
    align_tokens_to_words,
    check_protect,
    overlaps_any,
    protected_spans,
    sentence_spans,
    token_spans,
    trimmed_sentence_spans,
    word_spans,
)
from ragpress.types import CompressionRequest, CompressionResult

Unit = Literal["token", "word", "phrase", "sentence"]
RANK_INSTRUCTION = "\n\nWe can get the answer to this question in the given documents.\nQuestion: "
QUESTION_PREFIX = "Question: {query}\nAnswer it from this text:\n"
#: The coarse step keeps documents until they hold this many times the budget. Chosen on 40 dev
#: QA items (answer survives at 2x / 4x / 8x: 97.5 / 80 / 65% at 1.0, 92.5 / 77.5 / 60% at
#: 1.25, 85 / 60 / 45% at 2.0); fewer documents to prune also means a shorter conditioned
#: pass. LongLLMLingua's ``context_budget="+100"`` (tokens over the budget) is the same idea.
COARSE_FACTOR = 1.0
#: Kinds of protected spans kept whatever the budget ("numbers" too: opt in, as number-heavy
#: text would otherwise spend the whole budget on them; see ragpress.text.protected_spans).
DEFAULT_PROTECT = ("code", "json", "urls")


@dataclass
class _Doc:
    """One document of one request, with everything the scorer produces for it."""

    request: int
    index: int
    text: str
    ids: list[int]
    offsets: np.ndarray
    plain: np.ndarray = field(default_factory=lambda: np.zeros(0))
    conditioned: np.ndarray | None = None
    question_nll: float = 0.0
    dropped: bool = False  # by the coarse step

    @cached_property
    def words(self) -> list[tuple[int, int]]:
        return word_spans(self.text)

    @cached_property
    def token_word(self) -> np.ndarray:
        """The word of each token (-1: whitespace only)."""
        return align_tokens_to_words(self.offsets, self.words)


@dataclass(frozen=True)
class _Job:
    """A window of a document to score: ``sequence[skip:]`` are the document's ``[begin, end)``."""

    doc: _Doc
    conditioned: bool
    sequence: list[int]
    skip: int
    begin: int
    end: int
    question_at: int | None = None  # where question tokens start (ranking pass only)


@register("entropy", aliases=("selective-context", "llmlingua", "longllmlingua"))
class EntropyCompressor(ModelCompressor):
    """Model options: see ``ragpress.model_compressor`` (fp32 on CPU too: int8 keeps fewer
    answers on some CPUs, measured there)."""

    runner_class = TokenScorer
    default_rate = 0.5
    #: The ``question_aware`` option: with it (and a query) LongLLMLingua, without LLMLingua.
    question_aware: bool = True

    def __init__(
        self,
        *,
        unit: Unit = "word",
        question_aware: bool = True,
        relevance: float = 1.0,
        coarse: bool = True,
        coarse_factor: float = COARSE_FACTOR,
        window: int = 1024,
        overlap: int = 128,
        iterative: bool = False,
        segment: int = 200,
        protect: Sequence[str] = DEFAULT_PROTECT,
        force_tokens: Sequence[str] = (),
        **options: Any,
    ) -> None:
        unit = checks.choice(unit, get_args(Unit), "unit")
        question_aware = checks.boolean(question_aware, "question_aware")
        coarse = checks.boolean(coarse, "coarse")
        iterative = checks.boolean(iterative, "iterative")
        relevance = checks.number(relevance, "relevance")
        force_tokens = checks.strings(force_tokens, "force_tokens")
        if coarse:  # at least 1: the documents kept hold the budget (unused, None, otherwise)
            coarse_factor = checks.number(coarse_factor, "coarse_factor", at_least=1)
        window = checks.integer(window, "window", at_least=2)
        overlap = checks.integer(overlap, "overlap", at_least=0)
        if not 0 <= overlap < window // 2:
            raise ValueError(f"overlap must be in [0, window/2); got {overlap} for {window}")
        if iterative:  # segment is unused (and reported as None) otherwise
            segment = checks.integer(segment, "segment", at_least=1)
            if not segment < window:
                raise ValueError(f"segment must be in (0, window); got {segment} for {window}")
        super().__init__(**options)
        self.unit, self.question_aware, self.relevance = unit, question_aware, relevance
        self.coarse, self.coarse_factor = coarse, coarse_factor
        self.window, self.overlap = window, overlap
        self.iterative, self.segment = iterative, segment
        self.protect = check_protect(protect)
        self.force_tokens = force_tokens
        self._newline = self.runner.tokenizer.encode("\n", add_special_tokens=False)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            **super().settings,
            "unit": self.unit,
            "question_aware": self.question_aware,
            "relevance": self.relevance,
            "coarse": self.coarse,
            "coarse_factor": self.coarse_factor if self.coarse else None,
            "window": self.window,
            "overlap": self.overlap,
            "iterative": self.iterative,
            "segment": self.segment if self.iterative else None,
            "protect": list(self.protect),
            "force_tokens": list(self.force_tokens),
        }

    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        docs = self._tokenize(requests)
        self._score(docs, requests)
        return [
            self._compress_one(request, [d for d in docs if d.request == i])
            for i, request in enumerate(requests)
        ]

    def _tokenize(self, requests: Sequence[CompressionRequest]) -> list[_Doc]:
        pairs = [
            (i, j, doc)
            for i, request in enumerate(requests)
            for j, doc in enumerate(request.documents)
            if doc
        ]
        if not pairs:
            return []
        encoded = self.runner.tokenizer(
            [doc for _, _, doc in pairs], add_special_tokens=False, return_offsets_mapping=True
        )
        return [
            _Doc(i, j, doc, ids, np.asarray(offsets, dtype=np.int64).reshape(-1, 2))
            for (i, j, doc), ids, offsets in zip(
                pairs, encoded["input_ids"], encoded["offset_mapping"], strict=True
            )
        ]

    def _score(self, docs: list[_Doc], requests: Sequence[CompressionRequest]) -> None:
        """Fill plain and conditioned NLLs of every document with one batched model call (plus
        one call per segment in iterative mode). With the coarse step, the conditioned pass
        runs second, only over the documents the ranking keeps: the scores of the dropped ones
        are never used."""
        queries = [self._query(requests[doc.request]) for doc in docs]
        plain = [
            job
            for doc, query in zip(docs, queries, strict=True)
            for job in self._plain_jobs(doc, query)
        ]

        def conditioned() -> list[_Job]:
            return [
                job
                for doc, query in zip(docs, queries, strict=True)
                if query and not doc.dropped
                for job in self._conditioned_jobs(doc, query)
            ]

        if self.coarse:
            self._score_jobs(plain)
            self._mark_dropped(docs, requests)
            self._score_jobs(conditioned())
        else:
            self._score_jobs(plain + conditioned())
        if self.iterative:
            self._score_after_kept(docs, [self._keep_share(request) for request in requests])

    def _query(self, request: CompressionRequest) -> str | None:
        return request.query if self.question_aware and request.query else None

    def _plain_jobs(self, doc: _Doc, query: str | None) -> list[_Job]:
        """Windows of the document alone; the first one followed by the ranking question."""
        encode = self.runner.tokenizer.encode
        doc.plain = np.zeros(len(doc.ids))
        question = encode(RANK_INSTRUCTION + query, add_special_tokens=False) if query else []
        jobs = self._windows(doc, self._newline, conditioned=False, suffix=question)
        # Iterative mode scores the text itself later; only the ranking job is needed here.
        return [job for job in jobs if job.question_at is not None] if self.iterative else jobs

    def _conditioned_jobs(self, doc: _Doc, query: str) -> list[_Job]:
        doc.conditioned = np.zeros(len(doc.ids))
        prefix = self.runner.tokenizer.encode(
            QUESTION_PREFIX.format(query=query), add_special_tokens=False
        )
        return self._windows(doc, prefix, conditioned=True)

    def _score_jobs(self, jobs: list[_Job]) -> None:
        outputs = self.runner.nll([job.sequence for job in jobs]) if jobs else []
        for job, nll in zip(jobs, outputs, strict=True):
            target = job.doc.conditioned if job.conditioned else job.doc.plain
            assert target is not None  # _conditioned_jobs allocated it
            target[job.begin : job.end] = nll[job.skip : job.skip + job.end - job.begin]
            if job.question_at is not None:
                job.doc.question_nll = float(nll[job.question_at :].mean())

    def _keep_share(self, request: CompressionRequest) -> float:
        original = max(1, self.tokenizer.count(request.context))
        budget = request.token_budget(original, self.default_rate)
        return 1.0 if budget is None else min(1.0, budget / original)

    def _score_after_kept(self, docs: list[_Doc], shares: list[float]) -> None:
        """Plain NLLs, segment by segment, each after the words kept from the ones before."""
        kept: list[list[int]] = [[] for _ in docs]
        room = self.window - self.segment
        for begin in range(0, max((len(doc.ids) for doc in docs), default=0), self.segment):
            live = [i for i, doc in enumerate(docs) if begin < len(doc.ids)]
            sequences = [
                [
                    *self._newline,
                    *kept[i][-room:],
                    *docs[i].ids[begin : begin + self.segment],
                ]
                for i in live
            ]
            for i, nll in zip(live, self.runner.nll(sequences), strict=True):
                doc = docs[i]
                end = min(begin + self.segment, len(doc.ids))
                doc.plain[begin:end] = nll[len(nll) - (end - begin) :]
                kept[i] += _pruned_segment(doc, begin, end, shares[doc.request])

    def _windows(
        self, doc: _Doc, prefix: list[int], *, conditioned: bool, suffix: Sequence[int] = ()
    ) -> list[_Job]:
        """Cut a document into windows; each sees ``overlap`` earlier tokens as context.

        The ranking ``suffix`` (instruction + question) follows the first window only: the
        question's likelihood after the start of a document ranks it.
        """
        step = self.window - self.overlap
        jobs = []
        for begin in range(0, max(1, len(doc.ids)), step):
            end = min(begin + step, len(doc.ids))
            context = max(0, begin - self.overlap)
            sequence = [*prefix, *doc.ids[context:end]]
            tail = list(suffix) if begin == 0 and suffix else []
            jobs.append(
                _Job(
                    doc,
                    conditioned,
                    sequence + tail,
                    len(prefix) + begin - context,
                    begin,
                    end,
                    question_at=len(sequence) if tail else None,
                )
            )
            if end == len(doc.ids):
                break
        return jobs

    def _compress_one(self, request: CompressionRequest, docs: list[_Doc]) -> CompressionResult:
        original = self.tokenizer.count(request.context)
        budget = request.token_budget(original, self.default_rate)
        units = Units.concat([self._units(doc) for doc in docs])
        if self._ranks(request, docs):
            units.score += (
                self.relevance
                * _z(self._document_rank(docs))[np.searchsorted([d.index for d in docs], units.doc)]
            )
            dropped = np.isin(units.doc, [doc.index for doc in docs if doc.dropped])
            units.score[dropped] = -np.inf
            units.forced[dropped] = False
        return self.keep_best(request, units, original=original, budget=budget)

    def _ranks(self, request: CompressionRequest, docs: list[_Doc]) -> bool:
        return self._query(request) is not None and len(docs) > 1

    def _units(self, doc: _Doc) -> Units:
        # "token" units are the model's sub-word tokens, scored alone; the others pool words.
        words, token_word = (
            token_spans(doc.text, doc.offsets)
            if self.unit == "token"
            else (doc.words, doc.token_word)
        )
        info = _fill(aggregate_to_words(doc.plain, token_word, len(words), "mean"))
        score = _z(info)
        if doc.conditioned is not None:
            contrast = _fill(
                aggregate_to_words(doc.plain - doc.conditioned, token_word, len(words), "mean")
            )
            score = _z(_fill(aggregate_to_words(doc.conditioned, token_word, len(words), "mean")))
            score += self.relevance * _z(_sentence_mean(doc.text, words, contrast))
        spans = np.asarray(words, dtype=np.int64).reshape(-1, 2)
        spans, score = _group_units(doc.text, spans, score, self.unit)
        protected = protected_spans(
            doc.text,
            force_tokens=self.force_tokens,
            **{kind: kind in self.protect for kind in PROTECT_KINDS},
        )
        forced = overlaps_any([(a, b) for a, b in spans.tolist()], protected)
        return Units(
            np.full(len(spans), doc.index, dtype=np.int64),
            spans[:, 0].copy(),
            spans[:, 1].copy(),
            score,
            forced,
        )

    @staticmethod
    def _document_rank(docs: list[_Doc]) -> np.ndarray:
        """Higher is more relevant: minus the question's NLL after each document."""
        return -np.array([doc.question_nll for doc in docs])

    def _mark_dropped(self, docs: list[_Doc], requests: Sequence[CompressionRequest]) -> None:
        """Coarse step: per request, keep the best-ranked documents until they hold
        ``coarse_factor`` x the budget; mark the others dropped."""
        for i, request in enumerate(requests):
            mine = [doc for doc in docs if doc.request == i]
            if not self._ranks(request, mine):
                continue
            original = self.tokenizer.count(request.context)
            budget = request.token_budget(original, self.default_rate)
            if budget is None:
                continue
            allowance, kept = self.coarse_factor * budget, 0
            for position in np.argsort(-self._document_rank(mine), kind="stable").tolist():
                mine[position].dropped = kept >= allowance
                kept += self.tokenizer.count(mine[position].text)


def _pruned_segment(doc: _Doc, begin: int, end: int, share: float) -> list[int]:
    """Token ids of the segment's most informative words (a ``share`` of them): what a reader
    of the compressed text sees before the next segment."""
    token_word = doc.token_word[begin:end]
    present = np.unique(token_word[token_word >= 0])
    if not present.size:
        return []
    info = aggregate_to_words(doc.plain[begin:end], token_word, len(doc.words), "mean")[present]
    best = present[np.argsort(-info, kind="stable")[: math.ceil(share * present.size)]]
    return [doc.ids[begin + j] for j in np.flatnonzero(np.isin(token_word, best)).tolist()]


def _z(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    spread = values.std()
    return (values - values.mean()) / spread if spread > 1e-9 else np.zeros_like(values)


def _fill(values: np.ndarray) -> np.ndarray:
    """Words no token reached (rare: offsets off by whitespace) get the mean."""
    if np.isnan(values).all():
        return np.zeros_like(values)
    return np.where(np.isnan(values), np.nanmean(values), values)


def _sentence_mean(text: str, words: list[tuple[int, int]], values: np.ndarray) -> np.ndarray:
    """Each word gets the mean of ``values`` over its sentence."""
    if not words:
        return values
    starts = np.asarray([start for start, _ in sentence_spans(text)], dtype=np.int64)
    sentence = np.searchsorted(starts, np.asarray(words)[:, 0], side="right") - 1
    sums = np.bincount(sentence, weights=values, minlength=len(starts))
    counts = np.maximum(np.bincount(sentence, minlength=len(starts)), 1)
    return (sums / counts)[sentence]


def _group_units(
    text: str, words: np.ndarray, score: np.ndarray, unit: Unit
) -> tuple[np.ndarray, np.ndarray]:
    """Merge word units into phrases (cut at punctuation, at most 6 words) or sentences."""
    if unit in ("token", "word") or not len(words):
        return words, score
    if unit == "sentence":  # capped like every sentence unit (MAX_UNIT_CHARS)
        starts = np.asarray([start for start, _ in trimmed_sentence_spans(text)], dtype=np.int64)
        group = np.searchsorted(starts, words[:, 0], side="right") - 1
    else:
        is_punct = np.array([not text[a:b][0].isalnum() for a, b in words.tolist()])
        breaks = np.concatenate([[True], is_punct[:-1]]) | is_punct
        group = np.cumsum(breaks) - 1
        position = np.arange(len(words)) - np.flatnonzero(breaks)[group]
        group = np.cumsum(breaks | (position % 6 == 0)) - 1
    _, first = np.unique(group, return_index=True)
    last = np.concatenate([first[1:], [len(words)]]) - 1
    spans = np.stack([words[first, 0], words[last, 1]], axis=1)
    present = np.unique(group)
    sums = np.bincount(group, weights=score)[present]
    return spans, sums / np.bincount(group)[present]
