"""Entropy pruning against the anchor, llmlingua 0.2.2, on the same SmolLM2 weights and inputs.

Run: ``python -m bench.entropy [--items 40] [--rate 0.25]`` (needs
``bash bench/anchors/setup_llmlingua.sh`` once for the llmlingua columns).

Items: development QA items (bench/qa.py): a question, its gold SQuAD passage and 4 distractor
passages. For each method at the same rate: share of items whose gold answer survives, the
achieved ratio (SmolLM2 tokens, original / compressed) and seconds per item; then the speed
ratio llmlingua / ragpress on the same items.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import ragpress
from bench import anchor
from bench.harness import markdown_table, warm_up, write_results
from bench.qa import QAItem, answer_survives, load_items

Run = Callable[[QAItem, float], str]


def ragpress_runs() -> dict[str, tuple[Any, bool]]:
    """Name -> (compressor, gives the question). Defaults: int8 on CPU, coarse step on."""
    entropy = ragpress.get_compressor("entropy")
    return {
        "ragpress entropy (LLMLingua-1 style, no question)": (entropy, False),
        "ragpress entropy question-aware": (entropy, True),
        "ragpress entropy question-aware, no coarse": (
            ragpress.get_compressor("entropy", coarse=False),
            True,
        ),
        "ragpress entropy question-aware, fp32": (
            ragpress.get_compressor("entropy", variant="fp32"),
            True,
        ),
        "random word drop": (ragpress.get_compressor("random"), False),
    }


def run_ragpress(items: list[QAItem], rate: float) -> dict[str, dict[str, Any]]:
    outcomes = {}
    for name, (compressor, with_question) in ragpress_runs().items():
        warm_up(compressor, rate)
        texts, seconds = [], []
        for item in items:
            started = time.perf_counter()
            result = compressor.compress(
                item.documents(), item.question if with_question else None, rate=rate
            )
            seconds.append(time.perf_counter() - started)
            texts.append(result.text)
        outcomes[name] = {"texts": texts, "seconds": seconds}
    return outcomes


def run_anchor(items: list[QAItem], rate: float) -> dict[str, dict[str, Any]]:
    if not anchor.available():
        return {}
    outcomes = {}
    for mode in ("llmlingua", "longllmlingua"):
        rows = anchor.run([anchor.payload(item, mode, rate) for item in items], strict=False)
        outcomes[anchor.LABELS[mode]] = {
            "texts": [row.get("compressed", "") for row in rows],
            "seconds": [row.get("seconds", float("nan")) for row in rows],
        }
    return outcomes


def summarise(items: list[QAItem], outcomes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    count = ragpress.get_target_tokenizer().count
    originals = [count(item.context()) for item in items]
    rows = []
    for name, outcome in outcomes.items():
        kept = [count(text) for text in outcome["texts"]]
        survived = [
            answer_survives(item, text) for item, text in zip(items, outcome["texts"], strict=True)
        ]
        rows.append(
            {
                "method": name,
                "answer_survives_%": round(100 * sum(survived) / len(items), 1),
                "ratio": round(sum(originals) / max(1, sum(kept)), 2),
                "s_per_item_mean": round(statistics.fmean(outcome["seconds"]), 3),
                "s_per_item_p50": round(statistics.median(outcome["seconds"]), 3),
            }
        )
    return rows


def speed_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    by_name = {row["method"]: row["s_per_item_mean"] for row in rows}
    pairs = [
        ("llmlingua LLMLingua-1", "ragpress entropy (LLMLingua-1 style, no question)"),
        ("llmlingua LongLLMLingua", "ragpress entropy question-aware"),
    ]
    return [
        {"anchor": anchor, "ragpress": ours, "speedup": round(by_name[anchor] / by_name[ours], 2)}
        for anchor, ours in pairs
        if anchor in by_name and ours in by_name
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.25)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--name", default="entropy", help="Results file name under bench/results.")
    args = parser.parse_args()
    items = load_items(args.split, n=args.items, distractors=4)
    outcomes = run_ragpress(items, args.rate)
    if not args.no_anchor:
        outcomes.update(run_anchor(items, args.rate))
    rows = summarise(items, outcomes)
    speed = speed_ratios(rows)
    command = "python -m bench.entropy " + shlex.join(sys.argv[1:])
    write_results(
        args.name,
        rows,
        command,
        {"speed": speed, "items": len(items), "rate": args.rate, "split": args.split},
    )
    print(markdown_table(rows))
    print(markdown_table(speed) if speed else "(no anchor run)")


if __name__ == "__main__":
    main()
