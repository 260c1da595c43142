"""Reference points for benchmarks: random word drop and first-k words, under the same budget.

They share the extractive selection of the real compressors, so a comparison measures the
scores alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ragpress.base import Compressor
from ragpress.registry import register
from ragpress.selection import Units
from ragpress.text import trimmed_sentence_spans, word_spans
from ragpress.types import CompressionRequest, CompressionResult


class _WordBaseline(Compressor):
    default_rate = 0.5

    def __init__(self, *, seed: int = 0, target_tokenizer: Any = None) -> None:
        super().__init__(target_tokenizer=target_tokenizer)
        self.seed = seed

    def _scores(self, count: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        rng = np.random.default_rng(self.seed)
        return [self._one(request, rng) for request in requests]

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "seed": self.seed}

    def _one(self, request: CompressionRequest, rng: np.random.Generator) -> CompressionResult:
        if request.is_empty:
            return self.passthrough(request)
        spans = [(i, a, b) for i, doc in enumerate(request.documents) for a, b in word_spans(doc)]
        units = Units.from_spans(spans)
        units.score = self._scores(len(units), rng)
        return self.keep_best(request, units, report_scores=False)


@register("random")
class RandomDrop(_WordBaseline):
    """Keeps random words (seeded) up to the budget."""

    def _scores(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return rng.random(count)


@register("first-k", aliases=("truncate",))
class FirstWords(_WordBaseline):
    """Keeps the first words up to the budget (plain truncation)."""

    def _scores(self, count: int, rng: np.random.Generator) -> np.ndarray:
        return -np.arange(count, dtype=np.float64)


@register("embedding-similarity", aliases=("embeddings",))
class EmbeddingSimilarity(Compressor):
    """Keeps the sentences most similar to the query (MiniLM mean-pooled cosine), like
    LangChain's EmbeddingsFilter; a query-aware baseline for the model compressors."""

    default_rate = 0.5
    requires_query = True

    def __init__(
        self,
        *,
        model: str = "minilm-l6",
        backend: str = "onnx",
        variant: str = "fp32",
        device: str = "auto",
        threads: int | None = None,
        max_length: int = 256,
        target_tokenizer: Any = None,
    ) -> None:
        super().__init__(target_tokenizer=target_tokenizer)
        from ragpress.onnx.catalogue import get_spec
        from ragpress.onnx.models import TokenEmbedder

        self.embedder = TokenEmbedder(
            get_spec(model, kind="encoder"),
            backend=backend,  # type: ignore[arg-type]
            variant=variant,
            device=device,  # type: ignore[arg-type]
            threads=threads,
            batch_size=16,
        )
        self.model, self.max_length = model, max_length
        tokenizer = self.embedder.tokenizer
        self._cls = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
        self._sep = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors (sentence-transformers' recipe)."""
        body = self.max_length - len(self._cls) - len(self._sep)
        ids = self.embedder.tokenizer(list(texts))["input_ids"]
        hidden = self.embedder.hidden([[*self._cls, *row[:body], *self._sep] for row in ids])
        pooled = np.stack([states.mean(axis=0) for states in hidden]).astype(np.float64)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        return [self._one(request) for request in requests]

    def _one(self, request: CompressionRequest) -> CompressionResult:
        if request.is_empty:
            return self.passthrough(request)
        if not request.query:
            raise ValueError("embedding-similarity is query-aware: pass a query")
        spans = [
            (i, a, b)
            for i, doc in enumerate(request.documents)
            for a, b in trimmed_sentence_spans(doc)
        ]
        vectors = self.embed([request.query] + [request.documents[d][a:b] for d, a, b in spans])
        return self.keep_best(request, Units.from_spans(spans, vectors[1:] @ vectors[0]))

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, **self.embedder.settings, "model": self.model}
