"""Attention-probe sentence filter: probe quality, answer survival at 2x/4x/8x, latency.

Run: ``python -m bench.attention_probe [--items 50]``. Items come from the *test* split of the
QA data (the probe was trained on "train", its settings chosen on "dev"): a question, the gold
passage and 4 distractor passages, in shuffled order.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from typing import Any

import numpy as np

import ragpress
from bench.harness import markdown_table, warm_up, write_results
from bench.ib_filter import gold_points
from bench.quality import reuse_forwards
from bench.reporting import (
    SENTENCE_QA,
    Paragraph,
    Result,
    Results,
    family,
    goal,
    in_family,
    joined,
    latest_per_method,
    missing_note,
    num,
    pct,
    scope,
    series,
    settings_comparison,
    standing,
    times,
)
from ragpress.training.logistic import roc_auc
from ragpress.training.qa import QAItem, answer_in, answer_survives, load_items

RATES = {"4x": 0.25, "2x": 0.5, "8x": 0.125}  # 4x first: it pays for the model forwards
METHODS: dict[str, dict[str, Any]] = {
    "attention-probe": {},
    "entropy": {},  # question-aware (LongLLMLingua-style)
    "embedding-similarity": {},
    "random": {},
}

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "attention_probe": "python -m bench.attention_probe --items 50",
    "pipeline": (
        "python -m bench.attention_probe --items 50"
        " --methods attention-probe+entropy --name pipeline"
    ),
}


def probe_auc(compressor: Any, items: list[QAItem]) -> dict[str, Any]:
    labels, scores = [], []
    for item in items:
        documents = item.documents()
        units, features = compressor.sentence_features(documents, item.question)
        scores.append(compressor.probe.probability(features))
        labels += [
            answer_in(item, documents[d][a:b])
            for d, a, b in zip(
                units.doc.tolist(), units.start.tolist(), units.end.tolist(), strict=True
            )
        ]
    labels_array = np.asarray(labels)
    return {
        "sentences": len(labels),
        "relevant_share": round(float(labels_array.mean()), 4),
        "roc_auc": round(roc_auc(labels_array, np.concatenate(scores)), 4),
    }


def survival(
    compressors: dict[str, Any], items: list[QAItem]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    count = ragpress.get_target_tokenizer().count
    originals = sum(count(item.context()) for item in items)
    rows, latency = [], []
    for method, compressor in compressors.items():
        for label, rate in RATES.items():
            results, seconds = [], []
            for item in items:
                started = time.perf_counter()
                results.append(compressor.compress(item.documents(), item.question, rate=rate))
                seconds.append(time.perf_counter() - started)
            kept = sum(r.compressed_tokens for r in results)
            survived = [answer_survives(i, r.text) for i, r in zip(items, results, strict=True)]
            rows.append(
                {
                    "method": method,
                    "target": label,
                    "answer_survives_%": round(100 * float(np.mean(survived)), 1),
                    "achieved_ratio": round(originals / max(1, kept), 2),
                    "ms_per_item": round(1000 * statistics.fmean(seconds), 1)
                    if label == "4x"
                    else None,
                }
            )
            print(rows[-1], flush=True)
            if method == "attention-probe" and label == "4x":
                latency = _latency(results)
    return rows, latency


def _latency(results: list[Any]) -> list[dict[str, Any]]:
    stages = ("forward", "probe", "selection")
    mean = {stage: statistics.fmean(r.timings[stage] for r in results) for stage in stages}
    total = statistics.fmean(r.seconds for r in results)
    return [
        {
            **{f"{stage}_ms": round(1000 * mean[stage], 1) for stage in stages},
            "total_ms": round(1000 * total, 1),
            "total_over_forward": round(total / mean["forward"], 3),
        }
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument(
        "--methods", nargs="+", default=list(METHODS), help="Any ragpress method or a+b pipeline."
    )
    parser.add_argument("--name", default="attention_probe", help="Results file name.")
    args = parser.parse_args()
    items = load_items("test", n=args.items, distractors=4)
    compressors = {}
    for method in args.methods:
        compressors[method] = ragpress.get_compressor(method, **METHODS.get(method, {}))
        warm_up(compressors[method])
        reuse_forwards(compressors[method])
    rows, latency = survival(compressors, items)
    auc = (
        probe_auc(compressors["attention-probe"], items)  # reuses the cached forwards
        if "attention-probe" in compressors
        else {}
    )
    command = "python -m bench.attention_probe " + shlex.join(sys.argv[1:])
    write_results(
        args.name,
        rows,
        command,
        {
            **({"probe_quality": [auc]} if auc else {}),
            **({"latency_4x": latency} if latency else {}),
            "items": len(items),
            "split": "test",
        },
    )
    for table in (rows, [auc] if auc else [], latency):
        if table:
            print(markdown_table(table))


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def attention_probe_paragraph(results: Results) -> str:
    qa = latest_per_method(results, SENTENCE_QA)
    probe = in_family(qa, "attention-probe")
    if not probe:
        return "**attention-probe**: " + missing_note("attention_probe", COMMANDS)
    source = results[probe[0].source]
    others = [m for m in qa if family(m) not in ("attention-probe", "pipeline")]
    where = "; ".join(standing(probe, qa[m], m) for m in others)
    text = f"**attention-probe**: on {scope(source)} it keeps the answer in {series(probe)}"
    text += f": {where}." if where else "."
    over = [p for p in probe if p.target and p.ratio > 1.1 * goal(p.target)]
    if over:
        misses = joined([f"{p.target} ({times(p.ratio)})" for p in over])
        text += f" Keeping whole sentences, it compresses more than asked at {misses}."
    return text + _probe_facts(source) + _probe_at_ib_size(results) + _probe_check(results)


def _probe_facts(source: Result) -> str:
    extra = source.get("extra", {})
    text = ""
    quality = (extra.get("probe_quality") or [{}])[0]
    if "roc_auc" in quality:
        text += f" The probe ranks answer sentences at ROC AUC {num(quality['roc_auc'], 2)}."
    latency = (extra.get("latency_4x") or [{}])[0]
    if "total_ms" in latency:
        overhead = 100 * (latency["total_over_forward"] - 1)
        text += (
            f" At 4x an item takes {num(latency['total_ms'], 0)} ms, of which the probe and "
            f"selection add {pct(overhead)} to the model forward"
            + (": nearly all the cost is the forward." if overhead < 10 else ".")
        )
    return text


def _probe_check(results: Results) -> str:
    """The #21 bar: against embedding-similarity on the harder settings (``bench.relevance``)."""
    check = results.get("probe_check")
    if check is None:
        return ""
    compared = settings_comparison(check, "attention-probe", "embedding-similarity")
    items = check["rows"][0]["items"]
    return (
        f" Against embedding-similarity on the harder settings ({items} test items per setting,"
        f" 2x / 4x / 8x / 16x): {compared}."
    )


def _probe_at_ib_size(results: Results) -> str:
    ib = gold_points(results)
    if "attention-probe" not in ib or "ib-filter" not in ib:
        return ""
    probe = ib["attention-probe"]
    compared = standing([probe], [ib["ib-filter"]], "ib-filter")
    return f" At the IB filter's size it keeps {pct(probe.survives)} ({compared})."


def pipeline_paragraph(results: Results) -> str:
    qa = latest_per_method(results, SENTENCE_QA)
    pipelines = [m for m in qa if family(m) == "pipeline"]
    if not pipelines:
        return "**Pipelines**: " + missing_note("pipeline", COMMANDS)
    sentences = []
    for method in pipelines:
        stages = [s for s in method.split("+") if s in qa]
        where = "; ".join(standing(qa[method], qa[s], s) for s in stages)
        sentence = f"{method} keeps {series(qa[method])}" + (f": {where}" if where else "")
        timed = [p for p in qa[method] if p.ms is not None]
        if timed:
            sentence += f"; {num(timed[0].ms or 0.0, 0)} ms per item at {timed[0].target}"
        sentences.append(sentence)
    return "**Pipelines**: " + ". ".join(sentences) + "."


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {
    "attention-probe": attention_probe_paragraph,
    "pipelines": pipeline_paragraph,
}


if __name__ == "__main__":
    main()
