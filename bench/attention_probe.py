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
from bench.quality import reuse_forwards
from ragpress.training.logistic import roc_auc
from ragpress.training.qa import QAItem, answer_in, answer_survives, load_items

RATES = {"4x": 0.25, "2x": 0.5, "8x": 0.125}  # 4x first: it pays for the model forwards
METHODS: dict[str, dict[str, Any]] = {
    "attention-probe": {},
    "entropy": {},  # question-aware (LongLLMLingua-style)
    "embedding-similarity": {},
    "random": {},
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


if __name__ == "__main__":
    main()
