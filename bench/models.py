"""Forward latency of each model role: PyTorch vs ONNX fp32 vs ONNX int8, on this CPU.

Run: ``python -m bench.models [--lengths 512 2048 8192] [--repeats 3] [--roles nll ...]``. One
sequence of real text (the Wikipedia corpus from bench/data.py) cut to each length, batch 1.
The backends take turns run by run (the machine may be shared), so read the ratios, not the
absolute figures. The process's address space is capped (``--memory-gb``): a forward that does
not fit fails with an error recorded in its row instead of the kernel killing the machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import sys
from collections.abc import Callable
from typing import Any

from bench.data import wikipedia_summaries
from bench.harness import Timing, markdown_table, measure_interleaved, write_results
from bench.reporting import Note, Paragraph, Result, num, speed, timed_rows
from ragpress.onnx.models import AttentionRows, TokenScorer, TokenTagger

ROLES = {
    "nll": (TokenScorer, "smollm2-135m"),
    "token-logits": (TokenTagger, "minilm-l6"),
    "attention": (AttentionRows, "smollm2-135m"),
}
MAX_ENCODER = 512  # BERT position limit

#: The results this benchmark writes (bench/results/NAME.json) and the command that writes
#: each, as the Makefile runs it (bench.report names it when a result is missing).
COMMANDS = {
    "models": (
        "python -m bench.models --lengths 512 2048 8192 --repeats 2"
        " --roles nll token-logits attention --memory-gb 14"
    ),
}


def backends(cls: type, model: str) -> dict[str, Any]:
    return {
        "torch": cls(model, backend="torch"),
        "onnx fp32": cls(model, variant="fp32"),
        "onnx int8": cls(model, variant="int8"),
    }


def cap_memory(gigabytes: float) -> None:
    limit = int(gigabytes * 1e9)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def time_length(
    models: dict[str, Any], sequence: list[int], repeats: int
) -> dict[str, Timing | str]:
    """Timing per backend, or the error of a backend whose warm-up run failed (out of memory)."""
    fns: dict[str, Callable[[], Any]] = {}
    errors: dict[str, str] = {}
    for name, model in models.items():
        fn = lambda m=model: m.run([sequence])  # noqa: E731
        try:
            fn()  # the warm-up run, which also finds what does not fit
        except Exception as error:  # out of memory: torch and onnxruntime share no error type
            errors[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:100]}"
            continue
        fns[name] = fn
    timings = measure_interleaved(fns, warmup=0, repeats=repeats) if fns else {}
    return {name: timings.get(name) or errors[name] for name in models}


def rows_for(role: str, model: str, length: int, timings: dict[str, Timing | str]) -> list[dict]:
    load = round(os.getloadavg()[0], 1)
    torch_timing = timings["torch"]
    rows = []
    for name, timing in timings.items():
        row: dict[str, Any] = {"role": f"{role} ({model})", "tokens": length, "backend": name}
        if isinstance(timing, str):
            rows.append({**row, "error": timing})
            continue
        speedup = torch_timing.p50_ms / timing.p50_ms if isinstance(torch_timing, Timing) else None
        rows.append(
            {
                **row,
                "p50_ms": round(timing.p50_ms, 1),
                "p95_ms": round(timing.p95_ms, 1),
                "tokens_per_s": round(length / timing.p50_ms * 1000, 1),
                "speedup_vs_torch": round(speedup, 2) if speedup else None,
                "load_1m": load,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--roles", nargs="+", choices=list(ROLES), default=list(ROLES))
    parser.add_argument("--memory-gb", type=float, default=12.0)
    args = parser.parse_args()
    cap_memory(args.memory_gb)
    corpus = "\n\n".join(wikipedia_summaries()[:400])
    rows: list[dict] = []
    for role in args.roles:
        cls, model = ROLES[role]
        models = backends(cls, model)
        ids = models["torch"].tokenizer.encode(corpus, add_special_tokens=False)
        for length in args.lengths:
            if cls is TokenTagger and length > MAX_ENCODER:
                continue
            timings = time_length(models, ids[:length], args.repeats)
            for row in rows_for(role, model, length, timings):
                rows.append(row)
                print(row, flush=True)
        del models
    command = "python -m bench.models " + shlex.join(sys.argv[1:])
    write_results("models", rows, command)
    print(markdown_table(rows))


# -- its section of bench/RESULTS.md ---------------------------------------------------------


def models_sentence(result: Result) -> str:
    """The fastest backend for each role and length."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for row in timed_rows(result["rows"]):
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


#: Its paragraphs in "Where each compressor wins and loses": none; a sentence under its table.
REPORT: dict[str, Paragraph] = {}
SECTION_NOTES: dict[str, Note] = {"models": models_sentence}


if __name__ == "__main__":
    main()
