"""llmlingua==0.2.2 as a measurement anchor, driven over stdin/stdout JSON lines.

Run with the llmlingua venv's python (built by setup_llmlingua.sh):

    bench/.cache/llmlingua-venv/bin/python bench/anchors/llmlingua_runner.py < in.jsonl > out.jsonl

Input, one JSON object per line:
    {"id": ..., "context": ["doc", ...], "question": str | null, "rate": float,
     "mode": "llmlingua" | "longllmlingua" | "llmlingua2", "model": optional path,
     "options": optional dict of compress_prompt keyword arguments (llmlingua2 mode only),
                e.g. {"use_context_level_filter": false, "return_word_label": true}}
Output, one JSON object per input line, in order, flushed after each line:
    {"id": ..., "compressed": str, "seconds": float, "origin_tokens": int, "compressed_tokens": int}
    plus "word_labels": [[word, 0|1], ...] when the options ask for return_word_label
or, when that item failed, {"id": ..., "error": "..."} (the runner goes on with the next line).

"seconds" is the wall time of compress_prompt alone (model loading excluded). Token counts are
llmlingua's own "origin_tokens"/"compressed_tokens", which it computes with its "OpenAI"
tokenizer; here that is the SmolLM2 tokenizer (see the tiktoken shim below), so counts are
SmolLM2 tokens, the same tokenizer our budgets use.

Other flags:
    --check        load the converted SmolLM2 folder with this venv's transformers and verify
                   that the next token after "The capital of France is" is " Paris" and that the
                   mean NLL of a reference text matches the transformers-5 value stored by the
                   converter (anchor_reference.json); exit 1 if not.
    --threads N    torch.set_num_threads(N) (default: torch's default, i.e. all cores).
    --repeat N     run compress_prompt N times per item; "seconds" is the minimum and
                   "seconds_all" lists every run (the machine is shared: timings are noisy).
    --smollm2 DIR  converted SmolLM2 folder (default: bench/.cache/llmlingua-smollm2); used as the
                   model of "llmlingua"/"longllmlingua" and as the token-counting tokenizer.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SMOLLM2 = REPO_ROOT / "bench" / ".cache" / "llmlingua-smollm2"
LLMLINGUA2_NAME_KEYS = ("bert-base-multilingual-cased", "xlm-roberta-large")
MODES = ("llmlingua", "longllmlingua", "llmlingua2")

# LongLLMLingua settings from the llmlingua README ("LongLLMLingua" example).
LONGLLMLINGUA_KWARGS = dict(
    condition_in_question="after_condition",
    reorder_context="sort",
    dynamic_context_compression_ratio=0.3,
    condition_compare=True,
    context_budget="+100",
    rank_method="longllmlingua",
)
LLMLINGUA2_KWARGS = dict(force_tokens=["\n", "?"])


class _HFEncoding:
    """Stands in for a tiktoken Encoding: encode/decode with a Hugging Face tokenizer."""

    def __init__(self, tokenizer, name: str = "smollm2-shim"):
        self._tok = tokenizer
        self.name = name

    def encode(self, text, *args, **kwargs):
        return self._tok.encode(text, add_special_tokens=False)

    def encode_ordinary(self, text):
        return self.encode(text)

    def decode(self, ids, *args, **kwargs):
        return self._tok.decode(list(ids))

    @property
    def n_vocab(self):
        return len(self._tok)


def install_tiktoken_shim(tokenizer_dir: Path) -> None:
    """Replace tiktoken's loaders before llmlingua is imported (they would download BPE files)."""
    import tiktoken
    from transformers import AutoTokenizer

    enc = _HFEncoding(AutoTokenizer.from_pretrained(str(tokenizer_dir)))

    def _encoding(*_args, **_kwargs):
        return enc

    tiktoken.encoding_for_model = _encoding
    tiktoken.get_encoding = _encoding


def check_model(model_dir: Path) -> int:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), torch_dtype=torch.float32).eval()
    theta = getattr(model.config, "rope_theta", None)
    ids = tok("The capital of France is", return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        nxt = model(ids).logits[0, -1].argmax().item()
    word = tok.decode([nxt])
    print(
        f"[check] transformers {transformers.__version__}, rope_theta={theta}, "
        f"next token after 'The capital of France is': {word!r}",
        file=sys.stderr,
    )
    if word != " Paris":
        print("[check] FAILED: expected ' Paris'", file=sys.stderr)
        return 1
    ref_path = model_dir / "anchor_reference.json"
    if not ref_path.is_file():
        print(
            f"[check] FAILED: {ref_path} missing (written by convert_smollm2_gguf.py)",
            file=sys.stderr,
        )
        return 1
    ref = json.loads(ref_path.read_text())
    ref_ids = tok(ref["text"], return_tensors="pt", add_special_tokens=False).input_ids
    with torch.no_grad():
        nll = model(ref_ids, labels=ref_ids).loss.item()
    print(
        f"[check] reference NLL: {nll:.6f} here vs {ref['mean_nll']:.6f} under transformers "
        f"{ref['transformers']}",
        file=sys.stderr,
    )
    if int(ref_ids.shape[1]) != int(ref["n_tokens"]) or abs(nll - ref["mean_nll"]) > 1e-3:
        print("[check] FAILED: model differs from the transformers-5 reference", file=sys.stderr)
        return 1
    return 0


class Runner:
    def __init__(self, smollm2_dir: Path, repeat: int = 1):
        self.smollm2_dir = smollm2_dir
        self.repeat = max(1, repeat)
        self._compressors: dict[tuple[str, str], object] = {}

    def compressor(self, mode: str, model: str | None):
        from llmlingua import PromptCompressor

        if mode == "llmlingua2":
            if not model:
                raise ValueError("mode 'llmlingua2' needs a 'model' folder path")
            if not any(k in str(model) for k in LLMLINGUA2_NAME_KEYS):
                raise ValueError(
                    "llmlingua 0.2.2 only runs LLMLingua-2 on a model whose path contains "
                    f"one of {LLMLINGUA2_NAME_KEYS}; got {model!r}"
                )
        else:
            model = model or str(self.smollm2_dir)
        key = (mode, str(model))
        if key not in self._compressors:
            t0 = time.perf_counter()
            self._compressors[key] = PromptCompressor(
                model_name=str(model),
                device_map="cpu",
                use_llmlingua2=(mode == "llmlingua2"),
            )
            print(
                f"[runner] loaded {mode} compressor from {model} "
                f"in {time.perf_counter() - t0:.1f}s",
                file=sys.stderr,
            )
        return self._compressors[key]

    def run_item(self, item: dict) -> dict:
        mode = item.get("mode", "llmlingua")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; expected one of {MODES}")
        context = item["context"]
        if isinstance(context, str):
            context = [context]
        context = list(context)
        rate = float(item["rate"])
        question = item.get("question") or ""
        comp = self.compressor(mode, item.get("model"))

        kwargs: dict[str, Any]
        if mode == "llmlingua":
            kwargs = dict(rate=rate)
        elif mode == "longllmlingua":
            if not question:
                raise ValueError("mode 'longllmlingua' needs a non-empty 'question'")
            kwargs = dict(question=question, rate=rate, **LONGLLMLINGUA_KWARGS)
        else:
            kwargs = {**LLMLINGUA2_KWARGS, "rate": rate, **(item.get("options") or {})}

        times = []
        for _ in range(self.repeat):
            t0 = time.perf_counter()
            res = comp.compress_prompt(list(context), **kwargs)
            times.append(time.perf_counter() - t0)
        out = {
            "id": item.get("id"),
            "compressed": res["compressed_prompt"],
            "seconds": round(min(times), 4),
            "origin_tokens": int(res["origin_tokens"]),
            "compressed_tokens": int(res["compressed_tokens"]),
        }
        if self.repeat > 1:
            out["seconds_all"] = [round(t, 4) for t in times]
        if "fn_labeled_original_prompt" in res:
            out["word_labels"] = _word_labels(res["fn_labeled_original_prompt"], kwargs)
        return out


def _word_labels(labelled: str, kwargs: dict) -> list[list]:
    """llmlingua's "word<label_sep>label<word_sep>..." string as [word, label] pairs."""
    word_sep, label_sep = kwargs.get("word_sep", "\t\t|\t\t"), kwargs.get("label_sep", " ")
    pairs = []
    for entry in labelled.split(word_sep) if labelled else []:
        word, _, label = entry.rpartition(label_sep)
        pairs.append([word, int(label)])
    return pairs


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--smollm2", type=Path, default=DEFAULT_SMOLLM2)
    ap.add_argument("--check", action="store_true")
    ap.add_argument(
        "--threads", type=int, default=0, help="torch.set_num_threads (0: torch default)"
    )
    ap.add_argument(
        "--repeat", type=int, default=1, help="time compress_prompt N times, report the minimum"
    )
    args = ap.parse_args()
    smollm2 = args.smollm2.resolve()
    if not (smollm2 / "config.json").is_file():
        print(
            f"[runner] converted SmolLM2 folder missing: {smollm2} "
            "(run bench/anchors/setup_llmlingua.sh)",
            file=sys.stderr,
        )
        return 2

    # Everything library-side writes to stderr; results go to the real stdout only.
    out = sys.stdout
    sys.stdout = sys.stderr

    if args.check:
        return check_model(smollm2)

    import torch

    torch.manual_seed(42)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    install_tiktoken_shim(smollm2)  # must precede `import llmlingua`
    import llmlingua  # noqa: F401  (import now, after the shim, so failures surface early)

    runner = Runner(smollm2, repeat=args.repeat)
    rc = 0
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        item_id = None
        try:
            item = json.loads(line)
            item_id = item.get("id")
            result = runner.run_item(item)
        except Exception as exc:  # report and continue with the next item
            rc = 1
            result = {"id": item_id, "error": f"{type(exc).__name__}: {exc}"}
            import traceback

            traceback.print_exc(file=sys.stderr)
        out.write(json.dumps(result, ensure_ascii=False) + "\n")
        out.flush()
    return rc


if __name__ == "__main__":
    sys.exit(main())
