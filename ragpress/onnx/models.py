"""Model objects compressors hold: the backend (``"onnx"`` or ``"torch"``) is an argument.

``TokenScorer`` gives per-token negative log-likelihoods from a causal LM (role ``nll``);
``TokenTagger`` gives token-classification logits from an encoder (role ``token-logits``);
``TokenEmbedder`` an encoder's last hidden states (role ``hidden``); ``AttentionRows`` the last
position's attention (``AttentionTailRows``: the last few positions'); ``RelevanceScorer`` a
cross-encoder's keep, relevance and answer logits (role ``relevance``). All take lists of token id
sequences and return one array per sequence from one ``run()``, which reports its seconds to
the forward clocks of :mod:`ragpress.timing`
(``result.timings["forward"]``). Their tokenizers are ``ragpress.onnx.tokenizer.ModelTokenizer``,
read from the export folder with ``tokenizers`` alone: the ONNX path never imports torch or
transformers.

Defaults, one rule for every runner (``ragpress.model_compressor`` documents the figures):
``batch_size=None`` is :data:`CPU_BATCH` on CPU and :data:`CUDA_BATCH` on CUDA; on CPU with
``threads=None``, an encoder's runs go side by side (:func:`cpu_workers`), and a call that is
one batch (one window at batch 1) runs on every core instead: a second, multi-threaded session,
made on the first such call (which pays for creating it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np

from ragpress.onnx.catalogue import Kind, ModelSpec, Role, get_spec
from ragpress.onnx.runtime import (
    Device,
    _trim,
    active_device,
    asks_for_cuda,
    create_session,
    run_batches,
)
from ragpress.onnx.tokenizer import ModelTokenizer
from ragpress.timing import timed_forward

Backend = Literal["onnx", "torch"]
#: Rows per forward on CPU: padding rows of different lengths to the longest costs more than
#: batching saves there (entropy, 5 dev passages: one padded batch of 8 took 1.4-1.7x as long).
CPU_BATCH = 1
#: Rows per forward on CUDA, where a batch fills the device.
CUDA_BATCH = 8


def cpu_workers(spec: ModelSpec, device: Device, threads: int | None) -> int:
    """How many single-threaded runs an ONNX runner makes at once (1: one run at a time on
    onnxruntime's ``threads`` intra-op threads).

    An encoder on CPU with ``threads=None`` gets one run per core: its inputs are many short
    windows, and independent runs keep the cores busier than one run split across them, so a
    batch of requests (a server's) gains over one request at a time (figures in
    ``ragpress.model_compressor``). Causal LMs keep intra-op threads: a long context may be
    one window. Naming ``threads`` always means one run at a time on that many threads.
    """
    if threads is not None or spec.kind != "encoder" or asks_for_cuda(device):
        return 1
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _RoleModel:
    role: Role
    sequence_axis: int = 1  # of the batched output
    #: What an ad-hoc model name is (see ``get_spec``); catalogue names say it themselves.
    kind: Kind | None = None
    default_model: str = "smollm2-135m"

    def __init__(
        self,
        model: str | ModelSpec | None = None,
        *,
        backend: Backend = "onnx",
        variant: str = "fp32",
        device: Device = "auto",
        threads: int | None = None,
        batch_size: int | None = None,
    ) -> None:
        if backend not in ("onnx", "torch"):
            raise ValueError(f"backend must be 'onnx' or 'torch', got {backend!r}")
        if batch_size is not None and (isinstance(batch_size, bool) or batch_size < 1):
            raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")
        self.spec = get_spec(model or self.default_model, kind=self.kind)
        self.backend = backend
        self.variant = variant
        self._lock = threading.Lock()
        self.workers = 1
        if backend == "onnx":
            from ragpress.onnx.export import GRAPH, prepare

            folder = prepare(self.spec, self.role, variant)  # type: ignore[arg-type]
            self.workers = cpu_workers(self.spec, device, threads)
            if self.workers > 1:
                threads = 1
            self._graph, self._device_option = folder / GRAPH, device
            self._session = create_session(self._graph, device=device, threads=threads)
            self.device = active_device(self._session)
            self.tokenizer = ModelTokenizer.from_folder(folder / "tokenizer")
        else:
            from ragpress.onnx.progress import job, step
            from ragpress.onnx.sources import load_tokenizer, load_torch_model
            from ragpress.onnx.wrappers import WRAPPERS

            steps = {"load weights": 10.0}
            with job(f"loading {self.spec.name} on torch", steps), step("load weights"):
                model = load_torch_model(self.spec, head=self.role != "hidden")
                self._torch = WRAPPERS[self.role](model).eval()
                self.tokenizer = ModelTokenizer.from_transformers(load_tokenizer(self.spec))
            self.device = "cpu"
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        if batch_size is None:
            batch_size = CPU_BATCH if self.device == "cpu" else CUDA_BATCH
        self.batch_size = batch_size

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "model": self.spec.name,
            "backend": self.backend,
            "variant": self.variant if self.backend == "onnx" else "fp32",
            "device": self.device,
        }

    def run(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """One output per sequence; the seconds go to the open forward clocks."""
        with timed_forward():
            if self.backend == "onnx":
                return run_batches(
                    self._session,
                    sequences,
                    batch_size=self.batch_size,
                    pad_id=self.pad_id,
                    sequence_axis=self.sequence_axis,
                    workers=self.workers,
                    lone_session=self._threaded_session if self.workers > 1 else None,
                )
            return self._run_torch(sequences)

    def _threaded_session(self) -> Any:
        """The graph on every core's intra-op thread, for a call that is one window: the
        side-by-side sessions are single-threaded. Made on first use (start-up stays one
        session), then shared like every session (``create_session``). Its threads do not
        spin after a run: relevance's second read follows on the single-threaded sessions,
        and spinning threads took its cores (16 requests of one passage: 13.4 req/s with
        spinning, 15.7 without, 13.8 with no threaded session at all)."""
        return create_session(
            self._graph, device=self._device_option, threads=self.workers, spinning=False
        )

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
    kind: Kind | None = "encoder"
    default_model: str = "minilm-l6"

    def logits(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.run(sequences)


class TokenEmbedder(_RoleModel):
    """An encoder's last hidden states (S, D) per sequence, for sentence embeddings."""

    role: Role = "hidden"
    kind: Kind | None = "encoder"
    default_model: str = "minilm-l6"

    def hidden(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.run(sequences)


class AttentionRows(_RoleModel):
    """The final position's attention to every position, per layer and head: (L, H, S).

    Runs one sequence at a time (batch_size 1): the final position must be a real token.
    """

    role: Role = "attention"
    sequence_axis: int = 3

    def __init__(self, model: str | ModelSpec | None = None, **options: Any) -> None:
        if options.get("batch_size") not in (None, 1):
            raise ValueError(
                f"batch_size must be 1 for attention rows (the final position must be a real "
                f"token), got {options['batch_size']!r}"
            )
        super().__init__(model, **{**options, "batch_size": 1})

    def rows(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.run(sequences)


class AttentionTailRows(AttentionRows):
    """The attention of each of the last K positions (``ragpress.onnx.wrappers.TAIL_ROWS``) to
    every position, per layer and head: (L, H, K, S); the last of the K rows is
    :class:`AttentionRows`'s row."""

    role: Role = "attention-tail"
    sequence_axis: int = 4


class RelevanceScorer(_RoleModel):
    """A cross-encoder over ``[CLS] question [SEP] passage [SEP]``: per sequence (S, 2), each
    token's keep logit (channel 0); the passage's relevance logit at position 0 and each
    token's answer logit after it (channel 1)."""

    role: Role = "relevance"
    kind: Kind | None = "encoder"
    default_model: str = "minilm-l6-relevance"

    def logits(self, sequences: Sequence[Sequence[int]]) -> list[np.ndarray]:
        return self.run(sequences)
