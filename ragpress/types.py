"""The one request type and the one result type every compressor shares."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

DOCUMENT_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class Span:
    """Characters ``[start, end)`` of document ``doc`` of the original context."""

    doc: int
    start: int
    end: int


@dataclass(frozen=True)
class ScoredSpan(Span):
    """A unit the method scored (token, word, sentence, document) and its score."""

    score: float = 0.0


@dataclass(frozen=True)
class StageReport:
    """What one stage of a pipeline did: tokens in and out, its allowance, its seconds."""

    method: str
    input_tokens: int
    output_tokens: int
    budget_tokens: int | None
    seconds: float


@dataclass(frozen=True)
class CompressionRequest:
    """One validated call: build it with :meth:`create`, which raises on bad input (a request
    built directly is checked the same way when it reaches ``compress_batch``: :meth:`checked`)."""

    documents: tuple[str, ...]
    query: str | None = None
    rate: float | None = None
    target_tokens: int | None = None
    is_list: bool = False

    @classmethod
    def create(
        cls,
        context: str | Sequence[str],
        query: str | None = None,
        *,
        rate: float | None = None,
        target_tokens: int | None = None,
    ) -> CompressionRequest:
        documents, is_list = _validate_context(context)
        if query is not None:
            if not isinstance(query, str):
                raise TypeError(f"query must be a str or None, got {type(query).__name__}")
            _reject_lone_surrogates(query, "query")
        if rate is not None and target_tokens is not None:
            raise ValueError("give either rate or target_tokens, not both")
        if rate is not None:
            if isinstance(rate, bool) or not isinstance(rate, numbers.Real):  # numpy too
                raise TypeError(f"rate must be a number, got {type(rate).__name__}")
            if not (0.0 < rate <= 1.0) or math.isnan(rate):
                raise ValueError(f"rate must be in (0, 1], got {rate}")
            rate = float(rate)
        if target_tokens is not None:
            if isinstance(target_tokens, bool) or not isinstance(target_tokens, numbers.Integral):
                raise TypeError(f"target_tokens must be an int, got {type(target_tokens).__name__}")
            if target_tokens < 0:
                raise ValueError(f"target_tokens must be >= 0, got {target_tokens}")
            target_tokens = int(target_tokens)
        return cls(documents, query, rate, target_tokens, is_list)

    def checked(self) -> CompressionRequest:
        """This request as :meth:`create` would have built it, or the error it would have
        raised: for one built directly, whose fields nothing has checked (``documents`` given
        as one str is one document, not its characters). ``is_list`` follows the documents:
        one document without it stays one text, several are a list whatever it says."""
        context: Any = self.documents
        if isinstance(context, Sequence) and not isinstance(context, str) and len(context) == 1:
            context = context if self.is_list else context[0]
        return self.create(context, self.query, rate=self.rate, target_tokens=self.target_tokens)

    @property
    def context(self) -> str:
        """The documents joined the way compressors and token counts see them."""
        return DOCUMENT_SEPARATOR.join(self.documents)

    @property
    def is_empty(self) -> bool:
        return not any(doc.strip() for doc in self.documents)

    def token_budget(self, original_tokens: int, default_rate: float | None) -> int | None:
        """The number of target tokens the output may hold, or None for no budget."""
        if self.target_tokens is not None:
            return self.target_tokens
        rate = self.rate if self.rate is not None else default_rate
        if rate is None:
            return None
        return math.ceil(rate * original_tokens)


@dataclass
class CompressionResult:
    """What a compressor returns. Token counts are in the target tokenizer."""

    text: str
    original_tokens: int
    compressed_tokens: int
    method: str
    settings: dict[str, Any] = field(default_factory=dict)
    documents: list[str] | None = None
    kept_spans: list[Span] = field(default_factory=list)
    scores: list[ScoredSpan] | None = None
    seconds: float = 0.0
    budget_tokens: int | None = None
    #: Seconds per stage where the method measures them (e.g. forward, probe, selection).
    timings: dict[str, float] = field(default_factory=dict)
    #: One report per stage when the compressor is a pipeline (empty otherwise).
    stages: list[StageReport] = field(default_factory=list)
    #: Relevance of each input document to the query, in input order, for methods that score
    #: documents (``relevance``); None otherwise.
    document_scores: list[float] | None = None

    @property
    def ratio(self) -> float:
        """Compression ratio: original / compressed tokens (4.0 means 4x fewer tokens)."""
        if self.compressed_tokens == 0:
            return math.inf if self.original_tokens else 1.0
        return self.original_tokens / self.compressed_tokens

    @property
    def rate(self) -> float:
        """Kept share: compressed / original tokens (the inverse of ``ratio``)."""
        return self.compressed_tokens / self.original_tokens if self.original_tokens else 1.0

    @property
    def saved_tokens(self) -> int:
        return self.original_tokens - self.compressed_tokens

    @property
    def is_empty(self) -> bool:
        """True when the compressor chose to keep nothing (e.g. noise-only retrieval)."""
        return not self.text

    def document_texts(self, count: int) -> list[str]:
        """One compressed text per input document (a single-document call may leave
        ``documents`` unset); ``count`` is how many went in, checked."""
        texts = self.documents if self.documents is not None else [self.text]
        if len(texts) != count:
            raise RuntimeError(f"{self.method} returned {len(texts)} documents for {count}")
        return texts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, rate=self.rate, saved_tokens=self.saved_tokens)
        return data

    def summary(self) -> str:
        return (
            f"{self.method}: {self.original_tokens} -> {self.compressed_tokens} tokens "
            f"(ratio {self.ratio:.2f}, saved {self.saved_tokens}) in {self.seconds * 1000:.1f} ms"
        )


def _validate_context(context: str | Sequence[str]) -> tuple[tuple[str, ...], bool]:
    if isinstance(context, str):
        _reject_lone_surrogates(context, "context")
        return (context,), False
    if isinstance(context, (bytes, bytearray)):
        raise TypeError("context must be str or a sequence of str, got bytes: decode it first")
    if not isinstance(context, Sequence):
        raise TypeError(f"context must be str or a sequence of str, got {type(context).__name__}")
    documents = tuple(context)
    for index, doc in enumerate(documents):
        if not isinstance(doc, str):
            raise TypeError(f"context[{index}] must be str, got {type(doc).__name__}")
        _reject_lone_surrogates(doc, f"context[{index}]")
    return documents, True


def _reject_lone_surrogates(text: str, argument: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(
            f"{argument} holds a lone surrogate at index {error.start}: not valid Unicode text"
        ) from None
