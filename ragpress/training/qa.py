"""Real QA items for quality benchmarks and probe training, from BIG-bench's ``disfl_qa`` task.

``disfl_qa`` holds 8,000 (disfluent) questions over the 1,204 paragraphs of the SQuAD 2.0 dev
set (35 Wikipedia articles). Each example's ``input`` is ``"<question>  \\ncontext: <paragraph>"``
and its ``target`` is the answer span, or ``"unknown"`` when the question is unanswerable. The
text is SQuAD-tokenized (``"Earth ' s"``, ``"40 , 000"``) while some targets are not
(``"40,000"``): such targets are matched in their tokenized form.

The task files come from the ``bigbench==1.0.0`` source archive on PyPI, extracted once into
``$RAGPRESS_HOME/data/bigbench/``. Pip 26 downloads that archive but refuses to save it (the package
declares a ``file://`` dependency), so when no archive appears the files are taken from the
source tree pip unpacked (kept with ``--no-clean`` under a temporary folder, then removed).

The data set names no articles, so distractors are kept off the gold's article by grouping the
paragraphs into pseudo-articles (TF-IDF, average-linkage clustering: it finds 35 groups, as many
as the articles); a distractor also has TF-IDF cosine < 0.1 with the gold and contains none of the
answers (case-insensitive, as whole words).
"""

from __future__ import annotations

import collections
import hashlib
import json
import math
import os
import random
import re
import shutil
import string
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragpress.training.corpora import CACHE_DIR, PACKAGES_DIR, _archives_for

BIGBENCH = "bigbench==1.0.0"
TASKS_DIR = CACHE_DIR / "bigbench"
TASKS = ("disfl_qa", "contextual_parametric_knowledge_conflicts")
SPLITS = {"train": (0, 60), "dev": (60, 80), "test": (80, 100)}
UNANSWERABLE = {"", "unknown"}
MAX_DISTRACTOR_SIMILARITY = 0.1
_CONTEXT_MARK = re.compile(r"\s*\n\s*context\s*:\s*", re.IGNORECASE)
_LOOSE_CONTEXT_MARK = re.compile(r"\s*\bcontext\s*:\s*", re.IGNORECASE)
_QUESTION_PREFIX = re.compile(r"^\s*question\s*:\s*", re.IGNORECASE)
_WORD = re.compile(r"[a-z][a-z0-9]+")

Split = Literal["train", "dev", "test"]


@dataclass(frozen=True)
class QAItem:
    """One question with its gold passage and distractor passages from other articles."""

    id: str
    question: str
    answers: list[str]
    gold: str
    distractors: list[str]

    def documents(self, shuffle_seed: int | None = 0) -> list[str]:
        """Gold and distractors, shuffled per item and seed (``None``: gold first)."""
        documents = [self.gold, *self.distractors]
        if shuffle_seed is not None:
            random.Random(f"{shuffle_seed}:{self.id}").shuffle(documents)
        return documents

    def context(self, shuffle_seed: int | None = 0) -> str:
        """The documents joined by blank lines."""
        return "\n\n".join(self.documents(shuffle_seed))

    def gold_index(self, shuffle_seed: int | None = 0) -> int:
        """Where the gold passage sits in ``documents(shuffle_seed)``."""
        return self.documents(shuffle_seed).index(self.gold)


@dataclass(frozen=True)
class _Parsed:
    id: str
    question: str
    answers: list[str]
    gold: str


def load_items(
    split: Split, n: int | None = None, distractors: int = 4, seed: int = 0
) -> list[QAItem]:
    """Answerable ``disfl_qa`` items of ``split`` (60/20/20 by a hash of the gold passage).

    Items come in a seeded shuffled order (the first ``n`` are a random sample); distractors are
    drawn, per item and seed, from the same split's passages, so no passage crosses splits.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
    parsed = [item for item in parsed_items() if split_of(item.gold) == split]
    random.Random(seed).shuffle(parsed)
    chosen = parsed if n is None else parsed[:n]
    pool = {gold: _normalise(gold) for gold in sorted({item.gold for item in parsed})}
    return [_with_distractors(item, pool, distractors, seed) for item in chosen]


def answer_survives(item: QAItem, text: str) -> bool:
    """Whether any gold answer occurs in ``text`` as whole words, after lowercasing and collapsing
    whitespace in both and stripping punctuation at the answer's edges."""
    haystack = _normalise(text)
    needles = (_normalise(answer).strip(string.punctuation + " ") for answer in item.answers)
    return any(needle and _contains_word(haystack, needle) for needle in needles)


def answer_in(item: QAItem, sentence: str) -> bool:
    """Whether ``sentence`` holds a gold answer (the relevance label of probes and filters)."""
    return answer_survives(item, sentence)


def _contains_word(haystack: str, needle: str) -> bool:
    """``needle`` in ``haystack``, not inside a longer word (``"ten"`` is not in ``"often"``)."""
    if needle not in haystack:
        return False
    return re.search(rf"(?<!\w){re.escape(needle)}(?!\w)", haystack) is not None


def noise_only(item: QAItem) -> list[str]:
    """The item's distractors alone: a context that cannot answer the question."""
    return list(item.distractors)


def split_of(passage: str) -> Split:
    """The split of a passage, from a stable hash of its text."""
    bucket = int(hashlib.sha256(passage.encode("utf-8")).hexdigest(), 16) % 100
    return next(name for name, (low, high) in SPLITS.items() if low <= bucket < high)  # type: ignore[misc]


@lru_cache(maxsize=1)
def parsed_items() -> tuple[_Parsed, ...]:
    """Every answerable ``disfl_qa`` example whose answer occurs verbatim in its context."""
    examples = task_examples("disfl_qa")
    parsed = (_parse(f"disfl_qa-{index}", example) for index, example in enumerate(examples))
    return tuple(item for item in parsed if item is not None)


def task_examples(task: str) -> list[dict[str, Any]]:
    """The ``examples`` of a BIG-bench task (one of ``TASKS``), extracted on first use."""
    ensure_tasks()
    data = json.loads((TASKS_DIR / task / "task.json").read_text(encoding="utf-8"))
    return data["examples"]


def ensure_tasks() -> None:
    """Extract the ``TASKS`` files from the bigbench archive (downloaded once) if missing."""
    if all((TASKS_DIR / task / "task.json").exists() for task in TASKS):
        return
    if not _archives_for(BIGBENCH):
        _download_bigbench()
    if _archives_for(BIGBENCH):
        _extract_from_archive(_archives_for(BIGBENCH)[0])
    missing = [task for task in TASKS if not (TASKS_DIR / task / "task.json").exists()]
    if missing:
        raise FileNotFoundError(f"bigbench tasks not extracted: {missing}")


def _download_bigbench() -> None:
    """``pip download --no-deps``; on pip's refusal, copy the tasks from its unpacked tree."""
    PACKAGES_DIR.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="pip-tmp-", dir=CACHE_DIR))
    try:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-clean", "-q"]
        environment = {**os.environ, "TMPDIR": str(scratch)}
        command += [BIGBENCH, "-d", str(PACKAGES_DIR)]
        subprocess.run(command, env=environment, check=False, capture_output=True)
        if not _archives_for(BIGBENCH):
            _copy_from_tree(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _copy_from_tree(root: Path) -> None:
    """Copy ``*/benchmark_tasks/<task>/task.json`` from a source tree under ``root``."""
    for task in TASKS:
        found = sorted(root.glob(f"pip-download-*/*/bigbench/benchmark_tasks/{task}/task.json"))
        if found:
            _write_task(task, found[0].read_bytes())


def _extract_from_archive(archive: Path) -> None:
    """One pass over the tar archive, writing the ``TASKS`` files."""
    suffixes = {f"/benchmark_tasks/{task}/task.json": task for task in TASKS}
    with tarfile.open(archive) as tarred:
        for member in tarred:
            task = next((t for s, t in suffixes.items() if member.name.endswith(s)), None)
            handle = tarred.extractfile(member) if task else None
            if task and handle is not None:
                _write_task(task, handle.read())


def _write_task(task: str, data: bytes) -> None:
    target = TASKS_DIR / task / "task.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def _parse(item_id: str, example: dict[str, Any]) -> _Parsed | None:
    """Question, context and the answers found verbatim in the context (None: skip)."""
    split = _split_input(str(example.get("input", "")))
    if split is None:
        return None
    question, context = split
    answers = _answers_in(context, example.get("target"))
    if not question or not context or not answers:
        return None
    return _Parsed(item_id, question, answers, context)


def _split_input(text: str) -> tuple[str, str] | None:
    """``(question, context)`` from ``"<question>\\ncontext: <context>"``."""
    parts = _CONTEXT_MARK.split(text, maxsplit=1)
    if len(parts) != 2:
        parts = _LOOSE_CONTEXT_MARK.split(text, maxsplit=1)
    if len(parts) != 2:
        return None
    return _QUESTION_PREFIX.sub("", parts[0]).strip(), parts[1].strip()


def _answers_in(context: str, target: object) -> list[str]:
    """Answer strings as they occur in ``context`` (then the raw forms), deduplicated."""
    targets = target if isinstance(target, list) else [target]
    raw = [str(t).strip() for t in targets if isinstance(t, str)]
    raw = [t for t in raw if t.lower() not in UNANSWERABLE]
    found = [form for t in raw for form in (t, _tokenized(t)) if form in context]
    return list(dict.fromkeys(found + raw)) if found else []


def _tokenized(text: str) -> str:
    """SQuAD-style spacing: ``"40,000"`` -> ``"40 , 000"``."""
    return " ".join(re.sub(r"([^\w\s])", r" \1 ", text).split())


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _with_distractors(item: _Parsed, pool: dict[str, str], count: int, seed: int) -> QAItem:
    """Seeded choice of ``count`` passages (``pool``: passage -> normalised text) from other
    pseudo-articles, dissimilar to the gold and containing no answer (as whole words)."""
    articles, similarity, index = _passage_index()
    gold = index[item.gold]
    needles = [_normalise(answer) for answer in item.answers]
    eligible = [
        passage
        for passage, normalised in pool.items()
        if articles[index[passage]] != articles[gold]
        and similarity[gold, index[passage]] < MAX_DISTRACTOR_SIMILARITY
        and not any(_contains_word(normalised, needle) for needle in needles)
    ]
    rng = random.Random(f"{seed}:{item.id}")
    chosen = rng.sample(eligible, min(count, len(eligible)))
    return QAItem(item.id, item.question, list(item.answers), item.gold, chosen)


@lru_cache(maxsize=1)
def _passage_index() -> tuple[list[int], np.ndarray, dict[str, int]]:
    """Pseudo-article label per passage, passage cosine similarities, passage -> row."""
    passages = sorted({item.gold for item in parsed_items()})
    vectors = _tfidf(passages)
    similarity = vectors @ vectors.T
    return _pseudo_articles(similarity), similarity, {p: i for i, p in enumerate(passages)}


def _tfidf(passages: list[str]) -> np.ndarray:
    """L2-normalised TF-IDF rows over words seen in at least two passages."""
    words = [_WORD.findall(passage.lower()) for passage in passages]
    frequency = collections.Counter(word for row in words for word in set(row))
    vocabulary = {w: i for i, w in enumerate(sorted(w for w, c in frequency.items() if c >= 2))}
    matrix = np.zeros((len(passages), len(vocabulary)))
    for row, tokens in enumerate(words):
        for word, count in collections.Counter(tokens).items():
            if word in vocabulary:
                idf = math.log(len(passages) / frequency[word])
                matrix[row, vocabulary[word]] = (1 + math.log(count)) * idf
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.maximum(norms, 1e-12)


def _pseudo_articles(similarity: np.ndarray, stop: float = 0.04, small: int = 10) -> list[int]:
    """Average-linkage clusters (merged while similarity >= ``stop``); small ones join the
    nearest large cluster, since they are usually an article's odd paragraphs."""
    members = _average_linkage(similarity, stop)
    large = [group for group in members if len(group) >= small] or members
    labels = [0] * len(similarity)
    for label, group in enumerate(large):
        for row in group:
            labels[row] = label
    for group in (g for g in members if len(g) < small and g not in large):
        scores = [similarity[np.ix_(group, other)].mean() for other in large]
        for row in group:
            labels[row] = int(np.argmax(scores))
    return labels


def _average_linkage(similarity: np.ndarray, stop: float) -> list[list[int]]:
    """Greedy average-linkage agglomeration on a similarity matrix."""
    linkage = similarity.astype(float)
    np.fill_diagonal(linkage, -1.0)
    size = np.ones(len(linkage))
    groups: dict[int, list[int]] = {row: [row] for row in range(len(linkage))}
    while len(groups) > 1:
        first, second = np.unravel_index(np.argmax(linkage), linkage.shape)
        if linkage[first, second] < stop:
            break
        merged = (linkage[first] * size[first] + linkage[second] * size[second]) / (
            size[first] + size[second]
        )
        linkage[first], linkage[:, first] = merged, merged
        linkage[second], linkage[:, second] = -1.0, -1.0
        linkage[first, first] = -1.0
        size[first] += size[second]
        groups[int(first)] += groups.pop(int(second))
    return list(groups.values())


def main() -> None:
    """Counts per split, passage and context lengths, and two example items."""
    articles = _passage_index()[0]
    print(f"parsed {len(parsed_items())} answerable items; {len(set(articles))} pseudo-articles")
    for split in SPLITS:
        items = load_items(split)  # type: ignore[arg-type]
        golds = {item.gold for item in items}
        gold_words = sum(len(g.split()) for g in golds) / len(golds)
        contexts = [item.context() for item in items]
        chars = sorted(len(c) for c in contexts)
        words = sorted(len(c.split()) for c in contexts)
        short = sum(len(item.distractors) < 4 for item in items)
        print(
            f"{split}: {len(items)} items, {len(golds)} passages, gold {gold_words:.1f} words;"
            f" 5-passage context median {chars[len(chars) // 2]} chars /"
            f" {words[len(words) // 2]} words; items with < 4 distractors: {short}"
        )
    for item in load_items("dev", n=2):
        print(json.dumps(_summary(item), indent=2, ensure_ascii=False))


def _summary(item: QAItem) -> dict[str, Any]:
    return {
        "id": item.id,
        "question": item.question,
        "answers": item.answers,
        "gold": item.gold[:300],
        "gold_index": item.gold_index(),
        "distractors": [d[:120] for d in item.distractors],
        "answer_survives(context)": answer_survives(item, item.context()),
        "answer_survives(noise_only)": answer_survives(item, "\n\n".join(noise_only(item))),
    }


if __name__ == "__main__":
    main()
