"""The measurement behind the model options' defaults (``ragpress.model_compressor``).

Times each SmolLM2 compressor over the same dev QA items (gold passage + 4 distractors,
question given, rate 0.25) for each ONNX variant x batch size on CPU, taking turns call by
call so a change in the machine's load falls on every setting alike. Prints one line per
setting: median ms per item and the forward share read from ``result.timings``.

Run: ``python -m bench.defaults [--items 5] [--repeats 2]`` (16 min for 3 items x 1 repeat on 2
shared cores). The figures and the rule they chose are in ``ragpress.model_compressor``.

``python -m bench.defaults --encoder [--items 16] [--repeats 3]`` times the query default
(relevance, a MiniLM encoder) as a server runs it: the same requests one at a time and as one
``compress_batch``, for one run at a time on every core's intra-op thread vs runs side by side
(``ragpress.onnx.models.cpu_workers``), at batch 1 and 8; writes ``bench/results/defaults_encoder``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from collections.abc import Callable
from functools import partial
from typing import Any

import ragpress
from bench.harness import measure_interleaved, warm_up, write_results
from bench.qa import load_items
from ragpress.defaults import QUERY_METHOD

SETTINGS: dict[str, list[dict[str, Any]]] = {
    "entropy": [
        {"variant": "int8", "batch_size": 1},
        {"variant": "int8", "batch_size": 8},
        {"variant": "fp32", "batch_size": 1},
        {"variant": "fp32", "batch_size": 8},
    ],
    "ib-filter": [
        {"variant": "fp32", "batch_size": 1},
        {"variant": "fp32", "batch_size": 8},
    ],
}


def _label(method: str, options: dict[str, Any]) -> str:
    return f"{method} {options['variant']} batch {options['batch_size']}"


#: A setting's key (not a compressor option) for the rule before a call of one window ran on
#: every core: it ran on one of the single-threaded side-by-side sessions.
LONE_ON_ONE_THREAD = "lone window on one thread"


def encoder_settings() -> dict[str, dict[str, Any]]:
    """The query default's runner settings: one run at a time on intra-op threads (naming
    ``threads``) vs the default, runs side by side; rows per run 1 and 8; and the default as it
    was before a lone window got every core."""
    cores = len(os.sched_getaffinity(0))
    settings = {
        f"{label}, batch {batch}": {**options, "batch_size": batch}
        for label, options in (
            (f"one run at a time x {cores} threads", {"threads": cores}),
            (f"{cores} runs side by side (default)", {}),
        )
        for batch in (1, 8)
    }
    before = f"{cores} runs side by side, a {LONE_ON_ONE_THREAD} (before), batch 1"
    return settings | {before: {"batch_size": 1, LONE_ON_ONE_THREAD: True}}


def _encoder_compressor(method: str, options: dict[str, Any]) -> Any:
    options = dict(options)
    lone_on_one_thread = options.pop(LONE_ON_ONE_THREAD, False)
    compressor: Any = ragpress.get_compressor(method, device="cpu", **options)
    if lone_on_one_thread:
        runner = compressor.runner
        runner._threaded_session = lambda: runner._session
    return compressor


def _one_by_one(compressor: Any, pool: list[dict[str, Any]]) -> list[Any]:
    return [compressor.compress(**request) for request in pool]


def encoder(args: argparse.Namespace) -> None:
    """Requests per second of the query default, one request per call vs one batched call."""
    from bench.serve import workload
    from ragpress.serve.wire import comparable

    pool = workload(args.items, distractors=args.distractors, rate=0.5)
    reference = [comparable(r) for r in ragpress.get_compressor(args.method).compress_batch(pool)]
    calls: dict[str, Callable[[], Any]] = {}
    differ: dict[str, int] = {}
    for label, options in encoder_settings().items():
        compressor = _encoder_compressor(args.method, options)
        warm_up(compressor)
        results = [compressor.compress(**request) for request in pool]
        differ[label] = sum(comparable(r) != e for r, e in zip(results, reference, strict=True))
        calls[f"{label}, one request per call"] = partial(_one_by_one, compressor, pool)
        calls[f"{label}, {len(pool)} requests per call"] = partial(compressor.compress_batch, pool)
    timings = measure_interleaved(calls, warmup=0, repeats=args.repeats)
    rows = [
        {
            "method": args.method,
            "setting": label,
            "req/s": round(len(pool) / (timing.p50_ms / 1000), 2),
            "runs_ms": [round(run) for run in timing.runs],
            "differ": differ[label.rsplit(", ", 1)[0]],
        }
        for label, timing in timings.items()
    ]
    for row in rows:
        print(f"{row['setting']:62} {row['req/s']:7.2f} req/s  differ {row['differ']}")
    note = (
        f"{args.items} dev QA items (gold + {args.distractors} other passages) at rate 0.5, "
        "settings taking turns, "
        f"{args.repeats} rounds (median); load average at the end {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} CPUs. differ: results unlike the default's compress_batch (must be 0)."
    )
    command = f"python -m bench.defaults --encoder --items {args.items} --repeats {args.repeats}"
    for flag, value, default in (
        ("--method", args.method, QUERY_METHOD),
        ("--distractors", args.distractors, 1),
        ("--name", args.name, "defaults_encoder"),
    ):
        command += f" {flag} {value}" if value != default else ""
    write_results(args.name, rows, command, {"notes": [note]})
    print(note)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--encoder", action="store_true", help="time the query default")
    parser.add_argument(
        "--distractors", type=int, default=1, help="--encoder: passages beside the gold one"
    )
    parser.add_argument("--method", default=QUERY_METHOD, help="--encoder: an encoder method")
    parser.add_argument("--name", default="defaults_encoder", help="--encoder: results name")
    args = parser.parse_args(argv)
    if args.encoder:
        encoder(args)
        return
    items = load_items("dev", n=args.items)
    requests = [
        {"context": item.documents(), "query": item.question, "rate": 0.25} for item in items
    ]
    forward: dict[str, list[float]] = {}
    calls: dict[str, Callable[[], Any]] = {}
    for method, grid in SETTINGS.items():
        for options in grid:
            compressor = ragpress.get_compressor(method, device="cpu", **options)
            warm_up(compressor)
            label = _label(method, options)
            forward[label] = []

            def call(compressor: Any = compressor, label: str = label) -> None:
                results = [compressor.compress(**request) for request in requests]
                forward[label].append(sum(r.timings.get("forward", 0.0) for r in results))

            calls[label] = call
    timings = measure_interleaved(calls, warmup=0, repeats=args.repeats)
    for label, timing in timings.items():
        share = statistics.median(forward[label]) * 1000 / timing.p50_ms
        print(f"{label:28} {timing.p50_ms / len(requests):8.0f} ms/item  forward {share:.0%}")


if __name__ == "__main__":
    main()
