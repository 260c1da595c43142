"""Model objects compressors hold: the backend (``"onnx"`` or ``"torch"``) is an argument.

``TokenScorer`` gives per-token negative log-likelihoods from a causal LM (role ``nll``);
``TokenTagger`` gives token-classification logits from an encoder (role ``token-logits``);
``TokenEmbedder`` its last hidden states (role ``hidden``); ``AttentionRows`` the final
position's attention rows of a causal LM (role ``attention``).
Both take lists of token id sequences and return one array per sequence.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ragpress.onnx.catalogue import ModelSpec, Role, get_spec
from ragpress.onnx.runtime import Device, _trim, active_device, create_session, run_batches
from ragpress.onnx.tokenizer import ModelTokenizer

Backend = Literal["onnx", "torch"]


class _RoleModel:
    role: Role
    sequence_axis: int = 1  # of the batched output

    def __init__(
        self,
        model: str | ModelSpec = "smollm2-135m",
        *,
        backend: Backend = "onnx",
        variant: str = "fp32",
        device: Device = "auto",
        threads: int | None = None,
        batch_size: int = 8,
    ) -> None:
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', got {backend!r}")
        self.spec = get_spec(model)
        self.backend = backend
        self.variant = variant
        self.batch_size = batch_size
        self._lock = threading.Lock()
        if backend == "onnx":
            from ragpress.onnx.export import GRAPH, prepare

            folder = prepare(self.spec, self.role, variant)  # type: ignore[arg-type]
            self._session = create_session(folder / GRAPH, device=device, threads=threads)
            self.device = active_device(self._session)
            self.tokenizer = ModelTokenizer.from_folder(folder / "tokenizer")
        else:
            from ragpress.onnx.export import _WRAPPERS
            from ragpress.onnx.progress import job, step
            from ragpress.onnx.sources import load_tokenizer, load_torch_model

            steps = {"load weights": 10.0}
            with job(f"loading {self.spec.name} on torch", steps), step("load weights"):
                model = load_torch_model(self.spec, head=self.role != "hidden")
                self._torch = _WRAPPERS[self.role](model).eval()
                self.tokenizer = ModelTokenizer.from_transformers(load_tokenizer(self.spec))
            self.device = "cpu"
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "model": self.spec.name,
            "backend": self.backend,
            "variant": self.variant if self.backend == "onnx" else "fp32",
            "device": self.device,
        }

    def run(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        if self.backend == "onnx":
            return run_batches(
                self._session,
                sequences,
                batch_size=self.batch_size,
                pad_id=self.pad_id,
                sequence_axis=self.sequence_axis,
            )
        return self._run_torch(sequences)

    def _run_torch(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        import torch

        from ragpress.onnx.runtime import length_batches

        outputs: list[np.ndarray | None] = [None] * len(sequences)
        # A torch module is not safe to call from many threads at once; onnxruntime is.
        with self._lock, torch.inference_mode():
            for batch in length_batches(sequences, batch_size=self.batch_size, pad_id=self.pad_id):
                result = self._torch(
                    torch.from_numpy(batch.input_ids), torch.from_numpy(batch.attention_mask)
                ).numpy()
                for row, index in enumerate(batch.indices):
                    outputs[index] = _trim(
                        result[row], self.sequence_axis - 1, len(sequences[index])
                    )
        return outputs  # type: ignore[return-value]


class TokenScorer(_RoleModel):
    """Per-token NLL (nats) of a causal LM; the first token of each sequence scores 0."""

    role: Role = "nll"

    def nll(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.run(sequences)


class TokenTagger(_RoleModel):
    """Token-classification logits (S, C) of an encoder; label 1 means keep."""

    role: Role = "token-logits"

    def __init__(self, model: str | ModelSpec = "minilm-l6", **options: Any) -> None:
        super().__init__(model, **options)

    def logits(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.run(sequences)


class TokenEmbedder(_RoleModel):
    """An encoder's last hidden states (S, D) per sequence, for sentence embeddings."""

    role: Role = "hidden"

    def __init__(self, model: str | ModelSpec = "minilm-l6", **options: Any) -> None:
        super().__init__(model, **options)

    def hidden(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.run(sequences)


class AttentionRows(_RoleModel):
    """The final position's attention to every position, per layer and head: (L, H, S).

    Runs one sequence at a time (batch_size 1): the final position must be a real token.
    """

    role: Role = "attention"
    sequence_axis: int = 3

    def __init__(self, model: str = "smollm2-135m", **options: Any) -> None:
        options["batch_size"] = 1
        super().__init__(model, **options)

    def rows(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.run(sequences)
