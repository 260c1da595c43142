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
from ragpress.training.logistic import fit_logistic, roc_auc
from ragpress.training.qa import QAItem, answer_in, load_items


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
    l2: float = 10.0,
    output: Path | None = None,
) -> dict[str, Any]:
    """Fit the probe on ``items`` training items, report ROC AUC on ``eval_items`` dev items."""
    compressor = AttentionProbeCompressor(model=model)
    train_x, train_y, _ = collect(
        compressor, load_items("train", n=items, distractors=distractors), desc="train items"
    )
    weights, bias, mean, scale = fit_logistic(train_x, train_y, l2=l2)
    probe = Probe(weights, bias, mean, scale, compressor.reader.spec.name)
    dev_x, dev_y, _ = collect(
        compressor, load_items("dev", n=eval_items, distractors=distractors), desc="dev items"
    )
    stats = {
        "train_items": items,
        "train_sentences": len(train_y),
        "train_positive_share": round(float(train_y.mean()), 4),
        "train_auc": round(roc_auc(train_y, probe.probability(train_x)), 4),
        "dev_items": eval_items,
        "dev_sentences": len(dev_y),
        "dev_auc": round(roc_auc(dev_y, probe.probability(dev_x)), 4),
        "features": int(train_x.shape[1]),
        "l2": l2,
    }
    output = output or _bundled_path(probe.model)
    probe.save(output, **stats)
    return {"output": str(output), **stats}


def _bundled_path(model: str) -> Path:
    return Path(__file__).resolve().parents[1] / "data" / f"probe-{model}.npz"
