"""The relevance pruner against every query-aware method on harder settings, and its cost.

Run: ``python -m bench.relevance [--items 30] [--split test] [--reader-items 0]``.

Settings (``ragpress.training.qa.SETTINGS``, TEST split by passage: the relevance model trains on
the train split and its threshold was chosen on dev): (a) ``other-article``: the gold passage
among 4 passages of other articles; (b) ``same-article``: among 4 passages of its own article
without the answer (same topic, same names); (c) ``gold-only``; (d) ``unanswerable``: a SQuAD 2.0
question its passage cannot answer, with 4 passages of the same article.

For (a)-(c), each method compresses each item at 2x / 4x / 8x / 16x (``rate`` 1/2 ... 1/16):
answer survival, achieved ratio, ms per item. Methods that size themselves (``relevance`` with no
budget, ``ib-filter``) also run at their own size. On (d), and on every setting for the
self-sizing methods: how often each returns nothing, and the share of tokens it keeps.

Cost: methods whose scores do not depend on the rate reuse the forward of their first rate
(``bench.quality.reuse_forwards``), so their ms is the first call's; ``entropy`` and pipelines
run every rate in full, so their ms per target is real. Then ``relevance``,
``embedding-similarity`` and ``attention-probe`` are timed in turns on the same inputs (4x, fresh
compressors, no reuse), the ratios of their totals being the speed comparison.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import ragpress
from bench.harness import measure_interleaved, warm_up, write_results
from bench.quality import reuse_forwards
from bench.reader import ORIGINAL
from bench.reporting import (
    SETTING_TARGETS,
    Paragraph,
    Result,
    Results,
    goal,
    missing_note,
    settings_comparison,
)
from ragpress.training.qa import SETTINGS, QAItem, answer_survives, load_setting

COMMANDS = {
    "relevance": (
        "python -m bench.relevance --items 40 --methods relevance embedding-similarity entropy"
        " relevance+entropy random --speed-items 20 --reader-items 20"
    ),
    # relevance+entropy against entropy at the high ratios, timed in turns (#16's pipeline bar).
    "relevance_pipeline": (
        "python -m bench.relevance --items 20 --methods entropy relevance+entropy"
        " --settings other-article same-article --targets 8x 16x --speed-items 0"
        " --pipeline-speed-items 20 --name relevance_pipeline"
    ),
    # The issues' bars, on more items: relevance (#16) and attention-probe (#21) against
    # embedding-similarity on the answerable settings.
    "relevance_300": (
        "python -m bench.relevance --items 300 --methods relevance embedding-similarity"
        " --settings other-article same-article gold-only --speed-items 0 --reader-items 100"
        " --name relevance_300"
    ),
    "probe_check": (
        "python -m bench.relevance --items 100 --methods attention-probe embedding-similarity"
        " --settings other-article same-article gold-only --speed-items 0 --name probe_check"
    ),
}
_SPEED = "speed (4x, in turns, same items)"
_READER = "reader (Qwen2.5-0.5B, 4x contexts, other-article)"
#: Rates by target, in the order the report reads them (``SETTING_TARGETS``).
TARGETS = {target: 1 / goal(target) for target in SETTING_TARGETS}
ANSWERABLE = ("other-article", "same-article", "gold-only")
#: Methods whose output for one item changes with the rate only through selection.
RATE_FREE = {"relevance", "embedding-similarity", "attention-probe", "ib-filter", "random"}
SELF_SIZED = {"relevance": "threshold", "ib-filter": "own size"}
DEFAULT_METHODS = (
    "relevance",
    "embedding-similarity",
    "entropy",
    "relevance+entropy",
    "attention-probe",
    "ib-filter",
    "random",
)


def run_method(
    name: str, items_by_setting: dict[str, list[QAItem]], targets: dict[str, float]
) -> list[dict[str, Any]]:
    """Rows of one method over every setting and target (and its own size, if it has one)."""
    compressor = ragpress.get_compressor(name)
    warm_up(compressor)
    if name in RATE_FREE:
        reuse_forwards(compressor)
    rows = []
    for setting, items in items_by_setting.items():
        plans: list[tuple[str, float | None]] = []
        if setting in ANSWERABLE:
            plans += list(targets.items())
        if name in SELF_SIZED:
            plans.append((SELF_SIZED[name], None))
        for target, rate in plans:
            rows.append(_row(compressor, name, setting, target, rate, items))
            _progress(rows[-1])
    return rows


def _row(
    compressor: Any,
    name: str,
    setting: str,
    target: str,
    rate: float | None,
    items: list[QAItem],
) -> dict[str, Any]:
    survived, original, kept, empty, seconds = 0, 0, 0, 0, []
    for item in items:
        started = time.perf_counter()
        result = compressor.compress(item.documents(), item.question, rate=rate)
        seconds.append(time.perf_counter() - started)
        survived += bool(item.answers) and answer_survives(item, result.text)
        original, kept = original + result.original_tokens, kept + result.compressed_tokens
        empty += result.is_empty
    return {
        "method": name,
        "setting": setting,
        "target": target,
        "items": len(items),
        "answer_survives_%": round(100 * survived / len(items), 1)
        if setting in ANSWERABLE
        else None,
        "achieved_ratio": round(original / kept, 2) if kept else None,
        "kept_tokens_%": round(100 * kept / max(original, 1), 1),
        "returns_nothing_%": round(100 * empty / len(items), 1),
        "ms_per_item": round(1000 * statistics.fmean(seconds), 1),
    }


def _progress(row: dict[str, Any]) -> None:
    print(
        f"{row['method']:>24} {row['setting']:>14} {row['target']:>9}: "
        f"survives {row['answer_survives_%']}%, ratio {row['achieved_ratio']}, "
        f"nothing {row['returns_nothing_%']}%, {row['ms_per_item']} ms",
        file=sys.stderr,
        flush=True,
    )


#: Timed in turns against ``relevance`` (the issue's bars: at most 1.5x embedding-similarity's
#: time, at least 10x faster than attention-probe).
SPEED_METHODS = ("relevance", "embedding-similarity", "attention-probe")
#: The pipeline against entropy alone, in turns at 8x and 16x (the bar: at most half its time).
PIPELINE_SPEED_METHODS = ("entropy", "relevance+entropy")
_PIPELINE_SPEED = "pipeline speed (in turns, same items)"


def speed_rows(
    items: list[QAItem],
    methods: Sequence[str] = SPEED_METHODS,
    rate: float = 0.25,
    baselines: Sequence[str] = ("embedding-similarity", "relevance"),
    repeats: int = 1,
) -> list[dict[str, Any]]:
    """``methods`` timed in turns on the same items at ``rate``, each total over each
    baseline's."""
    compressors = {name: ragpress.get_compressor(name) for name in methods}
    for compressor in compressors.values():
        warm_up(compressor)
    totals = {name: 0.0 for name in compressors}
    tokens = sum(ragpress.get_compressor("first-k").tokenizer.count(i.context()) for i in items)
    for item in items:
        calls: dict[str, Callable[[], Any]] = {
            name: functools.partial(_compress, compressor, item, rate)
            for name, compressor in compressors.items()
        }
        for name, timing in measure_interleaved(calls, warmup=0, repeats=repeats).items():
            totals[name] += timing.mean_ms
    return [
        {
            "method": name,
            "target": f"{round(1 / rate)}x",
            "backend": _backend(compressors[name]),
            "items": len(items),
            "ms_per_item": round(total / len(items), 1),
            "ms_per_1k_tokens": round(1000 * total / max(tokens, 1), 1),
            **{
                f"time_vs_{base.replace('-', '_').replace('+', '_')}": round(
                    total / totals[base], 2
                )
                for base in baselines
            },
        }
        for name, total in totals.items()
    ]


def _backend(compressor: Any) -> str:
    """``onnx int8`` for a model compressor; a pipeline's stages joined by ``+``."""
    stages = getattr(compressor, "stages", None)
    if stages:
        return " + ".join(_backend(stage) for stage in stages)
    return "{backend} {variant}".format(**compressor.settings)


def _compress(compressor: Any, item: QAItem, rate: float) -> Any:
    return compressor.compress(item.documents(), item.question, rate=rate)


def reader_rows(items: list[QAItem], methods: Sequence[str], rate: float) -> list[dict[str, Any]]:
    """The Qwen2.5-0.5B reader's EM / F1 from the original and from each method's contexts."""
    from bench.reader import Reader, evaluate

    contexts = {ORIGINAL: [item.context() for item in items]}
    for name in methods:
        compressor = ragpress.get_compressor(name)
        contexts[name] = [
            compressor.compress(item.documents(), item.question, rate=rate).text for item in items
        ]
    return evaluate(items, contexts, Reader())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=30, help="items per setting")
    parser.add_argument("--split", default="test", choices=("dev", "test"))
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=SETTINGS)
    parser.add_argument("--targets", nargs="+", default=list(TARGETS), choices=list(TARGETS))
    parser.add_argument("--speed-items", type=int, default=30)
    parser.add_argument(
        "--pipeline-speed-items", type=int, default=0, help="entropy vs relevance+entropy"
    )
    parser.add_argument("--reader-items", type=int, default=0)
    parser.add_argument("--name", default="relevance")
    args = parser.parse_args(argv)
    items = {s: load_setting(args.split, s, args.items) for s in args.settings}
    targets = {t: TARGETS[t] for t in args.targets}
    rows = [row for name in args.methods for row in run_method(name, items, targets)]
    extra: dict[str, Any] = {}
    if args.speed_items and "other-article" in items:
        speed_items = load_setting(args.split, "other-article", args.speed_items)
        extra[_SPEED] = speed_rows(speed_items)
    if args.pipeline_speed_items:
        speed_items = load_setting(args.split, "other-article", args.pipeline_speed_items)
        extra[_PIPELINE_SPEED] = [
            row
            for rate in (1 / 8, 1 / 16)
            for row in speed_rows(speed_items, PIPELINE_SPEED_METHODS, rate, ("entropy",))
        ]
    if args.reader_items:
        reader_items = load_setting(args.split, "other-article", args.reader_items)
        extra[_READER] = reader_rows(
            reader_items, ["relevance", "embedding-similarity", "entropy"], 0.25
        )
    command = "python -m bench.relevance " + shlex.join(sys.argv[1:] if argv is None else argv)
    for path in write_results(args.name, rows, command.strip(), extra):
        print(path)


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def relevance_paragraph(results: Results) -> str:
    result = results.get("relevance")
    if result is None:
        return "**relevance** (Provence-style pruner): " + missing_note("relevance", COMMANDS)
    text = (
        "**relevance** (Provence-style cross-encoder, the default with a question): answer kept "
        f"at {' / '.join(TARGETS)} on "
        f"{settings_comparison(result, 'relevance', 'embedding-similarity')} "
        f"(embedding-similarity second, {result['rows'][0]['items']} test items per setting)"
    )
    speed = {row["method"]: row for row in result.get("extra", {}).get(_SPEED, [])}
    if "relevance" in speed:
        factor = speed["relevance"]["time_vs_embedding_similarity"]
        text += f", in {factor}x embedding-similarity's time"
    if "attention-probe" in speed:
        text += f" and 1/{speed['attention-probe']['time_vs_relevance']} of attention-probe's"
    pipeline_runs = [r for r in (result, results.get("relevance_pipeline")) if r is not None]
    shares = [
        f"{row['time_vs_entropy']}x at {row['target']}"
        for run in pipeline_runs
        for row in run.get("extra", {}).get(_PIPELINE_SPEED, [])
        if row["method"] == "relevance+entropy"
    ]
    if shares:
        text += f"; relevance+entropy takes {' and '.join(shares)} entropy's time (in turns)"
    larger = results.get("relevance_300")
    if larger is not None:
        text += f". On {larger['rows'][0]['items']} test items per setting: " + settings_comparison(
            larger, "relevance", "embedding-similarity"
        )
    return text + _reader_sentence(result, larger) + "."


def _reader_sentence(*runs: Result | None) -> str:
    """The reader's F1 from relevance's 4x contexts beside the cosine filter's and the full
    context's, from whichever run read the most items ("" when none read any)."""
    tables = [run.get("extra", {}).get(_READER, []) for run in runs if run is not None]
    rows = {row["method"]: row for row in max(tables, key=_items_read, default=[])}
    if "relevance" not in rows:
        return ""
    text = (
        f". The Qwen2.5-0.5B reader, from the 4x contexts of {rows['relevance']['items']} "
        f"other-article items: F1 {rows['relevance']['F1_%']}%"
    )
    others = [
        f"{rows[name]['F1_%']}% from {label}"
        for name, label in (
            ("embedding-similarity", "embedding-similarity's"),
            (ORIGINAL, "the full context"),
        )
        if name in rows
    ]
    return text + (f" against {' and '.join(others)}" if others else "")


def _items_read(rows: list[dict[str, Any]]) -> int:
    return max((row["items"] for row in rows), default=0)


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"relevance": relevance_paragraph}


if __name__ == "__main__":
    main()
