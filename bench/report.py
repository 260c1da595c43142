"""Build ``bench/RESULTS.md`` and its plots from ``bench/results/*.json``.

Run: ``python -m bench.report [--results DIR] [--out FILE]`` (``make bench`` ends with it).
No figure is typed by hand: every number in RESULTS.md, prose included, is formatted from the
JSON files, and each comparison's wording ("ahead of", "behind", "best") is chosen by comparing
those numbers. A missing result file is listed in the report, not fatal.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR, markdown_table

Result = dict[str, Any]  # one bench/results/NAME.json
Results = dict[str, Result]

OUT = RESULTS_DIR.parent / "RESULTS.md"
#: The benchmarks the report expects, each with the command that writes it: each benchmark
#: module owns its commands (``COMMANDS``, the ones the Makefile runs).
BENCHMARKS = (
    "quality",
    "latency",
    "metatoken",
    "models",
    "entropy",
    "attention_probe",
    "ib_filter",
    "token_classifier",
    "serve",
    "startup",
    "relevance",
)


def expected_commands() -> dict[str, str]:
    """Result name -> the command that writes it, read from each benchmark module."""
    commands: dict[str, str] = {}
    for module in BENCHMARKS:
        commands.update(importlib.import_module(f"bench.{module}").COMMANDS)
    return commands


EXPECTED = expected_commands()
# Runs of bench.attention_probe: the same QA items, so one comparison (latest run per method).
SENTENCE_QA = ("attention_probe", "attention_probe_fill", "pipeline", "quality")
QUALITY_PANELS = {
    "every compressor beside llmlingua": ("quality",),
    "sentence selection": SENTENCE_QA[:-1],
    "entropy vs llmlingua": ("entropy",),
    "IB filter (its own size)": ("ib_filter",),
    "token classifier": ("token_classifier",),
}
FAMILIES = (
    "token-classifier",
    "attention-probe",
    "ib-filter",
    "embedding-similarity",
    "first-k",
    "metatoken",
    "entropy",
    "random",
)
BASELINES = ("embedding-similarity", "random", "first-k")
ANCHORED = ("quality", "entropy")  # runs with llmlingua's entropy methods beside ours
VERSIONS = ("python", "numpy", "torch", "onnxruntime", "tokenizers")


# -- reading ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One quality row: a method's answer survival at the compression it achieved."""

    source: str  # result file name
    method: str
    target: str  # "4x"; "" when the method picks its own size
    survives: float  # % of items whose gold answer is still in the compressed text
    ratio: float  # original tokens / kept tokens
    ms: float | None  # per item, where measured


def load_results(folder: Path) -> Results:
    """Every ``NAME.json`` in ``folder`` that holds rows, by name."""
    results = {}
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("rows"), list):
            results[data.get("name", path.stem)] = data
    return results


def quality_points(result: Result) -> list[Point]:
    """The rows with a method, an answer-survival share and a ratio, in file order."""
    extra = result.get("extra", {})
    default_target = f"{1 / extra['rate']:.0f}x" if extra.get("rate") else ""
    points = []
    for row in result["rows"]:
        survives = row.get("answer_survives_%")
        ratio = row.get("achieved_ratio", row.get("ratio"))
        if "method" not in row or survives is None or ratio is None:
            continue  # e.g. ib_filter's noise-only rows: there is no answer to survive
        target = row.get("target", default_target)
        points.append(Point(result["name"], row["method"], target, survives, ratio, _ms(row)))
    return points


def _ms(row: dict[str, Any]) -> float | None:
    if row.get("ms_per_item") is not None:
        return float(row["ms_per_item"])
    seconds = [v for k, v in row.items() if k.startswith("s_per_item") and v is not None]
    return 1000.0 * seconds[0] if seconds else None


def family(method: str) -> str:
    """The compressor a row's method belongs to ("ragpress entropy int8 ..." -> "entropy")."""
    name = method.lower()
    if "+" in name and " " not in name:  # "probe+entropy"; not "question-aware + coarse"
        return "pipeline"
    if name.startswith("llmlingua"):  # the anchor; our rows say "LLMLingua-1 style"
        return "llmlingua"
    return next((known for known in FAMILIES if known in name), name)


def by_method(points: Iterable[Point]) -> dict[str, list[Point]]:
    """Points grouped by method, each group in order of compression target."""
    grouped: dict[str, list[Point]] = {}
    for point in sorted(points, key=lambda p: _goal(p.target)):  # stable: file order per method
        grouped.setdefault(point.method, []).append(point)
    return grouped


def _goal(target: str) -> float:
    """ "4x" -> 4.0; no target (the method picks its size) -> 0."""
    return float(target.rstrip("x")) if target else 0.0


def latest_per_method(results: Results, names: Iterable[str]) -> dict[str, list[Point]]:
    """Rows of the runs ``names`` merged; a later run replaces an earlier one's method rows."""
    merged: dict[str, list[Point]] = {}
    for run in sorted((results[n] for n in names if n in results), key=_date):
        merged.update(by_method(quality_points(run)))
    return merged


def _date(result: Result) -> str:
    return str(result.get("machine", {}).get("date", ""))


def in_family(qa: dict[str, list[Point]], name: str) -> list[Point]:
    """The points of the first method of family ``name``, or []."""
    return next((points for method, points in qa.items() if family(method) == name), [])


# -- formatting and comparing ----------------------------------------------------------------


def num(value: float, digits: int = 1) -> str:
    """``value`` with up to ``digits`` decimals, no trailing zeros: 66.0 -> "66"."""
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def pct(value: float) -> str:
    return f"{num(value)}%"


def times(value: float) -> str:
    return f"{num(value, 2)}x"


def speed(factor: float) -> str:
    """A speed ratio (ours over theirs) in words."""
    if factor >= 1:
        return f"{num(factor, 2)}x as fast as"
    return f"{num(1 / factor, 2)}x slower than"


def joined(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def series(points: Sequence[Point]) -> str:
    """ "88% / 66% at 2x / 4x (achieved 2.09x / 4.52x)"."""
    kept = " / ".join(pct(p.survives) for p in points)
    targets = " / ".join(p.target for p in points)
    achieved = " / ".join(times(p.ratio) for p in points)
    return f"{kept} at {targets} (achieved {achieved})"


def standing(ours: Sequence[Point], theirs: Sequence[Point], name: str) -> str:
    """ "ahead of NAME at 2x and 4x, behind at 8x": survival compared target by target."""
    other = {p.target: p.survives for p in theirs}
    common = [p for p in ours if p.target in other]
    ahead = [p.target for p in common if p.survives > other[p.target]]
    behind = [p.target for p in common if p.survives < other[p.target]]
    level = [p.target for p in common if p.survives == other[p.target]]

    def at(targets: list[str]) -> str:
        if targets == [""]:  # a single comparison at the size the method picked
            return ""
        return " at " + ("every target" if len(targets) == len(common) > 1 else joined(targets))

    parts = [f"ahead of {name}{at(ahead)}"] if ahead else []
    if behind:
        parts.append(f"behind{'' if ahead else ' ' + name}{at(behind)}")
    if level and parts:
        parts.append(f"level{at(level)}")
    return ", ".join(parts) or f"level with {name}"


def versus(ours: Point, theirs: Point) -> str:
    if ours.survives == theirs.survives:
        return "level with"
    return "ahead of" if ours.survives > theirs.survives else "behind"


def best_at(points: Iterable[Point], target: str) -> list[Point]:
    """The points with the highest survival at ``target`` (ties: all of them)."""
    candidates = [p for p in points if p.target == target]
    top = max((p.survives for p in candidates), default=None)
    return [p for p in candidates if p.survives == top]


def targets_in(points: Iterable[Point]) -> list[str]:
    """Targets in order of compression: 2x, 3x, 4x, 8x."""
    found = {p.target for p in points if p.target}
    return sorted(found, key=_goal)


def scope(result: Result) -> str:
    """ "50 test items" from a result's extra keys, as far as they say."""
    extra = result.get("extra", {})
    words = [str(extra[k]) for k in ("items", "split") if k in extra]
    return " ".join([*words, "items"]) if words else "its items"


def missing_note(name: str) -> str:
    return f"not measured yet: `bench/results/{name}.json` is missing (`{EXPECTED[name]}`)."


# -- one paragraph per compressor ------------------------------------------------------------


def metatoken_paragraph(results: Results) -> str:
    result = results.get("metatoken")
    if result is None:
        return "**metatoken** (lossless): " + missing_note("metatoken")
    rows = result["rows"]
    best = max(rows, key=lambda r: r["text_saving_%"])
    worst = min(rows, key=lambda r: r["text_saving_%"])
    text = (
        f"**metatoken** (lossless) wins on repetitive input: on {best['input']} it saves "
        f"{pct(best['text_saving_%'])} of the tokens as text any LLM reads and "
        f"{pct(best['ids_saving_%'])} as reserved ids. It gains least on {worst['input']}: "
        f"{pct(worst['text_saving_%'])} as text ({pct(worst['ids_saving_%'])} as ids)"
    )
    if worst["text_saving_%"] < worst["ids_saving_%"]:
        text += (
            ", because the text rendering pays for its markers and only replaces runs that save "
            "tokens"
        )
    text += ". " + _paper_sentence(rows) + _roundtrip_sentence(rows) + _run_finder_sentence(result)
    return text


def _paper_sentence(rows: list[dict[str, Any]]) -> str:
    bounds = re.findall(r"[\d.]+", str(rows[0].get("paper_saving_%", "")))
    if not bounds:
        return ""
    low = float(bounds[0])
    reach = [r["input"] for r in rows if r["ids_saving_%"] >= low]
    short = [r["input"] for r in rows if r["ids_saving_%"] < low]
    text = f"As ids it reaches the paper's {rows[0]['paper_saving_%']}% on "
    if not reach:
        return text + "none of the inputs. "
    return text + (f"every input but {joined(short)}. " if short else "every input. ")


def _roundtrip_sentence(rows: list[dict[str, Any]]) -> str:
    failures = sum(r.get("roundtrip_failures", 0) for r in rows)
    items = sum(r.get("items", 0) for r in rows)
    if failures:
        return f"{failures:,} of {items:,} round-trips FAILED. "
    return f"All {items:,} round-trips are exact. "


def _run_finder_sentence(result: Result) -> str:
    rows: list[dict[str, Any]] = next(
        (v for k, v in result.get("extra", {}).items() if k.startswith("speed")), []
    )
    finder = [r["compress_ids_tok/s"] for r in rows if "compress_ids_tok/s" in r]
    tokenize = [r["tokenize_tok/s"] for r in rows if "tokenize_tok/s" in r]
    if not finder or not tokenize:
        return ""
    slower = "tokenizing" if max(tokenize) < min(finder) else "the run finder"
    return (
        f"The run finder handles {num(min(finder), 0)}-{num(max(finder), 0)} tokens/s on one "
        f"core, tokenizing {num(min(tokenize), 0)}-{num(max(tokenize), 0)}: {slower} is the "
        "slower step."
    )


def entropy_paragraph(results: Results) -> str:
    parts = ["**entropy** (LLMLingua / LongLLMLingua style):"]
    anchored = [results[n] for n in ANCHORED if n in results]
    if anchored:
        parts.append(_entropy_vs_anchor(max(anchored, key=_date)))
    else:
        parts.append("against llmlingua " + missing_note("quality"))
    parts += [_entropy_speed(results[n]) for n in (*ANCHORED, "entropy_speed") if n in results]
    qa = latest_per_method(results, SENTENCE_QA)
    ours = in_family(qa, "entropy")
    rivals = [m for m in qa if family(m) in ("attention-probe", "embedding-similarity")]
    if ours and rivals:
        where = "; ".join(standing(ours, qa[m], m) for m in rivals)
        parts.append(f"Selecting for a question among distractors it keeps {series(ours)}:")
        parts.append(f"{where}.")
    ib = _ib_gold(results)
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
    best, rival = max(ours, key=_survival), max(anchors, key=_survival)
    text = (
        f"on {scope(result)} at {best.target}, its best variant ({best.method}) keeps the answer "
        f"in {pct(best.survives)} of items ({times(best.ratio)}), {versus(best, rival)} "
        f"llmlingua's best ({rival.method}: {pct(rival.survives)} at {times(rival.ratio)})."
    )
    short = [p for p in anchors if p.ratio < 0.95 * _goal(best.target)]  # 5%: rounding, not a miss
    if short:
        misses = ", ".join(f"{p.method} {times(p.ratio)}" for p in short)
        text += f" llmlingua undershoots the {best.target} target ({misses}): ours meets it."
    return text


def _at_4x(result: Result) -> list[Point]:
    """The 4x rows: the target every anchored run shares (speed is timed there)."""
    return [p for p in quality_points(result) if p.target == "4x"]


def _survival(point: Point) -> float:
    return point.survives


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


def attention_probe_paragraph(results: Results) -> str:
    qa = latest_per_method(results, SENTENCE_QA)
    probe = in_family(qa, "attention-probe")
    if not probe:
        return "**attention-probe**: " + missing_note("attention_probe")
    source = results[probe[0].source]
    others = [m for m in qa if family(m) not in ("attention-probe", "pipeline")]
    where = "; ".join(standing(probe, qa[m], m) for m in others)
    text = f"**attention-probe**: on {scope(source)} it keeps the answer in {series(probe)}"
    text += f": {where}." if where else "."
    over = [p for p in probe if p.target and p.ratio > 1.1 * _goal(p.target)]
    if over:
        misses = joined([f"{p.target} ({times(p.ratio)})" for p in over])
        text += f" Keeping whole sentences, it compresses more than asked at {misses}."
    return text + _probe_facts(source) + _probe_at_ib_size(results)


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


def _probe_at_ib_size(results: Results) -> str:
    ib = _ib_gold(results)
    if "attention-probe" not in ib or "ib-filter" not in ib:
        return ""
    probe = ib["attention-probe"]
    compared = standing([probe], [ib["ib-filter"]], "ib-filter")
    return f" At the IB filter's size it keeps {pct(probe.survives)} ({compared})."


def _ib_gold(results: Results) -> dict[str, Point]:
    """ib_filter's rows on inputs that hold the answer, by family."""
    if "ib_filter" not in results:
        return {}
    return {family(p.method): p for p in quality_points(results["ib_filter"])}


def ib_filter_paragraph(results: Results) -> str:
    result = results.get("ib_filter")
    gold = _ib_gold(results)
    if result is None or "ib-filter" not in gold:
        return "**ib-filter**: " + missing_note("ib_filter")
    ours = gold.pop("ib-filter")
    rows = {(r.get("input"), r.get("method")): r for r in result["rows"]}
    ours_row = next(r for (i, m), r in rows.items() if m == ours.method and i != "noise-only")
    text = (
        f"**ib-filter** picks its own size: on {scope(result)} (gold + distractors) it compresses "
        f"{times(ours.ratio)} overall, drops {pct(ours_row['distractor_sentences_dropped_%'])} of "
        f"distractor sentences and keeps the answer in {pct(ours.survives)} of items"
    )
    if gold:
        rivals = sorted(gold.values(), key=_survival, reverse=True)
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


def token_classifier_paragraph(results: Results) -> str:
    result = results.get("token_classifier")
    if result is None:
        return "**token-classifier** (LLMLingua-2 style): " + missing_note("token_classifier")
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


def speeds_range(factors: Sequence[float]) -> str:
    """ "4.4x-6.1x as fast as", "1.2x-2x slower than", or a mixed "0.8x-1.5x the speed of"."""
    if min(factors) >= 1:
        return f"{spread(factors, times)} as fast as"
    if max(factors) < 1:
        return f"{spread([1 / f for f in factors], times)} slower than"
    return f"{spread(factors, times)} the speed of"


def spread(values: Sequence[float], fmt: Callable[[float], str]) -> str:
    """ "97%", or "95%-98%" when the values differ."""
    low, high = fmt(min(values)), fmt(max(values))
    return low if low == high else f"{low}-{high}"


def pipeline_paragraph(results: Results) -> str:
    qa = latest_per_method(results, SENTENCE_QA)
    pipelines = [m for m in qa if family(m) == "pipeline"]
    if not pipelines:
        return "**Pipelines**: " + missing_note("pipeline")
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


def latency_paragraph(results: Results) -> str:
    result = results.get("latency")
    if result is None:
        return "**Latency**: " + missing_note("latency")
    extra = result.get("extra", {})
    sentences = [_cost_sentence(_timed(result["rows"]))]
    anchor_rows = [r for r in extra.get("anchor", []) if r.get("speedup")]
    for label in dict.fromkeys(r["ragpress"] for r in anchor_rows):
        rows = [r for r in anchor_rows if r["ragpress"] == label]
        lengths = spread([r["tokens"] for r in rows], lambda n: f"{n:,}")
        sentences.append(
            f"{label} is {speeds_range([r['speedup'] for r in rows])} llmlingua "
            f"{rows[0]['llmlingua']} on the same contexts ({lengths} tokens)"
        )
    for row in extra.get("scaling", []):
        sentences.append(
            f"{row['method']} ({row['backend']}) takes {num(row['ratio'], 2)}x the time per "
            f"token at {row['to_tokens']:,} tokens as at {row['from_tokens']:,}"
        )
    return "**Latency** (batch 1, one call): " + "; ".join(s for s in sentences if s) + "."


def _cost_sentence(rows: list[dict[str, Any]]) -> str:
    """Per method, its default backend's time per 1k tokens at the longest length measured,
    and the share of it spent in the model's forwards."""
    longest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["batch"] != 1 or row["backend"] not in ("onnx-fp32", "none", "torch"):
            continue
        best = longest.get(row["method"])
        if best is None or (row["backend"] != "torch", row["tokens"]) > (
            best["backend"] != "torch",
            best["tokens"],
        ):
            longest[row["method"]] = row
    parts = []
    for method, row in longest.items():
        forward = row.get("total_over_forward")
        share = f", {pct(100 / forward)} of it in the model" if forward else ""
        parts.append(
            f"{method} {num(row['ms_per_1k_tokens'], 0)} ms per 1k tokens at "
            f"{row['tokens']:,} ({row['backend']}{share})"
        )
    return "; ".join(parts)


def reader_paragraph(results: Results) -> str:
    """What the Qwen reader makes of each method's 4x context, against the original."""
    runs = [_reader_rows(results[name]) for name in ("quality", "reader") if name in results]
    rows = next((rows for rows in runs if rows), [])
    if not rows:
        return "**End to end** (Qwen2.5-0.5B reader): " + missing_note("quality")
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


def serve_paragraph(results: Results) -> str:
    """Throughput per backend at 32 clients (else the largest concurrency), correctness,
    overload."""
    result = results.get("serve")
    if result is None:
        return "**Serving**: " + missing_note("serve")
    rows = result["rows"]
    levels = {row["clients"] for row in rows}
    most = 32 if 32 in levels else max(levels)  # the yardstick: batching at 32 clients
    at_most = ", ".join(
        f"{row['backend']} {num(row['req/s'])} req/s (p95 {num(row['p95_ms'], 0)} ms, "
        f"mean batch {num(row['mean_batch'])})"
        for row in rows
        if row["clients"] == most
    )
    mixed = sum(row["mismatches"] + row["lost"] for row in rows)
    sentences = [f"at {most} clients {at_most}", f"{mixed} responses differed or were lost"]
    for row in result.get("extra", {}).get("overload (no client retries)", []):
        sentences.append(
            f"overload on {row['backend']} ({row['clients']} clients, queue {row['queue']}): "
            f"{row['ok']} exact results and {row['503']} x 503, {row['mismatches']} mixed up, "
            f"{row['lost']} lost, p95 {num(row['p95_ms'], 0)} ms"
        )
    method = rows[0].get("method", "?")
    return f"**Serving** ({method}): " + "; ".join(sentences) + "."


PARAGRAPHS = (
    reader_paragraph,
    latency_paragraph,
    metatoken_paragraph,
    entropy_paragraph,
    attention_probe_paragraph,
    ib_filter_paragraph,
    token_classifier_paragraph,
    pipeline_paragraph,
    baselines_paragraph,
    serve_paragraph,
)


def best_sentence(results: Results) -> str:
    """Which method keeps the most answers at each target on the sentence-selection QA items."""
    points = [p for ps in latest_per_method(results, SENTENCE_QA).values() for p in ps]
    if not points:
        return ""
    parts = []
    for target in targets_in(points):
        top = best_at(points, target)
        names = joined([f"{p.method} ({times(p.ratio)})" for p in top])
        parts.append(f"at {target} {names} with {pct(top[0].survives)}")
    return "Best on the sentence-selection QA items (latest run per method): " + "; ".join(parts)


def _timed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of backends that ran (a failed backend is a row with an ``error`` instead)."""
    return [row for row in rows if "p50_ms" in row]


def models_sentence(result: Result) -> str:
    """The fastest backend for each role and length."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in _timed(result["rows"]):
        groups.setdefault((row["role"], row["tokens"]), []).append(row)
    parts = []
    for (role, tokens), rows in groups.items():
        fastest = min(rows, key=lambda r: r["p50_ms"])
        gain = fastest.get("speedup_vs_torch")
        versus_torch = f", {speed(gain)} torch" if gain and fastest["backend"] != "torch" else ""
        parts.append(
            f"{role} at {tokens:,} tokens: {fastest['backend']} "
            f"({num(fastest['p50_ms'], 0)} ms{versus_torch})"
        )
    return "Fastest backend per role and length: " + "; ".join(parts) + "."


# -- plots -----------------------------------------------------------------------------------


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def plot_quality(results: Results, path: Path) -> Path | None:
    panels = {
        title: latest_per_method(results, names)
        for title, names in QUALITY_PANELS.items()
        if any(n in results for n in names)
    }
    if not panels:
        return None
    plt = _pyplot()
    columns = min(2, len(panels))
    rows = -(-len(panels) // columns)
    fig, grid = plt.subplots(rows, columns, figsize=(6.5 * columns, 6.0 * rows), squeeze=False)
    axes = grid.flatten()
    for spare in axes[len(panels) :]:
        spare.set_visible(False)
    names = (*FAMILIES, "pipeline", "llmlingua")
    colors = {name: plt.get_cmap("tab10")(i) for i, name in enumerate(names)}
    for ax, (title, qa) in zip(axes, panels.items(), strict=False):
        for i, (method, points) in enumerate(qa.items()):
            ordered = sorted(points, key=lambda p: p.ratio)
            ax.plot(
                [p.ratio for p in ordered],
                [p.survives for p in ordered],
                marker="osD^v<>"[i % 7],
                color=colors.get(family(method), "black"),
                linestyle="--" if family(method) == "llmlingua" else "-",
                label=method,
            )
        ax.set_title(f"{title}\n{_panel_scope(results, qa)}", fontsize=9)
        ax.set_xlabel("achieved compression (original / kept tokens, x)")
        ax.set_ylim(-3, 103)
        ax.grid(alpha=0.3)
        # Below the axes: inside, a legend can hide a point.
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        ax.set_ylabel("answer survives (% of items)")
    return _save(fig, path)


def _panel_scope(results: Results, qa: dict[str, list[Point]]) -> str:
    """ "attention_probe, pipeline: 50 test items": the runs drawn, grouped by their items."""
    runs: dict[str, list[str]] = {}
    for source in sorted({p.source for points in qa.values() for p in points}):
        runs.setdefault(scope(results[source]), []).append(source)
    return "; ".join(f"{', '.join(names)}: {items}" for items, names in runs.items())


def plot_latency(result: Result, path: Path) -> Path:
    plt = _pyplot()
    timed = _timed(result["rows"])
    roles = list(dict.fromkeys(r["role"] for r in timed))
    fig, axes = plt.subplots(1, len(roles), figsize=(5.5 * len(roles), 4.2), squeeze=False)
    for ax, role in zip(axes[0], roles, strict=True):
        rows = [r for r in timed if r["role"] == role]
        lengths = list(dict.fromkeys(r["tokens"] for r in rows))
        backends = list(dict.fromkeys(r["backend"] for r in rows))
        width = 0.8 / len(backends)
        for b, backend in enumerate(backends):
            cells = {r["tokens"]: r["p50_ms"] for r in rows if r["backend"] == backend}
            xs = [i + b * width for i, n in enumerate(lengths) if n in cells]
            bars = ax.bar(xs, [cells[n] for n in lengths if n in cells], width, label=backend)
            ax.bar_label(bars, fmt="%.0f", fontsize=7)
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(lengths))])
        ax.set_xticklabels([f"{n:,}" for n in lengths])
        ax.set_xlabel("context length (tokens)")
        ax.set_title(role, fontsize=10)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("forward latency, p50 (ms)")
    return _save(fig, path)


def plot_metatoken(result: Result, path: Path) -> Path:
    plt = _pyplot()
    rows = result["rows"]
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(rows) + 1.8))
    ys = range(len(rows))
    text = ax.barh([y + 0.2 for y in ys], [r["text_saving_%"] for r in rows], 0.4, label="text")
    ids = ax.barh([y - 0.2 for y in ys], [r["ids_saving_%"] for r in rows], 0.4, label="ids")
    ax.bar_label(text, fmt="%.1f", fontsize=7)
    ax.bar_label(ids, fmt="%.1f", fontsize=7)
    bounds = re.findall(r"[\d.]+", str(rows[0].get("paper_saving_%", "")))
    if len(bounds) == 2:
        low, high = bounds
        ax.axvspan(float(low), float(high), color="grey", alpha=0.2, label=f"paper ({low}-{high}%)")
    ax.set_yticks(list(ys))
    ax.set_yticklabels([r["input"] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("tokens saved (% of the input, lossless)")
    ax.set_title("metatoken: savings per corpus")
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)  # pyplot keeps every open figure alive otherwise
    return path


def make_plots(results: Results, folder: Path) -> dict[str, Path]:
    """Plot name -> PNG path, for the plots whose data exist."""
    plots: dict[str, Path | None] = {"quality": plot_quality(results, folder / "quality.png")}
    if "models" in results:
        plots["models"] = plot_latency(results["models"], folder / "models.png")
    if "metatoken" in results:
        plots["metatoken"] = plot_metatoken(results["metatoken"], folder / "metatoken.png")
    drawn = {name: path for name, path in plots.items() if path is not None}
    for path in sorted(folder.glob("*.png")):  # drawn by a benchmark itself: linked, not redrawn
        if path.stem not in drawn and any(path.stem.startswith(f"{n}_") for n in results):
            drawn[path.stem] = path
    return drawn


# -- RESULTS.md ------------------------------------------------------------------------------


def render(results: Results, plots: dict[str, Path], out: Path, now: dt.datetime) -> str:
    lines = [
        "# Benchmark results",
        "",
        f"_Generated by `python -m bench.report` on {now.isoformat(timespec='seconds')} from "
        "`bench/results/*.json`; do not edit by hand, every figure below comes from those "
        "files._",
        "",
        *_machine_lines(results),
        "## Where each compressor wins and loses",
        "",
    ]
    lines += [paragraph(results) + "\n" for paragraph in PARAGRAPHS]
    if "quality" in plots:
        lines += [best_sentence(results) + ".", "", _image("quality", plots, out), ""]
    for name in _section_order(results):
        lines += _section(results[name], plots, out)
    return "\n".join(lines)


def _machine_lines(results: Results) -> list[str]:
    missing = [name for name in EXPECTED if name not in results]
    rows = [
        {"result": name, "date": r["machine"].get("date"), "cpus": r["machine"].get("cpus_allowed")}
        | {v: r["machine"].get(v) for v in VERSIONS}
        for name, r in results.items()
    ]
    platforms = sorted({str(r["machine"].get("platform")) for r in results.values()})
    lines = [f"Machine: {', '.join(platforms)}.", "", markdown_table(rows), ""]
    if missing:
        runs = "; ".join(f"`{name}` (`{EXPECTED[name]}`)" for name in missing)
        lines += [f"Missing results: {runs}.", ""]
    return lines


def _section_order(results: Results) -> list[str]:
    """Expected benchmarks first, each followed by its variants (entropy, entropy_speed)."""
    bases = list(EXPECTED)

    def key(name: str) -> tuple[int, str]:
        base = next((i for i, b in enumerate(bases) if name.startswith(b)), len(bases))
        return base, name

    return sorted(results, key=key)


def _section(result: Result, plots: dict[str, Path], out: Path) -> list[str]:
    name = result["name"]
    lines = [f"## {name}", "", f"Command: `{result.get('command', '?')}`", ""]
    lines += [markdown_table(result["rows"]), ""]
    for key, value in result.get("extra", {}).items():
        lines += _extra(key, value)
    if name == "models":
        lines += [models_sentence(result), ""]
    if name in plots:
        lines += [_image(name, plots, out), ""]
    for plot in sorted(p for p in plots if p.startswith(f"{name}_")):  # the benchmark's own
        lines += [_image(plot, plots, out), ""]
    panel = next((t for t, names in QUALITY_PANELS.items() if name in names), None)
    if panel and "quality" in plots:  # shown once, at the top: link it here
        link = Path(os.path.relpath(plots["quality"], out.parent)).as_posix()
        lines += [f'Plot: [quality.png]({link}), panel "{panel}".', ""]
    return lines


def _extra(key: str, value: Any) -> list[str]:
    if isinstance(value, list) and value and all(isinstance(v, dict) and v for v in value):
        return [f"**{key}**", "", markdown_table(value), ""]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return [*(f"- {v}" for v in value), ""]
    return []


def _image(name: str, plots: dict[str, Path], out: Path) -> str:
    return f"![{name}]({Path(os.path.relpath(plots[name], out.parent)).as_posix()})"


def build(results_dir: Path = RESULTS_DIR, out: Path = OUT, now: dt.datetime | None = None) -> Path:
    """Read ``results_dir``, write the plots there and the report to ``out``."""
    results = load_results(results_dir)
    plots = make_plots(results, results_dir)
    now = now or dt.datetime.now(dt.timezone.utc)
    out.write_text(render(results, plots, out, now))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    print(build(args.results, args.out))


if __name__ == "__main__":
    main()
