"""One progress bar for a slow model job (load weights, export, quantize, check parity).

Everything the libraries underneath print while it runs (transformers' load reports, torch.onnx's
``[torch.onnx] ...`` lines, which go to stdout, onnxruntime's C++ logs, warnings) is captured at
the file-descriptor level into a log file: stdout stays clean for the result (``ragpress
compress ... > out.txt``), and the log's tail is shown only if the job fails. The bar writes to
stderr, with an ETA from each step's typical duration; when stderr is no terminal (a log, CI)
two plain lines take its place. ``RAGPRESS_QUIET=1`` hides both.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Iterator
from typing import IO

from tqdm.auto import tqdm

#: Loggers of the libraries an export runs through; their records go to the captured log.
THIRD_PARTY = ("transformers", "torch", "torch.onnx", "onnxscript", "onnx_ir", "accelerate")
_JOB = threading.local()  # the job running on this thread (nested prepares share one bar)
_FD_LOCK = threading.Lock()
TAIL_LINES = 40


class Job:
    """A bar over named steps; each step's typical seconds weight it in the bar and the ETA."""

    def __init__(self, label: str, steps: dict[str, float], stream: IO[str]) -> None:
        self.label, self.steps = label, dict(steps)
        self.bar = tqdm(
            total=round(sum(steps.values())),
            desc=label,
            file=stream,
            bar_format="{desc} {percentage:3.0f}%|{bar:20}| {elapsed}<{remaining}",
            disable=True if quiet() else None,  # None: off when stderr is not a terminal
            leave=False,
        )
        # No terminal (a log, CI): the bar is off, so two plain lines say what the wait is.
        self._lines = self.bar.disable and not quiet()
        self._stream, self._started = stream, time.perf_counter()
        if self._lines:
            stream.write(f"{label}: started, about {_duration(sum(steps.values()))}\n")
            stream.flush()
        self._done = 0.0
        self._current: tuple[str, float] | None = None
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)
        self._ticker.start()

    @contextlib.contextmanager
    def step(self, name: str, seconds: float | None = None) -> Iterator[None]:
        if name not in self.steps:
            self.steps[name] = seconds or 1.0
            self.bar.total = round(sum(self.steps.values()))
        weight = self.steps[name]
        self.bar.set_description_str(f"{self.label}: {name}", refresh=False)
        self._current = (name, time.perf_counter())
        try:
            yield
        finally:
            self._current = None
            self._done += weight
            self._show(self._done)

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            current = self._current
            if current is not None:
                name, started = current
                # Move within the step up to 95% of its weight: the bar never claims a step done.
                elapsed = min(time.perf_counter() - started, 0.95 * self.steps[name])
                self._show(self._done + elapsed)

    def _show(self, value: float) -> None:
        self.bar.n = min(round(value), self.bar.total)
        self.bar.refresh()

    def close(self, *, failed: bool = False) -> None:
        self._stop.set()
        self._ticker.join()
        self.bar.close()
        if self._lines:
            elapsed = _duration(time.perf_counter() - self._started)
            ended = "failed after" if failed else "finished in"
            self._stream.write(f"{self.label}: {ended} {elapsed}\n")
            self._stream.flush()


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


@contextlib.contextmanager
def job(label: str, steps: dict[str, float]) -> Iterator[Job]:
    """Run a model job under one bar, third-party output captured (see the module doc).

    Nested calls (an int8 variant preparing its fp32 graph first) add their steps to the
    outer job's bar instead of opening a second one.
    """
    outer: Job | None = getattr(_JOB, "job", None)
    if outer is not None:
        for name, seconds in steps.items():
            outer.steps.setdefault(name, seconds)
        outer.bar.total = round(sum(outer.steps.values()))
        yield outer
        return
    with _captured_output() as (stream, log):
        current = Job(label, steps, stream)
        _JOB.job = current
        try:
            yield current
        except BaseException:
            current.close(failed=True)
            _show_tail(log, stream)
            raise
        finally:
            _JOB.job = None
        current.close()


def step(name: str, seconds: float | None = None) -> contextlib.AbstractContextManager[None]:
    """A step of the running job (a no-op context outside a job)."""
    current: Job | None = getattr(_JOB, "job", None)
    return current.step(name, seconds) if current is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _captured_output() -> Iterator[tuple[IO[str], IO[str]]]:
    """Point fds 1 and 2 at a log file; yield (a stream to the real stderr, the log)."""
    with _FD_LOCK, tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as log:
        sys.stdout.flush()
        sys.stderr.flush()
        saved_out, saved_err = os.dup(1), os.dup(2)
        stream = os.fdopen(os.dup(saved_err), "w", buffering=1, encoding="utf-8", closefd=True)
        try:
            os.dup2(log.fileno(), 1)
            os.dup2(log.fileno(), 2)
            redirect = contextlib.redirect_stdout(log), contextlib.redirect_stderr(log)
            with _quiet_libraries(log), redirect[0], redirect[1]:
                yield stream, log
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved_out, 1)
            os.dup2(saved_err, 2)
            os.close(saved_out)
            os.close(saved_err)
            stream.close()


@contextlib.contextmanager
def _quiet_libraries(log: IO[str]) -> Iterator[None]:
    """Warnings and third-party log records go to the log, not the terminal."""
    handler = logging.StreamHandler(log)
    loggers = [logging.getLogger(name) for name in THIRD_PARTY]
    saved = [(each.handlers[:], each.propagate) for each in loggers]
    for each in loggers:
        each.handlers[:] = [handler]
        each.propagate = False
    bars = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS")
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for each, (handlers, propagate) in zip(loggers, saved, strict=True):
            each.handlers[:] = handlers
            each.propagate = propagate
        if bars is None:
            os.environ.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
        else:
            os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = bars


def _show_tail(log: IO[str], stream: IO[str]) -> None:
    log.flush()
    log.seek(0)
    lines = log.read().splitlines()
    if lines:
        stream.write(f"--- last {min(len(lines), TAIL_LINES)} lines of the job's output ---\n")
        stream.write("\n".join(lines[-TAIL_LINES:]) + "\n")
        stream.flush()


def quiet() -> bool:
    return os.environ.get("RAGPRESS_QUIET", "") not in ("", "0")
