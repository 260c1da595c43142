"""The measurement behind the model options' defaults (``ragpress.model_compressor``).

Times each SmolLM2 compressor over the same dev QA items (gold passage + 4 distractors,
question given, rate 0.25) for each ONNX variant x batch size on CPU, taking turns call by
call so a change in the machine's load falls on every setting alike. Prints one line per
setting: median ms per item and the forward share read from ``result.timings``.

Run: ``python -m bench.defaults [--items 5] [--repeats 2]`` (a few minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable
from typing import Any

import ragpress
from bench.harness import measure_interleaved, warm_up
from bench.qa import load_items

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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
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
