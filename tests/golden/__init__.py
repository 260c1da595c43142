"""Golden outputs: the kept spans of every model compressor on the bundled sample.

An export change, a new default or a refactor that moves a model compressor's choice shows up
as a golden test failure. Each registered method whose class loads a model
(``Compressor.loads_model``) has ``tests/golden/<method>.json``: its kept spans, with the
question asked and the rate, from its default options on CPU, in two cases: the sample as its
documents (a list: document ranking and the coarse step) and as one text (word choice).

Tolerance: kept characters may differ slightly between CPUs (float rounding in the int8 and
fp32 kernels can swap two near-equal units), so a run matches when the Jaccard overlap of its
kept characters with the golden ones is at least :data:`MIN_OVERLAP`. A default that is not
portable beyond that fails here: entropy's int8 graph (activations quantized on the fly, the
change growing over 30 layers) gave 0.83 on the sample as one text between an AVX2 and an
AVX-512 VNNI CPU; its default is fp32 (``ragpress.model_compressor``).

Regenerate (after a deliberate change, and say why in the commit):
``python -m tests.golden --update`` (all) or ``python -m tests.golden --update entropy``.
``python -m tests.golden`` alone prints each method's overlap with its file.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import ragpress
from ragpress.registry import available, factory
from ragpress.types import Span

FOLDER = Path(__file__).parent
QUESTION = "What is the first sign of fuel dilution?"
RATE = 0.25
#: Least Jaccard overlap of kept characters for a run to match its golden file.
MIN_OVERLAP = 0.9


def sample_documents() -> list[str]:
    """The bundled sample (``ragpress compress sample``) as its blank-line separated documents."""
    text = resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")
    return [part for part in text.split("\n\n") if part.strip()]


def golden_methods() -> list[str]:
    """Every registered method that loads a model: each needs a golden file."""
    return [name for name in available() if factory(name).loads_model]


def path(method: str) -> Path:
    return FOLDER / f"{method}.json"


def cases() -> dict[str, str | list[str]]:
    documents = sample_documents()
    return {"documents": documents, "text": "\n\n".join(documents)}


def run(method: str) -> dict[str, Any]:
    """What ``method`` keeps of the sample with its default options (question given)."""
    compressor = ragpress.get_compressor(method)
    results = {name: compressor.compress(c, QUESTION, rate=RATE) for name, c in cases().items()}
    return {
        "method": method,
        "question": QUESTION,
        "rate": RATE,
        "settings": compressor.settings,
        "cases": {
            name: {
                "compressed_tokens": result.compressed_tokens,
                "kept_spans": [[s.doc, s.start, s.end] for s in result.kept_spans],
            }
            for name, result in results.items()
        },
    }


def load(method: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path(method).read_text("utf-8"))
    return data


def overlap(expected: list[list[int]], actual: list[Span] | list[list[int]]) -> float:
    """Jaccard overlap of the kept characters (document, offset) of two span lists."""

    def characters(spans: Any) -> set[tuple[int, int]]:
        rows = [(s.doc, s.start, s.end) if isinstance(s, Span) else tuple(s) for s in spans]
        return {(doc, i) for doc, start, end in rows for i in range(start, end)}

    first, second = characters(expected), characters(actual)
    union = first | second
    return len(first & second) / len(union) if union else 1.0


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Check or rewrite the golden files.")
    parser.add_argument("methods", nargs="*", help="default: every model compressor")
    parser.add_argument("--update", action="store_true", help="rewrite the golden files")
    args = parser.parse_args(argv)
    for method in args.methods or golden_methods():
        data = run(method)
        if args.update:
            path(method).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
            print(f"{method}: wrote {path(method)}")
        elif path(method).is_file():
            for name, case in load(method)["cases"].items():
                score = overlap(case["kept_spans"], data["cases"][name]["kept_spans"])
                print(f"{method} {name}: overlap {score:.3f} (min {MIN_OVERLAP})")
        else:
            print(f"{method}: no golden file")
