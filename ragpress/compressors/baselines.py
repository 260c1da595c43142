"""Reference points for benchmarks: random word drop and first-k words, under the same budget.

They share the extractive selection of the real compressors, so a comparison measures the
scores alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ragpress import checks
from ragpress.base import Compressor
from ragpress.model_compressor import ModelCompressor
from ragpress.onnx.models import TokenEmbedder
from ragpress.registry import register
from ragpress.selection import Units
from ragpress.text import trimmed_sentence_spans, word_spans
from ragpress.types import CompressionRequest, CompressionResult


class _WordBaseline(Compressor):
    default_rate = 0.5

    def __init__(self, *, seed: int = 0, target_tokenizer: Any = None) -> None:
        super().__init__(target_tokenizer=target_tokenizer)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        self.seed = int(seed)

    def _scores(self, count: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "seed": self.seed}

    def _compress(self, request: CompressionRequest) -> CompressionResult:
        rng = np.random.default_rng(self.seed)  # per request: a batch gives what single calls do
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
class EmbeddingSimilarity(ModelCompressor):
    """Keeps the sentences most similar to the query (MiniLM mean-pooled cosine), like
    LangChain's EmbeddingsFilter; a query-aware baseline for the model compressors. MiniLM runs
    as an ONNX graph of its last hidden states (role ``hidden``), like every model method."""

    default_rate = 0.5
    requires_query = True
    runner_class = TokenEmbedder
    default_model = "minilm-l6"

    def __init__(self, *, max_length: int = 256, **options: Any) -> None:
        """``max_length``: tokens per sentence embedded (longer ones are cut);
        ``options``: the model options of :class:`ModelCompressor`."""
        max_length = checks.integer(max_length, "max_length", at_least=8)
        super().__init__(**options)
        self.max_length = self.encoder_window(max_length)
        tokenizer = self.runner.tokenizer
        self._cls = [tokenizer.cls_token_id] if tokenizer.cls_token_id is not None else []
        self._sep = [tokenizer.sep_token_id] if tokenizer.sep_token_id is not None else []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Mean-pooled, L2-normalised sentence vectors (sentence-transformers' recipe)."""
        body = self.max_length - len(self._cls) - len(self._sep)
        ids = self.runner.tokenizer(list(texts), add_special_tokens=False)["input_ids"]
        hidden = self.runner.hidden([[*self._cls, *row[:body], *self._sep] for row in ids])
        pooled = np.stack([states.mean(axis=0) for states in hidden]).astype(np.float64)
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)

    def _compress(self, request: CompressionRequest) -> CompressionResult:
        assert request.query is not None  # requires_query: the base class checked it
        spans = [
            (i, a, b)
            for i, doc in enumerate(request.documents)
            for a, b in trimmed_sentence_spans(doc)
        ]
        vectors = self.embed([request.query] + [request.documents[d][a:b] for d, a, b in spans])
        return self.keep_best(request, Units.from_spans(spans, vectors[1:] @ vectors[0]))

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, "max_length": self.max_length}
