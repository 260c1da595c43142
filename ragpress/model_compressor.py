"""``ModelCompressor``: the base of every compressor that reads text with one model runner.

It owns the model options, so a subclass takes its own options and hands ``**options`` on:

``model``
    catalogue name, hub id or folder (default: the class's ``default_model``);
``backend``
    ``"onnx"`` (onnxruntime, the default) or ``"torch"`` (for parity checks and research);
``variant``
    ONNX graph variant, ``"fp32"``, ``"int8"`` or ``"fp16"`` (CUDA);
``device``
    ``"auto"`` (CUDA when onnxruntime has it), ``"cpu"`` or ``"cuda"``;
``threads``
    onnxruntime intra-op threads (default: onnxruntime's own choice, one per core);
``batch_size``
    rows per forward.

One rule sets the defaults, on every model compressor:

* ``variant=None``: ``fp32`` on CUDA and with the torch backend; on CPU with ONNX the class's
  ``cpu_variant``, which is ``fp32`` unless int8 was measured to choose the same text. Entropy's
  is ``int8``: 1.4x faster than fp32 at 512 tokens and as good at keeping answers (40 dev items
  at 4x: 52.5% question-aware, 60% with coarse, 15% without a question, as fp32).
* ``batch_size=None``: 1 on CPU and 8 on CUDA (``ragpress.onnx.models.CPU_BATCH``): on CPU,
  padding rows of different lengths to the longest cost more than batching saved. Measured
  on this machine's 2 cores (``python -m bench.defaults``, figures in its docstring).

The runner is ``self.runner`` (a :class:`ragpress.onnx.models.TokenScorer`, ``TokenTagger``
or ``AttentionRows``, chosen by the class's ``runner_class``); its settings join the result's.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from ragpress.base import Compressor

Backend = Literal["onnx", "torch"]
Device = Literal["auto", "cpu", "cuda"]


class ModelCompressor(Compressor):
    """A compressor backed by one model runner; see the module docstring for the options."""

    loads_model = True
    #: The runner class (``ragpress.onnx.models``): its role picks the exported graph.
    runner_class: ClassVar[type]
    #: The model when none is named.
    default_model: ClassVar[str] = "smollm2-135m"
    #: The ONNX variant on CPU when none is named (measured per method: see the module doc).
    cpu_variant: ClassVar[str] = "fp32"

    def __init__(
        self,
        *,
        model: str | None = None,
        backend: Backend = "onnx",
        variant: str | None = None,
        device: Device = "auto",
        threads: int | None = None,
        batch_size: int | None = None,
        target_tokenizer: Any = None,
    ) -> None:
        super().__init__(target_tokenizer=target_tokenizer)
        self.runner = self.runner_class(
            model or self.default_model,
            backend=backend,
            variant=variant or self.default_variant(backend, device),
            device=device,
            threads=threads,
            batch_size=batch_size,
        )

    @classmethod
    def default_variant(cls, backend: str, device: str) -> str:
        """The variant when none is named: ``cpu_variant`` on CPU with ONNX, else fp32."""
        from ragpress.onnx.runtime import asks_for_cuda

        return "fp32" if backend != "onnx" or asks_for_cuda(device) else cls.cpu_variant  # type: ignore[arg-type]

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, **self.runner.settings}
