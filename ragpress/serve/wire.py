"""The JSON form of results on the wire, shared by the server and ``RemoteCompressor``.

Spans travel as lists (``[doc, start, end]``, scores as ``[doc, start, end, score]``): a
compressor that scores every word returns thousands of them. JSON has no infinity or NaN:
``ratio`` is ``null`` where it is infinite (everything dropped), and any other non-finite
number (a score of ``-inf`` for a unit that must go) travels as the string ``"inf"``,
``"-inf"`` or ``"nan"``, which ``float()`` reads back.
"""

from __future__ import annotations

import json
import math
from typing import Any

from ragpress.types import CompressionResult, ScoredSpan, Span, StageReport

#: The ``"error"`` of a 503 from a server whose models failed to load: clients do not retry it.
LOAD_FAILED = "LoadFailed"

#: The keys one request may carry (those of ``Compressor.compress``), plus ``method``.
REQUEST_KEYS = ("context", "query", "rate", "target_tokens")


def result_to_wire(result: CompressionResult) -> dict[str, Any]:
    """``result`` as plain JSON types."""
    return {
        "text": result.text,
        "documents": result.documents,
        "original_tokens": result.original_tokens,
        "compressed_tokens": result.compressed_tokens,
        "method": result.method,
        "settings": jsonable(result.settings),
        "kept_spans": [[span.doc, span.start, span.end] for span in result.kept_spans],
        "scores": None
        if result.scores is None
        else [[s.doc, s.start, s.end, _number(float(s.score))] for s in result.scores],
        "seconds": result.seconds,
        "budget_tokens": result.budget_tokens,
        "timings": jsonable(result.timings),
        "stages": [jsonable(vars(stage)) for stage in result.stages],
        "document_scores": jsonable(result.document_scores),
        "ratio": _ratio(result.ratio),
        "rate": result.rate,
        "saved_tokens": result.saved_tokens,
    }


def result_to_json_dict(result: CompressionResult) -> dict[str, Any]:
    """``result.to_dict()`` (spans as objects: what ``ragpress compress --json`` prints) in
    plain JSON types, by the wire's rules for non-finite numbers, so ``json.dumps(...,
    allow_nan=False)`` takes it."""
    data = jsonable(result.to_dict())
    data["ratio"] = _ratio(result.ratio)
    return data


def _ratio(ratio: float) -> float | None:
    """``ratio`` on the wire: null where it is infinite (everything dropped)."""
    return None if math.isinf(ratio) else ratio


def result_from_wire(data: dict[str, Any]) -> CompressionResult:
    """The :class:`CompressionResult` a server sent (the inverse of :func:`result_to_wire`)."""
    scores = data.get("scores")
    return CompressionResult(
        text=data["text"],
        original_tokens=data["original_tokens"],
        compressed_tokens=data["compressed_tokens"],
        method=data["method"],
        settings=data.get("settings") or {},
        documents=data.get("documents"),
        kept_spans=[Span(*span) for span in data.get("kept_spans") or []],
        scores=None
        if scores is None
        else [ScoredSpan(doc, start, end, float(score)) for doc, start, end, score in scores],
        seconds=data.get("seconds", 0.0),
        budget_tokens=data.get("budget_tokens"),
        timings=data.get("timings") or {},
        stages=[StageReport(**stage) for stage in data.get("stages") or []],
        document_scores=_floats(data.get("document_scores")),
    )


def _floats(values: list[Any] | None) -> list[float] | None:
    return None if values is None else [float(value) for value in values]


def comparable(result: CompressionResult) -> dict[str, Any]:
    """What must match between a served and an in-process result for the same request:
    everything but the time taken (``seconds``, ``timings``, per-stage seconds)."""
    data = result_to_wire(result)
    del data["seconds"], data["timings"]
    for stage in data["stages"]:
        del stage["seconds"]
    return data


def jsonable(value: Any) -> Any:
    """``value`` through a JSON round trip (tuples become lists, numpy scalars numbers,
    non-finite numbers strings)."""
    return _finite(json.loads(json.dumps(value, default=_default)))


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def _number(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _default(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
