"""Dynamic batching: concurrent requests for one method share one ``compress_batch`` call.

A :class:`Batcher` owns a bounded queue and one worker task. The worker takes the oldest
waiting request, gathers more for at most ``max_wait_s`` (or until ``max_batch_size``), runs
them through one ``compress_batch`` in its own thread (the event loop keeps accepting
requests meanwhile) and hands each caller the result at its own position. When the queue is
full, :meth:`Batcher.submit` raises :class:`QueueFull` at once: the server answers 503 with
``Retry-After`` instead of piling requests up.

A batch that raises is run again one request at a time, so one caller's bad request (e.g. no
query for a query-aware method) fails that caller alone.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ragpress.types import CompressionRequest, CompressionResult

RunBatch = Callable[[list[CompressionRequest]], list[CompressionResult]]


class QueueFull(Exception):
    """The queue cannot take the request(s) now; retry after ``retry_after`` seconds."""

    def __init__(self, method: str, waiting: int, retry_after: int) -> None:
        super().__init__(
            f"the {method} queue is full ({waiting} requests waiting): retry after "
            f"{retry_after} s, or add replicas"
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class Outcome:
    """One caller's result and how it was served."""

    result: CompressionResult
    batch_size: int
    queue_seconds: float
    model_seconds: float


@dataclass(frozen=True)
class BatchReport:
    """What one model call did: passed to the ``on_batch`` hook (metrics)."""

    size: int
    queue_seconds: list[float]
    model_seconds: float


@dataclass
class _Pending:
    request: CompressionRequest
    future: asyncio.Future[Outcome]
    enqueued: float


class Batcher:
    """Gathers concurrent requests into batches for ``run`` (one method's ``compress_batch``)."""

    def __init__(
        self,
        run: RunBatch,
        *,
        name: str = "compressor",
        max_batch_size: int = 16,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        on_batch: Callable[[BatchReport], None] | None = None,
    ) -> None:
        if max_batch_size < 1 or max_queue < 1 or max_wait_s < 0:
            raise ValueError(
                "max_batch_size and max_queue must be >= 1 and max_wait_s >= 0, got "
                f"{max_batch_size}, {max_queue}, {max_wait_s}"
            )
        self.run, self.name = run, name
        self.max_batch_size, self.max_wait_s, self.max_queue = max_batch_size, max_wait_s, max_queue
        self.on_batch = on_batch
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task[None] | None = None
        # One thread: batches of one method run one after another, never interleaved.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"ragpress-{name}")
        self._batch_seconds = 0.0  # moving average, for Retry-After

    @property
    def waiting(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, requests: Sequence[CompressionRequest]) -> list[Outcome]:
        """Queue ``requests`` (all or none: :class:`QueueFull` when they do not fit) and wait
        for their outcomes, in order. A request that failed raises its own exception."""
        queue = self._ensure_worker()
        if queue.qsize() + len(requests) > self.max_queue:
            raise QueueFull(self.name, queue.qsize(), self.retry_after())
        loop = asyncio.get_running_loop()
        pending = [_Pending(r, loop.create_future(), time.perf_counter()) for r in requests]
        for item in pending:
            queue.put_nowait(item)
        try:
            return list(await asyncio.gather(*(item.future for item in pending)))
        finally:  # a caller that went away: its requests are skipped, not computed
            for item in pending:
                item.future.cancel()

    def retry_after(self) -> int:
        """Whole seconds until the queue has likely drained a batch's worth (at least 1)."""
        batches = self.waiting / self.max_batch_size + 1
        return max(1, math.ceil(batches * self._batch_seconds))

    async def close(self) -> None:
        """Stop the worker; requests still waiting fail with ``RuntimeError``."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._queue is not None and not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _ensure_worker(self) -> asyncio.Queue[_Pending]:
        if self._queue is None:
            self._queue = asyncio.Queue()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._work())
        return self._queue

    async def _work(self) -> None:
        while True:
            batch = await self._gather()
            if batch:
                await self._serve(batch)

    async def _gather(self) -> list[_Pending]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except asyncio.TimeoutError:
                break
        return [item for item in batch if not item.future.done()]

    async def _serve(self, batch: list[_Pending]) -> None:
        start = time.perf_counter()
        queued = [start - item.enqueued for item in batch]
        requests = [item.request for item in batch]
        loop = asyncio.get_running_loop()
        outcomes = await loop.run_in_executor(self._executor, run_isolated, self.run, requests)
        seconds = time.perf_counter() - start
        self._batch_seconds = (
            seconds if not self._batch_seconds else (0.8 * self._batch_seconds + 0.2 * seconds)
        )
        if self.on_batch is not None:
            self.on_batch(BatchReport(len(batch), queued, seconds))
        for item, waited, outcome in zip(batch, queued, outcomes, strict=True):
            if item.future.done():
                continue
            if isinstance(outcome, BaseException):
                item.future.set_exception(outcome)
            else:
                item.future.set_result(Outcome(outcome, len(batch), waited, seconds))


def run_isolated(
    run: RunBatch, requests: list[CompressionRequest]
) -> list[CompressionResult | Exception]:
    """``run(requests)``; when the batch raises, each request alone, so an error reaches only
    the caller whose request caused it."""
    try:
        results = run(requests)
    except Exception as error:
        if len(requests) == 1:
            return [error]
        return [run_isolated(run, [request])[0] for request in requests]
    if len(results) != len(requests):
        count = f"{len(results)} results for {len(requests)} requests"
        mismatch = RuntimeError(f"the compressor returned {count}")
        return [mismatch] * len(requests)
    return list(results)
