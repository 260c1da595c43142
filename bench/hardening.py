"""Seconds per call on the hostile inputs of issue #20 (not a timed test: figures to compare).

Run: ``python -m bench.hardening [--case long-word|one-line] [--methods ...] [--sizes ...]``.

* ``long-word``: one unbroken word of ``n`` characters (``"x" * n``), rate 0.5; the e-mail
  pattern used to rescan it from every position (quadratic).
* ``one-line``: one-line JSON, a table row and CJK text without punctuation, rate 0.5, with a
  question; sentence methods used to read each as one unit.

Prints one line per call: method, case, characters, SmolLM2 tokens, seconds, kept tokens.
"""

from __future__ import annotations

import argparse
import json
import time

import ragpress

QUERY = "What is the name of item 42?"


def one_line_inputs() -> dict[str, str]:
    rows = [{"id": i, "name": f"item {i}", "tags": ["red", "blue"]} for i in range(400)]
    return {
        "json": json.dumps(rows),
        "table": " | ".join(f"cell {i} value {i * 7}" for i in range(1200)),
        "cjk": "東京は日本の首都であり人口が多く交通網が発達している" * 300,
    }


def run(method: str, case: str, text: str, query: str | None) -> None:
    compressor = ragpress.get_compressor(method)
    started = time.perf_counter()
    result = compressor.compress(text, query, rate=0.5)
    seconds = time.perf_counter() - started
    print(
        f"{method:22} {case:10} chars={len(text):7} tokens={result.original_tokens:6} "
        f"seconds={seconds:7.2f} kept={result.compressed_tokens}",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", choices=("long-word", "one-line"), default="long-word")
    parser.add_argument("--methods", nargs="+", default=["token-classifier", "entropy"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 20_000, 40_000, 200_000])
    args = parser.parse_args()
    for method in args.methods:
        needs_query = ragpress.get_compressor(method).requires_query
        if args.case == "long-word":
            for size in args.sizes:
                run(method, "long-word", "x" * size, QUERY if needs_query else None)
        else:
            for name, text in one_line_inputs().items():
                run(method, name, text, QUERY)


if __name__ == "__main__":
    main()
