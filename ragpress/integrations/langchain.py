"""LangChain (langchain-core 1.x): a document compressor and an LCEL node.

* :class:`RagpressCompressor` is a ``BaseDocumentCompressor``, for
  ``ContextualCompressionRetriever(base_compressor=..., base_retriever=...)``.
* :class:`RagpressRunnable` (or :func:`as_langchain`) is a chain step that maps
  ``{"documents": [Document, ...], "question": str}`` to the same shape, compressed.

* :func:`format_documents` turns the compressed documents into prompt text (what a prompt
  template should receive instead of a list of ``Document`` objects).

``method`` is a method name (built with the keyword options), a ``Compressor`` instance, or
None for the query-aware default (``ragpress.defaults.QUERY_METHOD``). Pass ``llm=`` to count
budgets and figures in that LLM's own tokenizer (``llm.get_token_ids``).

Each output ``Document`` is a copy of its source (same ``id``, same metadata) with the compressed
``page_content`` and one extra metadata key, ``"ragpress"``: ``method``, ``original_tokens``,
``compressed_tokens`` and ``ratio`` of that document (target tokenizer), its ``kept_spans`` as
``[[start, end], ...]`` character offsets into the original ``page_content``, and the
``call_ratio`` of the whole call. Documents compressed to nothing are dropped unless
``keep_empty=True``. Every call also reports what it saved to the callbacks, as the custom event
``"ragpress"`` (``on_custom_event``): method, documents, original/compressed/saved tokens, seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ragpress.base import Compressor
from ragpress.integrations import (
    METADATA_KEY,
    call_figures,
    check_metadata,
    check_query,
    figures,
    is_empty,
    missing_extra,
    needs_query,
    resolve_compressor,
    validate_budget,
)
from ragpress.types import CompressionResult

try:
    from langchain_core.callbacks import BaseCallbackManager, CallbackManager, Callbacks
    from langchain_core.documents import BaseDocumentCompressor, Document
    from langchain_core.runnables import RunnableConfig, RunnableSerializable
    from pydantic import BaseModel, ConfigDict
except ImportError as error:  # the extra is optional: say which one to install
    raise ImportError(missing_extra("langchain-core", "langchain")) from error

__all__ = [
    "EVENT",
    "METADATA_KEY",
    "RagpressCompressor",
    "RagpressRunnable",
    "as_langchain",
    "format_documents",
]

Chunk = dict[str, Any]
#: The name of the custom callback event each call dispatches (``on_custom_event``).
EVENT = "ragpress"


class _RagpressSettings(BaseModel):
    """Fields and constructor both LangChain classes share."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    compressor: Compressor
    rate: float | None = None
    target_tokens: int | None = None
    keep_empty: bool = False

    def __init__(
        self,
        method: str | Compressor | None = None,
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
        keep_empty: bool = False,
        llm: Any = None,
        **options: Any,
    ) -> None:
        """``method``: a name (built with ``options``), a ``Compressor``, or None for the
        query-aware default; ``llm``: count tokens with its tokenizer (``get_token_ids``)."""
        validate_budget(rate, target_tokens)
        if llm is not None:
            options["target_tokenizer"] = _llm_tokenizer(llm)
        super().__init__(
            compressor=resolve_compressor(method, options),
            rate=rate,
            target_tokens=target_tokens,
            keep_empty=keep_empty,
        )

    def _item(self, documents: Sequence[Document], query: str | None) -> dict[str, Any]:
        for index, document in enumerate(documents):
            if not isinstance(document, Document):
                kind = type(document).__name__
                raise TypeError(f"documents[{index}] must be a langchain Document, got {kind}")
            check_metadata(document.metadata, index)
        return {
            "context": [document.page_content for document in documents],
            "query": check_query(self.compressor, query),
            "rate": self.rate,
            "target_tokens": self.target_tokens,
        }

    def _rebuild(self, documents: Sequence[Document], result: CompressionResult) -> list[Document]:
        outputs = result.document_texts(len(documents))
        return [
            _copy(document, text, figures(self.compressor, result, i, document.page_content, text))
            for i, (document, text) in enumerate(zip(documents, outputs, strict=True))
            if self.keep_empty or not is_empty(text)
        ]


class RagpressCompressor(_RagpressSettings, BaseDocumentCompressor):
    """Compress retrieved documents for the query, all of one call in one model batch:
    ``RagpressCompressor("entropy", rate=0.5)``."""

    def __init__(self, method: str | Compressor | None = None, **kwargs: Any) -> None:
        """See :class:`_RagpressSettings` (stated here so type checkers read this signature,
        not the one pydantic generates from the fields)."""
        super().__init__(method, **kwargs)

    def compress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        if not documents:
            return []
        result = self.compressor.compress(**self._item(documents, query))
        _report(callbacks, [result], len(documents))
        return self._rebuild(documents, result)

    async def acompress_documents(
        self, documents: Sequence[Document], query: str, callbacks: Callbacks | None = None
    ) -> Sequence[Document]:
        # The model work is CPU-bound: a worker thread keeps the event loop free.
        return await asyncio.to_thread(self.compress_documents, documents, query, callbacks)


class RagpressRunnable(_RagpressSettings, RunnableSerializable[Chunk, Chunk]):
    """LCEL step: ``{"documents": [...], "question": str}`` in, the same shape out, compressed.

    Other keys of the input pass through. ``batch``/``abatch`` send every input through one
    ``compress_batch`` call, so a batching backend scores them all in one go.
    """

    documents_key: str = "documents"
    question_key: str = "question"

    def __init__(
        self,
        method: str | Compressor | None = None,
        *,
        documents_key: str = "documents",
        question_key: str = "question",
        **kwargs: Any,
    ) -> None:
        """``documents_key`` / ``question_key``: the input keys read (the documents key is
        also the one written). ``kwargs``: ``rate``, ``target_tokens``, ``keep_empty``,
        ``llm`` and, for a name, its options."""
        super().__init__(method, **kwargs)
        self.documents_key, self.question_key = documents_key, question_key

    def invoke(self, input: Chunk, config: RunnableConfig | None = None, **kwargs: Any) -> Chunk:
        return self._call_with_config(self._compress_one, input, config)

    async def ainvoke(
        self, input: Chunk, config: RunnableConfig | None = None, **kwargs: Any
    ) -> Chunk:
        return await self._acall_with_config(self._acompress_one, input, config)

    def batch(
        self,
        inputs: list[Chunk],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Chunk]:
        return self._batch_with_config(
            self._compress_all,  # type: ignore[arg-type]  # run_manager; no exceptions
            inputs,
            config,
            return_exceptions=return_exceptions,
        )

    async def abatch(
        self,
        inputs: list[Chunk],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[Chunk]:
        return await self._abatch_with_config(
            self._acompress_all,  # type: ignore[arg-type]  # run_manager; no exceptions
            inputs,
            config,
            return_exceptions=return_exceptions,
        )

    def _compress_one(self, input_: Chunk, run_manager: Any = None) -> Chunk:
        return self._compress_all([input_], [run_manager] if run_manager else None)[0]

    async def _acompress_one(self, input_: Chunk, run_manager: Any = None) -> Chunk:
        sync = run_manager.get_sync() if run_manager else None
        return await asyncio.to_thread(self._compress_one, input_, sync)

    async def _acompress_all(self, inputs: list[Chunk], run_manager: Any = None) -> list[Chunk]:
        sync = [manager.get_sync() for manager in run_manager] if run_manager else None
        return await asyncio.to_thread(self._compress_all, inputs, sync)

    def _compress_all(self, inputs: list[Chunk], run_manager: Any = None) -> list[Chunk]:
        documents = [self._documents(input_) for input_ in inputs]
        # Inputs without documents skip the model; the others share one compress_batch call.
        live = [i for i, docs in enumerate(documents) if docs]
        items = [self._item(documents[i], self._question(inputs[i])) for i in live]
        results = self.compressor.compress_batch(items) if items else []
        by_input = dict(zip(live, results, strict=True))
        for i, result in by_input.items():  # one event per input, on its own run
            manager = run_manager[i] if run_manager else None
            if manager is not None:
                _report(manager.get_child(), [result], len(documents[i]), manager.run_id)
        return [
            {**input_, self.documents_key: self._rebuild(docs, by_input[i]) if docs else []}
            for i, (input_, docs) in enumerate(zip(inputs, documents, strict=True))
        ]

    def _documents(self, input_: Chunk) -> list[Document]:
        if not isinstance(input_, Mapping):
            raise TypeError(
                f"{type(self).__name__} takes a mapping with {self.documents_key!r} and "
                f"{self.question_key!r}, got {type(input_).__name__}"
            )
        self._require(input_, self.documents_key, "the retrieved Documents", "documents_key")
        documents = input_[self.documents_key]
        if isinstance(documents, (str, bytes)) or not isinstance(documents, Iterable):
            raise TypeError(
                f"{self.documents_key!r} must be a list of Documents (what a retriever returns), "
                f"got {type(documents).__name__}"
            )
        return list(documents)  # items are checked by _item

    def _question(self, input_: Chunk) -> str | None:
        if needs_query(self.compressor):
            self._require(input_, self.question_key, "the question", "question_key")
        return input_.get(self.question_key)

    def _require(self, input_: Mapping[str, Any], key: str, holding: str, option: str) -> None:
        if key not in input_:
            raise ValueError(
                f"{type(self).__name__}: the input has no {key!r} key ({holding}); its keys: "
                f"{', '.join(map(repr, input_)) or 'none'}. Name the key that holds "
                f"{holding} with {option}=..."
            )


def as_langchain(method: str | Compressor | None = None, **kwargs: Any) -> RagpressRunnable:
    """An LCEL step from any method: ``as_langchain(rate=0.5)`` (the query-aware default) or
    ``as_langchain("entropy", rate=0.5)``.

    ``kwargs`` are those of :class:`RagpressRunnable`. For ``ContextualCompressionRetriever``
    use :class:`RagpressCompressor` instead.
    """
    return RagpressRunnable(method, **kwargs)


def format_documents(documents: Sequence[Document], separator: str = "\n\n") -> str:
    """The prompt text of compressed documents: their ``page_content`` joined by ``separator``
    (the figures in ``metadata`` stay out of the prompt). ``create_stuff_documents_chain`` does
    the same by itself with its default document prompt."""
    return separator.join(document.page_content for document in documents)


def _llm_tokenizer(llm: Any) -> Any:
    """The LLM's own token ids as the target tokenizer (LangChain's ``get_token_ids``)."""
    get_token_ids = getattr(llm, "get_token_ids", None)
    if not callable(get_token_ids):
        raise TypeError(f"llm must be a LangChain language model, got {type(llm).__name__}")
    from ragpress.tokenization import CallableTokenizer

    return CallableTokenizer(get_token_ids, f"{type(llm).__name__}.get_token_ids")


def _report(
    callbacks: Callbacks | None, results: list[CompressionResult], documents: int, run_id=None
) -> None:
    """Dispatch the call's figures to the callback handlers as the custom event ``EVENT``."""
    if callbacks is None:
        return
    manager = (
        callbacks
        if isinstance(callbacks, BaseCallbackManager)
        else CallbackManager.configure(inheritable_callbacks=callbacks)
    )
    if isinstance(manager, CallbackManager):
        manager.on_custom_event(
            EVENT, call_figures(results, documents), run_id=run_id or manager.parent_run_id
        )


def _copy(document: Document, text: str, stats: dict[str, Any]) -> Document:
    """A copy of ``document`` (id, type, metadata kept) with compressed text and figures."""
    metadata = {**document.metadata, METADATA_KEY: stats}
    content = "" if is_empty(text) else text
    return document.model_copy(update={"page_content": content, "metadata": metadata})
