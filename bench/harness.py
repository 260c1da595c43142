"""A small benchmark harness: time a function, derive throughput, write results.

Results go to ``bench/results/{name}.json`` (rows, command, machine facts) and
``bench/results/{name}.md`` (a markdown table of the rows, then the command and machine).
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_VERSIONED = ("numpy", "torch", "onnxruntime", "tokenizers")


@dataclass(frozen=True)
class Timing:
    """Wall-clock timings of the measured runs (warm-up runs excluded), in milliseconds."""

    p50_ms: float
    p95_ms: float
    mean_ms: float
    runs: list[float] = field(default_factory=list)


def measure(fn: Callable[[], Any], *, warmup: int = 1, repeats: int = 5) -> Timing:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for _ in range(warmup):
        fn()
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - start) * 1000.0)
    return Timing(_percentile(runs, 50), _percentile(runs, 95), statistics.fmean(runs), runs)


def measure_interleaved(
    fns: dict[str, Callable[[], Any]], *, warmup: int = 1, repeats: int = 5
) -> dict[str, Timing]:
    """Like ``measure`` for several functions, taking turns run by run, so a change in the
    machine's load (a shared machine) falls on all of them rather than on whichever ran last."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            runs[name].append((time.perf_counter() - start) * 1000.0)
    return {
        name: Timing(_percentile(r, 50), _percentile(r, 95), statistics.fmean(r), r)
        for name, r in runs.items()
    }


#: A tiny request that loads a compressor's models before anything is timed.
WARM_UP_DOCUMENTS = ["A warm-up passage. Another one here."]
WARM_UP_QUESTION = "Warm up?"


def warm_up(compressor: Any, rate: float = 0.5) -> None:
    """One untimed call, so sessions and lazy exports are ready before the first timing."""
    compressor.compress(WARM_UP_DOCUMENTS, WARM_UP_QUESTION, rate=rate)


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0-100) of ``values``."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def tokens_per_second(tokens: int, ms: float) -> float:
    """Throughput of ``tokens`` processed in ``ms`` milliseconds."""
    return tokens / (ms / 1000.0) if ms > 0 else float("inf")


def timing_throughput(tokens: int, timing: Timing) -> dict[str, float]:
    """Tokens/s at the p50 and p95 latency and at the mean."""
    return {
        "p50_tokens_per_s": tokens_per_second(tokens, timing.p50_ms),
        "p95_tokens_per_s": tokens_per_second(tokens, timing.p95_ms),
        "mean_tokens_per_s": tokens_per_second(tokens, timing.mean_ms),
    }


def rss_bytes() -> int:
    """This process's resident set size, in bytes (/proc where there is one, else psutil)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        import psutil

        return psutil.Process().memory_info().rss


class PeakRSS:
    """Peak resident set size while the ``with`` block runs, sampled by a background thread.

    ``peak_mb`` is that peak minus the RSS on entry (memory the block needed beyond what the
    process held already), ``rss_mb`` the peak itself. Model runtimes release the GIL during
    their forwards, so the sampler keeps running while they work; spikes shorter than
    ``interval`` seconds can be missed.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start = self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> PeakRSS:
        self.start = self.peak = rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    @property
    def peak_mb(self) -> float:
        return (self.peak - self.start) / 2**20

    @property
    def rss_mb(self) -> float:
        return self.peak / 2**20


def pin_one_core() -> int | None:
    """Pin this process to one CPU where the OS allows it; returns that CPU or None."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def machine_facts() -> dict[str, Any]:
    """Platform, CPU count, Python and library versions, and the date."""
    facts: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if hasattr(os, "sched_getaffinity"):
        facts["cpus_allowed"] = len(os.sched_getaffinity(0))
    for module in _VERSIONED:
        facts[module] = _version(module)
    return facts


def _version(module: str) -> str | None:
    try:
        return getattr(importlib.import_module(module), "__version__", "unknown")
    except Exception:  # not installed, or broken: report it as absent
        return None


def write_results(
    name: str,
    rows: Sequence[dict[str, Any]],
    command: str,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """Write ``{name}.json`` and ``{name}.md`` under ``bench/results/``; returns both paths."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    machine = machine_facts()
    payload = {"name": name, "command": command, "machine": machine, "rows": list(rows)}
    if extra:
        payload["extra"] = extra
    json_path = RESULTS_DIR / f"{name}.json"
    json_path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")
    md_path = RESULTS_DIR / f"{name}.md"
    md_path.write_text(render_markdown(name, rows, command, machine, extra))
    return json_path, md_path


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def render_markdown(
    name: str,
    rows: Sequence[dict[str, Any]],
    command: str,
    machine: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> str:
    """A heading, the rows as a table, extra tables and notes, then the command and machine.

    Entries of ``extra`` that are lists of dicts become tables under their key; notes (a key
    ending in "note" or "notes": strings and lists of strings) become paragraphs; other strings
    a ``key: value`` line ("split: test"); anything else stays in the JSON only.
    """
    lines = [f"# {name}", "", markdown_table(rows), ""]
    for key, value in (extra or {}).items():
        lines += _extra_section(key, value)
    lines += [f"Command: `{command}`", ""]
    facts = ", ".join(f"{key}={value}" for key, value in machine.items() if value is not None)
    lines += [f"Machine: {facts}", ""]
    return "\n".join(lines)


def _extra_section(key: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value if key.endswith(("note", "notes")) else f"{key}: {value}", ""]
    if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        return [f"## {key}", "", markdown_table(value), ""]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return [*(f"- {item}" for item in value), ""]
    return []


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """Rows (dicts) as a markdown table; columns in first-seen order, missing cells empty."""
    if not rows:
        return "_no rows_"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(column)) for column in columns) + " |")
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 100 else f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")
