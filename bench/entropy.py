"""Entropy pruning against the anchor, llmlingua 0.2.2, on the same SmolLM2 weights and inputs.

Run: ``python -m bench.entropy [--items 40] [--rate 0.25]`` (needs
``bash bench/anchors/setup_llmlingua.sh`` once for the llmlingua columns).

Items: development QA items (bench/qa.py): a question, its gold SQuAD passage and 4 distractor
passages. For each method at the same rate: share of items whose gold answer survives, the
achieved ratio (SmolLM2 tokens, original / compressed) and seconds per item; then the speed
ratio llmlingua / ragpress on the same items. Methods take turns item by item (llmlingua through a
live runner process), so the speed ratios are not skewed by the machine's drift over the run.
"""

from __future__ import annotations

import argparse
import math
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from tqdm import tqdm

import ragpress
from bench import anchor
from bench.harness import markdown_table, warm_up, write_results
from bench.ib_filter import gold_points
from bench.qa import QAItem, answer_survives, load_items
from bench.quality import COMMANDS as QUALITY_COMMANDS
from bench.reporting import (
    SENTENCE_QA,
    Paragraph,
    Point,
    Result,
    Results,
    family,
    goal,
    in_family,
    latest_per_method,
    missing_note,
    pct,
    quality_points,
    run_date,
    scope,
    series,
    speed,
    standing,
    survival,
    times,
    versus,
)

#: One method on one item: (compressed text, seconds).
Step = Callable[[QAItem], tuple[str, float]]
#: Timed pairs, each (llmlingua, ours); the rows a pair compares run back to back on every item.
PAIRS = (
    ("llmlingua LLMLingua-1", "ragpress entropy (LLMLingua-1 style, no question)"),
    ("llmlingua LongLLMLingua", "ragpress entropy question-aware"),
)

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "entropy": "python -m bench.entropy --items 40 --rate 0.25",
}


def ragpress_runs() -> dict[str, tuple[Any, bool]]:
    """Name -> (compressor, gives the question). Defaults: fp32, coarse step on."""
    entropy = ragpress.get_compressor("entropy")
    return {
        "ragpress entropy (LLMLingua-1 style, no question)": (entropy, False),
        "ragpress entropy question-aware": (entropy, True),
        "ragpress entropy question-aware, no coarse": (
            ragpress.get_compressor("entropy", coarse=False),
            True,
        ),
        "ragpress entropy question-aware, token units": (
            ragpress.get_compressor("entropy", unit="token"),
            True,
        ),
        "ragpress entropy question-aware, int8": (
            ragpress.get_compressor("entropy", variant="int8"),
            True,
        ),
        "random word drop": (ragpress.get_compressor("random"), False),
    }


def ragpress_steps(rate: float) -> dict[str, Step]:
    def step(compressor: Any, with_question: bool) -> Step:
        def call(item: QAItem) -> tuple[str, float]:
            started = time.perf_counter()
            question = item.question if with_question else None
            text = compressor.compress(item.documents(), question, rate=rate).text
            return text, time.perf_counter() - started

        return call

    steps = {}
    for name, (compressor, with_question) in ragpress_runs().items():
        warm_up(compressor, rate)
        steps[name] = step(compressor, with_question)
    return steps


def anchor_steps(session: anchor.Session, warm_up_item: QAItem, rate: float) -> dict[str, Step]:
    """llmlingua's two modes through a live runner, warmed up on ``warm_up_item``. An item
    llmlingua fails on comes back empty, with NaN seconds, and its error on stderr."""

    def step(mode: str) -> Step:
        def call(item: QAItem) -> tuple[str, float]:
            row = session.ask(anchor.payload(item, mode, rate))
            anchor.report_failures([row], strict=False)
            return row.get("compressed", ""), row.get("seconds", math.nan)

        return call

    modes = ("llmlingua", "longllmlingua")
    warm = [session.ask(anchor.payload(warm_up_item, mode, rate)) for mode in modes]
    anchor.report_failures(warm, strict=False)
    return {anchor.LABELS[mode]: step(mode) for mode in modes}


def run_interleaved(items: list[QAItem], steps: dict[str, Step]) -> dict[str, dict[str, Any]]:
    """Every method on item 1, then every method on item 2, ...: a slow minute on the machine
    falls on all methods alike."""
    names = list(steps)
    outcomes: dict[str, dict[str, list[Any]]] = {
        name: {"texts": [], "seconds": []} for name in turn_order(names, 0)
    }
    for index, item in enumerate(tqdm(items, desc="items", unit="item")):
        for name in turn_order(names, index):
            text, seconds = steps[name](item)
            outcomes[name]["texts"].append(text)
            outcomes[name]["seconds"].append(seconds)
    return outcomes


def turn_order(names: list[str], index: int) -> list[str]:
    """Each timed pair back to back, ours first on even items and llmlingua's first on odd ones
    (what one call leaves behind, a warm cache or a busy thread pool, falls on both sides
    alike), then the rest."""
    paired: list[str] = []
    for theirs, ours in PAIRS:
        if theirs in names and ours in names:
            paired += [theirs, ours] if index % 2 else [ours, theirs]
    return [*paired, *(name for name in names if name not in paired)]


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
                **timing(outcome["seconds"]),
            }
        )
    return rows


def timing(seconds: list[float]) -> dict[str, float | None]:
    """Mean and median seconds per item, over the items that did not fail (NaN seconds; their
    errors went to stderr as they happened)."""
    done = [value for value in seconds if math.isfinite(value)]
    return {
        "s_per_item_mean": round(statistics.fmean(done), 3) if done else None,
        "s_per_item_p50": round(statistics.median(done), 3) if done else None,
    }


def speed_ratios(outcomes: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """llmlingua's seconds over ours: of the totals, and the median of per-item ratios."""
    ratios = []
    for theirs, ours in PAIRS:
        if theirs not in outcomes or ours not in outcomes:
            continue
        pairs = [
            (a, b)
            for a, b in zip(outcomes[theirs]["seconds"], outcomes[ours]["seconds"], strict=True)
            if math.isfinite(a)  # an item llmlingua failed on
        ]
        if not pairs:
            continue
        ratios.append(
            {
                "anchor": theirs,
                "ragpress": ours,
                "speedup": round(sum(a for a, _ in pairs) / sum(b for _, b in pairs), 2),
                "speedup_median_per_item": round(statistics.median(a / b for a, b in pairs), 2),
                "items": len(pairs),
            }
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--rate", type=float, default=0.25)
    parser.add_argument("--split", default="dev")
    parser.add_argument("--no-anchor", action="store_true")
    parser.add_argument("--name", default="entropy", help="Results file name under bench/results.")
    args = parser.parse_args()
    items = load_items(args.split, n=args.items, distractors=4)
    if not items:
        parser.error(f"no {args.split} items to run (--items {args.items})")
    steps = ragpress_steps(args.rate)
    if args.no_anchor or not anchor.available():
        outcomes = run_interleaved(items, steps)
    else:
        with anchor.Session() as session:
            steps |= anchor_steps(session, items[0], args.rate)
            outcomes = run_interleaved(items, steps)
    rows = summarise(items, outcomes)
    speed = speed_ratios(outcomes)
    command = "python -m bench.entropy " + shlex.join(sys.argv[1:])
    write_results(
        args.name,
        rows,
        command,
        {"speed": speed, "items": len(items), "rate": args.rate, "split": args.split},
    )
    print(markdown_table(rows))
    print(markdown_table(speed) if speed else "(no anchor run)")


# -- its section of bench/RESULTS.md ---------------------------------------------------------


ANCHORED = ("quality", "entropy")  # runs with llmlingua's entropy methods beside ours


def entropy_paragraph(results: Results) -> str:
    parts = ["**entropy** (LLMLingua / LongLLMLingua style):"]
    anchored = [results[n] for n in ANCHORED if n in results]
    if anchored:
        parts.append(_entropy_vs_anchor(max(anchored, key=run_date)))
    else:
        parts.append("against llmlingua " + missing_note("quality", QUALITY_COMMANDS))
    parts += [_entropy_speed(results[n]) for n in (*ANCHORED, "entropy_speed") if n in results]
    qa = latest_per_method(results, SENTENCE_QA)
    ours = in_family(qa, "entropy")
    rivals = [m for m in qa if family(m) in ("attention-probe", "embedding-similarity")]
    if ours and rivals:
        where = "; ".join(standing(ours, qa[m], m) for m in rivals)
        parts.append(f"Selecting for a question among distractors it keeps {series(ours)}:")
        parts.append(f"{where}.")
    ib = gold_points(results)
    if "entropy" in ib and "ib-filter" in ib:
        parts.append(
            f"At the IB filter's size it keeps {pct(ib['entropy'].survives)} "
            f"({standing([ib['entropy']], [ib['ib-filter']], 'ib-filter')})."
        )
    return " ".join(parts)


def _entropy_vs_anchor(result: Result) -> str:
    points = _at_4x(result)
    ours = [p for p in points if family(p.method) == "entropy"]
    anchors = [p for p in points if family(p.method) == "llmlingua"]
    if not ours or not anchors:
        return "no llmlingua rows to compare with."
    best, rival = max(ours, key=survival), max(anchors, key=survival)
    text = (
        f"on {scope(result)} at {best.target}, its best variant ({best.method}) keeps the answer "
        f"in {pct(best.survives)} of items ({times(best.ratio)}), {versus(best, rival)} "
        f"llmlingua's best ({rival.method}: {pct(rival.survives)} at {times(rival.ratio)})."
    )
    short = [p for p in anchors if p.ratio < 0.95 * goal(best.target)]  # 5%: rounding, not a miss
    if short:
        misses = ", ".join(f"{p.method} {times(p.ratio)}" for p in short)
        text += f" llmlingua undershoots the {best.target} target ({misses}): ours meets it."
    return text


def _at_4x(result: Result) -> list[Point]:
    """The 4x rows: the target every anchored run shares (speed is timed there)."""
    return [p for p in quality_points(result) if p.target == "4x"]


def _entropy_speed(result: Result) -> str:
    pairs = [
        pair
        for pair in result.get("extra", {}).get("speed", [])
        if family(pair["ragpress"]) == "entropy"
    ]
    points = {p.method: p for p in _at_4x(result)}
    sentences = []
    for pair in pairs:
        ours, anchor = points.get(pair["ragpress"]), points.get(pair["anchor"])
        kept = (
            f", keeping {pct(ours.survives)} against {pct(anchor.survives)}"
            if ours and anchor
            else ""
        )
        median = pair.get("speedup_median_per_item")
        per_item = f" (median item {times(median)}, timed in turns)" if median else ""
        sentences.append(
            f"{pair['ragpress']} is {speed(pair['speedup'])} {pair['anchor']}{per_item}{kept}"
        )
    sentences += _int8_sentences(points)
    if not sentences:
        return ""
    return f"In `{result['name']}` ({scope(result)}): " + "; ".join(sentences) + "."


def _int8_sentences(points: dict[str, Point]) -> list[str]:
    """int8 rows next to the fp32 row of the same name."""
    sentences = []
    for method, int8 in points.items():
        fp32 = points.get(method.replace(" int8", ""))
        if " int8" not in method or fp32 is None or not (int8.ms and fp32.ms):
            continue
        sentences.append(
            f"{method} is {speed(fp32.ms / int8.ms)} fp32, keeping {pct(int8.survives)} "
            f"against {pct(fp32.survives)}"
        )
    return sentences


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"entropy": entropy_paragraph}


if __name__ == "__main__":
    main()
