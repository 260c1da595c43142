"""Fine-tuning the packaged MiniLM with a token-classification head, shared by the token
classifier and the relevance model: the model with its frozen layers, the training loop, the fp16
delta it ships as, and the ONNX export of the shipped delta."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from tqdm.auto import tqdm


class HasIds(Protocol):
    ids: list[int]


E = TypeVar("E", bound=HasIds)


def batches(examples: Sequence[E], size: int, rng: random.Random) -> list[list[E]]:
    """Length-sorted batches (little padding) in shuffled order (any examples with ``ids``)."""
    order = sorted(examples, key=lambda e: len(e.ids))
    grouped = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(grouped)
    return grouped


def trainable_classifier(
    base: Any, labels: dict[int, str], train_layers: int
) -> tuple[Any, list[str]]:
    """The packaged encoder ``base`` with a fresh token-classification head over ``labels``,
    everything but its top ``train_layers`` layers and the head frozen; and the trained names."""
    from transformers import AutoModelForTokenClassification

    from ragpress.onnx.sources import pretrained, weights_folder

    model = pretrained(
        AutoModelForTokenClassification,
        weights_folder(base),
        num_labels=len(labels),
        id2label=labels,
        label2id={label: index for index, label in labels.items()},
        use_safetensors=True,
    )
    return model, _trainable(model, train_layers)


def _trainable(model: Any, train_layers: int) -> list[str]:
    """Freeze everything but the top ``train_layers`` encoder layers and the head."""
    layers = model.base_model.encoder.layer
    first = len(layers) - train_layers
    names = []
    for name, parameter in model.named_parameters():
        top = any(f"encoder.layer.{i}." in name for i in range(first, len(layers)))
        parameter.requires_grad = top or name.startswith("classifier.")
        if parameter.requires_grad:
            names.append(name)
    return names


def fit(
    model: Any,
    epoch_batches: Callable[[], list[list[E]]],
    loss_of: Callable[[list[E]], Any],
    evaluate: Callable[[], dict[str, float]],
    *,
    lr: float,
    epochs: int,
    steps: int,
) -> list[dict[str, Any]]:
    """AdamW on the trainable parameters under a one-cycle schedule, for ``epochs`` passes of
    ``epoch_batches()`` or ``steps`` optimizer steps, whichever ends first. Returns the history:
    ``evaluate()`` before training and after each epoch, with the epoch's mean loss."""
    import torch

    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps, pct_start=0.1)
    history: list[dict[str, Any]] = [{"epoch": 0, **evaluate()}]
    tqdm.write(json.dumps(history[-1]))
    done = 0
    for epoch in range(epochs):
        model.train()
        losses = []
        for batch in tqdm(epoch_batches()[: steps - done], desc=f"epoch {epoch + 1}/{epochs}"):
            loss = loss_of(batch)
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        done += len(losses)
        mean_loss = round(float(np.mean(losses)), 4)
        history.append({"epoch": epoch + 1, "steps": done, "loss": mean_loss, **evaluate()})
        tqdm.write(json.dumps(history[-1]))
        if done >= steps:
            break
    return history


def save_delta(
    model: Any,
    names: Sequence[str],
    output: Path,
    stats: dict[str, Any],
    *,
    labels: dict[int, str],
) -> None:
    """The trained tensors as fp16 safetensors; the config changes and stats in its metadata."""
    from safetensors.torch import save_file

    state = model.state_dict()
    tensors = {name: state[name].detach().to("cpu").half().contiguous() for name in names}
    label2id = {label: index for index, label in labels.items()}
    config = {"num_labels": len(labels), "id2label": labels, "label2id": label2id}
    output.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        tensors, str(output), metadata={"config": json.dumps(config), "stats": json.dumps(stats)}
    )


def export_graphs(model: str, role: str) -> dict[str, Any]:
    """Export a shipped classifier again (fp32 and int8) and return the parity figures."""
    from ragpress.onnx.export import MANIFEST, prepare

    parity = {}
    for variant in ("fp32", "int8"):
        folder = prepare(model, role, variant, force=True)  # type: ignore[arg-type]
        parity[variant] = json.loads((folder / MANIFEST).read_text())["parity"]
    return parity
