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
    onnxruntime intra-op threads, one run at a time (default: below);
``batch_size``
    rows per forward.

One rule sets the defaults, on every model compressor:

* ``variant=None``: ``fp32`` on CUDA and with the torch backend; on CPU with ONNX the class's
  ``cpu_variant``, which is ``fp32`` unless int8 was measured to keep answers as well as fp32
  (a per-method quality fact, not a speed one, and it must hold on every CPU). Relevance's is
  ``int8`` (60 dev items per setting, as good at 2x-16x, about half the time:
  ``ragpress.compressors.relevance``). Entropy's is ``fp32``: its int8 graph (activations
  quantized on the fly over 30 layers) kept answers as well as fp32 on an AVX2 CPU (40 dev
  items at 4x, question-aware: 80% against 82.5%) but not on an AVX-512 VNNI one (the same
  40, ``bench.entropy``: 72.5% against 82.5%; 80 more: 65% against 76%, int8 never the one
  to keep it), where it was 1.5x as fast (1.10 against 1.68 s per item).
* ``batch_size=None``: 1 on CPU and 8 on CUDA (``ragpress.onnx.models.CPU_BATCH``): on CPU,
  padding rows of different lengths to the longest costs more than batching saves.

Measured with ``python -m bench.defaults --items 3 --repeats 1`` (3 dev QA items, gold + 4
distractors, question given, rate 0.25, settings taking turns; 2 cores shared with other jobs,
load ~14, so the ratios matter, not the seconds), seconds per item:

====================  =========  =========
setting               batch 1    batch 8
====================  =========  =========
entropy int8          18.0       20.2
entropy fp32          32.9       52.0
ib-filter fp32        53.3       135.4
====================  =========  =========

Batch 1 on CPU is the rule for every model compressor (before it, ib-filter ran batches of 8 on
CPU; its kept spans on the bundled sample are identical at 1, ``tests/golden``).

* ``threads=None``: an encoder on CPU (relevance, token-classifier, embedding-similarity) runs
  one single-threaded session per core side by side (``ragpress.onnx.models.cpu_workers``);
  causal LMs, whose context may be one long window, run one at a time on onnxruntime's own
  threads (one per core). An encoder reads many short windows: independent runs keep the cores
  busier than one run split across them, and a batch of requests (a server's) fills them
  better than one request's two or three windows. A call that is one window (one short
  document) would leave the other cores idle: it runs on a second session with every core's
  thread, made on first use (figures below). The numbers are the same either way
  (``tests/test_runner_workers.py``). Measured with ``python -m bench.defaults --encoder
  --items 16 --repeats 3`` (relevance, 16 dev QA items with 1 distractor at rate 0.5, the
  same 16 requests one per call or as one ``compress_batch``, settings taking turns; 2 cores
  shared with another job at load ~8), requests per second:

=====================================  ============  ================
setting                                one per call  16 in one call
=====================================  ============  ================
one run at a time, 2 threads, batch 1  7.24          8.42
one run at a time, 2 threads, batch 8  5.06          8.03
2 runs side by side, batch 1           11.85         14.27
2 runs side by side, batch 8           4.08          10.16
=====================================  ============  ================

  (With the other job taking a core: 4.27 / 4.36 and 7.06 / 7.35 at batch 1.) Rows of 8
  lose here too, so batch 1 stays the CPU rule for encoders. Again on idle cores
  (``bench/results/defaults_encoder.md``): side by side 8.34 / 10.52 against 7.46 / 8.88 one
  run at a time; rows of 8 now change relevance's results (int8 quantizes a padded batch's
  activations together), another reason for batch 1. A lone window on every core, with one
  short document per call (``--distractors 0``): token-classifier 24.1 requests/s against
  16.6 before (``defaults_encoder_token_classifier``), relevance 14.1 against 13.1
  (``defaults_encoder_lone``; its second read is several windows). Before the threaded
  session stopped spinning, relevance lost there (10.6 against 10.9): its idle threads took
  the cores of the second read. With 1 distractor no call is one window, so the "before" row
  runs the same code as the default: its 9.20 / 10.58 against 8.34 / 10.52 is noise.

The runner is ``self.runner`` (a :class:`ragpress.onnx.models.TokenScorer`, ``TokenTagger``
or ``AttentionRows``, chosen by the class's ``runner_class``); its settings join the result's.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from ragpress import checks
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
        checks.choice(device, get_args(Device), "device")
        if threads is not None:
            threads = checks.integer(threads, "threads", at_least=1)
        if batch_size is not None:
            batch_size = checks.integer(batch_size, "batch_size", at_least=1)
        super().__init__(target_tokenizer=target_tokenizer)
        self.runner = self.runner_class(
            model or self.default_model,
            backend=backend,
            variant=variant or self.default_variant(backend, device),
            device=device,
            threads=threads,
            batch_size=batch_size,
        )

    def encoder_window(self, max_length: int) -> int:
        """``max_length`` cut to what the model reads at once (its tokenizer's
        ``model_max_length``, 512 for MiniLM): longer windows would fail in the graph."""
        window = getattr(self.runner.tokenizer, "model_max_length", None) or max_length
        return min(max_length, window) if window < 100_000 else max_length  # 1e30: no limit set

    @classmethod
    def default_variant(cls, backend: str, device: str) -> str:
        """The variant when none is named: ``cpu_variant`` on CPU with ONNX, else fp32."""
        from ragpress.onnx.runtime import asks_for_cuda

        return "fp32" if backend != "onnx" or asks_for_cuda(device) else cls.cpu_variant  # type: ignore[arg-type]

    @property
    def settings(self) -> dict[str, Any]:
        return {**super().settings, **self.runner.settings}
