"""Build ``bench/RESULTS.md`` and its plots from ``bench/results/*.json``.

Run: ``python -m bench.report [--results DIR] [--out FILE]`` (``make bench`` ends with it).
No figure is typed by hand: every number in RESULTS.md, prose included, is formatted from the
JSON files, and each comparison's wording ("ahead of", "behind", "best") is chosen by comparing
those numbers. A missing result file is listed in the report, not fatal.

Each benchmark module in ``BENCHMARKS`` owns, next to the code that writes its JSON:

- ``COMMANDS``: result name -> the command that writes it (the one the Makefile runs);
- ``REPORT``: topic -> a ``Paragraph`` (all results -> text), its paragraphs in "Where each
  compressor wins and loses" (``{}`` when its table says it all); ``TOPICS`` orders them;
- ``SECTION_NOTES`` (optional): result name -> a ``Note`` (that result -> text), a sentence
  under the result's table.

They format and compare figures with ``bench.reporting``, the helpers they share. This module
only assembles: it loads the results, asks each module for its parts, draws the plots, lists
the machines and writes RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import re
from pathlib import Path
from types import ModuleType
from typing import Any

from bench.harness import RESULTS_DIR, markdown_table
from bench.reporting import (
    FAMILIES,
    SENTENCE_QA,
    Note,
    Paragraph,
    Point,
    Result,
    Results,
    best_at,
    family,
    joined,
    latest_per_method,
    load_results,
    pct,
    scope,
    targets_in,
    timed_rows,
    times,
)

OUT = RESULTS_DIR.parent / "RESULTS.md"
#: The benchmark modules: each owns its commands and its part of the report (see above).
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
#: The order of the modules' paragraphs (``REPORT`` keys); a topic not listed comes last.
TOPICS = (
    "end to end",
    "relevance",
    "latency",
    "metatoken",
    "entropy",
    "attention-probe",
    "ib-filter",
    "token-classifier",
    "pipelines",
    "baselines",
    "serving",
)


def _modules() -> list[ModuleType]:
    return [importlib.import_module(f"bench.{name}") for name in BENCHMARKS]


def expected_commands() -> dict[str, str]:
    """Result name -> the command that writes it, read from each benchmark module."""
    commands: dict[str, str] = {}
    for module in _modules():
        commands.update(module.COMMANDS)
    return commands


def paragraphs() -> dict[str, Paragraph]:
    """Topic -> the paragraph of the module that owns it, in ``TOPICS`` order."""
    found: dict[str, Paragraph] = {}
    owners: dict[str, str] = {}
    for module in _modules():
        for topic, paragraph in module.REPORT.items():
            if topic in found:  # one topic, one owner: a second would silently replace the first
                raise ValueError(f"{module.__name__} and {owners[topic]} both report {topic!r}")
            found[topic], owners[topic] = paragraph, module.__name__
    order = {topic: i for i, topic in enumerate(TOPICS)}
    return dict(sorted(found.items(), key=lambda item: order.get(item[0], len(order))))


def section_notes() -> dict[str, Note]:
    """Result name -> the sentence its module writes under that result's table."""
    found: dict[str, Note] = {}
    for module in _modules():
        found.update(getattr(module, "SECTION_NOTES", {}))
    return found


EXPECTED = expected_commands()
PARAGRAPHS = paragraphs()
SECTION_NOTES = section_notes()
QUALITY_PANELS = {
    "every compressor beside llmlingua": ("quality",),
    "sentence selection": SENTENCE_QA[:-1],
    "entropy vs llmlingua": ("entropy",),
    "IB filter (its own size)": ("ib_filter",),
    "token classifier": ("token_classifier",),
}
VERSIONS = ("python", "numpy", "torch", "onnxruntime", "tokenizers")


# -- the summary -----------------------------------------------------------------------------


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
    timed = timed_rows(result["rows"])
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
    lines += [paragraph(results) + "\n" for paragraph in PARAGRAPHS.values()]
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
    if name in SECTION_NOTES:
        lines += [SECTION_NOTES[name](result), ""]
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
