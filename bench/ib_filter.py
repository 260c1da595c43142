"""Information-bottleneck noise filter on the harder settings: the ratio it chooses, whether it
keeps the answer at that size, baselines at the same per-item token counts, and how often it
returns nothing, rightly (noise-only, unanswerable) and wrongly (answerable).

Run: ``python -m bench.ib_filter [--items 20] [--split test]``. Settings
(``ragpress.training.qa.SETTINGS``, split by passage): (a) ``other-article``, (b)
``same-article``, (c) ``gold-only``, (d) ``unanswerable``, and ``noise-only`` (the other-article
passages alone: retrieval that missed). Its rule was calibrated on dev (``ragpress train
ib-filter``); reported figures use "test". The baselines get ``target_tokens`` = the IB filter's
output tokens on that item (an item it empties counts as empty for them too), so all keep the
same amount. ``ib-filter (before)`` is the rule shipped before the calibration (beta 10 on
summed gain and self-information, every positive sentence kept), on the same forwards.
"""

from __future__ import annotations

import argparse
import copy
import math
import shlex
import statistics
import sys
from collections.abc import Sequence
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
from ragpress.text import trimmed_sentence_spans
from ragpress.training.ib_filter import ANSWERABLE, documents_of, settings_items
from ragpress.training.qa import QAItem, answer_survives
from ragpress.types import CompressionResult

BASELINES = ("embedding-similarity", "entropy", "attention-probe", "random")
#: The rule before the dev calibration (issue 21), run on the same forwards for comparison.
BEFORE = {"beta": 10.0, "gain": "sum", "cost": "sum", "share": 0.0, "floor": 0.0}
BEFORE_LABEL = "ib-filter (before)"
SETTINGS = (*ANSWERABLE, "unanswerable", "noise-only")

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "ib_filter": "python -m bench.ib_filter --items 20",
}


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
    method: str,
    setting: str,
    items: list[QAItem],
    results: Sequence[CompressionResult | None],
    timed: bool = True,
) -> dict[str, Any]:
    """One table row (``None`` results: an item the method was given 0 tokens for)."""
    dropped = total = original = kept = 0
    survived, empty, ratios, seconds = [], [], [], []
    for item, result in zip(items, results, strict=True):
        documents = documents_of(setting, item)
        total += distractor_count(documents, item.gold)
        if result is None:
            survived.append(False)
            empty.append(True)
            dropped += distractor_count(documents, item.gold)
            continue
        dropped += distractors_dropped(documents, item.gold, result)
        original, kept = original + result.original_tokens, kept + result.compressed_tokens
        survived.append(bool(item.answers) and answer_survives(item, result.text))
        empty.append(result.is_empty)
        ratios.append(result.ratio)
        seconds.append(result.seconds)
    return {
        "setting": setting,
        "method": method,
        "items": len(items),
        "answer_survives_%": round(100 * statistics.fmean(survived), 1)
        if setting in ANSWERABLE
        else None,
        "ratio": round(original / kept, 2) if kept else math.inf,
        "median_item_ratio": round(statistics.median(ratios), 2) if ratios else math.inf,
        "returns_nothing_%": round(100 * statistics.fmean(empty), 1),
        "distractor_sentences_dropped_%": round(100 * dropped / total, 1) if total else None,
        "ms_per_item": round(1000 * statistics.fmean(seconds), 1) if timed and seconds else None,
    }


def baselines(names: Sequence[str]) -> dict[str, Compressor]:
    """The comparison methods that load."""
    found = {}
    for name in names:
        try:
            found[name] = ragpress.get_compressor(name)
        except (FileNotFoundError, ImportError) as error:
            print(f"skipping {name}: {error}", flush=True)
    return found


def share_forwards(ib: Any, **rule: Any) -> Any:
    """A copy of ``ib`` with another rule, reading ``ib``'s forwards from a memo (the scores do
    not depend on the rule), so a comparison costs no second pass."""
    memo: dict[tuple, Any] = {}
    run = ib.runner.run

    def cached(sequences: Any) -> Any:
        key = tuple(tuple(sequence) for sequence in sequences)
        if key not in memo:
            memo[key] = run(sequences)
        return memo[key]

    ib.runner.run = cached
    other = copy.copy(ib)
    for name, value in rule.items():
        setattr(other, name, value)
    return other


def run_setting(
    setting: str, items: list[QAItem], ib: Any, before: Any, others: dict[str, Compressor]
) -> list[dict[str, Any]]:
    """The IB filter at its own size, its earlier rule, then each baseline at its size."""
    contexts = [documents_of(setting, item) for item in items]
    ours = [ib.compress(c, i.question) for c, i in zip(contexts, items, strict=True)]
    rows = [evaluate("ib-filter", setting, items, ours)]
    earlier = [before.compress(c, i.question) for c, i in zip(contexts, items, strict=True)]
    rows.append(evaluate(BEFORE_LABEL, setting, items, earlier, timed=False))
    for name, compressor in (others if setting in ANSWERABLE else {}).items():
        results = [
            compressor.compress(c, i.question, target_tokens=r.compressed_tokens)
            if r.compressed_tokens
            else None
            for c, i, r in zip(contexts, items, ours, strict=True)
        ]
        rows.append(evaluate(name, setting, items, results))
    for row in rows:
        print(row, flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets for each rule: abstentions on noise-only (right) and on answerable
    items (wrong, pooled over (a)-(c))."""
    found = {}
    for method in ("ib-filter", BEFORE_LABEL):
        mine = {r["setting"]: r for r in rows if r["method"] == method}
        answerable = [mine[s] for s in ANSWERABLE if s in mine]
        found[method] = {
            "noise_only_returns_nothing_%": mine.get("noise-only", {}).get("returns_nothing_%"),
            "unanswerable_returns_nothing_%": mine.get("unanswerable", {}).get("returns_nothing_%"),
            "answerable_returns_nothing_%": round(
                sum(r["returns_nothing_%"] * r["items"] for r in answerable)
                / max(1, sum(r["items"] for r in answerable)),
                1,
            ),
        }
    return found


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=30, help="items per setting")
    parser.add_argument("--split", choices=("dev", "test"), default="test")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--baselines", nargs="*", default=list(BASELINES))
    parser.add_argument("--threads", type=int, default=None, help="onnxruntime threads")
    parser.add_argument("--name", default="ib_filter")
    args = parser.parse_args(argv)
    by_setting = settings_items(args.split, args.items)
    options = {"threads": args.threads} if args.threads else {}
    ib = ragpress.get_compressor("ib-filter", **options)
    before = share_forwards(ib, **BEFORE)
    others = baselines(args.baselines)
    rows = [
        row
        for setting in args.settings
        for row in run_setting(setting, by_setting[setting], ib, before, others)
    ]
    command = "python -m bench.ib_filter " + shlex.join(sys.argv[1:] if argv is None else argv)
    notes = [
        f"split={args.split}, items={args.items} per setting; ib-filter settings: "
        + ", ".join(f"{k}={ib.settings[k]}" for k in ("beta", "gain", "cost", "share", "floor"))
        + "; baselines keep the IB filter's per-item token count (target_tokens); ratio = sum "
        "original / sum kept (SmolLM2 tokens).",
        "Baselines run on the answerable settings only: elsewhere there is no answer to keep, "
        "and on their own they never abstain.",
    ]
    extra = {"notes": notes, "split": args.split, "items": args.items, **summary(rows)}
    for path in write_results(args.name, rows, command.strip(), extra):
        print(path)
    print(markdown_table(rows))


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def gold_points(results: Results, setting: str = "other-article") -> dict[str, Point]:
    """ib_filter's rows on one answerable setting, by family (the calibrated rule only)."""
    if "ib_filter" not in results:
        return {}
    result = results["ib_filter"]
    rows = [
        r for r in result["rows"] if r.get("setting") == setting and r["method"] != BEFORE_LABEL
    ]
    return {family(p.method): p for p in quality_points({**result, "rows": rows})}


def ib_filter_paragraph(results: Results) -> str:
    result = results.get("ib_filter")
    if result is None or "ib-filter" not in gold_points(results):
        return "**ib-filter**: " + missing_note("ib_filter", COMMANDS)
    parts = [f"**ib-filter** picks its own size; on {scope(result)} per setting:"]
    parts += [_ib_setting(results, s) for s in ANSWERABLE if gold_points(results, s)]
    parts.append(_ib_abstains(result))
    return " ".join(parts)


def _ib_setting(results: Results, setting: str) -> str:
    gold = gold_points(results, setting)
    ours = gold.pop("ib-filter")
    text = f"{setting}: {times(ours.ratio)}, answer kept in {pct(ours.survives)}"
    if gold:
        rivals = sorted(gold.values(), key=survival, reverse=True)
        listed = ", ".join(f"{p.method} {pct(p.survives)}" for p in rivals)
        lead = standing([ours], [rivals[0]], rivals[0].method)
        text += f" (at its per-item token counts {listed}: {lead})"
    return text + ";"


def _ib_abstains(result: dict[str, Any]) -> str:
    extra = result.get("extra", {})
    ours, before = extra.get("ib-filter"), extra.get(BEFORE_LABEL)
    if not ours:
        return ""
    text = (
        f"it returns nothing for {pct(ours['noise_only_returns_nothing_%'])} of noise-only "
        f"retrievals (the other compressors cannot abstain) and "
        f"{pct(ours['unanswerable_returns_nothing_%'])} of unanswerable questions, and wrongly "
        f"for {pct(ours['answerable_returns_nothing_%'])} of answerable items."
    )
    rows = {r["setting"]: r for r in result["rows"] if r["method"] == BEFORE_LABEL}
    if before and "other-article" in rows:
        old = rows["other-article"]
        text += (
            f" The rule before its dev calibration compressed other-article items "
            f"{times(old['ratio'])}, kept the answer in {pct(old['answer_survives_%'])}, and "
            f"returned nothing for {pct(before['noise_only_returns_nothing_%'])} of noise-only "
            f"and {pct(before['answerable_returns_nothing_%'])} of answerable items."
        )
    return text


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"ib-filter": ib_filter_paragraph}


if __name__ == "__main__":
    main()
