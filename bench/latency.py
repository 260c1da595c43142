"""Latency of every compressor x backend x context length x batch, beside llmlingua 0.2.2.

Run: ``python -m bench.latency [--profile quick|full] [--methods ...] [--lengths ...]
[--backends ...] [--repeats N] [--no-anchor] [--name latency]``. The quick profile (the
default, for ``make bench``) measures a subset of the grid in ~13 minutes on 2 idle
cores: the decoders (SmolLM2, and Qwen2.5-0.5B for attention-probe) read only ~100-500
tokens/s here, so their methods get 512-8k on the default backend (ONNX fp32) and 512-2k on
int8, torch runs at 512, batch 16 at 512 on the default backend, and 10k/100k (the scaling
pair) run on int8 for the fast methods. ``--profile full`` measures every cell but 10k/100k x
16 (many hours). Every cell left out is listed, with the reason, in ``extra["skipped"]``
(``--dry-run`` prints the plan). The anchor rows need ``bash bench/anchors/setup_llmlingua.sh``.

Inputs are real text: the gold passage and 4 distractors of a development QA item (the
question is the item's), then Wikipedia leads, split into ~150-token passages and cut to the
target length in SmolLM2 tokens (the target tokenizer); a batch holds 16 different contexts.
Rate 0.25 (4x). Question-aware compressors get the question, the others none.

Rows (``rows`` of ``bench/results/NAME.json``, one per measured cell):
    method              name given to ``ragpress.get_compressor`` (``a+b``: a pipeline)
    backend             "torch", "onnx-fp32", "onnx-int8", "cuda-fp16"; "none" without a model
    tokens              context length per request, target tokens (a grid value, e.g. 2048)
    batch               requests per call: 1 (``compress``) or 16 (``compress_batch``)
    query               the requests carried the question
    repeats             timed calls; warm-up calls are untimed (see ``warmup``)
    warmup              untimed calls before them (0 for long inputs: the model is warm already)
    p50_ms, p95_ms      wall time of one call (the whole batch)
    tokens_per_s        input tokens of one call (all requests, measured) / p50
    ms_per_1k_tokens    p50 per 1,000 input tokens
    forward_ms          time inside the model's forwards per call (mean; None without a model)
    total_over_forward  all call time / time in forwards: 1.0 is the model alone, the rest is
                        tokenizing, pooling, selection (None without a model)
    peak_mb             peak RSS during the cell's calls minus the RSS before them (MiB)
    rss_mb              that peak RSS, absolute (MiB; every model built so far is loaded)
    load_1m             1-minute load average when the cell ended (the machine is shared)

``extra``:
    anchor       llmlingua and ragpress on the same contexts, batch 1, up to 8k: ragpress (our
                 run), llmlingua (runner mode), tokens, ours_ms, anchor_ms, speedup (anchor /
                 ours); ``anchor_note`` says what ran, or why nothing did
    scaling      method, backend, from_tokens, to_tokens, ms_per_1k_from, ms_per_1k_to, ratio
                 (time per token, longer / shorter: 1.0 is linear): 100k vs 10k where both
                 ran, else the two longest lengths measured (from 2k up)
    skipped      method, backend, cells ("2kx16, 8kx1"), reason: every cell not measured
    settings, notes
The plot ``bench/results/NAME_scaling.png`` shows ms per 1k tokens against the length.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import ragpress
from bench import anchor
from bench.data import wikipedia_summaries
from bench.harness import (
    RESULTS_DIR,
    WARM_UP_DOCUMENTS,
    WARM_UP_QUESTION,
    PeakRSS,
    markdown_table,
    measure,
    tokens_per_second,
    warm_up,
    write_results,
)
from bench.qa import load_items
from bench.reporting import (
    Paragraph,
    Results,
    missing_note,
    num,
    pct,
    speeds_range,
    spread,
    timed_rows,
)
from ragpress.onnx.catalogue import get_spec
from ragpress.registry import accepted_options, factory
from ragpress.text import sentence_spans, word_spans
from ragpress.types import DOCUMENT_SEPARATOR

RATE = 0.25
PASSAGE_TOKENS = 150
LENGTHS = (512, 2048, 8192, 32768, 100_000)
SCALING = (10_000, 100_000)  # time per token at the second vs the first
MIN_SCALING_FROM = 2048
BATCHES = (1, 16)
METHODS = (
    "relevance",
    "relevance+entropy",
    "entropy",
    "token-classifier",
    "attention-probe",
    "ib-filter",
    "attention-probe+entropy",
    "embedding-similarity",
    "metatoken",
    "random",
    "first-k",
)
BACKENDS: dict[str, dict[str, Any]] = {
    "torch": {"backend": "torch"},
    "onnx-fp32": {"backend": "onnx", "variant": "fp32"},
    "onnx-int8": {"backend": "onnx", "variant": "int8"},
    "cuda-fp16": {"backend": "onnx", "variant": "fp16", "device": "cuda"},
}
DEFAULT_BACKEND = "onnx-fp32"  # the grid's reference backend
FASTEST = "onnx-int8"  # the quick profile's backend for 10k/100k
LONGEST_WHOLE = 32768  # longer grid lengths (100k, and 10k beside it) measure scaling
#: Methods that cannot take 100k: the others read windows or chunks, or have no model.
READS_ALL_AT_ONCE = {
    "embedding-similarity": "embeds all sentences in one padded batch (memory grows with the "
    "input): 10k/100k only for the windowed and chunked methods",
}
MAX_ANCHOR_TOKENS = 8192  # llmlingua beyond it takes minutes per call
ANCHOR_THREADS = 2  # the anchor uses both cores, as onnxruntime does for ours

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "latency": "python -m bench.latency",
    # The quick profile stops the decoders at 8k: entropy's scaling to 100k, on its default.
    "latency_entropy_100k": "python -m bench.latency --profile full --methods entropy "
    "--lengths 10000 100000 --backends onnx-fp32 --no-anchor --name latency_entropy_100k",
}


# -- inputs ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Context:
    documents: list[str]
    question: str
    length: int  # the grid length asked for
    tokens: int  # measured: the documents joined as the compressors join them, <= length


def count(text: str) -> int:
    return ragpress.get_target_tokenizer().count(text)


@cache
def _items(n: int) -> list[Any]:
    return load_items("dev", n=n, distractors=4)


@cache
def _wiki() -> list[str]:
    return wikipedia_summaries()


@cache
def contexts(tokens: int, batch: int) -> list[Context]:
    """``batch`` different contexts of ``tokens`` target tokens: each its own QA item's
    passages, then Wikipedia leads no other context of the batch has (no passage repeats within
    a context: the lossless compressor would find the repeat)."""
    items = _items(max(BATCHES))
    wiki = iter(_wiki())
    return [_context(items[i], wiki, tokens) for i in range(batch)]


def _context(item: Any, wiki: Iterator[str], tokens: int) -> Context:
    sources = itertools.chain(item.documents(shuffle_seed=None), wiki)  # gold passage first
    documents: list[str] = []
    total = -count(DOCUMENT_SEPARATOR)
    for source in sources:
        for passage in passages(source):
            documents.append(passage)
            total += count(passage) + count(DOCUMENT_SEPARATOR)
            if total >= tokens:
                return _trimmed(documents, item.question, tokens)
    raise ValueError(f"the corpus has fewer than {tokens} tokens")


def passages(text: str) -> list[str]:
    """``text`` as whole sentences packed into passages of about PASSAGE_TOKENS tokens."""
    out, current, size = [], "", 0
    for start, end in sentence_spans(text):
        sentence = text[start:end]
        current, size = current + sentence, size + count(sentence)
        if size >= PASSAGE_TOKENS:
            out.append(current.strip())
            current, size = "", 0
    if current.strip():
        out.append(current.strip())
    return out


def _trimmed(documents: list[str], question: str, tokens: int) -> Context:
    """Cut the last document at a word boundary so the joined context has <= ``tokens``."""
    head, last = documents[:-1], documents[-1]
    spans = word_spans(last)
    low, high = 0, len(spans)  # largest number of words that fits, by bisection
    while low < high:
        mid = (low + high + 1) // 2
        if count(DOCUMENT_SEPARATOR.join([*head, last[: spans[mid - 1][1]]])) <= tokens:
            low = mid
        else:
            high = mid - 1
    kept = [*head, last[: spans[low - 1][1]]] if low else head
    return Context(kept, question, tokens, count(DOCUMENT_SEPARATOR.join(kept)))


# -- the grid --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    method: str
    backend: str
    tokens: int
    batch: int
    skip: str | None = None


def method_backends(method: str) -> list[str]:
    """The backends a method can run on: "none", or the BACKENDS."""
    takes = [_takes_backend(stage) for stage in method.split("+")]
    return list(BACKENDS) if any(takes) else ["none"]


def _takes_backend(method: str) -> bool:
    return "backend" in accepted_options(method)


def _reads_slow_model(method: str) -> bool:
    """Some stage runs a decoder by default (its class names the model; the catalogue says it
    is a causal LM): SmolLM2 and Qwen2.5-0.5B read only ~100-500 tokens/s here."""
    models = (getattr(factory(stage), "default_model", None) for stage in method.split("+"))
    return any(name is not None and get_spec(name).kind == "causal-lm" for name in models)


def plan(
    methods: Sequence[str], backends: Sequence[str], lengths: Sequence[int], quick: bool
) -> list[Cell]:
    """Every cell of the grid, each measured or with the reason it is not."""
    cells = []
    for method in methods:
        for backend in method_backends(method):
            chosen = backend in backends or backend not in BACKENDS
            grid = sorted(set(lengths) | _scaling_lengths(method, backend, lengths, quick))
            for tokens, batch in itertools.product(grid, BATCHES):
                reason = skip_reason(method, backend, tokens, batch, quick)
                if not chosen:
                    reason = "backend not selected (--backends)"
                cells.append(Cell(method, backend, tokens, batch, reason))
    return cells


def _scaling_lengths(method: str, backend: str, lengths: Sequence[int], quick: bool) -> set[int]:
    """The 10k cell joins the grid where the 100k one is measured (the scaling ratio)."""
    long = SCALING[-1]
    if long in lengths and skip_reason(method, backend, long, 1, quick) is None:
        return set(SCALING)
    return set()


def skip_reason(method: str, backend: str, tokens: int, batch: int, quick: bool) -> str | None:
    """Why a cell is not measured (None: it is)."""
    if backend == "cuda-fp16" and not _has_cuda():
        return "no CUDA device"
    if tokens > LONGEST_WHOLE and method in READS_ALL_AT_ONCE:
        return READS_ALL_AT_ONCE[method]
    if (tokens > LONGEST_WHOLE or tokens in SCALING) and batch > 1:
        return "10k/100k only at batch 1 (they measure scaling)"
    return _quick_reason(method, backend, tokens, batch) if quick else None


def _quick_reason(method: str, backend: str, tokens: int, batch: int) -> str | None:
    """The quick profile's cuts: the decoders read ~100-500 tokens/s on 2 cores, so their
    methods get the length axis on the default backend only, short inputs on the others."""
    slow = _reads_slow_model(method)
    if "+" in method and (tokens > 2048 or batch > 1 or backend != DEFAULT_BACKEND):
        return (
            f"quick profile: pipelines on {DEFAULT_BACKEND}, batch 1, up to 2k "
            "(their stages have their own rows)"
        )
    if slow and tokens > 8192:
        return "quick profile: decoder methods up to 8k (minutes per call beyond)"
    if batch > 1 and (tokens > LENGTHS[0] or backend not in (DEFAULT_BACKEND, "none")):
        return f"quick profile: batch 16 only at 512 tokens, on {DEFAULT_BACKEND}"
    if backend == "torch" and tokens > LENGTHS[0]:
        return "quick profile: torch only at 512 (bench.models compares backends' forwards)"
    if slow and backend != DEFAULT_BACKEND and tokens > 2048:
        return f"quick profile: decoder methods beyond 2k only on {DEFAULT_BACKEND}"
    if tokens > LONGEST_WHOLE and backend not in (FASTEST, "none"):
        return f"quick profile: 10k/100k only on the fastest backend ({FASTEST})"
    return None


@cache
def _has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def repeats_for(cell: Cell, quick: bool, override: int | None) -> tuple[int, int]:
    """(warm-up calls, timed calls) by the work in one call: short calls are noisier and cheap.
    Only the shortest calls get a warm-up: ``build`` warmed the model, and a longer call's
    first run differs from the next mainly by the arena growth its memory figure records."""
    work = cell.tokens * cell.batch
    warmup = 1 if work <= LENGTHS[0] else 0
    if override is not None:
        return warmup, override
    if quick:
        return warmup, 3 if work <= 2048 else 1
    return warmup, 5 if work <= 2048 else 3 if work <= 8192 else 1


# -- measuring one cell ----------------------------------------------------------------------


def build(method: str, backend: str) -> tuple[Any, bool]:
    """The compressor and whether it gets the question (``question_aware``: methods that
    ignore a question get none, as a user would call them); warmed up."""
    options = BACKENDS.get(backend, {})
    compressor = ragpress.get_compressor(method, **options)
    warm_up(compressor)
    return compressor, compressor.question_aware


def measure_cell(
    cell: Cell, compressor: Any, with_query: bool, repeats: tuple[int, int]
) -> dict[str, Any]:
    """One cell's row; the forward time is what the results report (``timings["forward"]``,
    per request: summed over the batch, it is the call's)."""
    batch = contexts(cell.tokens, cell.batch)
    requests = [
        {"context": c.documents, "query": c.question if with_query else None, "rate": RATE}
        for c in batch
    ]
    warmup, timed = repeats
    with PeakRSS() as memory:
        for _ in range(warmup):
            compressor.compress_batch(requests)
        forwards: list[float] = []

        def call() -> None:
            results = compressor.compress_batch(requests)
            forwards.append(sum(result.timings.get("forward", 0.0) for result in results))

        timing = measure(call, warmup=0, repeats=timed)
    total = sum(timing.runs) / 1000.0
    work = sum(c.tokens for c in batch)
    forward = sum(forwards)
    has_model = forward > 0
    return {
        "method": cell.method,
        "backend": cell.backend,
        "tokens": cell.tokens,
        "batch": cell.batch,
        "query": with_query,
        "repeats": timed,
        "warmup": warmup,
        "p50_ms": round(timing.p50_ms, 1),
        "p95_ms": round(timing.p95_ms, 1),
        "tokens_per_s": round(tokens_per_second(work, timing.p50_ms), 1),
        "ms_per_1k_tokens": round(timing.p50_ms / work * 1000, 2),
        "forward_ms": round(1000 * forward / timed, 1) if has_model else None,
        "total_over_forward": round(total / forward, 3) if has_model else None,
        "peak_mb": round(memory.peak_mb, 1),
        "rss_mb": round(memory.rss_mb, 1),
        "load_1m": round(os.getloadavg()[0], 2),
    }


# -- running the grid ------------------------------------------------------------------------


class Progress:
    """One line per cell on stderr: position, elapsed time, the cell, then (on the same line,
    when it is done) its p50, so a long cell shows what is running."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.started = total, 0, time.perf_counter()

    def start(self, text: str) -> None:
        self.done += 1
        elapsed = int(time.perf_counter() - self.started)
        stamp = f"[{self.done}/{self.total} {elapsed // 60}:{elapsed % 60:02d}]"
        print(f"{stamp} {text} ...", end="", file=sys.stderr, flush=True)

    def end(self, text: str) -> None:
        print(f" {text}", file=sys.stderr, flush=True)


def run_grid(
    cells: list[Cell], quick: bool, override: int | None
) -> tuple[list[dict[str, Any]], list[Cell]]:
    """Measured rows, and the cells not measured (planned skips and failures)."""
    todo = [cell for cell in cells if cell.skip is None]
    skipped = [cell for cell in cells if cell.skip is not None]
    progress = Progress(len(todo))
    rows: list[dict[str, Any]] = []
    for (method, backend), group in itertools.groupby(todo, lambda c: (c.method, c.backend)):
        done, failed = _run_group(method, backend, list(group), progress, quick, override)
        rows += done
        skipped += failed
        gc.collect()  # drop this compressor's models before the next one loads
    return rows, skipped


def _run_group(
    method: str,
    backend: str,
    cells: list[Cell],
    progress: Progress,
    quick: bool,
    override: int | None,
) -> tuple[list[dict[str, Any]], list[Cell]]:
    """The cells of one compressor on one backend, shortest first, one model load."""
    try:
        compressor, with_query = build(method, backend)
    except Exception as error:  # a backend that cannot load here
        print(f"{method} {backend}: failed to load: {_short(error)}", file=sys.stderr)
        progress.done += len(cells)
        return [], [_failed(cell, error) for cell in cells]
    rows, failed = [], []
    for cell in cells:
        progress.start(f"{method} {backend} {_k(cell.tokens)}x{cell.batch}")
        try:
            row = measure_cell(cell, compressor, with_query, repeats_for(cell, quick, override))
        except Exception as error:  # out of memory, or a bug: record it, go on
            failed.append(_failed(cell, error))
            progress.end(f"failed: {_short(error)}")
            continue
        rows.append(row)
        progress.end(f"p50 {row['p50_ms']:,.0f} ms, {row['tokens_per_s']:,.0f} tokens/s")
    return rows, failed


def _failed(cell: Cell, error: Exception) -> Cell:
    return Cell(cell.method, cell.backend, cell.tokens, cell.batch, f"failed: {_short(error)}")


def _short(error: Exception) -> str:
    return f"{type(error).__name__}: {(str(error).splitlines() or [''])[0][:120]}"


def skipped_table(cells: list[Cell]) -> list[dict[str, Any]]:
    """Skipped cells grouped by method, backend and reason: one line each, cells listed."""
    key = lambda c: (c.method, c.backend, c.skip)  # noqa: E731
    table = []
    for (method, backend, reason), group in itertools.groupby(sorted(cells, key=key), key):
        listed = ", ".join(f"{_k(c.tokens)}x{c.batch}" for c in sorted(group, key=_order))
        table.append({"method": method, "backend": backend, "cells": listed, "reason": reason})
    return table


def _order(cell: Cell) -> tuple[int, int]:
    return cell.tokens, cell.batch


def _k(tokens: int) -> str:
    """512, 2k, 32k, 10k, 100k: the grid's lengths as people say them."""
    if tokens < 1000:
        return str(tokens)
    return f"{tokens // 1024}k" if tokens % 1024 == 0 else f"{tokens / 1000:g}k"


def scaling(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Time per token at the longest measured length over that at a shorter one, batch 1:
    100k vs 10k where both ran, else the two longest lengths (1.0 means linear time). Fixed
    costs per call dominate below MIN_SCALING_FROM tokens, so shorter pairs are left out."""
    lengths: dict[tuple[str, str], dict[int, float]] = {}
    for row in rows:
        if row["batch"] == 1:
            key = (row["method"], row["backend"])
            lengths.setdefault(key, {})[row["tokens"]] = row["ms_per_1k_tokens"]
    table = []
    for (method, backend), at in lengths.items():
        measured = sorted(at)
        if len(measured) < 2:
            continue
        long = measured[-1]
        short = SCALING[0] if long == SCALING[1] and SCALING[0] in at else measured[-2]
        if short < MIN_SCALING_FROM:
            continue
        table.append(
            {
                "method": method,
                "backend": backend,
                "from_tokens": short,
                "to_tokens": long,
                "ms_per_1k_from": at[short],
                "ms_per_1k_to": at[long],
                "ratio": round(at[long] / at[short], 3),
            }
        )
    return table


# -- llmlingua side by side ------------------------------------------------------------------

#: ragpress run -> (method, with the question, llmlingua runner mode)
ANCHORS = {
    "entropy, no question (LLMLingua-1 settings)": ("entropy", False, "llmlingua"),
    "entropy, question-aware": ("entropy", True, "longllmlingua"),
    "token-classifier": ("token-classifier", False, "llmlingua2"),
}


def anchor_rows(lengths: Sequence[int], methods: Sequence[str]) -> list[dict[str, Any]]:
    """Our default compressors and llmlingua on the same contexts, batch 1."""
    lengths = [tokens for tokens in lengths if tokens <= MAX_ANCHOR_TOKENS]
    runs = {label: spec for label, spec in ANCHORS.items() if spec[0] in methods}
    rows = []
    for label, (method, with_query, mode) in runs.items():
        inputs = [contexts(tokens, 1)[0] for tokens in lengths]
        print(f"[anchor] {label} vs llmlingua {mode}: {lengths}", file=sys.stderr)
        theirs = anchor_seconds(mode, inputs)
        ours = _our_ms(method, with_query, inputs)
        for tokens, mine, their in zip(lengths, ours, theirs, strict=True):
            rows.append(
                {
                    "ragpress": label,
                    "llmlingua": mode,
                    "tokens": tokens,
                    "ours_ms": round(mine, 1),
                    "anchor_ms": round(1000 * their, 1) if their else None,
                    "speedup": round(1000 * their / mine, 2) if their else None,
                }
            )
        print(markdown_table(rows[-len(lengths) :]), file=sys.stderr)
    return rows


def _our_ms(method: str, with_query: bool, inputs: list[Context]) -> list[float]:
    """One call per context of ``get_compressor(method)`` with no options: what a user gets
    (for entropy the fp32 graph and, with a question, the coarse step), which is not
    a grid cell."""
    compressor = ragpress.get_compressor(method)
    warm_up(compressor)
    measured = []
    for context in inputs:
        query = context.question if with_query else None
        call = lambda c=context, q=query: compressor.compress(c.documents, q, rate=RATE)  # noqa: E731
        measured.append(measure(call, warmup=0, repeats=1).p50_ms)
    return measured


def anchor_seconds(mode: str, inputs: list[Context]) -> list[float | None]:
    """llmlingua's compress_prompt wall time per context (None where it failed). A short
    context goes first, so the runner's warm-up is that one, not a long call."""
    folder = {"model": str(anchor.llmlingua2_folder())} if mode == "llmlingua2" else {}
    warm = Context(WARM_UP_DOCUMENTS, WARM_UP_QUESTION, 8, 8)
    lines = [
        {"id": i, "context": c.documents, "question": c.question, "rate": RATE, "mode": mode}
        | folder
        for i, c in enumerate([warm, *inputs])
    ]
    answers = anchor.run(lines, threads=ANCHOR_THREADS, strict=False)[1:]
    return [answer.get("seconds") for answer in answers]


# -- plot, output, command line --------------------------------------------------------------


def plot(rows: list[dict[str, Any]], path: Path) -> Path:
    """ms per 1k tokens vs context length (batch 1): a colour per method, a line style per
    backend, both axes logarithmic."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for row in rows:
        if row["batch"] == 1:
            key = (row["method"], row["backend"])
            series.setdefault(key, []).append((row["tokens"], row["ms_per_1k_tokens"]))
    methods = list(dict.fromkeys(method for method, _ in series))
    colours = plt.get_cmap("tab10")
    styles = {"onnx-int8": "--", "torch": ":", "cuda-fp16": "-."}
    figure, axes = plt.subplots(figsize=(9, 5.5))
    for (method, backend), points in series.items():
        xs, ys = zip(*sorted(points), strict=True)
        axes.plot(
            xs,
            ys,
            styles.get(backend, "-"),
            marker="o",
            color=colours(methods.index(method) % 10),
            label=f"{method} ({backend})",
        )
    axes.set(xscale="log", yscale="log", xlabel="context length (SmolLM2 tokens)")
    axes.set_ylabel("ms per 1k input tokens (p50, batch 1)")
    axes.set_title("Compression time per token (flat = linear in length)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=("quick", "full"), default="quick")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), metavar="METHOD")
    parser.add_argument("--lengths", nargs="+", type=int, default=list(LENGTHS), metavar="N")
    parser.add_argument("--backends", nargs="+", choices=list(BACKENDS), default=list(BACKENDS))
    parser.add_argument("--repeats", type=int, help="timed calls per cell (default: by size)")
    parser.add_argument("--no-anchor", action="store_true", help="skip the llmlingua rows")
    parser.add_argument("--name", default="latency", help="results file name under bench/results")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, measure nothing")
    args = parser.parse_args(argv)
    for method in args.methods:
        if method.strip().lower() == "pipeline":
            parser.error("--methods: name a pipeline by its stages, e.g. attention-probe+entropy")
        try:
            [factory(stage) for stage in method.split("+")]
        except ValueError as error:
            parser.error(f"--methods: {error}")
    if any(tokens < 16 for tokens in args.lengths):
        parser.error("--lengths must be >= 16 tokens each")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    quick = args.profile == "quick"
    started = time.perf_counter()
    cells = plan(args.methods, args.backends, args.lengths, quick)
    if args.dry_run:
        print_plan(cells, quick, args.repeats)
        return
    rows, skipped = run_grid(cells, quick, args.repeats)
    extra = anchor_section(args)
    extra["scaling"] = scaling(rows)
    extra["skipped"] = skipped_table(skipped)
    extra["settings"] = [
        f"profile: {args.profile}; rate {RATE} (4x); passages of ~{PASSAGE_TOKENS} tokens; "
        f"whole run {(time.perf_counter() - started) / 60:.1f} min",
    ]
    extra["notes"] = NOTES
    command = "python -m bench.latency " + shlex.join(sys.argv[1:] if argv is None else argv)
    json_path, _ = write_results(args.name, rows, command, extra)
    if rows:
        plot(rows, RESULTS_DIR / f"{args.name}_scaling.png")
    print(markdown_table(rows))
    print(f"wrote {json_path}", file=sys.stderr)


def print_plan(cells: list[Cell], quick: bool, override: int | None) -> None:
    todo = [
        {"method": c.method, "backend": c.backend, "tokens": c.tokens, "batch": c.batch}
        | dict(zip(("warmup", "repeats"), repeats_for(c, quick, override), strict=True))
        for c in cells
        if c.skip is None
    ]
    print(markdown_table(todo), end="\n\n")
    print(markdown_table(skipped_table([c for c in cells if c.skip is not None])))


def anchor_section(args: argparse.Namespace) -> dict[str, Any]:
    """``{"anchor": rows, "anchor_note": ...}``: the llmlingua rows, or why there are none."""
    beyond = [_k(tokens) for tokens in args.lengths if tokens > MAX_ANCHOR_TOKENS]
    note = (
        f"llmlingua 0.2.2 (torch, {ANCHOR_THREADS} threads) against our default compressors "
        "as get_compressor builds them (entropy: fp32, coarse with a question; "
        "token-classifier: fp32, its global threshold) on the same contexts"
        + (f"; not run at {', '.join(beyond)} (minutes per call)." if beyond else ".")
    )
    if args.no_anchor:
        return {"anchor_note": "llmlingua rows skipped (--no-anchor)."}
    if not anchor.available():  # it prints how to build the venv
        return {"anchor_note": "llmlingua rows skipped: venv missing (bench/anchors/README.md)."}
    try:
        return {"anchor": anchor_rows(args.lengths, args.methods), "anchor_note": note}
    except Exception as error:  # keep the grid's results when the anchor breaks
        print(f"llmlingua rows failed: {_short(error)}", file=sys.stderr)
        return {"anchor_note": f"llmlingua rows failed: {_short(error)}"}


NOTES = [
    "Timings come from a shared 2-core CPU: compare rows measured together (load_1m is the "
    "1-minute load average at the end of each cell), not runs from different days.",
    "total_over_forward: wall time of the whole call over the time inside the model's forward "
    "(the run method of its model objects, summed over pipeline stages), i.e. how far the "
    "compressor is from the physical limit of its model on this machine.",
    "peak_mb: resident memory above what the process held before the cell (models already "
    "loaded, onnxruntime arenas already grown by earlier cells are not counted again).",
    "Anchor speedup = llmlingua seconds / ragpress seconds on the same contexts, one call each "
    "after a short warm-up call, batch 1.",
]


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def latency_paragraph(results: Results) -> str:
    result = results.get("latency")
    if result is None:
        return "**Latency**: " + missing_note("latency", COMMANDS)
    extra = result.get("extra", {})
    sentences = [_cost_sentence(timed_rows(result["rows"]))]
    anchor_rows = [r for r in extra.get("anchor", []) if r.get("speedup")]
    for label in dict.fromkeys(r["ragpress"] for r in anchor_rows):
        rows = [r for r in anchor_rows if r["ragpress"] == label]
        lengths = spread([r["tokens"] for r in rows], lambda n: f"{n:,}")
        sentences.append(
            f"{label} is {speeds_range([r['speedup'] for r in rows])} llmlingua "
            f"{rows[0]['llmlingua']} on the same contexts ({lengths} tokens)"
        )
    scaling = [
        row
        for name in COMMANDS
        for row in results.get(name, {}).get("extra", {}).get("scaling", [])
    ]
    for row in scaling:
        sentences.append(
            f"{row['method']} ({row['backend']}) takes {num(row['ratio'], 2)}x the time per "
            f"token at {row['to_tokens']:,} tokens as at {row['from_tokens']:,}"
        )
    return "**Latency** (batch 1, one call): " + "; ".join(s for s in sentences if s) + "."


def _cost_sentence(rows: list[dict[str, Any]]) -> str:
    """Per method, the time per 1k tokens a user gets from it on CPU (its default backend; when
    that did not run, ONNX before torch) at the longest length measured, and the share of it
    spent in the model's forwards."""
    longest: dict[str, dict[str, Any]] = {}

    def preference(row: dict[str, Any]) -> tuple[bool, bool, int]:
        default = row["backend"] == cpu_default_backend(row["method"])
        return default, row["backend"] != "torch", row["tokens"]

    for row in rows:
        if row["batch"] != 1 or row["backend"] == "cuda-fp16":
            continue
        best = longest.get(row["method"])
        if best is None or preference(row) > preference(best):
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


@cache  # asked per row and comparison; the answer depends on the method alone
def cpu_default_backend(method: str) -> str:
    """The backend a method runs on when a CPU user names none: "none" without a model, else
    the ONNX variant its stages default to (``cpu_variant``, int8 for relevance). The grid runs
    a pipeline's stages on one variant, so one whose stages differ reads the reference row."""
    try:
        stages = [stage for stage in method.split("+") if _takes_backend(stage)]
    except ValueError:  # a method this ragpress no longer registers (an old results file)
        return DEFAULT_BACKEND
    if not stages:
        return "none"
    variants = {factory(stage).cpu_variant for stage in stages}  # type: ignore[attr-defined]
    return f"onnx-{variants.pop()}" if len(variants) == 1 else DEFAULT_BACKEND


#: Its paragraphs in "Where each compressor wins and loses" (bench/report.py orders them).
REPORT: dict[str, Paragraph] = {"latency": latency_paragraph}


if __name__ == "__main__":
    main()
