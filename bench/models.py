"""Forward latency of each model role: PyTorch vs ONNX fp32 vs ONNX int8, on this CPU.

Run: ``python -m bench.models [--lengths 512 2048 8192] [--repeats 3]``. One sequence of real
text (the Wikipedia corpus from bench/data.py) cut to each length, batch 1.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import Any

from bench.data import wikipedia_summaries
from bench.harness import markdown_table, measure, write_results
from ragpress.onnx.models import TokenScorer, TokenTagger

ROLES = {
    "nll (smollm2-135m)": (TokenScorer, "smollm2-135m"),
    "token-logits (minilm-l6)": (TokenTagger, "minilm-l6"),
}
MAX_ENCODER = 512  # BERT position limit


def backends(cls: type, model: str) -> dict[str, Any]:
    return {
        "torch": cls(model, backend="torch"),
        "onnx fp32": cls(model, variant="fp32"),
        "onnx int8": cls(model, variant="int8"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[512, 2048, 8192])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    corpus = "\n\n".join(wikipedia_summaries()[:400])
    rows = []
    for role, (cls, model) in ROLES.items():
        models = backends(cls, model)
        ids = models["torch"].tokenizer.encode(corpus, add_special_tokens=False)
        for length in args.lengths:
            if cls is TokenTagger and length > MAX_ENCODER:
                continue
            sequence = [ids[:length]]
            timings = {
                name: measure(lambda m=m, s=sequence: m.run(s), warmup=1, repeats=args.repeats)
                for name, m in models.items()
            }
            base = timings["torch"].p50_ms
            for name, timing in timings.items():
                rows.append(
                    {
                        "role": role,
                        "tokens": length,
                        "backend": name,
                        "p50_ms": round(timing.p50_ms, 1),
                        "p95_ms": round(timing.p95_ms, 1),
                        "tokens_per_s": round(length / timing.p50_ms * 1000, 1),
                        "speedup_vs_torch": round(base / timing.p50_ms, 2),
                    }
                )
                print(rows[-1], flush=True)
    command = "python -m bench.models " + shlex.join(sys.argv[1:])
    write_results("models", rows, command)
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
