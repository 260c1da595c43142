"""Framework adapters: LangChain (``ragpress.integrations.langchain``) and LlamaIndex
(``ragpress.integrations.llamaindex``).

This module holds what both share and imports no framework, so each adapter fails alone
(with an error naming its extra) when its framework is missing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from ragpress import defaults
from ragpress.base import Compressor
from ragpress.registry import (
    accepted_options,
    available,
    factory,
    get_compressor,
)
from ragpress.types import CompressionRequest, CompressionResult

#: The one metadata key every compressed document or node gains (see :func:`figures`).
METADATA_KEY = "ragpress"

__all__ = [
    "METADATA_KEY",
    "call_figures",
    "check_metadata",
    "check_query",
    "figures",
    "is_empty",
    "missing_extra",
    "needs_query",
    "resolve_compressor",
    "validate_budget",
]


def resolve_compressor(method: str | Compressor | None, options: Mapping[str, Any]) -> Compressor:
    """A compressor from ``method``: a registry name (built with ``options``), an instance, or
    None for the query-aware default (``ragpress.defaults.QUERY_METHOD``: adapters always
    compress for a question)."""
    if method is None:
        method = defaults.QUERY_METHOD
    if isinstance(method, Compressor):
        if options:
            raise TypeError(
                f"options {sorted(options)} apply to a method name, not a Compressor instance: "
                "pass them when you build the instance"
            )
        return method
    if isinstance(method, str):
        return get_compressor(method, **options)
    raise TypeError(f"method must be a name or a Compressor, got {type(method).__name__}")


def instance_options(compressor: Compressor) -> dict[str, Any]:
    """The options that rebuild ``compressor`` by its name: those of its settings that are
    constructor options (see ``test_settings_rebuild_the_compressor``), but the target
    tokenizer, which may be an object. A pipeline gives its headroom and, per stage, the stage's
    own (as ``stage_options``)."""
    if type(compressor) is factory("pipeline"):
        return _pipeline_options(compressor)
    if compressor.name not in available():
        return {}  # an unregistered compressor (RemoteCompressor, a user's own)
    if type(compressor) is not factory(compressor.name):
        return {}  # a subclass: its name rebuilds the parent
    accepted = accepted_options(compressor.name) - {"target_tokenizer"}
    return {key: value for key, value in compressor.settings.items() if key in accepted}


def _pipeline_options(pipeline: Any) -> dict[str, Any]:
    """A pipeline's headroom and its stages' options by stage name. A name given twice cannot
    tell its stages apart there, and a pipeline given as a stage is rebuilt as its stages
    inline: those come back with their defaults."""
    names = [stage.name for stage in pipeline.stages]
    stage_options = {
        stage.name: options
        for stage in pipeline.stages
        if names.count(stage.name) == 1
        and type(stage) is not type(pipeline)
        and (options := instance_options(stage))
    }
    rebuilt: dict[str, Any] = {"headroom": pipeline.headroom}
    if stage_options:
        rebuilt["stage_options"] = stage_options
    return rebuilt


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
FIGURE_KEYS = frozenset(
    {"method", "original_tokens", "compressed_tokens", "kept_spans", "ratio", "call_ratio"}
)


def figures(
    compressor: Compressor, result: CompressionResult, index: int, source: str, output: str
) -> dict[str, Any]:
    """The ``"ragpress"`` metadata of document ``index``: its own token counts, ratio and kept
    spans (character offsets into its original text), and the ratio of the whole call."""
    original = compressor.tokenizer.count(source)
    compressed = compressor.tokenizer.count(output)
    return {
        "method": result.method,
        "original_tokens": original,
        "compressed_tokens": compressed,
        "kept_spans": [[span.start, span.end] for span in result.kept_spans if span.doc == index],
        "ratio": original / compressed if compressed else math.inf,
        "call_ratio": result.ratio,
    }


def call_figures(results: Sequence[CompressionResult], documents: int) -> dict[str, Any]:
    """What one adapter call saved (the payload of its LangChain event / LlamaIndex event)."""
    original = sum(result.original_tokens for result in results)
    compressed = sum(result.compressed_tokens for result in results)
    return {
        "method": results[0].method if results else None,
        "documents": documents,
        "original_tokens": original,
        "compressed_tokens": compressed,
        "saved_tokens": original - compressed,
        "seconds": sum(result.seconds for result in results),
    }


def missing_extra(package: str, extra: str) -> str:
    return f"{package} is not installed: pip install 'ragpress[{extra}]'"
