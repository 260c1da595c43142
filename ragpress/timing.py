"""Forward time: model runners report the seconds they spend, compressors read them.

``Compressor`` opens a :func:`forward_clock` around each batch; every model call inside it
(an ONNX or torch runner's ``run``, or any code wrapped in :func:`timed_forward`) adds its
seconds to every clock open in the current context, so a pipeline's clock sums its stages'.
Clocks live in a ``ContextVar``: calls on other threads or tasks never mix.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass


@dataclass
class Clock:
    """Seconds spent in model forwards, and how many forward calls made them."""

    seconds: float = 0.0
    calls: int = 0


_OPEN: ContextVar[tuple[Clock, ...]] = ContextVar("ragpress_forward_clocks", default=())


@contextmanager
def forward_clock() -> Iterator[Clock]:
    """A clock that receives the time of every forward run inside the block."""
    clock = Clock()
    token = _OPEN.set((*_OPEN.get(), clock))
    try:
        yield clock
    finally:
        _OPEN.reset(token)


@contextmanager
def timed_forward() -> Iterator[None]:
    """Count the block as one model forward on every open clock."""
    started = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - started
        for clock in _OPEN.get():
            clock.seconds += elapsed
            clock.calls += 1
