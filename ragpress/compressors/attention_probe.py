"""Attention-probe sentence filter (after Sentinel, "Attention Probing of Proxy Models for LLM
Context Compression", 2025; our own implementation from the paper).

A small decoder reads ``context + question + "Answer:"``. The attention of the last
:data:`~ragpress.onnx.wrappers.TAIL_ROWS` prompt positions (``"Answer:"`` and the question's last
words; role ``attention-tail``) to each context token, per layer and head, is renormalised over
the context span and pooled over each sentence's tokens (:data:`BLOCKS`: mean and max, of the
final row and of the tail rows' mean, and the sentence's length). A logistic-regression probe
trained on QA data (``ragpress train attention-probe``) reads the blocks its recipe names and
turns them into the probability that the sentence answers the question; sentences are kept by
probability until the budget is met, in their original order. Contexts longer than
``chunk_tokens`` are read in chunks that each end with the question.

Proxy: Qwen2.5-0.5B by default (the Sentinel paper's proxy size; the packaged weights are
Qwen2.5-Coder-0.5B-Instruct), SmolLM2-135M with ``model="smollm2-135m"``; each has its own
shipped probe (``ragpress/data/probe-<model>.npz``; the recipes:
``ragpress.training.attention_probe.SHIPPED``).

Dev figures (``ragpress train attention-probe``; dev split: 100 other-article and 50
same-article items, 4,405 sentences, 3.6% holding an answer; answer kept at 4x / 8x by the
probe's scores; ``embedding-similarity`` on the same items: 99 / 89% other-article, 96 / 82%
same-article):

* Qwen2.5-0.5B, the default (recipe ``final-mean+tail-mean+length``, L2 3000, fit on 1,400
  train items: 400 other-article, 400 same-article, 600 gold-only; 27,585 sentences): ROC AUC
  0.970 (0.974 / 0.964 on the two settings); answer kept in 98 / 91% of other-article and
  98 / 92% of same-article items. Fit on 500 items the same recipe scored 0.971 and the tail
  rows alone (SmolLM2's recipe) 0.964 (96 / 88%, 94 / 86%); adding the tail max 0.964,
  per-layer means 0.953. The best L2 rose with the proxy (1000-3000 against 100). A forward
  costs about 2.5x SmolLM2's (~2 s against ~0.8 s per item of ~1k tokens on 2 cores).
* SmolLM2-135M (recipe ``tail-mean+length``, L2 100, fit on 2,000 train items: 500
  other-article, 500 same-article, 1,000 gold-only; 35,859 sentences): ROC AUC 0.948 (0.958 /
  0.922), answer kept in 96 / 81% and 92 / 74% (the first probe, final row only, fit on 300
  items: AUC 0.749, 55 / 35% and 54 / 30%). More data stopped paying early: the same recipe
  fit on 100 items scored 0.932 and on 600 items 0.949. On 100 items the final row alone refit
  scores 0.67, adding the max over tokens 0.924, the final row 0.927, per-layer means of the
  heads 0.91; on 2,000 items adding the tail max scores 0.946, the final row's mean 0.946,
  every block 0.942.
"""

from __future__ import annotations

import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ragpress import checks
from ragpress.model_compressor import ModelCompressor
from ragpress.onnx.models import AttentionTailRows
from ragpress.registry import register
from ragpress.selection import Units
from ragpress.text import align_tokens_to_words, trimmed_sentence_spans
from ragpress.types import CompressionRequest, CompressionResult

PROMPT_TAIL = "\n\nQuestion: {query}\nAnswer:"
DOC_JOIN = "\n\n"
#: Pooled blocks per sentence, each L*H wide but ``length`` (one column): the mean and the max
#: over the sentence's tokens of the final position's attention (``final-*``) and of the mean
#: attention of the last K prompt positions (``tail-*``), as log of the share relative to
#: uniform; ``length`` is the log of the sentence's token count.
BLOCKS = ("final-mean", "final-max", "tail-mean", "tail-max", "length")
#: The features of the first shipped probe: the final position's mean attention alone.
LEGACY_RECIPE = "final-mean"
_FLOOR = 1e-3  # added before the log: a sentence with no attention at all stays finite


#: How ``settings`` names a shipped probe (``probe=`` reads it back).
_BUNDLED = "bundled:"


@dataclass(frozen=True)
class Probe:
    """Logistic regression over standardised log attention features (``recipe``: which ones,
    see :func:`recipe_features`; probes saved before recipes existed read ``final-mean``)."""

    weights: np.ndarray
    bias: float
    mean: np.ndarray
    scale: np.ndarray
    model: str
    recipe: str = LEGACY_RECIPE

    def probability(self, features: np.ndarray) -> np.ndarray:
        logits = ((features - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-logits))

    def save(self, path: Path, **stats: Any) -> None:
        np.savez(
            path,
            weights=self.weights,
            bias=np.array(self.bias),
            mean=self.mean,
            scale=self.scale,
            model=np.array(self.model),
            recipe=np.array(self.recipe),
            **{f"stat_{k}": np.array(v) for k, v in stats.items()},  # type: ignore[arg-type]
        )

    @classmethod
    def load(cls, path: str | Path) -> Probe:
        """A probe saved by :meth:`save` (``ragpress train attention-probe``), or
        ``"bundled:MODEL"``, the one shipped for MODEL; anything else is a ValueError naming the
        file (numpy alone would speak of pickled data)."""
        if str(path).startswith(_BUNDLED):  # what ``settings`` reports for the shipped probe
            return cls.bundled(str(path).removeprefix(_BUNDLED))
        try:
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError(f"an .npz archive was expected, got {type(loaded).__name__}")
            with loaded as data:
                return cls._from_arrays(data)
        except FileNotFoundError:
            raise FileNotFoundError(f"probe={str(path)!r}: there is no such file") from None
        except (ValueError, KeyError, OSError, zipfile.BadZipFile) as error:
            raise ValueError(
                f"probe={str(path)!r} is not an attention probe (an .npz written by `ragpress "
                f"train attention-probe`): {error}"
            ) from None

    @classmethod
    def _from_arrays(cls, data: Any) -> Probe:
        return cls(
            data["weights"],
            float(data["bias"]),
            data["mean"],
            data["scale"],
            str(data["model"]),
            str(data["recipe"]) if "recipe" in data else LEGACY_RECIPE,
        )

    @classmethod
    def bundled(cls, model: str) -> Probe:
        name = f"probe-{model}.npz"
        resource = resources.files("ragpress.data").joinpath(name)
        if not resource.is_file():
            raise FileNotFoundError(
                f"no bundled attention probe for {model!r}; train one with "
                f"`ragpress train attention-probe --model {model}` and pass probe=PATH"
            )
        with resources.as_file(resource) as path:
            return cls.load(path)


@dataclass
class _Chunk:
    """Consecutive sentences read together, with where each sits in the prompt."""

    prompt: str
    ranges: list[tuple[int, int]]  # character range of each sentence inside ``prompt``
    units: list[int]  # index of each sentence in the request's unit list


@register("attention-probe", aliases=("probe", "sentinel"))
class AttentionProbeCompressor(ModelCompressor):
    """Model options: see ``ragpress.model_compressor`` (one row per forward: batch_size 1)."""

    runner_class = AttentionTailRows
    default_model = "qwen2.5-0.5b"
    default_rate: float | None = 0.5
    requires_query = True

    def __init__(
        self,
        *,
        probe: str | Path | None = None,
        threshold: float | None = None,
        chunk_tokens: int = 1024,
        **options: Any,
    ) -> None:
        threshold = checks.fraction(threshold, "threshold", low_open=False)
        chunk_tokens = checks.integer(chunk_tokens, "chunk_tokens", at_least=16)
        # A given probe is read now, so a wrong file fails before the model loads.
        self._given_probe = Probe.load(probe) if probe is not None else None
        super().__init__(**options)
        self._probe_path = probe
        self.threshold, self.chunk_tokens = threshold, chunk_tokens
        if self.threshold is not None:
            self.default_rate = None  # threshold mode unless a rate or target is given

    @cached_property
    def probe(self) -> Probe:
        """The trained probe: ``probe=PATH`` (read at construction) or the one shipped for this
        model (read on use, so training can build a compressor before any probe exists)."""
        if self._given_probe is not None:
            return self._given_probe
        return Probe.bundled(self.runner.spec.name)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            **super().settings,
            "probe": str(self._probe_path or f"{_BUNDLED}{self.runner.spec.name}"),
            "threshold": self.threshold,
            "chunk_tokens": self.chunk_tokens,
        }

    def _compress(self, request: CompressionRequest) -> CompressionResult:
        assert request.query is not None  # requires_query: the base class checked it
        timings: dict[str, float] = {}
        units, features = self.sentence_features(request.documents, request.query, timings)
        started = time.perf_counter()
        units.score = self.probe.probability(features)
        timings["probe"] += time.perf_counter() - started
        started = time.perf_counter()
        result = self.keep_best(request, units, threshold=self.threshold, timings=timings)
        timings["selection"] = time.perf_counter() - started
        return result

    def sentence_features(
        self, documents: Sequence[str], query: str, timings: dict[str, float] | None = None
    ) -> tuple[Units, np.ndarray]:
        """Sentence units of ``documents`` and their features (the probe's recipe).

        ``timings``, if given, receives the seconds of the decoder forward (``forward``) and of
        the feature pooling (``probe``)."""
        timings = {} if timings is None else timings
        recipe = self.probe.recipe
        units, raw, heads = self.sentence_raw_features(
            documents, query, timings, blocks=recipe_blocks(recipe)
        )
        started = time.perf_counter()
        features = recipe_features(raw, heads, recipe)
        timings["probe"] += time.perf_counter() - started
        return units, features

    def sentence_raw_features(
        self,
        documents: Sequence[str],
        query: str,
        timings: dict[str, float] | None = None,
        *,
        blocks: frozenset[str] = frozenset(BLOCKS),
    ) -> tuple[Units, np.ndarray, int]:
        """Sentence units, their pooled blocks (n, 4*L*H + 1; see :data:`BLOCKS`) and the
        proxy's heads per layer: what every recipe is cut from (training caches these).
        Only ``blocks`` are computed; the others' columns stay 0."""
        timings = {} if timings is None else timings
        started = time.perf_counter()
        spans = [
            (doc, start, end)
            for doc, text in enumerate(documents)
            for start, end in trimmed_sentence_spans(text)
        ]
        units = Units.from_spans(spans)
        chunks = self._chunks(documents, spans, query)
        encoded = self.runner.tokenizer(
            [chunk.prompt for chunk in chunks],
            add_special_tokens=False,
            return_offsets_mapping=True,
        )
        forward_started = time.perf_counter()
        rows = self.runner.rows(encoded["input_ids"])
        timings["forward"] = time.perf_counter() - forward_started
        layers, heads = rows[0].shape[:2] if rows else (0, 0)
        raw = np.zeros((len(spans), len(BLOCKS[:-1]) * layers * heads + 1))
        for chunk, offsets, attention in zip(chunks, encoded["offset_mapping"], rows, strict=True):
            raw[chunk.units] = _chunk_features(chunk, offsets, attention, blocks)
        timings["probe"] = time.perf_counter() - started - timings["forward"]
        return units, raw, int(heads)

    def _chunks(
        self, documents: Sequence[str], spans: list[tuple[int, int, int]], query: str
    ) -> list[_Chunk]:
        tail = PROMPT_TAIL.format(query=query)
        tokens = self.runner.tokenizer(
            [documents[d][a:b] for d, a, b in spans], add_special_tokens=False
        )["input_ids"]
        chunks: list[_Chunk] = []
        current: list[int] = []
        size = 0
        for index, ids in enumerate(tokens):
            if current and size + len(ids) > self.chunk_tokens:
                chunks.append(_build_chunk(documents, spans, current, tail))
                current, size = [], 0
            current.append(index)
            size += len(ids)
        if current:
            chunks.append(_build_chunk(documents, spans, current, tail))
        return chunks


def _build_chunk(
    documents: Sequence[str], spans: list[tuple[int, int, int]], members: list[int], tail: str
) -> _Chunk:
    parts: list[str] = []
    ranges: list[tuple[int, int]] = []
    position, previous_doc, previous_end = 0, None, 0
    for index in members:
        doc, start, end = spans[index]
        if previous_doc is None:
            separator = ""
        elif doc == previous_doc:
            separator = documents[doc][previous_end:start]  # the original whitespace
        else:
            separator = DOC_JOIN
        parts.append(separator + documents[doc][start:end])
        position += len(separator)
        ranges.append((position, position + end - start))
        position += end - start
        previous_doc, previous_end = doc, end
    return _Chunk("".join(parts) + tail, ranges, members)


def recipe_blocks(recipe: str) -> frozenset[str]:
    """The :data:`BLOCKS` a recipe reads (an unknown term is refused, naming the choices)."""
    blocks = set()
    for term in recipe.split("+"):
        block, _, pool = term.partition("@")
        if block not in BLOCKS or pool not in ("", "layer"):
            raise ValueError(
                f"unknown probe feature {term!r} in recipe {recipe!r}: use blocks of "
                f"{', '.join(BLOCKS)} (optionally block@layer) joined by '+'"
            )
        blocks.add(block)
    return frozenset(blocks)


def recipe_features(raw: np.ndarray, heads: int, recipe: str) -> np.ndarray:
    """The columns of ``raw`` (see :meth:`AttentionProbeCompressor.sentence_raw_features`) a
    recipe names: blocks of :data:`BLOCKS` joined by ``+``; ``block@layer`` averages a block's
    heads per layer (L columns instead of L*H)."""
    recipe_blocks(recipe)
    width = (raw.shape[1] - 1) // (len(BLOCKS) - 1)
    parts = []
    for term in recipe.split("+"):
        block, _, pool = term.partition("@")
        if block == "length":
            parts.append(raw[:, -1:])
            continue
        index = BLOCKS.index(block)
        values = raw[:, index * width : (index + 1) * width]
        if pool:
            values = values.reshape(len(raw), -1, heads).mean(axis=2)
        parts.append(values)
    return np.hstack(parts)


def _chunk_features(
    chunk: _Chunk, offsets: Sequence, attention: np.ndarray, blocks: frozenset[str]
) -> np.ndarray:
    """(sentences, 4*L*H + 1): the :data:`BLOCKS` of each sentence of a chunk (those not in
    ``blocks`` left 0), from its (L, H, K, S) tail rows (or (L, H, S): the final row alone)."""
    token_sentence = align_tokens_to_words(offsets, chunk.ranges)
    context = np.flatnonzero(token_sentence >= 0)
    members = token_sentence[context]  # non-decreasing: sentences are in prompt order
    sentences = len(chunk.ranges)
    counts = np.bincount(members, minlength=sentences)
    if attention.ndim == 3:
        attention = attention[:, :, None, :]
    layers, heads = attention.shape[:2]
    present = np.flatnonzero(counts)
    starts = np.searchsorted(members, present)
    # each row as a share of its attention to the context, relative to uniform (1.0 = an
    # average context token): a scale per row, applied before the (smaller) context columns
    # are copied out
    outside = np.flatnonzero(token_sentence < 0)
    context_sum = attention.sum(axis=-1) - attention[..., outside].sum(axis=-1)
    scale = len(context) / np.maximum(context_sum, 1e-12)  # (L, H, K)
    pooled = {}
    for source in ("final", "tail"):
        wanted = [f"{source}-mean" in blocks, f"{source}-max" in blocks]
        if not any(wanted):
            continue
        if source == "final":
            share = attention[:, :, -1, :] * scale[:, :, -1:]
        else:
            share = np.einsum("lhks,lhk->lhs", attention, scale) / attention.shape[2]
        rows = share[..., context].reshape(layers * heads, -1).astype(np.float64)
        if wanted[0]:
            pooled[f"{source}-mean"] = _pool(np.add.reduceat, rows, starts, present, sentences)
            pooled[f"{source}-mean"][:, present] /= counts[present]
        if wanted[1]:
            pooled[f"{source}-max"] = _pool(np.maximum.reduceat, rows, starts, present, sentences)
    width = layers * heads
    features = np.zeros((sentences, (len(BLOCKS) - 1) * width + 1))
    for index, block in enumerate(BLOCKS[:-1]):
        if block in pooled:
            features[:, index * width : (index + 1) * width] = np.log(pooled[block] + _FLOOR).T
    features[:, -1] = np.log(np.maximum(counts, 1))
    return features


def _pool(
    reduce: Callable[..., np.ndarray],
    rows: np.ndarray,
    starts: np.ndarray,
    present: np.ndarray,
    n: int,
) -> np.ndarray:
    """``reduce`` over each sentence's (contiguous) tokens: (L*H, n), 0 where it has none."""
    pooled = np.zeros((rows.shape[0], n))
    if len(present):
        pooled[:, present] = reduce(rows, starts, axis=1)
    return pooled
