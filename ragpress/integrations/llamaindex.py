"""LlamaIndex (llama-index-core 0.14): a node postprocessor.

``index.as_query_engine(node_postprocessors=[RagpressPostprocessor("entropy", rate=0.5)])``

Unlike ``LongLLMLinguaPostprocessor``, which merges the retrieved nodes into one, every node
stays itself: a copy with the same id, score and metadata, the compressed text, and one extra
metadata key, ``"ragpress"`` (see :func:`ragpress.integrations.figures`). That key is
excluded from the LLM and embedding views of the node, so it never reaches a prompt.
Nodes compressed to nothing are dropped unless ``keep_empty=True``.

``method`` is a name (built with the keyword options, e.g. ``target_tokenizer=Settings.tokenizer``
to count budgets in the LLM's tokenizer), a ``Compressor``, or None for the query-aware default.
``to_dict()`` holds the method name and its options, so ``from_dict`` rebuilds the same
postprocessor. Each call emits a :class:`RagpressCompressionEvent` (tokens in and out, seconds)
through LlamaIndex instrumentation.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ragpress.base import Compressor
from ragpress.integrations import (
    METADATA_KEY,
    call_figures,
    check_metadata,
    check_query,
    figures,
    instance_options,
    is_empty,
    missing_extra,
    resolve_compressor,
    validate_budget,
)

try:
    from llama_index.core.bridge.pydantic import Field, PrivateAttr
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.instrumentation import get_dispatcher
    from llama_index.core.instrumentation.events.base import BaseEvent
    from llama_index.core.postprocessor.types import BaseNodePostprocessor
    from llama_index.core.schema import BaseNode, MetadataMode, NodeWithScore, QueryBundle
except ImportError as error:  # the extra is optional: say which one to install
    raise ImportError(missing_extra("llama-index-core", "llamaindex")) from error

__all__ = ["METADATA_KEY", "RagpressCompressionEvent", "RagpressPostprocessor"]
dispatcher = get_dispatcher(__name__)


class RagpressCompressionEvent(BaseEvent):
    """What one postprocessor call saved, in the target tokenizer's tokens."""

    method: str
    documents: int
    original_tokens: int
    compressed_tokens: int
    saved_tokens: int
    seconds: float

    @classmethod
    def class_name(cls) -> str:
        return "RagpressCompressionEvent"


class RagpressPostprocessor(BaseNodePostprocessor):
    """Compress retrieved nodes for the query, all nodes of one call in one model batch."""

    method: str = ""
    method_options: dict[str, Any] = Field(default_factory=dict)
    rate: float | None = None
    target_tokens: int | None = None
    keep_empty: bool = False

    # A model object, not configuration: kept out of the pydantic schema and serialisation.
    _compressor: Compressor = PrivateAttr()

    def __init__(
        self,
        method: str | Compressor | None = None,
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
        keep_empty: bool = False,
        callback_manager: CallbackManager | None = None,
        method_options: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        """``method``: a name (built with ``options``), a ``Compressor``, or None for the
        query-aware default. ``method_options`` is where ``to_dict`` keeps ``options``."""
        validate_budget(rate, target_tokens)
        options = {**(method_options or {}), **options}
        compressor = resolve_compressor(method, options)
        super().__init__(  # type: ignore[call-arg]  # pydantic fields of this class
            method=compressor.name if isinstance(method, Compressor) else method or "",
            # An instance's own options, from its settings, so that from_dict rebuilds it.
            method_options=instance_options(compressor) if method is compressor else options,
            rate=rate,
            target_tokens=target_tokens,
            keep_empty=keep_empty,
            callback_manager=callback_manager or CallbackManager(),
        )
        self.method = self.method or compressor.name
        self._compressor = compressor

    @classmethod
    def class_name(cls) -> str:
        return "RagpressPostprocessor"

    @property
    def compressor(self) -> Compressor:
        return self._compressor

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        query = check_query(self._compressor, query_bundle.query_str if query_bundle else None)
        if not nodes:
            return []
        for index, item in enumerate(nodes):
            if not isinstance(item, NodeWithScore):
                kind = type(item).__name__
                raise TypeError(f"nodes[{index}] must be a NodeWithScore, got {kind}")
            check_metadata(item.node.metadata, index)
        sources = [item.node.get_content(metadata_mode=MetadataMode.NONE) for item in nodes]
        result = self._compressor.compress(
            sources, query, rate=self.rate, target_tokens=self.target_tokens
        )
        dispatcher.event(RagpressCompressionEvent(**call_figures([result], len(nodes))))
        outputs = result.document_texts(len(nodes))
        return [
            NodeWithScore(
                node=_copy(item.node, text, figures(self._compressor, result, i, source, text)),
                score=item.score,
            )
            for i, (item, source, text) in enumerate(zip(nodes, sources, outputs, strict=True))
            if self.keep_empty or not is_empty(text)
        ]

    async def _apostprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        # The model work is CPU-bound: a worker thread keeps the event loop free.
        return await asyncio.to_thread(self._postprocess_nodes, nodes, query_bundle)


def _copy(node: BaseNode, text: str, stats: dict[str, Any]) -> BaseNode:
    """A copy of ``node`` (id, relationships, metadata kept) with compressed text and figures."""
    copy = node.model_copy(
        update={
            "metadata": {**node.metadata, METADATA_KEY: stats},
            "excluded_llm_metadata_keys": _with_key(node.excluded_llm_metadata_keys),
            "excluded_embed_metadata_keys": _with_key(node.excluded_embed_metadata_keys),
        }
    )
    copy.set_content("" if is_empty(text) else text)
    return copy


def _with_key(keys: list[str]) -> list[str]:
    return keys if METADATA_KEY in keys else [*keys, METADATA_KEY]
