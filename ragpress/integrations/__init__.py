"""Framework adapters: LangChain (``ragpress.integrations.langchain``) and LlamaIndex
(``ragpress.integrations.llamaindex``).

This module holds what both share and imports no framework, so each adapter fails alone
(with an error naming its extra) when its framework is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragpress.base import Compressor
from ragpress.registry import get_compressor
from ragpress.types import CompressionRequest, CompressionResult

#: The one metadata key every compressed document or node gains (see :func:`figures`).
METADATA_KEY = "ragpress"

__all__ = [
    "METADATA_KEY",
    "check_metadata",
    "check_query",
    "figures",
    "is_empty",
    "missing_extra",
    "needs_query",
    "resolve_compressor",
    "validate_budget",
]


def resolve_compressor(compressor: str | Compressor, options: Mapping[str, Any]) -> Compressor:
    """A compressor instance from a registry name (built with ``options``) or an instance."""
    if isinstance(compressor, Compressor):
        if options:
            raise TypeError(f"options {sorted(options)} apply to a name, not a Compressor instance")
        return compressor
    if isinstance(compressor, str):
        return get_compressor(compressor, **options)
    raise TypeError(f"compressor must be a name or a Compressor, got {type(compressor).__name__}")


def needs_query(compressor: Compressor) -> bool:
    """True for compressors whose output depends on the query (``Compressor.question_aware``)."""
    return compressor.question_aware


def check_query(compressor: Compressor, query: str | None) -> str | None:
    """The query to pass on (None when blank); a query-aware compressor must get one."""
    if query is not None and not isinstance(query, str):
        raise TypeError(f"query must be a str or None, got {type(query).__name__}")
    if query and query.strip():
        return query
    if needs_query(compressor):
        raise ValueError(
            f"{compressor.name} compresses for a query and none was given: pass the question, "
            "or use a query-free compressor (metatoken, first-k, random)"
        )
    return None


def validate_budget(rate: float | None, target_tokens: int | None) -> None:
    """Fail at construction, not at the first retrieval, on a bad rate or target_tokens."""
    CompressionRequest.create("", rate=rate, target_tokens=target_tokens)


def is_empty(text: str) -> bool:
    return not text.strip()


def check_metadata(metadata: Any, index: int) -> None:
    """Refuse to overwrite a document's own ``"ragpress"`` metadata: only figures an earlier
    ragpress call wrote there (same keys) may be replaced."""
    existing = metadata.get(METADATA_KEY) if isinstance(metadata, Mapping) else None
    if existing is None:
        return
    if not (isinstance(existing, Mapping) and set(existing) == FIGURE_KEYS):
        raise ValueError(
            f"document {index} already has its own metadata[{METADATA_KEY!r}], which the "
            f"compressed copy would overwrite: rename that key before compressing"
        )


#: The keys :func:`figures` writes.
FIGURE_KEYS = frozenset({"method", "original_tokens", "compressed_tokens", "kept_spans", "ratio"})


def figures(
    compressor: Compressor, result: CompressionResult, index: int, source: str, output: str
) -> dict[str, Any]:
    """The ``"ragpress"`` metadata of document ``index``: its own token counts and kept spans
    (character offsets into its original text), and the ratio of the whole call."""
    return {
        "method": result.method,
        "original_tokens": compressor.tokenizer.count(source),
        "compressed_tokens": compressor.tokenizer.count(output),
        "kept_spans": [[span.start, span.end] for span in result.kept_spans if span.doc == index],
        "ratio": result.ratio,
    }


def missing_extra(package: str, extra: str) -> str:
    return f"{package} is not installed: pip install 'ragpress[{extra}]'"
