"""The fine-tuning loop shared by the token classifier and the relevance model: the step cap,
the history it records, and that it trains only what is left trainable."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import torch
else:
    torch = pytest.importorskip("torch")

from ragpress.training.finetune import batches, fit


@dataclass
class _Example:
    ids: list[int]


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    model[0].requires_grad_(False)  # a frozen layer, as the encoder's lower layers are
    return model


def _regression(model: torch.nn.Module, calls: list[int]):
    inputs, targets = torch.randn(8, 2), torch.randn(8, 1)

    def loss_of(batch: list[_Example]) -> torch.Tensor:
        calls.append(len(batch))
        return torch.nn.functional.mse_loss(model(inputs), targets)

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            return {"mse": float(torch.nn.functional.mse_loss(model(inputs), targets))}

    return loss_of, evaluate


def test_stops_at_the_step_cap_and_records_each_epoch_after_a_first_evaluation():
    model, calls = _model(), []
    loss_of, evaluate = _regression(model, calls)
    examples = [_Example([0] * n) for n in range(1, 9)]
    rng = random.Random(0)

    history = fit(
        model, lambda: batches(examples, 2, rng), loss_of, evaluate, lr=0.05, epochs=3, steps=6
    )

    assert len(calls) == 6  # 4 steps in the first epoch, the cap cuts the second at 2
    assert [entry["epoch"] for entry in history] == [0, 1, 2]
    assert [entry.get("steps") for entry in history] == [None, 4, 6]
    assert "loss" not in history[0] and all("loss" in entry for entry in history[1:])
    assert history[-1]["mse"] < history[0]["mse"]


def test_trains_what_is_trainable_and_unfreezes_nothing():
    model, calls = _model(), []
    loss_of, evaluate = _regression(model, calls)
    frozen = model[0].weight.clone()
    trained = model[1].weight.clone()

    fit(model, lambda: [[_Example([1])]] * 3, loss_of, evaluate, lr=0.05, epochs=1, steps=3)

    assert torch.equal(model[0].weight, frozen)
    assert not torch.equal(model[1].weight, trained)


def test_batches_hold_every_example_once_grouped_by_length():
    examples = [_Example([0] * n) for n in (5, 1, 4, 2, 3, 6, 1)]
    grouped = batches(examples, 3, random.Random(1))

    assert sorted(id(e) for batch in grouped for e in batch) == sorted(id(e) for e in examples)
    assert sorted(sorted(len(e.ids) for e in batch) for batch in grouped) == [
        [1, 1, 2],
        [3, 4, 5],
        [6],
    ]
