"""ragpress: compress the context a RAG pipeline sends to an LLM.

>>> import ragpress
>>> result = ragpress.compress(documents, query, method="metatoken")
>>> result.text, result.ratio
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragpress._runtime_check import ensure_single_onnxruntime
from ragpress.base import Compressor, MissingQueryError
from ragpress.defaults import DEFAULT_METHOD, QUERY_METHOD, default_method, method_for
from ragpress.registry import (
    UnknownOptionError,
    available,
    check_query_first,
    get_compressor,
    register,
)
from ragpress.tokenization import get_target_tokenizer
from ragpress.types import CompressionRequest, CompressionResult, ScoredSpan, Span, StageReport

ensure_single_onnxruntime()

__all__ = [
    "DEFAULT_METHOD",
    "QUERY_METHOD",
    "CompressionRequest",
    "CompressionResult",
    "Compressor",
    "MissingQueryError",
    "ScoredSpan",
    "Span",
    "StageReport",
    "UnknownOptionError",
    "available",
    "compress",
    "default_method",
    "get_compressor",
    "get_target_tokenizer",
    "register",
]
__version__ = "0.1.0"


def compress(
    context: str | Sequence[str],
    query: str | None = None,
    *,
    method: str | Compressor | None = None,
    rate: float | None = None,
    target_tokens: int | None = None,
    **options: Any,
) -> CompressionResult:
    """One call: build the compressor ``method`` with ``options`` and compress ``context``.

    ``method`` is a name, a compressor instance (then no ``options``), or None: the query-aware
    default (``QUERY_METHOD``) when a query is given, else the lossless ``DEFAULT_METHOD``,
    which keeps every token, so a budget without a query or a method is refused (ValueError).
    The request is checked before the compressor is built, so a bad call fails at once, not
    after a model is loaded (or exported on first use)."""
    if isinstance(method, Compressor):
        if options:
            raise TypeError(
                f"options {sorted(options)} go to the constructor; pass them when building "
                "the compressor instance, or pass the method by name"
            )
        return method.compress(context, query, rate=rate, target_tokens=target_tokens)
    if method is not None and not isinstance(method, str):
        raise TypeError(
            f"method must be a name such as {QUERY_METHOD!r}, a Compressor or None, "
            f"got {type(method).__name__}"
        )
    request = CompressionRequest.create(context, query, rate=rate, target_tokens=target_tokens)
    if request.is_empty:  # passed through by any method: no budget to meet
        name = method or default_method(query)
    else:
        name = method_for(method, query, rate, target_tokens)
    check_query_first(name, request)
    compressor = get_compressor(name, **options)
    return compressor.compress(context, query, rate=rate, target_tokens=target_tokens)
