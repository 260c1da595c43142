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
from ragpress.timing import timed_forward
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
class EmbeddingSimilarity(Compressor):
    """Keeps the sentences most similar to the query (MiniLM mean-pooled cosine), like
    LangChain's EmbeddingsFilter; a query-aware baseline for the model compressors."""

    default_rate = 0.5
    requires_query = True
    loads_model = True

    def __init__(self, *, model: str = "minilm-l6", target_tokenizer: Any = None) -> None:
        super().__init__(target_tokenizer=target_tokenizer)
        from transformers import AutoModel, AutoTokenizer

        from ragpress.onnx.catalogue import get_spec
        from ragpress.onnx.sources import weights_folder

        folder = weights_folder(get_spec(model))
        self._tokenizer = AutoTokenizer.from_pretrained(folder)
        self._model = AutoModel.from_pretrained(folder, use_safetensors=True).eval()
        self.model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        batch = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=256, return_tensors="pt"
        )
        with torch.inference_mode(), timed_forward():
            hidden = self._model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()

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
        return {**super().settings, "model": self.model}
