"""Benchmark how fast a new process gets to a ready compressor, with the ONNX graphs cached.

Run: ``python -m bench.startup [--repeats 5]``. Each measurement is a fresh Python process
(what a CLI call, a worker or a notebook restart pays): the time to ``import ragpress``, then
to a constructed compressor (graph sessions open, tokenizer loaded), then its first call on a
short two-document context with a question. It also records whether torch or transformers
were imported on the way (they must not be: the runtime is onnxruntime + tokenizers + numpy).
Graphs are prepared once before timing. Goal: under a second to a ready compressor.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
from typing import Any

from bench.harness import write_results
from bench.reporting import Paragraph

METHODS = (
    "metatoken",
    "token-classifier",
    "embedding-similarity",
    "entropy",
    "attention-probe",
    "ib-filter",
)
COMMANDS = {
    "startup": "python -m bench.startup",
}
GOAL_SECONDS = 1.0
QUESTION = "What is the first sign of fuel dilution?"
DOCUMENTS = [
    "A level that rises between services is the first sign of fuel dilution.",
    "The workshop in Lyon opens a second service lane in April.",
]
# One process: the clock starts before `import ragpress` (the interpreter's own start is not ours).
PROBE = """
import json, sys, time
started = time.perf_counter()
import ragpress
imported = time.perf_counter()
compressor = ragpress.get_compressor({method!r}) if {method!r} else None
ready = time.perf_counter()
if compressor is not None:
    compressor.compress({documents!r}, {question!r}, rate=0.5)
called = time.perf_counter()
heavy = [m for m in ("torch", "transformers") if m in sys.modules]
print(json.dumps({{"import": imported - started, "ready": ready - started,
                  "call": called - ready, "heavy": heavy}}))
"""


def probe(method: str | None) -> dict[str, Any]:
    code = PROBE.format(method=method, documents=DOCUMENTS, question=QUESTION)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{method}: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(method: str | None, repeats: int) -> dict[str, Any]:
    probe(method)  # prepares graphs on a cold cache; warms the OS file cache
    runs = [probe(method) for _ in range(repeats)]

    def ms(key: str) -> float:
        return round(1000 * statistics.median(run[key] for run in runs), 1)

    heavy = sorted({module for run in runs for module in run["heavy"]})
    return {
        "method": method or "(import only)",
        "import ragpress ms": ms("import"),
        "ready compressor ms": ms("ready"),
        "first call ms": ms("call"),
        "under 1 s": ms("ready") < 1000 * GOAL_SECONDS,
        "torch/transformers imported": ", ".join(heavy) or "no",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows = [measure(None, args.repeats)]
    for method in args.methods:
        rows.append(measure(method, args.repeats))
        print(rows[-1], file=sys.stderr)
    slow = [row["method"] for row in rows if not row["under 1 s"]]
    notes = [
        f"Median of {args.repeats} fresh processes per row, graphs cached; times from before "
        "`import ragpress` (the interpreter's own start excluded).",
        f"Machine load (1-min average) {load_before:.1f} before and {os.getloadavg()[0]:.1f} "
        f"after, on {os.cpu_count()} cores: above the core count, every time is inflated.",
        "Goal: a ready compressor in under 1 s. "
        + (f"Over it: {', '.join(slow)}." if slow else "Every method meets it."),
    ]
    command = "python -m bench.startup " + shlex.join(sys.argv[1:])
    paths = write_results("startup", rows, command.strip(), extra={"notes": notes})
    print(*paths, sep="\n")


#: Its paragraphs in "Where each compressor wins and loses": none, its table says it all.
REPORT: dict[str, Paragraph] = {}


if __name__ == "__main__":
    main()
