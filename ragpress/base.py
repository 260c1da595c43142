"""``Compressor``: the one interface, and the prologue every method shares.

A subclass implements its scoring only, in one of two hooks:

* ``_compress(request) -> CompressionResult`` for one request, or
* ``_compress_batch(requests) -> list[CompressionResult]`` to batch its model calls across
  requests (the default calls ``_compress`` on each).

Either hook receives only *live* requests: validated (:class:`CompressionRequest`), with some
non-whitespace text, and with a non-blank query when the class sets ``requires_query``. The
base class answers everything else itself (an empty or whitespace-only context passes through
unchanged; a missing query raises one ``ValueError``), times the call (``result.seconds``) and
the model forwards in it (``result.timings["forward"]``, see :mod:`ragpress.timing`).
"""

from __future__ import annotations

import time
from abc import ABC
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from ragpress.selection import Selection, Units, scored_spans, select
from ragpress.timing import forward_clock
from ragpress.tokenization import TargetTokenizer, get_target_tokenizer
from ragpress.types import CompressionRequest, CompressionResult, ScoredSpan, Span

BatchItem = CompressionRequest | Mapping[str, Any] | str


class MissingQueryError(ValueError):
    """A method that compresses for a query got none; ``argument`` names how to pass one."""

    def __init__(self, method: str, argument: str = "query=...") -> None:
        super().__init__(
            f"{method} compresses for a query and none was given: pass {argument}, "
            "or use a query-free method (metatoken, first-k, random)"
        )
        self.method = method


class Compressor(ABC):
    """Compress a context (one text or a list of documents), optionally for a query.

    ``compress`` validates its arguments into one request; ``compress_batch`` takes many, so
    backends that batch their model calls can do so. See the module docstring for the hooks.
    """

    #: The registry name (set by ``@register``; a pipeline names itself after its stages).
    name: str
    #: Kept share of tokens when neither ``rate`` nor ``target_tokens`` is given (None: no
    #: budget). A class default an instance may change (e.g. a threshold mode sets None).
    default_rate: float | None = None
    #: True when the method cannot run without a query: the base class raises before scoring.
    requires_query: bool = False
    #: True when building the compressor loads a model (tests mark such methods real_model).
    loads_model: ClassVar[bool] = False

    def __init__(self, *, target_tokenizer: Any = None) -> None:
        self.tokenizer: TargetTokenizer = get_target_tokenizer(target_tokenizer)

    @property
    def question_aware(self) -> bool:
        """True when the output depends on the query: adapters then insist on one and
        benchmarks pass one. Every method that requires a query is; entropy is by option."""
        return self.requires_query

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
        return self._run(batch_requests(items))

    @property
    def settings(self) -> dict[str, Any]:
        """The options that shaped the output, copied into every result."""
        return {"target_tokenizer": self.tokenizer.name}

    def _compress(self, request: CompressionRequest) -> CompressionResult:
        """Compress one live request (see the module docstring)."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement _compress(request) or _compress_batch(requests)"
        )

    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        """Compress live requests, one result each in order; ``seconds`` and the forward time
        are filled in by the caller."""
        return [self._compress(request) for request in requests]

    def _run(self, requests: list[CompressionRequest]) -> list[CompressionResult]:
        if not requests:
            return []
        live = [i for i, request in enumerate(requests) if not request.is_empty]
        if self.requires_query:
            for i in live:
                self.check_query(requests[i])
        start = time.perf_counter()
        with forward_clock() as clock:
            scored = self._compress_batch([requests[i] for i in live]) if live else []
        if len(scored) != len(live):
            raise RuntimeError(f"{self.name} returned {len(scored)} results for {len(live)}")
        by_index = dict(zip(live, scored, strict=True))
        results = [by_index.get(i) or self.passthrough(r) for i, r in enumerate(requests)]
        elapsed = (time.perf_counter() - start) / len(requests)
        for result in results:
            result.seconds = elapsed
            if clock.calls:
                result.timings["forward"] = clock.seconds / len(requests)
        return results

    def check_query(self, request: CompressionRequest) -> None:
        """The one error for a method that needs a query and got none (or a blank one)."""
        if not (request.query and request.query.strip()):
            raise MissingQueryError(self.name)

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


def batch_requests(items: Sequence[BatchItem]) -> list[CompressionRequest]:
    """The items of ``compress_batch`` as requests (a single context is refused, not split)."""
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
        raise TypeError("compress_batch takes a sequence of requests, not a single context")
    return [_as_request(item, index) for index, item in enumerate(items)]


def _as_request(item: BatchItem, index: int) -> CompressionRequest:
    if isinstance(item, CompressionRequest):
        return item.checked()
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
