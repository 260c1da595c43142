"""Class-balanced, L2-regularised logistic regression by Newton's method, and ROC AUC.

Small enough to own: a few hundred features, a few thousand rows; no scikit-learn needed.
"""

from __future__ import annotations

import numpy as np


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, *, l2: float = 1.0, iterations: int = 30
) -> tuple[np.ndarray, float, np.ndarray, np.ndarray]:
    """Weights, bias and the standardisation (mean, scale) they apply to."""
    labels = np.asarray(labels, dtype=np.float64)
    if labels.min() == labels.max():
        raise ValueError("training needs both positive and negative examples")
    mean = features.mean(axis=0)
    scale = np.maximum(features.std(axis=0), 1e-6)
    x = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
    # Balance the classes: relevant sentences are a small minority.
    positive = labels.mean()
    sample_weight = np.where(labels == 1, 0.5 / positive, 0.5 / (1 - positive))
    penalty = np.full(x.shape[1], l2)
    penalty[-1] = 0.0  # the bias is not shrunk
    theta = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        gradient = x.T @ (sample_weight * (p - labels)) + penalty * theta
        hessian = (x * (sample_weight * p * (1 - p))[:, None]).T @ x + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        theta -= step
        if np.abs(step).max() < 1e-8:
            break
    return theta[:-1], float(theta[-1]), mean, scale


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = labels.sum(), (~labels).sum()
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = np.asarray(scores)[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2.0 + 1
    ranks[order] = np.repeat(average, counts)
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))
