"""Information-bottleneck noise filter: noise dropped, answers kept, the ratio it chose, and
whether it returns nothing on noise-only retrieval; baselines at the same per-item ratio.

Run: ``python -m bench.ib_filter [--items 40] [--split test] [--beta B]``. Items: a question with
its gold passage among 4 distractors (shuffled), and the same question over the distractors only
(noise-only). Reported figures use "test"; ``beta`` was picked with ``--split dev``. The other
methods get ``target_tokens`` = the IB filter's output tokens on that item, so all keep the same
amount; ``random`` drops words, the others sentences or words by score.
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
from typing import Any

import ragpress
from bench.harness import markdown_table, write_results
from bench.reporting import (
    Paragraph,
    Point,
    Results,
    family,
    missing_note,
    pct,
    quality_points,
    scope,
    standing,
    survival,
    times,
)
from ragpress.base import Compressor
from ragpress.compressors.ib_filter import BETA
from ragpress.text import trimmed_sentence_spans
from ragpress.training.qa import QAItem, answer_survives, load_items, noise_only
from ragpress.types import CompressionResult

BASELINES = ("entropy", "random", "attention-probe")

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "ib_filter": "python -m bench.ib_filter --items 40",
}


def baselines() -> dict[str, Compressor]:
    """The comparison methods that load; the attention probe only once it is trained."""
    found = {}
    for name in BASELINES:
        try:
            compressor = ragpress.get_compressor(name)
            if name == "attention-probe":
                compressor.probe  # type: ignore[attr-defined]  # noqa: B018 -- raises when no trained probe ships yet
        except (FileNotFoundError, ImportError) as error:
            print(f"skipping {name}: {error}", flush=True)
            continue
        found[name] = compressor
    return found


def distractors_dropped(documents: list[str], gold: str | None, result: CompressionResult) -> int:
    """Distractor sentences with no character kept (a sentence counts dropped only if whole)."""
    dropped = 0
    for index, text in enumerate(documents):
        if text == gold:
            continue
        kept = [(s.start, s.end) for s in result.kept_spans if s.doc == index]
        for start, end in trimmed_sentence_spans(text):
            dropped += not any(a < end and start < b for a, b in kept)
    return dropped


def distractor_count(documents: list[str], gold: str | None) -> int:
    return sum(len(trimmed_sentence_spans(text)) for text in documents if text != gold)


def evaluate(
    method: str, items: list[QAItem], results: list[CompressionResult], noise: bool
) -> dict[str, Any]:
    """One table row: drop share, answer survival, chosen ratio, empty share, latency."""
    dropped = total = 0
    for item, result in zip(items, results, strict=True):
        documents = noise_only(item) if noise else item.documents()
        gold = None if noise else item.gold
        dropped += distractors_dropped(documents, gold, result)
        total += distractor_count(documents, gold)
    original = sum(r.original_tokens for r in results)
    kept = sum(r.compressed_tokens for r in results)
    survived = [answer_survives(i, r.text) for i, r in zip(items, results, strict=True)]
    return {
        "input": "noise-only" if noise else "gold + 4 distractors",
        "method": method,
        "distractor_sentences_dropped_%": round(100 * dropped / max(1, total), 1),
        "answer_survives_%": None if noise else round(100 * statistics.fmean(survived), 1),
        "ratio": round(original / kept, 2) if kept else math.inf,
        "median_item_ratio": round(statistics.median(r.ratio for r in results), 2),
        "returns_nothing_%": round(100 * statistics.fmean(r.is_empty for r in results), 1),
        "ms_per_item": round(1000 * statistics.fmean(r.seconds for r in results), 1),
    }


def run(items: list[QAItem], beta: float, noise: bool) -> list[dict[str, Any]]:
    """The IB filter, then every baseline at the IB filter's per-item output size."""
    ib = ragpress.get_compressor("ib-filter", beta=beta)
    contexts = [noise_only(item) if noise else item.documents() for item in items]
    ib_results = [ib.compress(c, i.question) for c, i in zip(contexts, items, strict=True)]
    rows = [evaluate("ib-filter", items, ib_results, noise)]
    print(rows[-1], flush=True)
    for name, compressor in (baselines() if not noise else {}).items():
        try:
            results = [
                compressor.compress(c, i.question, target_tokens=r.compressed_tokens)
                for c, i, r in zip(contexts, items, ib_results, strict=True)
            ]
        except Exception as error:  # other methods are edited concurrently: report, go on
            print(f"{name} failed: {error!r}", flush=True)
            continue
        rows.append(evaluate(name, items, results, noise))
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--beta", type=float, default=BETA)
    args = parser.parse_args()
    items = load_items(args.split, n=args.items, distractors=4)
    ragpress.get_compressor("ib-filter").compress(items[0].documents(), items[0].question)  # warm
    rows = run(items, args.beta, noise=False) + run(items, args.beta, noise=True)
    command = "python -m bench.ib_filter " + shlex.join(sys.argv[1:])
    notes = [
        f"split={args.split}, items={len(items)}, beta={args.beta}; baselines keep the IB "
        "filter's per-item token count (target_tokens); ratio = sum original / sum kept "
        "(SmolLM2 tokens).",
        "Baselines are not run on noise-only inputs: at the IB filter's size (mostly 0 tokens) "
        "they would return nothing by construction, and on their own they never abstain.",
    ]
    write_results("ib_filter", rows, command, {"notes": notes, "split": args.split})
    print(markdown_table(rows))


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def gold_points(results: Results) -> dict[str, Point]:
    """ib_filter's rows on inputs that hold the answer, by family."""
    if "ib_filter" not in results:
        return {}
    return {family(p.method): p for p in quality_points(results["ib_filter"])}


def ib_filter_paragraph(results: Results) -> str:
    result = results.get("ib_filter")
    gold = gold_points(results)
    if result is None or "ib-filter" not in gold:
        return "**ib-filter**: " + missing_note("ib_filter", COMMANDS)
    ours = gold.pop("ib-filter")
    rows = {(r.get("input"), r.get("method")): r for r in result["rows"]}
    ours_row = next(r for (i, m), r in rows.items() if m == ours.method and i != "noise-only")
    text = (
        f"**ib-filter** picks its own size: on {scope(result)} (gold + distractors) it compresses "
        f"{times(ours.ratio)} overall, drops {pct(ours_row['distractor_sentences_dropped_%'])} of "
        f"distractor sentences and keeps the answer in {pct(ours.survives)} of items"
    )
    if gold:
        rivals = sorted(gold.values(), key=survival, reverse=True)
        listed = ", ".join(f"{p.method} {pct(p.survives)} ({times(p.ratio)})" for p in rivals)
        text += f"; given its per-item token counts: {listed}, so it is "
        text += standing([ours], [rivals[0]], rivals[0].method)
    text += "." + _ib_noise(rows, ours.method, ours_row)
    return text


def _ib_noise(rows: dict[tuple[Any, Any], dict[str, Any]], method: str, gold: dict) -> str:
    noise = rows.get(("noise-only", method))
    if noise is None:
        return ""
    text = (
        f" It wins on noise-only retrieval: it returns nothing for "
        f"{pct(noise['returns_nothing_%'])} of items, where the other compressors cannot abstain."
    )
    if gold.get("returns_nothing_%"):
        text += (
            f" It loses when it abstains wrongly: it returns nothing for "
            f"{pct(gold['returns_nothing_%'])} of the items that hold the answer."
        )
    return text


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"ib-filter": ib_filter_paragraph}


if __name__ == "__main__":
    main()
