"""Train ragpress's keep/drop word classifier by data distillation, as LLMLingua-2 did.

Recipe (``ragpress train token-classifier``; everything from PyPI packages, on CPU):

1. Text: the gold passages of the ``disfl_qa`` TRAIN split (SQuAD 2.0 paragraphs; dev and test
   passages are never seen), plus ``wiki`` Wikipedia lead sections.
2. Teacher: SmolLM2-135M's per-token NLL (the entropy compressor's scorer, question-unaware),
   pooled to the encoder's words (mean). In each passage the ``keep_rate`` share of words with the
   highest self-information is labelled keep.
3. Answers: every word inside a gold answer of any question on the passage is labelled keep, so
   the student learns to keep what questions ask about (the teacher alone does not know).
4. Student: the package-shipped all-MiniLM-L6 with a 2-label token-classification head; only the
   top ``train_layers`` layers and the head are trained (the rest stays frozen), on chunks of at
   most ``max_length`` sub-words; every sub-word of a word carries the word's label.
5. Save: the trained tensors, fp16, in ``$RAGPRESS_HOME/trained/minilm-l6-keep.safetensors``
   (or ``--out``); with ``--ship``, in ``ragpress/data/minilm-l6-keep.safetensors`` (the delta the
   ``minilm-l6-keep`` catalogue entry applies onto the packaged MiniLM), then ONNX export (fp32,
   int8) with parity checks.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ragpress.compressors.token_classifier import EncodedDoc, chunk_bounds, encode_words
from ragpress.text import aggregate_to_words, align_tokens_to_words
from ragpress.training.corpora import CACHE_DIR, wikipedia_summaries
from ragpress.training.finetune import batches, export_graphs, fit, save_delta, trainable_classifier
from ragpress.training.outputs import PACKAGE_DATA
from ragpress.training.qa import _contains_word, load_items

BASE = "minilm-l6"
DELTA = "minilm-l6-keep.safetensors"
SHIPPED = PACKAGE_DATA / DELTA
LABELS = {0: "drop", 1: "keep"}


@dataclass
class Passage:
    text: str
    answers: list[str]
    source: str  # "disfl_qa" or "wikipedia"


def passages(
    split: str, *, limit: int | None = None, wiki: int = 0, seed: int = 0
) -> list[Passage]:
    """Unique gold passages of ``split`` with all their answers, then ``wiki`` Wikipedia leads."""
    answers: dict[str, set[str]] = {}
    for item in load_items(split):  # type: ignore[arg-type]
        answers.setdefault(item.gold, set()).update(item.answers)
    out = [Passage(text, sorted(found), "disfl_qa") for text, found in answers.items()]
    random.Random(seed).shuffle(out)
    out = out[:limit] if limit is not None else out
    if wiki:
        leads = [t for t in wikipedia_summaries() if 40 <= len(t.split()) <= 400]
        random.Random(seed).shuffle(leads)
        out += [Passage(text, [], "wikipedia") for text in leads[:wiki]]
    return out


def teacher_information(texts: Sequence[str], *, batch_size: int = 8) -> list[np.ndarray]:
    """Per-character-span teacher scores: SmolLM2 NLL per token, with token offsets (cached)."""
    import hashlib

    key = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    cache = CACHE_DIR / f"teacher-nll-smollm2-{key}.npz"
    if cache.is_file():
        with np.load(cache, allow_pickle=False) as data:
            return np.split(data["table"], data["cuts"])
    from ragpress.onnx.models import TokenScorer

    scorer = TokenScorer("smollm2-135m", batch_size=batch_size)
    newline = scorer.tokenizer.encode("\n", add_special_tokens=False)
    encoded = scorer.tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    tables = []
    step = 32
    for begin in tqdm(range(0, len(texts), step), desc="teacher NLL", unit="x32 passages"):
        ids = encoded["input_ids"][begin : begin + step]
        nlls = scorer.nll([[*newline, *row[:1023]] for row in ids])
        for row, offsets, nll in zip(
            ids, encoded["offset_mapping"][begin : begin + step], nlls, strict=True
        ):
            table = np.zeros((len(row), 3))
            table[:, :2] = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
            table[: min(len(row), 1023), 2] = nll[len(newline) :]
            tables.append(table)
    cuts = np.cumsum([len(t) for t in tables])[:-1]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, table=np.concatenate(tables), cuts=cuts)
    return tables


def word_labels(
    doc: EncodedDoc, teacher: np.ndarray, answers: Sequence[str], keep_rate: float
) -> tuple[np.ndarray, np.ndarray]:
    """Keep labels of the encoder words: the teacher's top ``keep_rate`` share by
    self-information, plus every word inside an answer. Also returns the answer mask."""
    spans = [tuple(s) for s in doc.words.tolist()]
    token_word = align_tokens_to_words(teacher[:, :2].astype(np.int64), spans)
    info = aggregate_to_words(teacher[:, 2], token_word, len(spans), "mean")
    info = np.where(np.isnan(info), np.nanmean(info) if np.isfinite(info).any() else 0.0, info)
    keep = np.zeros(len(spans), dtype=bool)
    keep[np.argsort(-info, kind="stable")[: round(keep_rate * len(spans))]] = True
    answer = _answer_words(doc, answers)
    return keep | answer, answer


def _answer_words(doc: EncodedDoc, answers: Sequence[str]) -> np.ndarray:
    """Words inside any case-insensitive, whole-word occurrence of an answer."""
    lower = doc.text.lower()
    mask = np.zeros(len(doc.words), dtype=bool)
    for answer in answers:
        needle = answer.strip().lower()
        if not needle or not _contains_word(lower, needle):
            continue
        start = lower.find(needle)
        while start >= 0:
            end = start + len(needle)
            mask |= (doc.words[:, 0] < end) & (doc.words[:, 1] > start)
            start = lower.find(needle, end)
    return mask


@dataclass
class Example:
    ids: list[int]
    labels: list[int]  # -100 on special tokens


def build_examples(
    tokenizer: Any, items: Sequence[Passage], keep_rate: float, max_length: int
) -> tuple[list[Example], dict[str, Any]]:
    """Encoder chunks with token labels, and the label statistics."""
    docs = encode_words(tokenizer, [p.text for p in items])
    teacher = teacher_information([p.text for p in items])
    cls, sep = [tokenizer.cls_token_id], [tokenizer.sep_token_id]
    examples, kept, words, answer_words = [], 0, 0, 0
    for doc, passage, table in zip(docs, items, teacher, strict=True):
        keep, answer = word_labels(doc, table, passage.answers, keep_rate)
        kept, words, answer_words = (
            kept + int(keep.sum()),
            words + len(keep),
            answer_words + int(answer.sum()),
        )
        token_labels = keep[doc.word].astype(int)
        for a, b in chunk_bounds(doc, max_length - 2):
            examples.append(
                Example(
                    [*cls, *doc.ids[a:b].tolist(), *sep], [-100, *token_labels[a:b].tolist(), -100]
                )
            )
    stats = {
        "passages": len(items),
        "qa_passages": sum(p.source == "disfl_qa" for p in items),
        "wikipedia_passages": sum(p.source == "wikipedia" for p in items),
        "words": words,
        "kept_share": round(kept / max(words, 1), 4),
        "answer_word_share": round(answer_words / max(words, 1), 4),
        "chunks": len(examples),
        "subwords": sum(len(e.ids) - 2 for e in examples),
    }
    return examples, stats


def _tensors(batch: Sequence[Example], pad_id: int) -> tuple[Any, Any, Any]:
    import torch

    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, example in enumerate(batch):
        n = len(example.ids)
        ids[row, :n] = torch.tensor(example.ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(example.labels)
    return ids, mask, labels


def evaluate(model: Any, examples: Sequence[Example], pad_id: int) -> dict[str, float]:
    """Token accuracy and ROC AUC of the keep probability on labelled sub-words."""
    import torch

    from ragpress.training.logistic import roc_auc

    probs, labels = [], []
    model.eval()
    with torch.inference_mode():
        for batch in batches(examples, 32, random.Random(0)):
            ids, mask, gold = _tensors(batch, pad_id)
            p = torch.softmax(model(input_ids=ids, attention_mask=mask).logits, -1)[..., 1]
            probs.append(p[gold >= 0].numpy())
            labels.append(gold[gold >= 0].numpy())
    scores, gold_labels = np.concatenate(probs), np.concatenate(labels)
    return {
        "token_accuracy": round(float(((scores >= 0.5) == gold_labels).mean()), 4),
        "auc": round(roc_auc(gold_labels, scores), 4),
    }


def train(
    *,
    passages_limit: int | None = None,
    wiki: int = 200,
    dev_passages: int = 60,
    keep_rate: float = 0.5,
    train_layers: int = 2,
    epochs: int = 3,
    batch_size: int = 16,
    lr: float = 2e-4,
    max_length: int = 256,
    seed: int = 0,
    threads: int = 2,
    output: Path = SHIPPED,
    export: bool = True,
) -> dict[str, Any]:
    """Data, labels, fine-tuning, the delta at ``output`` and (``export``) the ONNX export of
    the shipped one, end to end; the CLI picks ``output`` (``ragpress.training.outputs``)."""
    import torch

    from ragpress.onnx.catalogue import get_spec
    from ragpress.onnx.sources import load_tokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    started = time.perf_counter()
    base = get_spec(BASE)
    tokenizer = load_tokenizer(base)
    train_set, label_stats = build_examples(
        tokenizer,
        passages("train", limit=passages_limit, wiki=wiki, seed=seed),
        keep_rate,
        max_length,
    )
    dev_set, dev_stats = build_examples(
        tokenizer, passages("dev", limit=dev_passages, seed=seed), keep_rate, max_length
    )
    labelled = time.perf_counter()
    model, names = trainable_classifier(base, LABELS, train_layers)
    pad = tokenizer.pad_token_id or 0
    rng = random.Random(seed)
    steps = epochs * len(batches(train_set, batch_size, rng))

    def loss_of(batch: list[Example]) -> Any:
        ids, mask, labels = _tensors(batch, pad)
        return model(input_ids=ids, attention_mask=mask, labels=labels).loss

    history = fit(
        model,
        lambda: batches(train_set, batch_size, rng),
        loss_of,
        lambda: evaluate(model, dev_set, pad),
        lr=lr,
        epochs=epochs,
        steps=steps,
    )
    trained = time.perf_counter()
    stats: dict[str, Any] = {
        "recipe": {
            "teacher": "smollm2-135m NLL (question-unaware), top keep_rate words + answer words",
            "keep_rate": keep_rate,
            "train_layers": train_layers,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "max_length": max_length,
            "seed": seed,
        },
        "train_labels": label_stats,
        "dev_labels": dev_stats,
        "history": history,
        "minutes": {
            "labels": round((labelled - started) / 60, 1),
            "training": round((trained - labelled) / 60, 1),
        },
    }
    save_delta(model, names, output, stats, labels=LABELS)
    stats["output"], stats["output_bytes"] = str(output), output.stat().st_size
    if export:
        stats["export"] = export_graphs("minilm-l6-keep", "token-logits")
    stats["minutes"]["total"] = round((time.perf_counter() - started) / 60, 1)
    return stats
