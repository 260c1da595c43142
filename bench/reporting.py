"""What every benchmark's report section shares: reading ``bench/results/*.json`` into quality
points, and formatting and comparing figures in words.

``bench/report.py`` assembles RESULTS.md; each benchmark module writes its own paragraphs with
these helpers (see ``bench/report.py`` for the convention).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Result = dict[str, Any]  # one bench/results/NAME.json
Results = dict[str, Result]
#: A benchmark's paragraph in "Where each compressor wins and loses", from every result.
Paragraph = Callable[[Results], str]
#: A sentence under one result's table, from that result.
Note = Callable[[Result], str]

# Runs of bench.attention_probe: the same QA items, so one comparison (latest run per method).
SENTENCE_QA = ("attention_probe", "pipeline", "quality")
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
    for point in sorted(points, key=lambda p: goal(p.target)):  # stable: file order per method
        grouped.setdefault(point.method, []).append(point)
    return grouped


def goal(target: str) -> float:
    """ "4x" -> 4.0; no target (the method picks its size) -> 0."""
    return float(target.rstrip("x")) if target else 0.0


def latest_per_method(results: Results, names: Iterable[str]) -> dict[str, list[Point]]:
    """Rows of the runs ``names`` merged; a later run replaces an earlier one's method rows."""
    merged: dict[str, list[Point]] = {}
    for run in sorted((results[n] for n in names if n in results), key=run_date):
        merged.update(by_method(quality_points(run)))
    return merged


def run_date(result: Result) -> str:
    return str(result.get("machine", {}).get("date", ""))


def in_family(qa: dict[str, list[Point]], name: str) -> list[Point]:
    """The points of the first method of family ``name``, or []."""
    return next((points for method, points in qa.items() if family(method) == name), [])


def survival(point: Point) -> float:
    return point.survives


def timed_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of backends that ran (a failed backend is a row with an ``error`` instead)."""
    return [row for row in rows if "p50_ms" in row]


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
    return sorted(found, key=goal)


def scope(result: Result) -> str:
    """ "50 test items" from a result's extra keys, as far as they say."""
    extra = result.get("extra", {})
    words = [str(extra[k]) for k in ("items", "split") if k in extra]
    return " ".join([*words, "items"]) if words else "its items"


def missing_note(name: str, commands: dict[str, str]) -> str:
    """The note for a result not measured yet, naming the command (from the module's
    ``COMMANDS``) that writes it."""
    return f"not measured yet: `bench/results/{name}.json` is missing (`{commands[name]}`)."


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


# -- the harder QA settings (bench.relevance runs) ----------------------------------------------

#: The order ``bench.relevance`` targets are reported in.
SETTING_TARGETS = ("2x", "4x", "8x", "16x")


def setting_series(rows: list[dict[str, Any]], method: str, setting: str) -> str:
    """ "100/95/80/45%": a method's answer survival in one setting at each target (``""``
    when it has none there)."""
    found = {
        row["target"]: row["answer_survives_%"]
        for row in rows
        if row["method"] == method and row["setting"] == setting
    }
    values = [found[target] for target in SETTING_TARGETS if target in found]
    return "/".join(f"{value:.0f}" for value in values) + "%" if values else ""


def settings_comparison(result: Result, method: str, baseline: str) -> str:
    """ "other-article 100/100/95/72% against 100/100/85/58%, same-article ...": ``method``
    against ``baseline`` in every answerable setting of a ``bench.relevance`` result."""
    rows = result["rows"]
    settings = dict.fromkeys(r["setting"] for r in rows if r.get("answer_survives_%") is not None)
    return ", ".join(
        f"{setting} {setting_series(rows, method, setting)} against "
        f"{setting_series(rows, baseline, setting)}"
        for setting in settings
        if setting_series(rows, method, setting) and setting_series(rows, baseline, setting)
    )
