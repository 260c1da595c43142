"""Train the attention probe: sentence features from the proxy decoder, labels from QA answers.

A sentence is relevant when it contains a gold answer string. Training items and evaluation
items come from disjoint splits (split by passage), so no evaluation passage is ever seen.

    ragpress train attention-probe --items 300       # writes ragpress/data/probe-<model>.npz
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ragpress.compressors.attention_probe import AttentionProbeCompressor, Probe
from ragpress.training.corpora import CACHE_DIR
from ragpress.training.logistic import fit_logistic, roc_auc
from ragpress.training.qa import QAItem, Split, answer_in, load_items


def collect(
    compressor: AttentionProbeCompressor, items: Sequence[QAItem], *, desc: str = "features"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, labels and the item index of every sentence of every item."""
    features, labels, groups = [], [], []
    for index, item in enumerate(tqdm(items, desc=desc)):
        documents = item.documents()
        units, x = compressor.sentence_features(documents, item.question)
        sentences = [
            documents[d][a:b]
            for d, a, b in zip(
                units.doc.tolist(), units.start.tolist(), units.end.tolist(), strict=True
            )
        ]
        features.append(x)
        labels.append([answer_in(item, sentence) for sentence in sentences])
        groups.append(np.full(len(sentences), index))
    return np.vstack(features), np.concatenate(labels).astype(int), np.concatenate(groups)


def train(
    *,
    model: str = "smollm2-135m",
    items: int = 300,
    eval_items: int = 100,
    distractors: int = 4,
    l2_grid: Sequence[float] = (1.0, 10.0, 100.0, 1000.0),
    output: Path | None = None,
) -> dict[str, Any]:
    """Fit the probe on ``items`` train items; pick the L2 penalty by ROC AUC on ``eval_items``
    dev items (the test split stays untouched for the benchmarks)."""
    compressor = AttentionProbeCompressor(model=model)
    train_x, train_y = _features(compressor, "train", items, distractors)
    dev_x, dev_y = _features(compressor, "dev", eval_items, distractors)
    fits = {}
    for l2 in l2_grid:
        weights, bias, mean, scale = fit_logistic(train_x, train_y, l2=l2)
        probe = Probe(weights, bias, mean, scale, compressor.runner.spec.name)
        fits[l2] = (roc_auc(dev_y, probe.probability(dev_x)), probe)
    best_l2 = max(fits, key=lambda l2: fits[l2][0])
    dev_auc, probe = fits[best_l2]
    stats = {
        "train_items": items,
        "train_sentences": len(train_y),
        "train_positive_share": round(float(train_y.mean()), 4),
        "train_auc": round(roc_auc(train_y, probe.probability(train_x)), 4),
        "dev_items": eval_items,
        "dev_sentences": len(dev_y),
        "dev_auc": round(dev_auc, 4),
        "dev_auc_by_l2": {str(l2): round(auc, 4) for l2, (auc, _) in fits.items()},
        "l2": best_l2,
        "features": int(train_x.shape[1]),
    }
    output = output or _bundled_path(probe.model)
    probe.save(output, **{k: v for k, v in stats.items() if not isinstance(v, dict)})
    return {"output": str(output), **stats}


def _features(
    compressor: AttentionProbeCompressor, split: Split, count: int, distractors: int
) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of a split, cached: collecting them is the slow part."""
    cache = CACHE_DIR / (
        f"probe-features-{compressor.runner.spec.name}-{split}-{count}-{distractors}.npz"
    )
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return data["x"], data["y"]
    x, y, _ = collect(
        compressor, load_items(split, n=count, distractors=distractors), desc=f"{split} items"
    )
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, x=x, y=y)
    return x, y


def _bundled_path(model: str) -> Path:
    return Path(__file__).resolve().parents[1] / "data" / f"probe-{model}.npz"
