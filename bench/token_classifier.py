"""Token-classifier compression: held-out answer survival, and llmlingua's LLMLingua-2 side by side.

Run: ``python -m bench.token_classifier [--items 50] [--anchor-items 20]`` (the anchor part needs
``bash bench/anchors/setup_llmlingua.sh`` once).

(a) Held-out: TEST-split QA items (question + gold SQuAD passage + 4 distractors; no test passage
    is in the training data), at 2x and 3x compression (rate 1/2, 1/3): the share of items whose
    gold answer survives, for our classifier (fp32, int8, question-unaware like LLMLingua-2), the
    teacher (entropy compressor on SmolLM2, without and with the question) and random word drop.
(b) Anchor: llmlingua 0.2.2 ``use_llmlingua2=True`` on the very same checkpoint (our classifier
    saved as a Hugging Face folder whose name contains ``bert-base-multilingual-cased``), the same
    documents and rate, token level only (``use_context_level_filter=False``; force_tokens
    ``["\\n", "?"]``). Its threshold is a percentile per 512-token chunk, so ours runs with
    ``policy="chunk"`` (the same rule) for the keep-decision agreement; every document here fits
    in one chunk. Speed: end-to-end seconds per item, both on one thread.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import ragpress
from bench import anchor
from bench.harness import markdown_table, write_results
from bench.qa import QAItem, answer_survives, load_items
from bench.reporting import (
    Paragraph,
    Result,
    Results,
    by_method,
    family,
    missing_note,
    pct,
    quality_points,
    scope,
    series,
    speeds_range,
    spread,
    standing,
)
from ragpress.compressors.token_classifier import TokenClassifierCompressor
from ragpress.types import CompressionRequest

RATES = (0.5, 1 / 3)
FORCE = ["\n", "?"]
REPEATS = 2  # timed runs per item (the minimum is reported)

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "token_classifier": "python -m bench.token_classifier --items 50 --anchor-items 20",
}


# -- (a) held-out answer survival ----------------------------------------------------------


def held_out(items: list[QAItem]) -> list[dict[str, Any]]:
    """Each method scores an item once and selects at every rate (selection is cheap)."""
    entropy = ragpress.get_compressor("entropy")
    methods: dict[str, tuple[Any, bool]] = {  # name -> (compressor, gets the question)
        "ragpress token-classifier fp32": (TokenClassifierCompressor(), False),
        "ragpress token-classifier int8": (TokenClassifierCompressor(variant="int8"), False),
        "teacher: entropy (no question)": (entropy, False),
        "teacher: entropy question-aware": (entropy, True),
        "random word drop": (ragpress.get_compressor("random"), False),
    }
    count = ragpress.get_target_tokenizer().count
    rows = []
    for name, (compressor, with_question) in methods.items():
        texts: dict[float, list[str]] = {rate: [] for rate in RATES}
        started = time.perf_counter()
        for item in items:
            query = item.question if with_question else None
            for rate, result in zip(RATES, _at_rates(compressor, item, query), strict=True):
                texts[rate].append(result.text)
        seconds = (time.perf_counter() - started) / len(items)
        for rate in RATES:
            kept = sum(count(text) for text in texts[rate])
            original = sum(count(item.context()) for item in items)
            survived = [answer_survives(i, t) for i, t in zip(items, texts[rate], strict=True)]
            rows.append(
                {
                    "method": name,
                    "target": f"{1 / rate:.0f}x",
                    "answer_survives_%": round(100 * float(np.mean(survived)), 1),
                    "achieved_ratio": round(original / max(kept, 1), 2),
                    "s_per_item_all_rates": round(seconds, 3),
                }
            )
        print(markdown_table(rows[-len(RATES) :]), flush=True)
    return rows


def _at_rates(compressor: Any, item: QAItem, query: str | None) -> list[Any]:
    """Score once, select at every rate (the models' private batch steps, reused)."""
    documents = item.documents()
    requests = [CompressionRequest.create(documents, query, rate=rate) for rate in RATES]
    if isinstance(compressor, TokenClassifierCompressor):
        scored = compressor.word_probabilities(documents)
        parts = list(enumerate(scored))
        return [compressor._compress_one(request, parts) for request in requests]
    if hasattr(compressor, "scorer"):  # the entropy compressor
        docs = compressor._tokenize(requests[:1], [0])
        compressor._score(docs, requests[:1])
        return [compressor._compress_one(request, docs) for request in requests]
    return [compressor.compress(documents, query, rate=rate) for rate in RATES]


# -- (b) llmlingua's LLMLingua-2 on the same checkpoint ------------------------------------


def run_anchor(items: list[QAItem], rate: float, folder: Path) -> list[dict[str, Any]]:
    options = {"use_context_level_filter": False, "return_word_label": True, "force_tokens": FORCE}
    lines = [
        anchor.payload(item, "llmlingua2", rate, model=str(folder), options=options)
        for item in items
    ]
    return anchor.run(lines, threads=1, repeat=REPEATS)


def run_ours(
    compressor: TokenClassifierCompressor, items: list[QAItem], rate: float
) -> list[dict[str, Any]]:
    """Keep decisions per encoder word (all documents in order) and seconds per item."""
    outputs = []
    for item in [items[0], *items]:
        documents = item.documents()
        times = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            result = compressor.compress(documents, rate=rate)
            times.append(time.perf_counter() - started)
        words, keep = [], []
        for doc, (encoded, _) in enumerate(compressor.word_probabilities(documents)):
            spans = [(s.start, s.end) for s in result.kept_spans if s.doc == doc]
            for start, end in encoded.words.tolist():
                words.append(encoded.text[start:end])
                keep.append(any(a <= start and end <= b for a, b in spans))
        outputs.append({"seconds": min(times), "words": words, "keep": keep, "text": result.text})
    return outputs[1:]


def agreement(
    ours: list[dict[str, Any]], theirs_rows: list[dict[str, Any]], normalize: Any
) -> dict[str, Any]:
    """Share of equal word labels over items whose word lists line up (same words, same order)."""
    equal = total = aligned = 0
    for mine, theirs in zip(ours, theirs_rows, strict=True):
        their_words = [word for word, _ in theirs["word_labels"]]
        if [normalize(w) for w in mine["words"]] != their_words:
            continue
        aligned += 1
        labels = np.array([label for _, label in theirs["word_labels"]], dtype=bool)
        equal += int((labels == np.array(mine["keep"])).sum())
        total += len(labels)
    return {"aligned_items": aligned, "words": total, "agreement": equal / max(total, 1)}


def side_by_side(items: list[QAItem]) -> tuple[list[dict[str, Any]], list[str]]:
    folder = anchor.llmlingua2_folder()
    compressors = {
        variant: TokenClassifierCompressor(
            variant=variant, policy="chunk", force_tokens=["?"], protect=(), threads=1
        )
        for variant in ("fp32", "int8")
    }
    normalizer = compressors["fp32"].runner.tokenizer.backend_tokenizer.normalizer.normalize_str
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for rate in RATES:
        theirs = run_anchor(items, rate, folder)
        anchor_seconds = statistics.fmean(row["seconds"] for row in theirs)
        for variant, compressor in compressors.items():
            ours = run_ours(compressor, items, rate)
            seconds = statistics.fmean(row["seconds"] for row in ours)
            agree = agreement(ours, theirs, normalizer)
            rows.append(
                {
                    "rate": round(rate, 3),
                    "ragpress": f"token-classifier {variant}, policy=chunk",
                    "keep_agreement_%": round(100 * agree["agreement"], 2),
                    "aligned_items": f"{agree['aligned_items']}/{len(items)}",
                    "words": agree["words"],
                    "llmlingua_s_per_item": round(anchor_seconds, 4),
                    "ragpress_s_per_item": round(seconds, 4),
                    "speedup": round(anchor_seconds / seconds, 1),
                }
            )
            print(markdown_table(rows[-1:]), flush=True)
    return rows, notes


def training_facts() -> dict[str, Any]:
    """The recipe, label statistics and dev curve stored in the shipped delta's metadata."""
    from safetensors import safe_open

    from ragpress.training.token_classifier import SHIPPED

    with safe_open(str(SHIPPED), framework="np") as handle:
        stats = json.loads((handle.metadata() or {}).get("stats", "{}"))
    labels = [{"split": split, **stats[f"{split}_labels"]} for split in ("train", "dev")]
    return {
        "training labels (teacher top words + answer words)": labels,
        "training curve (dev passages)": stats.get("history", []),
        "training recipe": [f"{key}: {value}" for key, value in stats.get("recipe", {}).items()]
        + [f"minutes: {stats.get('minutes')}", f"delta file: {SHIPPED.stat().st_size:,} bytes"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50, help="held-out TEST items for (a)")
    parser.add_argument("--anchor-items", type=int, default=20, help="TEST items for (b)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--no-anchor", action="store_true")
    args = parser.parse_args()
    items = load_items(args.split, n=max(args.items, args.anchor_items), distractors=4)
    rows = held_out(items[: args.items])
    extra: dict[str, Any] = {"split": args.split, "items": args.items}
    if not args.no_anchor and anchor.available():
        anchor_rows, _ = side_by_side(items[: args.anchor_items])
        extra["llmlingua2 side by side (same checkpoint, same inputs and rate)"] = anchor_rows
    extra.update(training_facts())
    extra["notes"] = NOTES
    command = "python -m bench.token_classifier " + shlex.join(sys.argv[1:])
    write_results("token_classifier", rows, command, extra)
    print(markdown_table(rows))


NOTES = [
    "(a) answer_survives_%: share of held-out TEST items whose gold answer occurs, as whole "
    "words, in the compressed 5-passage context; achieved_ratio: original / compressed SmolLM2 "
    "tokens over all items. Our classifier and LLMLingua-2 ignore the question; the teacher "
    "is shown without it (what the labels were distilled from) and with it (LongLLMLingua).",
    "(b) llmlingua 0.2.2 compress_prompt(use_llmlingua2=True, use_context_level_filter=False, "
    "force_tokens=['\\n', '?'], return_word_label=True) on our classifier saved as a HF folder "
    "named *bert-base-multilingual-cased*; ragpress with policy='chunk' (LLMLingua-2's "
    "per-chunk percentile, words weighted by their target-token count) and force_tokens=['?']. "
    "Each document is under 510 sub-words, i.e. one chunk in both. Agreement compares the "
    "label of every encoder word; items count as aligned when both word lists are equal.",
    "Speed: seconds per item end to end (compress_prompt vs compress), minimum of 2 runs, "
    "one thread each (onnxruntime intra-op threads=1, torch.set_num_threads(1)), after one "
    "warm-up item; the machine has 2 shared cores.",
]


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def token_classifier_paragraph(results: Results) -> str:
    result = results.get("token_classifier")
    if result is None:
        return "**token-classifier** (LLMLingua-2 style): " + missing_note(
            "token_classifier", COMMANDS
        )
    grouped = by_method(quality_points(result))
    ours = [m for m in grouped if family(m) == "token-classifier"]
    if not ours:
        return "**token-classifier**: its result file has no token-classifier rows."
    best = max(ours, key=lambda m: sum(p.survives for p in grouped[m]))
    rivals = [m for m in grouped if m not in ours]
    where = "; ".join(standing(grouped[best], grouped[m], m) for m in rivals)
    text = (
        f"**token-classifier** (LLMLingua-2 style, question-unaware): on {scope(result)} its best "
        f"variant ({best}) keeps the answer in {series(grouped[best])}"
    )
    text += f": {where}." if where else "."
    return text + _anchor_side_by_side(result)


def _anchor_side_by_side(result: Result) -> str:
    tables = [v for v in result.get("extra", {}).values() if isinstance(v, list)]
    rows = [r for t in tables for r in t if isinstance(r, dict) and "speedup" in r]
    if not rows:
        return ""
    speeds = [r["speedup"] for r in rows]
    text = (
        f" Against llmlingua's LLMLingua-2 on the same checkpoint it is {speeds_range(speeds)} it"
    )
    agreement = [r["keep_agreement_%"] for r in rows if "keep_agreement_%" in r]
    if agreement:
        text += f", keeping the same words {spread(agreement, pct)} of the time"
    return text + "."


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"token-classifier": token_classifier_paragraph}


if __name__ == "__main__":
    main()
