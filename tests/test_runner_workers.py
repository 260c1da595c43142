"""Encoder runners on CPU run their batches side by side: same numbers, real overlap, the rule."""

from __future__ import annotations

import multiprocessing
import threading
from importlib import resources

import numpy as np
import pytest

import ragpress
from ragpress.onnx.catalogue import get_spec
from ragpress.onnx.models import TokenTagger, cpu_workers
from ragpress.onnx.runtime import reporting_batches, run_batches
from tests.token_counter import TokenCounter

SAMPLE = resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")


class MeetingSession:
    """Each run waits until ``parties`` runs are in flight at once (or fails after ``timeout``)."""

    def __init__(self, parties: int, timeout: float = 10) -> None:
        self.barrier = threading.Barrier(parties, timeout=timeout)

    def get_providers(self) -> list[str]:
        return ["CPUExecutionProvider"]

    def run(self, _names, feeds):
        self.barrier.wait()
        return [feeds["input_ids"].astype(np.float32) * 2]


def test_workers_run_batches_at_once_and_keep_each_output_at_its_input():
    sequences = [[1, 2, 3], [4], [5, 6], [7, 8, 9, 10]]
    counter = TokenCounter()
    with reporting_batches(counter):
        outputs = run_batches(MeetingSession(2), sequences, batch_size=1, workers=2)
    assert [out.tolist() for out in outputs] == [[2 * t for t in seq] for seq in sequences]
    assert counter.planned_tokens == counter.ran_tokens == 10


def test_one_worker_runs_one_batch_at_a_time():
    with pytest.raises(threading.BrokenBarrierError):
        run_batches(MeetingSession(2, timeout=1), [[1], [2]], batch_size=1, workers=1)


class CountingSession(MeetingSession):
    def __init__(self) -> None:
        super().__init__(parties=1)
        self.runs, self.lock = 0, threading.Lock()

    def run(self, names, feeds):
        with self.lock:  # the pool's threads count too
            self.runs += 1
        return super().run(names, feeds)


@pytest.mark.parametrize(("sequences", "lone_runs"), [([[1, 2]], 1), ([[1], [2, 3]], 0)])
def test_a_lone_batch_runs_on_the_threaded_session(sequences, lone_runs):
    """Single-threaded side-by-side sessions would leave the other cores idle for it."""
    side_by_side, threaded = CountingSession(), CountingSession()
    outputs = run_batches(
        side_by_side, sequences, batch_size=1, workers=2, lone_session=lambda: threaded
    )
    assert [out.tolist() for out in outputs] == [[2 * t for t in seq] for seq in sequences]
    assert (threaded.runs, side_by_side.runs) == (lone_runs, len(sequences) - lone_runs)


def _two_runs_at_once() -> list[list[float]]:
    outputs = run_batches(MeetingSession(2, timeout=5), [[1], [2, 3]], batch_size=1, workers=2)
    return [out.tolist() for out in outputs]


def test_a_forked_child_starts_its_own_workers():
    """The parent's pool threads do not exist in a fork: the child must not wait on them."""
    assert _two_runs_at_once() == [[2.0], [4.0, 6.0]]  # the parent's pool is up
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_two_runs_at_once).get(timeout=30) == [[2.0], [4.0, 6.0]]


def test_only_encoders_on_cpu_without_named_threads_run_side_by_side(monkeypatch):
    monkeypatch.setattr("ragpress.onnx.models.asks_for_cuda", lambda device: device == "cuda")
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    encoder, causal = get_spec("minilm-l6"), get_spec("smollm2-135m")
    assert cpu_workers(encoder, "cpu", None) == 3
    assert cpu_workers(encoder, "auto", None) == 3
    assert cpu_workers(encoder, "cpu", 2) == 1  # named threads: one run at a time on them
    assert cpu_workers(encoder, "cuda", None) == 1
    assert cpu_workers(causal, "cpu", None) == 1  # a long context may be one window


@pytest.mark.real_model
def test_side_by_side_runs_give_the_numbers_of_one_run_at_a_time():
    one_at_a_time = TokenTagger("minilm-l6", threads=2)
    side_by_side = TokenTagger("minilm-l6", threads=1)
    side_by_side.workers = 3  # whatever this machine's cores: three runs in flight
    assert one_at_a_time.workers == 1
    words = SAMPLE.split()
    sequences = [
        one_at_a_time.tokenizer.encode(" ".join(words[i : i + n]))
        for i, n in enumerate((5, 60, 17, 120, 33, 90, 8))
    ]
    expected = one_at_a_time.logits(sequences)
    got = side_by_side.logits(sequences)
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))


@pytest.mark.real_model
def test_the_query_default_gives_the_same_results_batched_and_one_by_one():
    """What a server relies on: a request's result does not depend on its batch."""
    from ragpress.serve.wire import comparable

    compressor = ragpress.get_compressor("relevance")
    requests = [
        {
            "context": [f"Passage {i}. Oil pressure drops when fuel dilutes it. " * (1 + 9 * i)],
            "query": "Why does oil pressure drop?",
            "rate": 0.5,
        }
        for i in range(4)
    ]
    batched = compressor.compress_batch(requests)
    alone = [compressor.compress(**request) for request in requests]
    assert [comparable(r) for r in batched] == [comparable(r) for r in alone]


@pytest.mark.real_model
def test_one_window_runs_on_every_core_with_the_numbers_of_one_thread():
    one_thread = TokenTagger("minilm-l6", threads=1)
    side_by_side = TokenTagger("minilm-l6", threads=1)
    side_by_side.workers = 2  # whatever this machine's cores
    threaded = []
    make = side_by_side._threaded_session
    side_by_side._threaded_session = lambda: threaded.append(1) or make()
    window = one_thread.tokenizer.encode(SAMPLE)[:200]
    assert np.array_equal(side_by_side.logits([window])[0], one_thread.logits([window])[0])
    assert threaded == [1]
    side_by_side.logits([window, window[:50]])  # two windows: side by side, one thread each
    assert threaded == [1]


@pytest.mark.real_model
def test_the_threaded_session_does_not_spin_between_single_threaded_runs():
    tagger = TokenTagger("minilm-l6", threads=1)
    tagger.workers = 2
    options = tagger._threaded_session().get_session_options()
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.intra_op_num_threads == 2
