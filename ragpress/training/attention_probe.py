"""Train the attention probe: sentence features from the proxy decoder, labels from QA answers.

A sentence is relevant when it contains a gold answer string. Training items come from the
train split of the development settings (``ragpress.training.qa.load_setting``: the gold
passage among other-article or same-article passages, or alone); the L2 penalty is chosen by
ROC AUC on dev items of the same settings (split by passage, so no dev passage is ever seen);
the test split stays for the benchmarks.

    ragpress train attention-probe             # $RAGPRESS_HOME/trained/probe-<model>.npz
    ragpress train attention-probe --ship      # replaces ragpress/data/probe-<model>.npz

Collecting features is the slow part (one proxy forward per item): the pooled blocks of every
recipe are cached per split and setting, in files of :data:`CHUNK_ITEMS` items, in
``$RAGPRESS_HOME/trained/``, so a second run, one with another recipe, or one with more items
only fits (or collects the items it lacks). Figures: ``ragpress.compressors.attention_probe``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ragpress.compressors.attention_probe import (
    AttentionProbeCompressor,
    Probe,
    recipe_blocks,
    recipe_features,
)
from ragpress.onnx.cache import home
from ragpress.selection import fill_by_score, unit_costs, unit_pieces
from ragpress.training.logistic import fit_logistic, roc_auc
from ragpress.training.outputs import output_path
from ragpress.training.qa import QAItem, Setting, Split, answer_in, load_setting

DEV_ITEMS: dict[Setting, int] = {"other-article": 100, "same-article": 50}


@dataclass(frozen=True)
class ShippedRecipe:
    """What a shipped probe was fit with: its features, train items per setting (gold-only
    items are ~5x cheaper: one passage per forward) and the L2 penalties tried on dev."""

    recipe: str
    items: dict[Setting, int]
    l2_grid: tuple[float, ...]


#: Proxy of the default probe (the Sentinel paper's proxy size). On dev it beat SmolLM2's best
#: recipe (module notes of ``ragpress.compressors.attention_probe``).
DEFAULT_MODEL = AttentionProbeCompressor.default_model
SHIPPED: dict[str, ShippedRecipe] = {
    # The final row's and the tail rows' mean attention per layer and head, and the sentence's
    # length; the best L2 sat at the top of SmolLM2's grid, so the grid moved up.
    "qwen2.5-0.5b": ShippedRecipe(
        "final-mean+tail-mean+length",
        {"other-article": 400, "same-article": 400, "gold-only": 600},
        (300.0, 1000.0, 3000.0, 10000.0),
    ),
    # 2,000 items, 35,859 sentences; the probe saturates well before: on dev, 100 items gave
    # AUC 0.932, 600 items 0.949 and 2,000 items 0.948. The tail rows' mean beat the final row
    # alone, adding the max or the final row, and per-layer means (module notes).
    "smollm2-135m": ShippedRecipe(
        "tail-mean+length",
        {"other-article": 500, "same-article": 500, "gold-only": 1000},
        (10.0, 30.0, 100.0, 300.0, 1000.0),
    ),
}
SURVIVAL_RATES = {"4x": 1 / 4, "8x": 1 / 8}
#: Items per cache file.
CHUNK_ITEMS = 25


@dataclass
class Collected:
    """Per sentence: pooled blocks ``x``, label ``y``, item index ``group`` and target-token
    cost; per item: its context's target tokens (``original``). ``heads`` per layer."""

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray
    cost: np.ndarray
    original: np.ndarray
    heads: int

    @classmethod
    def join(cls, parts: Sequence[Collected]) -> Collected:
        offsets = np.cumsum([0, *(len(part.original) for part in parts[:-1])])
        return cls(
            np.vstack([part.x for part in parts]),
            np.concatenate([part.y for part in parts]),
            np.concatenate(
                [part.group + offset for part, offset in zip(parts, offsets, strict=True)]
            ),
            np.concatenate([part.cost for part in parts]),
            np.concatenate([part.original for part in parts]),
            parts[0].heads,
        )

    def features(self, recipe: str) -> np.ndarray:
        return recipe_features(self.x, self.heads, recipe)


def collect(
    compressor: AttentionProbeCompressor, items: Sequence[QAItem], *, desc: str = "features"
) -> Collected:
    """The pooled blocks, labels and costs of every sentence of every item."""
    xs, labels, groups, costs, originals, heads = [], [], [], [], [], 0
    for index, item in enumerate(tqdm(items, desc=desc)):
        documents = item.documents()
        units, x, heads = compressor.sentence_raw_features(documents, item.question)
        pieces = unit_pieces(documents, units)
        xs.append(x.astype(np.float32))
        labels.append([answer_in(item, piece) for piece in pieces])
        groups.append(np.full(len(pieces), index))
        costs.append(unit_costs(compressor.tokenizer, pieces))
        originals.append(compressor.tokenizer.count(item.context()))
    return Collected(
        np.vstack(xs),
        np.concatenate(labels).astype(int),
        np.concatenate(groups),
        np.concatenate(costs),
        np.asarray(originals),
        heads,
    )


def survival(data: Collected, scores: np.ndarray, rate: float) -> float:
    """Share of items whose kept sentences hold an answer when sentences are kept by score
    within ``ceil(rate * original)`` target tokens (the compressor's greedy fill)."""
    kept_answer = []
    for index, original in enumerate(data.original.tolist()):
        members = np.flatnonzero(data.group == index)
        keep = np.zeros(len(members), dtype=bool)
        order = np.argsort(-scores[members], kind="stable")
        fill_by_score(keep, order, data.cost[members], math.ceil(rate * original))
        kept_answer.append(bool(data.y[members][keep].any()))
    return float(np.mean(kept_answer))


def train(
    *,
    model: str = DEFAULT_MODEL,
    items: dict[Setting, int] | None = None,
    eval_items: dict[Setting, int] | None = None,
    recipe: str | None = None,
    l2_grid: Sequence[float] | None = None,
    output: Path | None = None,
    ship: bool = False,
) -> dict[str, Any]:
    """Fit the probe on train items of each setting (``items``: count per setting); pick the
    L2 penalty by ROC AUC on ``eval_items`` dev items; report dev answer survival at 4x/8x.
    What is not given comes from the model's :data:`SHIPPED` recipe (the default one's for a
    model without a shipped probe)."""
    from ragpress.onnx.catalogue import get_spec

    shipped = shipped_recipe(model)
    recipe = recipe or shipped.recipe
    l2_grid = shipped.l2_grid if l2_grid is None else l2_grid
    recipe_blocks(recipe)  # an unknown feature is refused before any forward
    items = dict(shipped.items if items is None else items)
    eval_items = dict(DEV_ITEMS if eval_items is None else eval_items)
    output = output_path(f"probe-{get_spec(model).name}.npz", out=output, ship=ship)
    compressor = AttentionProbeCompressor(model=model)
    train_data = Collected.join([features(compressor, "train", s, n) for s, n in items.items()])
    dev_parts = {s: features(compressor, "dev", s, n) for s, n in eval_items.items()}
    dev_data = Collected.join(list(dev_parts.values()))
    train_x, dev_x = train_data.features(recipe), dev_data.features(recipe)
    fits = {}
    for l2 in l2_grid:
        weights, bias, mean, scale = fit_logistic(train_x, train_data.y, l2=l2)
        probe = Probe(weights, bias, mean, scale, compressor.runner.spec.name, recipe)
        fits[l2] = (roc_auc(dev_data.y, probe.probability(dev_x)), probe)
    best_l2 = max(fits, key=lambda l2: fits[l2][0])
    dev_auc, probe = fits[best_l2]
    stats: dict[str, Any] = {
        "recipe": recipe,
        "train_items": sum(items.values()),
        "train_sentences": len(train_data.y),
        "train_positive_share": round(float(train_data.y.mean()), 4),
        "train_auc": round(roc_auc(train_data.y, probe.probability(train_x)), 4),
        "dev_items": sum(eval_items.values()),
        "dev_sentences": len(dev_data.y),
        "dev_auc": round(dev_auc, 4),
        "l2": best_l2,
        "features": int(train_x.shape[1]),
    }
    for setting, part in dev_parts.items():
        scores = probe.probability(part.features(recipe))
        stats[f"dev_auc_{setting}"] = round(roc_auc(part.y, scores), 4)
        for target, rate in SURVIVAL_RATES.items():
            stats[f"dev_survival_{setting}_{target}"] = round(survival(part, scores, rate), 4)
    output.parent.mkdir(parents=True, exist_ok=True)
    probe.save(output, **stats)
    stats["dev_auc_by_l2"] = {str(l2): round(auc, 4) for l2, (auc, _) in fits.items()}
    stats["train_items_by_setting"] = items
    return {"output": str(output), **stats}


def shipped_recipe(model: str) -> ShippedRecipe:
    """How ``model``'s shipped probe was fit (the default proxy's recipe for other models)."""
    from ragpress.onnx.catalogue import get_spec

    return SHIPPED.get(get_spec(model).name, SHIPPED[DEFAULT_MODEL])


def features(
    compressor: AttentionProbeCompressor, split: Split, setting: Setting, count: int
) -> Collected:
    """The collected sentences of the first ``count`` items of a split and setting, cached in
    files of :data:`CHUNK_ITEMS` items (an interrupted or a larger run resumes from them)."""
    items = load_setting(split, setting, count)
    parts = []
    for start in range(0, len(items), CHUNK_ITEMS):
        chunk = items[start : start + CHUNK_ITEMS]
        name = f"probe-blocks-{compressor.runner.spec.name}-{split}-{setting}-{start}-{len(chunk)}"
        parts.append(_cached(home() / "trained" / f"{name}.npz", compressor, chunk, name))
    return Collected.join(parts)


def _cached(
    cache: Path, compressor: AttentionProbeCompressor, items: Sequence[QAItem], desc: str
) -> Collected:
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return Collected(
                data["x"],
                data["y"],
                data["group"],
                data["cost"],
                data["original"],
                int(data["heads"]),
            )
    collected = collect(compressor, items, desc=desc)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cache,
        x=collected.x,
        y=collected.y,
        group=collected.group,
        cost=collected.cost,
        original=collected.original,
        heads=np.array(collected.heads),
    )
    return collected
