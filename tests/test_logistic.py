import numpy as np
import pytest

from ragpress.training.logistic import fit_logistic, roc_auc


def test_logistic_recovers_a_separating_direction():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 5))
    y = (x[:, 2] - 0.5 * x[:, 0] + rng.normal(scale=0.3, size=2000) > 1.0).astype(int)
    weights, bias, mean, scale = fit_logistic(x, y, l2=0.1)
    scores = ((x - mean) / scale) @ weights + bias
    assert roc_auc(y, scores) > 0.95
    assert np.argmax(np.abs(weights)) == 2
    with pytest.raises(ValueError, match="both"):
        fit_logistic(x, np.zeros(2000))


def test_roc_auc_known_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
