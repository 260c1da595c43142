"""bench.latency's plan: which cells the quick profile measures, and why it leaves the rest."""

from __future__ import annotations

import pytest

from bench.latency import METHODS, cpu_default_backend, method_backends, plan

CPU_BACKENDS = ["torch", "onnx-fp32", "onnx-int8"]


def _measured(method: str, lengths: list[int]) -> set[tuple[str, int, int]]:
    cells = plan([method], CPU_BACKENDS, lengths, quick=True)
    return {(c.backend, c.tokens, c.batch) for c in cells if c.skip is None}


def test_the_default_compressor_is_timed_on_every_backend_and_for_scaling() -> None:
    assert METHODS[0] == "relevance"
    measured = _measured("relevance", [512, 100_000])
    assert {backend for backend, _, _ in measured} == set(CPU_BACKENDS)
    assert {(b, t) for b, t, _ in measured if t >= 10_000} == {
        ("onnx-int8", 10_000),
        ("onnx-int8", 100_000),
    }


def test_embedding_similarity_is_timed_on_the_onnx_graphs_it_runs() -> None:
    assert set(CPU_BACKENDS) <= set(method_backends("embedding-similarity"))
    assert ("onnx-int8", 512, 1) in _measured("embedding-similarity", [512])


@pytest.mark.parametrize("method", ["attention-probe", "entropy", "ib-filter"])
def test_decoder_methods_stop_at_8k_in_the_quick_profile(method: str) -> None:
    lengths = {t for _, t, _ in _measured(method, [512, 8192, 32768])}
    assert lengths == {512, 8192}


@pytest.mark.parametrize(
    ("method", "backend"),
    [
        ("relevance", "onnx-int8"),  # its cpu_variant
        ("entropy", "onnx-fp32"),
        ("relevance+entropy", "onnx-fp32"),  # stages differ: the grid's reference row
        ("random", "none"),
    ],
)
def test_the_latency_paragraph_reads_the_backend_a_cpu_user_gets(method: str, backend: str) -> None:
    assert cpu_default_backend(method) == backend
