"""Coarse-to-fine pipelines: compressors run one after the other under one overall budget.

``Pipeline(["attention-probe", "entropy"])`` (or the name ``"probe+entropy"``) first lets the
sentence filter drop whole sentences, then prunes words inside what is left. The request's
budget B (from ``rate`` or ``target_tokens``, in the target tokenizer) is handed down: a lossy
stage with k lossy stages after it may keep ``headroom**k`` x B tokens, so the last lossy stage
meets B itself and every earlier one leaves it room to choose. A stage that finds its input
already within its allowance keeps it whole. Without a budget each stage keeps, in turn, what it
keeps alone (its own default rate, or its threshold). A lossless stage (``metatoken``) may only
come last: it packs what the lossy stages kept, and its ``decompress`` restores that text.

All requests of a batch go through each stage in one ``compress_batch`` call. The result's
``kept_spans`` point into the original input (each stage's spans are mapped back through the
stages before it) and ``stages`` reports what every stage did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ragpress import checks
from ragpress.base import Compressor
from ragpress.registry import (
    PIPELINE_SEPARATOR,
    accepted_options,
    check_stage_options,
    factory,
    get_compressor,
    register,
    resolve,
    stage_options_by_method,
)
from ragpress.types import (
    DOCUMENT_SEPARATOR,
    CompressionRequest,
    CompressionResult,
    Span,
    StageReport,
)

#: An allowance past any context's size: the stage keeps everything.
_NO_LIMIT = 2**62


@register("pipeline")
class Pipeline(Compressor):
    """Stages (names or instances) run in order; see the module docstring for the budget."""

    def __init__(
        self,
        stages: Sequence[str | Compressor] | str,
        *,
        headroom: float = 2.0,
        stage_options: Mapping[str, Mapping[str, Any]] | None = None,
        target_tokenizer: Any = None,
        **shared_options: Any,
    ) -> None:
        """``stage_options`` maps a stage name to its constructor keywords; ``shared_options``
        (e.g. ``variant="int8"``, ``backend="torch"``) go to every named stage that takes them."""
        stages = self.check_stages(
            stages, {"headroom": headroom, "stage_options": stage_options, **shared_options}
        )
        super().__init__(target_tokenizer=target_tokenizer)
        self.headroom = checks.number(headroom, "headroom", at_least=1.0)
        by_method = stage_options_by_method(stage_options)
        self.stages = _build_stages(stages, self.tokenizer, by_method, shared_options)
        lossless = [_is_lossless(stage) for stage in self.stages]
        #: Per stage, how many lossy stages follow it (None for the lossless one).
        self._later_lossy = [
            None if lossless[i] else lossless[i + 1 :].count(False) for i in range(len(lossless))
        ]
        self.requires_query = any(stage.requires_query for stage in self.stages)
        # Without a budget there is no overall one: each stage keeps, in turn, what it keeps
        # alone (its own default rate or threshold). An overall default from the last stage
        # gave the first the whole text (headroom x B >= the input), so it dropped nothing.
        self.default_rate = None
        self.name = PIPELINE_SEPARATOR.join(stage.name for stage in self.stages)

    @staticmethod
    def check_stages(stages: Any, options: Mapping[str, Any]) -> list[str | Compressor]:
        """``stages`` as a list, once it and ``options`` (the pipeline's own and those shared by
        its stages) are checked: names, options and the order of lossy and lossless stages, all
        before any stage is built (a model may take a minute to export on first use)."""
        if isinstance(stages, str):
            stages = stages.split(PIPELINE_SEPARATOR)
        if not isinstance(stages, Sequence):
            raise TypeError(f"stages must be a list of names or Compressors, got {stages!r}")
        stages = list(stages)
        if len(stages) < 2:
            raise ValueError("a pipeline needs at least two stages, e.g. 'probe+entropy'")
        for stage in stages:
            if not isinstance(stage, str | Compressor):
                raise TypeError(f"a stage is a name or a Compressor, got {type(stage).__name__}")
        checks.number(options.get("headroom", 2.0), "headroom", at_least=1.0)
        own = sorted(accepted_options("pipeline") - {"stages"})
        shared = {key: value for key, value in options.items() if key not in own}
        check_stage_options(stages, shared, options.get("stage_options"), own)
        kinds = [factory(stage.strip()) if isinstance(stage, str) else stage for stage in stages]
        lossless = [_is_lossless(kind) for kind in kinds]
        if all(lossless):
            raise ValueError("a pipeline needs at least one lossy stage")
        if any(lossless[:-1]):
            raise ValueError("a lossless stage (metatoken) may only come last")
        return stages

    @property
    def question_aware(self) -> bool:
        """True when some stage uses the query (adapters then insist on one)."""
        return any(stage.question_aware for stage in self.stages)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            **super().settings,
            "headroom": self.headroom,
            "stages": [{"method": stage.name, **stage.settings} for stage in self.stages],
        }

    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        originals = [self.tokenizer.count(request.context) for request in requests]
        budgets = [
            request.token_budget(original, self.default_rate)
            for request, original in zip(requests, originals, strict=True)
        ]
        reserves = [self._framing(request) for request in requests]
        current = list(requests)
        maps = [_identity_maps(request.documents) for request in requests]
        reports: list[list[StageReport]] = [[] for _ in requests]
        results: list[CompressionResult] = []
        for stage, later in zip(self.stages, self._later_lossy, strict=True):
            staged = [
                _stage_request(request, self._allowance(later, budget, reserve), later is None)
                for request, budget, reserve in zip(current, budgets, reserves, strict=True)
            ]
            results = stage.compress_batch(staged)
            for index, (request, result) in enumerate(zip(staged, results, strict=True)):
                reports[index].append(_report(stage, request, result, self.tokenizer))
                if later is not None:
                    maps[index] = _compose(maps[index], request.documents, result)
                    current[index] = _next_request(requests[index], request, result)
        if self._later_lossy[-1] is None:
            for result, request in zip(results, current, strict=True):
                result.documents = _refill(result.documents, request.documents)
        return [
            self._result(*parts)
            for parts in zip(requests, originals, budgets, results, maps, reports, strict=True)
        ]

    def _allowance(self, later: int | None, budget: int | None, reserve: int = 0) -> int | None:
        """What a stage may keep: B, times ``headroom`` per lossy stage still to come; the last
        lossy stage leaves ``reserve`` tokens for the lossless stage's framing."""
        if budget is None or later is None:
            return None
        if later == 0:
            return max(0, budget - reserve)
        try:
            return min(math.ceil(budget * self.headroom**later), _NO_LIMIT)
        except OverflowError:  # a huge headroom: the stage keeps everything
            return _NO_LIMIT

    def _framing(self, request: CompressionRequest) -> int:
        """Tokens the lossless last stage may add to what the lossy ones kept (see
        ``MetaTokenCompressor.framing_tokens``); 0 without one."""
        framing = getattr(self.stages[-1], "framing_tokens", None)
        if self._later_lossy[-1] is not None or framing is None:
            return 0
        return int(framing(request.context))

    def _result(
        self,
        request: CompressionRequest,
        original: int,
        budget: int | None,
        last: CompressionResult,
        maps: list[np.ndarray],
        reports: list[StageReport],
    ) -> CompressionResult:
        return CompressionResult(
            text=last.text,
            original_tokens=original,
            compressed_tokens=self.tokenizer.count(last.text),
            method=self.name,
            settings=self.settings,
            documents=last.documents if request.is_list else None,
            kept_spans=_spans_of(maps),
            budget_tokens=budget,
            timings={f"{i}:{report.method}": report.seconds for i, report in enumerate(reports)},
            stages=reports,
        )


def _build_stages(
    stages: Sequence[str | Compressor],
    tokenizer: Any,
    stage_options: Mapping[str, Mapping[str, Any]],
    shared: Mapping[str, Any],
) -> list[Compressor]:
    """The stages, built in order (``Pipeline.check_stages`` has checked them)."""
    built = []
    for stage in stages:
        if isinstance(stage, Compressor):
            built.append(stage)
            continue
        name = stage.strip()
        options = {"target_tokenizer": tokenizer, **stage_options.get(resolve(name), {})}
        for key in set(shared) & accepted_options(name):
            options.setdefault(key, shared[key])
        built.append(get_compressor(name, **options))
    return built


def _is_lossless(stage: Compressor | type[Compressor]) -> bool:
    return callable(getattr(stage, "decompress", None))


def _stage_request(
    request: CompressionRequest, allowance: int | None, lossless: bool
) -> CompressionRequest:
    """The request a stage sees. The lossless stage packs the text the lossy ones produced,
    which leaves out documents they emptied (so it sees no separators around nothing)."""
    documents = tuple(doc for doc in request.documents if doc) if lossless else request.documents
    return CompressionRequest(
        documents, request.query, target_tokens=allowance, is_list=request.is_list
    )


def _refill(packed: list[str] | None, documents: Sequence[str]) -> list[str] | None:
    """The lossless stage's documents back in their places, emptied documents as ""."""
    if packed is None:
        return None
    rendered = iter(packed)
    return [next(rendered) if doc else "" for doc in documents]


def _next_request(
    original: CompressionRequest, staged: CompressionRequest, result: CompressionResult
) -> CompressionRequest:
    documents = result.document_texts(len(staged.documents))
    return CompressionRequest(tuple(documents), original.query, is_list=original.is_list)


def _identity_maps(documents: Sequence[str]) -> list[np.ndarray]:
    """Per document, the original offset of each character (all of them, at the start)."""
    return [np.arange(len(doc), dtype=np.int64) for doc in documents]


def _compose(
    maps: list[np.ndarray], inputs: Sequence[str], result: CompressionResult
) -> list[np.ndarray]:
    """Original offsets of each character of ``result``'s documents: every kept span is found,
    in order, in the stage's output; what lies between (whitespace a stage inserted or carried
    along) maps to -1 and is left out of the provenance."""
    outputs = result.document_texts(len(inputs))
    composed = []
    for doc, (source, output) in enumerate(zip(inputs, outputs, strict=True)):
        mapped = np.full(len(output), -1, dtype=np.int64)
        cursor = 0
        for span in (s for s in result.kept_spans if s.doc == doc):
            piece = source[span.start : span.end]
            found = output.find(piece, cursor)
            if found < 0:
                raise RuntimeError(f"{result.method} is not extractive: a kept span is missing")
            mapped[found : found + len(piece)] = maps[doc][span.start : span.end]
            cursor = found + len(piece)
        composed.append(mapped)
    return composed


def _spans_of(maps: list[np.ndarray]) -> list[Span]:
    """Runs of consecutive original offsets, as spans of the original documents."""
    spans = []
    for doc, mapped in enumerate(maps):
        offsets = mapped[mapped >= 0]
        if not offsets.size:
            continue
        breaks = np.flatnonzero(np.diff(offsets) != 1) + 1
        for run in np.split(offsets, breaks):
            spans.append(Span(doc, int(run[0]), int(run[-1]) + 1))
    return spans


def _report(
    stage: Compressor, request: CompressionRequest, result: CompressionResult, tokenizer: Any
) -> StageReport:
    return StageReport(
        method=stage.name,
        # Counted as the previous stage rendered it: emptied documents leave no separator.
        input_tokens=tokenizer.count(DOCUMENT_SEPARATOR.join(d for d in request.documents if d)),
        output_tokens=result.compressed_tokens,
        budget_tokens=request.target_tokens,
        seconds=result.seconds,
    )
