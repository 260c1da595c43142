"""``Compressor``: the one interface. Subclasses implement ``_compress_batch`` only."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ragpress.selection import Selection, Units, scored_spans, select
from ragpress.tokenization import TargetTokenizer, get_target_tokenizer
from ragpress.types import CompressionRequest, CompressionResult, ScoredSpan, Span

BatchItem = CompressionRequest | Mapping[str, Any] | str


class Compressor(ABC):
    """Compress a context (one text or a list of documents), optionally for a query.

    ``compress`` validates its arguments and hands one request to ``_compress_batch``;
    ``compress_batch`` hands many, so backends that batch their model calls can do so.
    """

    name: ClassVar[str]
    #: Kept share of tokens when neither ``rate`` nor ``target_tokens`` is given (None: no budget).
    default_rate: ClassVar[float | None] = None
    #: True when the method cannot run without a query (adapters check it up front).
    requires_query: ClassVar[bool] = False

    def __init__(self, *, target_tokenizer: Any = None) -> None:
        self.tokenizer: TargetTokenizer = get_target_tokenizer(target_tokenizer)

    def compress(
        self,
        context: str | Sequence[str],
        query: str | None = None,
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
    ) -> CompressionResult:
        request = CompressionRequest.create(context, query, rate=rate, target_tokens=target_tokens)
        return self._run([request])[0]

    def compress_batch(self, items: Sequence[BatchItem]) -> list[CompressionResult]:
        """Compress many requests in one go. Items are ``CompressionRequest``s, strings, or
        mappings with the keys of :meth:`compress` (``context``, ``query``, ``rate``,
        ``target_tokens``)."""
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise TypeError("compress_batch takes a sequence of requests, not a single context")
        return self._run([_as_request(item, index) for index, item in enumerate(items)])

    @property
    def settings(self) -> dict[str, Any]:
        """The options that shaped the output, copied into every result."""
        return {"target_tokenizer": self.tokenizer.name}

    @abstractmethod
    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        """Compress validated requests; ``seconds`` is filled in by the caller."""

    def _run(self, requests: list[CompressionRequest]) -> list[CompressionResult]:
        if not requests:
            return []
        start = time.perf_counter()
        results = self._compress_batch(requests)
        elapsed = (time.perf_counter() - start) / len(requests)
        for result in results:
            result.seconds = elapsed
        return results

    def passthrough(self, request: CompressionRequest) -> CompressionResult:
        """The result for a request left as it is (empty or whitespace-only context)."""
        count = self.tokenizer.count(request.context)
        return CompressionResult(
            text=request.context,
            original_tokens=count,
            compressed_tokens=count,
            method=self.name,
            settings=self.settings,
            documents=list(request.documents) if request.is_list else None,
            kept_spans=[Span(i, 0, len(doc)) for i, doc in enumerate(request.documents) if doc],
            budget_tokens=None,
        )

    def keep_best(
        self,
        request: CompressionRequest,
        units: Units,
        *,
        original: int | None = None,
        budget: int | None = None,
        threshold: float | None = None,
        report_scores: bool = True,
        timings: dict[str, float] | None = None,
    ) -> CompressionResult:
        """Keep the best-scoring ``units`` within the request's budget (or above ``threshold``)
        and wrap them as this method's result: the shared end of every extractive compressor."""
        if original is None:
            original = self.tokenizer.count(request.context)
        if budget is None:
            budget = request.token_budget(original, self.default_rate)
        selection = select(request.documents, units, self.tokenizer, budget, threshold=threshold)
        return self.selection_result(
            request,
            selection,
            original=original,
            budget=budget,
            scores=scored_spans(units) if report_scores else None,
            timings=timings,
        )

    def selection_result(
        self,
        request: CompressionRequest,
        selection: Selection,
        *,
        original: int,
        budget: int | None,
        scores: list[ScoredSpan] | None = None,
        timings: dict[str, float] | None = None,
    ) -> CompressionResult:
        """Kept units (a :class:`Selection`) wrapped as this method's result."""
        return CompressionResult(
            text=selection.text,
            original_tokens=original,
            compressed_tokens=selection.tokens,
            method=self.name,
            settings=self.settings,
            documents=selection.documents if request.is_list else None,
            kept_spans=selection.kept_spans,
            scores=scores,
            budget_tokens=budget,
            timings=timings or {},
        )

    def __repr__(self) -> str:
        options = ", ".join(f"{key}={value!r}" for key, value in self.settings.items())
        return f"{type(self).__name__}({options})"


def _as_request(item: BatchItem, index: int) -> CompressionRequest:
    if isinstance(item, CompressionRequest):
        return item
    if isinstance(item, str):
        return CompressionRequest.create(item)
    if isinstance(item, Mapping):
        unknown = set(item) - {"context", "query", "rate", "target_tokens"}
        if unknown or "context" not in item:
            raise ValueError(
                f"items[{index}] needs a 'context' key and only context, query, rate, "
                f"target_tokens; got {sorted(item)}"
            )
        return CompressionRequest.create(
            item["context"],
            item.get("query"),
            rate=item.get("rate"),
            target_tokens=item.get("target_tokens"),
        )
    raise TypeError(
        f"items[{index}] must be a CompressionRequest, a str or a mapping, "
        f"got {type(item).__name__}"
    )
