"""Train ragpress's relevance model: a MiniLM cross-encoder that prunes and reranks (Provence).

Recipe (``ragpress train relevance``; data from the bigbench archive on PyPI, on CPU):

1. Pairs ``(question, passage)`` from the allowed tasks only:
   * ``disfl_qa``, TRAIN split by passage (dev and test passages are never seen): each answerable
     question with its gold passage (positive), one passage of the same pseudo-article without
     the answer (hard negative) and, for half of them, one of another article (easy negative);
     each unanswerable (SQuAD 2.0) question with its own passage (nothing to keep);
   * ``contextual_parametric_knowledge_conflicts`` (Natural Questions passages): each question
     with its passage, and for half of them a passage of another question without the answer.
2. Labels: a sentence is kept when it holds an answer (case-insensitive, whole words). The
   answer's own sub-words are labelled 1, the rest of a kept sentence ``sentence_label`` (0.6), any
   other passage sentence 0, the question -100 (ignored). The softer sentence label was meant to
   teach the keep channel where in a sentence the answer sits; it did not (an AUC of 0.49 for the
   answer's sub-words against their sentence neighbours): in effect the keep channel scores
   sentences. The ``[CLS]`` position carries the passage label: 1 when any sentence is kept.
   The answer label, for the answer channel (step 4): inside a kept sentence, 1 on the answer's
   sub-words and 0 on the rest; ignored elsewhere.
3. Model: the package-shipped all-MiniLM-L6 with a 2-channel token-classification head: channel 0
   is the keep logit of each passage token, channel 1 read at ``[CLS]`` is the relevance logit
   and after it each token's answer logit (two independent linear heads, as the two rows of one
   layer). The top ``train_layers`` encoder
   layers (default: all 6) and the head are trained (embeddings frozen); loss: binary
   cross-entropy on both. One epoch over every pair (~19k pairs, 25k windows of at most 192
   sub-words, 1,563 steps of 16): 60 min on 2 CPU cores; dev token AUC 0.896, passage AUC
   0.918 (the 220-step, 4-layer model before it: 0.834 and 0.887).
4. Ranking rounds (``--init minilm-l6-relevance --ranking-weight 1``): two more rounds of 800
   steps (lr 5e-5, seeds 1 and 2) add a softmax loss over each window's sentences, scored as the
   compressor ranks them (mean keep logit), the answer sentences being the target. The token
   loss alone never asks which sentence of a passage comes first, which is what a tight budget
   needs. On each round's dev windows (300 dev pairs), the share whose best sentence holds the
   answer went 0.61 -> 0.73 and 0.73 -> 0.82; token AUC 0.889 -> 0.909 and 0.874 -> 0.879,
   passage AUC 0.922 -> 0.917 and 0.906 -> 0.908 (each round samples its own dev pairs). Answer
   survival on 60 dev items per setting at 8x / 16x (int8): other-article 80 / 57% -> 92 / 68%,
   same-article 83 / 63% -> 83 / 68%, gold-only 32 / 20% -> 42 / 25%. A round took 27 and 23
   min here on 2 cores shared with another job (about 1.1 s a step on idle cores).
   A third round (seed 3) adds the answer loss (``--answer-weight 1``): binary cross-entropy of
   the answer channel inside kept sentences, so that when a sentence is longer than the room
   left, the compressor keeps the run of its words around the answer. Dev ``answer_auc`` went
   0.50 -> 0.74 (token AUC 0.906 -> 0.911, top sentence 0.82 -> 0.80 on this round's dev
   sample), in 20 min. Answer survival on 60 dev items per setting at 8x / 16x (int8):
   other-article 92 / 68% -> 92 / 67%, same-article 83 / 68% -> 92 / 72%, gold-only 42 / 25%
   -> 42 / 27%; with the keep channel choosing the partial window instead, gold-only would be
   37 / 22%. ``make train-relevance`` runs the epoch and the three rounds.
5. Ship: the trained tensors as fp16 safetensors (the delta the ``minilm-l6-relevance`` catalogue
   entry applies onto the packaged MiniLM); ONNX export (fp32, int8) with parity checks.

No teacher soft labels: the labels are the gold answers' sentences (see the issue note).

Tried after the shipped recipe, on 150 dev items per setting (int8; answer survival at 8x /
16x, other-article, same-article, gold-only; shipped: 91 / 77, 92 / 73, 40 / 26), not shipped:

* a fourth round like the third (seed 4): dev windows' top sentence 0.885 -> 0.894, answer
  AUC 0.76 -> 0.81, but survival 93 / 75, 90 / 74, 39 / 27: no gain beyond noise;
* a round over all 14,119 Natural Questions gold pairs (``conflicts=None``, seed 5): top
  sentence 0.835 -> 0.784 on its dev sample; more out-of-domain pairs hurt;
* other sentence scores (mean keep logit, max, top-3 mean, upper quartile, quadratic mean,
  length penalty or bonus): every figure within 2 points of the mean probability, none better
  on all settings.
* a cross-passage ranking round (every window of a question in one batch, its gold passage
  among 4 same-article passages, the ranking loss over all their sentences; seed 4, 800 steps,
  26 min): 93 / 74, 91 / 73, 38 / 21. Of the shipped model's 12 same-article misses at 8x
  (of 150), the relevance head ranks the gold passage first in all 12; in 6 the answer
  sentence is outranked by gold-passage sentences only (or fits no budget), in 6 by
  distractor sentences too;
* at selection, not in training: sentence scores times passage relevance to the power 0.5 / 1
  / 3 / 8 (other-article and same-article within 2 points of the shipped figures), and
  whole sentences chosen by a 0/1 knapsack on mean keep probability instead of best-first
  (91 / 77, 91 / 71, 40 / 26);
* the keep logit blended with ``embedding-similarity``'s cosine (z-scores per item, weight
  0.1-0.5 on the cosine), whole sentences only: +1.4 / +1.3 points other-article and +1.4 /
  +3.3 same-article at 8x / 16x for weight 0.1, less for larger weights; too little for a
  second encoder pass (about 1.8x embedding-similarity's time in all).
* weight averaging ("model soup") of the shipped model with the rounds above that were tried
  from it (fourth round, all-NQ round, cross-passage round): free at inference, and on 150 dev
  items per setting (with the sentence spans that keep "91 . 3" whole; answer survival at 2x /
  4x / 8x / 16x) the four-model mean gave other-article 99.3 / 98.7 / 92.7 / 77.3 (shipped
  99.3 / 98.7 / 92.0 / 76.0), same-article 100 / 97.3 / 92.0 / 75.3 (99.3 / 97.3 / 91.3 / 72.0),
  gold-only 91.3 / 66.0 / 40.7 / 29.3 (89.3 / 62.0 / 40.0 / 28.0); shipped + fourth round only:
  90.7 / 75.3, 92.0 / 75.3, 42.0 / 30.0 at 8x / 16x. At least as good everywhere, by 1-5 items
  of 150; not shipped yet: the cross-passage round's code is not in the repository, and
  ``ragpress train relevance`` would have to run every round and average them.

* a round like the third with self-corrected questions added (``--corrections 1``, seed 4, 800
  steps, 17 min; :mod:`ragpress.training.corrections`): dev windows' top sentence 0.887 -> 0.859,
  answer AUC 0.76 -> 0.80, token AUC 0.920 -> 0.921; answer survival 92.7 / 76.7, 90.7 / 72.0,
  39.3 / 27.3: no gain beyond noise.
* a round like the third with each gold sentence also read alone (``--sentences 0.5``, seed 4,
  800 steps, 15 min; 9,254 one-sentence pairs beside the 19k others, :func:`sentence_pairs`), to
  teach the relevance head the question the second read asks: dev windows' top sentence 0.887
  -> 0.925, answer AUC 0.76 -> 0.78; but answer survival on the 300 dev items at 4x / 8x / 16x,
  other-article 99.0 / 96.0 / 87.0, same-article 99.0 / 94.7 / 83.7, gold-only 79.7 / 57.0 /
  35.7 (shipped: 99.0 / 97.0 / 87.7, 99.3 / 96.7 / 84.0, 78.3 / 56.7 / 33.3), and no
  ``REREAD_WEIGHT`` from 0.2 to 1 brought other-article at 8x above 96.0.
* at selection, the second read's other outputs as factors of a reread sentence's score: its
  highest answer probability and its mean keep probability read alone, each to the power 0.3
  (and both): other-article at 4x / 8x / 16x 99.0 / 96.7 / 88.0, 99.0 / 97.0 / 88.0 and
  98.7 / 96.3 / 88.3, same-article 99.0 / 96.3 / 82.7, 98.3 / 96.0 / 83.3 and 98.3 / 94.7 /
  84.0, against 99.0 / 97.0 / 87.7 and 99.3 / 96.7 / 84.0 without (300 dev items).
* at inference, the question's self-corrections resolved by rule before reading (the editing
  term "no sorry", "or rather", "I mean" ... and the words it retracts dropped; a question
  that restarts at a wh-word keeps only the restart): other-article at 4x / 8x / 16x 98.0 /
  95.3 / 84.3 (300 dev items), and with the repaired question appended to the original 94.3 /
  86.7 / 76.7. Disfl-QA takes its retracted words from the passage, and the model, trained on
  such questions, reads more from them than it is misled by.
  The repaired question for the second read only (the passages still scored with the
  original): other-article 99.0 / 96.7 / 87.7, same-article 99.3 / 96.3 / 84.3, gold-only
  78.3 / 57.3 / 32.7 at 4x / 8x / 16x: the shipped figures within an item.
* at selection, the reread sentences' scores times ``embedding-similarity``'s cosine with the
  question (int8 MiniLM, the top document's reread sentences only, so about a fifth of its
  cost): ``max(cos, 0.01) ** p`` for p = 0.5 / 1 / 2 gave other-article at 8x 96.7 / 96.0 /
  96.3, same-article 96.0 / 95.7 / 95.0 (shipped 97.0 and 96.7; 300 dev items), and
  ``exp(p * (cos - max cos))`` for p = 3 / 6 gave 96.0 / 96.0 and 96.0 / 95.3; 16x and
  gold-only moved by at most 2 points either way. The misses left at 8x are sentences the
  model ranks low in the right passage ("settlers naturalized" against "an act to naturalise
  the 148 Huguenots", "religions tolerated" against "Nestorianism and Roman Catholicism also
  enjoyed a period of toleration"), and the cosine does not rank them higher either.
* at selection, every sentence's score times a lexical factor: the idf-weighted share of the
  question's Snowball-stemmed content words that the sentence holds (idf over the request's
  sentences), so that "naturalized" meets "naturalise" and "tolerated" "toleration":
  ``(0.1 + share) ** p`` for p = 0.5 / 1 gave other-article at 4x / 8x / 16x 99.0 / 96.7 /
  88.0 and 99.0 / 96.3 / 88.3, same-article 99.3 / 96.3 / 84.0 and 99.3 / 95.7 / 84.7;
  ``exp(p * share)`` for p = 1 / 2 gave 99.0 / 96.7 / 88.0 and 99.0 / 96.7 / 88.7, 99.3 /
  96.7 / 83.7 and 99.3 / 96.3 / 84.0; on the top document's sentences only, no better
  (shipped: 99.0 / 97.0 / 88.0 and 99.3 / 96.7 / 84.0 in the same run; 300 dev items). The
  stems the question shares are shared by the sentences the model already prefers.

What did move the 8x and 16x figures was selection, not training: clauses instead of whole
sentences under a budget (:mod:`ragpress.compressors.relevance`, "What survives"), and then the
passage relevance weight that did nothing for whole sentences: on clauses, its cube took
same-article survival on 300 dev items at 4x / 8x from 97.0 / 93.7 to 99.3 / 95.7
(``RELEVANCE_POWER``). With clauses, the soups above no longer help: on 400 dev items per
setting, at 4x / 8x / 16x, shipped + fourth round gave other-article 99.0 / 95.5 / 86.0,
same-article 96.8 / 92.8 / 82.0 against the shipped model's 99.0 / 96.5 / 85.5 and 96.8 / 93.2 /
82.5. Then the model's own relevance head, asked again of the top document's best sentences
each read alone (``REREAD_SENTENCES``): same-article 95.7 -> 96.7 and gold-only 52.3 -> 56.7 at
8x on those 300 dev items. Of the 9 other-article misses left there at 8x, 8 are self-corrected
questions, and in 4 of them the retracted words name the sentence kept instead of the answer's
("... in the Park Ujazdowski wait no sorry Praga Park ?"); the ninth's answer ("Japan") is not
a word of its passage ("Japanese imports ..."). The self-corrected questions above were the
training-side attempt at the first kind.

Not tried: the natural_instructions subtasks allowed for training give few sentence labels.
DROP's answers are numbers in 6,283 of its 6,500 examples (48 spans); MultiRC's targets are
option letters; ROPES's answers (in its story in 83% of examples) are named by the question
itself in 43%: a choice between the story's entities, not a sentence to find.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from ragpress.compressors.relevance import subword_sentences
from ragpress.compressors.token_classifier import chunk_bounds, encode_words
from ragpress.text import trimmed_sentence_spans
from ragpress.training.corrections import corrected_questions
from ragpress.training.finetune import batches, export_graphs, fit, save_delta, trainable_classifier
from ragpress.training.qa import (
    QAItem,
    _answers_in,
    _contains_word,
    _normalise,
    _split_input,
    load_setting,
    split_of,
    task_examples,
)

BASE = "minilm-l6"
DELTA = "minilm-l6-relevance.safetensors"
LABELS = {0: "keep", 1: "relevant"}
#: Question sub-words kept in front of every window (longer questions are cut).
MAX_QUERY_TOKENS = 48
#: Head channels: keep logit per passage token; relevance logit at ``[CLS]``; the same second
#: channel after ``[CLS]`` is the answer logit (where in a kept sentence the answer sits).
KEEP, RELEVANT, ANSWER = 0, 1, 1


@dataclass(frozen=True)
class Pair:
    """One training pair: a question, a passage, the answers that passage holds (none: all 0)."""

    question: str
    passage: str
    answers: tuple[str, ...]
    kind: str


def disfl_pairs(
    split: str, seed: int, corrections: float = 0.0, sentences: float = 0.0
) -> list[Pair]:
    """Gold, same-article and other-article passages of answerable questions; unanswerable ones;
    for ``corrections`` of the answerable ones, their gold passage again with a self-corrected
    question (:mod:`ragpress.training.corrections`); for ``sentences`` of them, each sentence of
    the gold passage alone (:func:`sentence_pairs`)."""
    rng = random.Random(seed)
    pairs = []
    answerable = load_setting(split, "other-article", distractors=1, seed=seed)  # type: ignore[arg-type]
    for item in answerable:
        answers = tuple(item.answers)
        pairs.append(Pair(item.question, item.gold, answers, "gold"))
        if rng.random() < 0.5 and item.distractors:
            pairs.append(Pair(item.question, item.distractors[0], (), "other-article"))
    for item, question in corrected_questions(answerable, corrections, seed):
        pairs.append(Pair(question, item.gold, tuple(item.answers), "corrected"))
    pairs += sentence_pairs(answerable, sentences, seed)
    for item in load_setting(split, "same-article", distractors=1, seed=seed):  # type: ignore[arg-type]
        pairs.append(Pair(item.question, item.distractors[0], (), "same-article"))
    for item in load_setting(split, "unanswerable", distractors=0, seed=seed):  # type: ignore[arg-type]
        pairs.append(Pair(item.question, item.gold, (), "unanswerable"))
    return pairs


def sentence_pairs(items: Sequence[QAItem], share: float, seed: int) -> list[Pair]:
    """For about ``share`` of ``items``: each sentence of the gold passage alone, as the
    compressor's second read asks about it (``REREAD_SENTENCES``); the answer's sentence is the
    positive, its neighbours (same topic, often the one a retraction names) the negatives."""
    rng = random.Random(seed)
    return [
        Pair(item.question, item.gold[a:b], tuple(item.answers), "sentence")
        for item in items
        if rng.random() < share
        for a, b in trimmed_sentence_spans(item.gold)
    ]


def conflict_pairs(limit: int | None, seed: int, *, dev: bool = False) -> list[Pair]:
    """Natural Questions pairs from ``contextual_parametric_knowledge_conflicts`` (its passages'
    dev bucket held out for validation), with an other-passage negative for half of them."""
    parsed: list[tuple[str, str, tuple[str, ...]]] = []
    for example in task_examples("contextual_parametric_knowledge_conflicts"):
        split = _split_input(str(example.get("input", "")))
        if split is None:
            continue
        question, passage = split
        found = _answers_in(passage, example.get("target"))
        if question and found and (split_of(passage) == "dev") == dev:
            parsed.append((question, passage, tuple(found)))
    rng = random.Random(seed)
    rng.shuffle(parsed)
    parsed = parsed[:limit] if limit is not None else parsed
    pairs = []
    for question, passage, answers in parsed:
        pairs.append(Pair(question, passage, answers, "nq-gold"))
        if rng.random() < 0.5:
            other = parsed[rng.randrange(len(parsed))][1]
            if not any(_contains_word(_normalise(other), _normalise(a)) for a in answers):
                pairs.append(Pair(question, other, (), "nq-other"))
    return pairs


def answer_spans(passage: str, answers: Sequence[str]) -> list[tuple[int, int]]:
    """Every whole-word, case-insensitive occurrence of an answer in ``passage``."""
    return [
        match.span()
        for answer in answers
        if answer.strip()
        for match in re.finditer(
            rf"(?<!\w){re.escape(answer.strip())}(?!\w)", passage, flags=re.IGNORECASE
        )
    ]


def kept_sentences(passage: str, answers: Sequence[str]) -> list[tuple[int, int]]:
    """The sentences of ``passage`` that hold an answer (the keep label)."""
    needles = [_normalise(answer) for answer in answers if answer.strip()]
    return [
        (a, b)
        for a, b in trimmed_sentence_spans(passage)
        if any(_contains_word(_normalise(passage[a:b]), needle) for needle in needles)
    ]


@dataclass
class Example:
    ids: list[int]
    keep: list[float]  # per position; -100 where ignored (question, special tokens)
    relevant: float
    sentence: list[int]  # per position, the window's sentence index; -1 outside the passage
    answer: list[float]  # per position inside a kept sentence: 1 on the answer, else 0; -100 out


def build_examples(
    tokenizer: Any, pairs: Sequence[Pair], max_length: int, sentence_label: float = 1.0
) -> tuple[list[Example], dict[str, Any]]:
    """Sentence-aligned windows ``[CLS] question [SEP] passage [SEP]`` with their labels."""
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    questions = tokenizer([p.question for p in pairs], add_special_tokens=False)["input_ids"]
    docs = encode_words(tokenizer, [p.passage for p in pairs])
    examples = []
    for pair, question, doc in zip(pairs, questions, docs, strict=True):
        question = question[:MAX_QUERY_TOKENS]
        kept = kept_sentences(pair.passage, pair.answers)
        starts = doc.words[doc.word, 0]
        sentence = subword_sentences(doc, trimmed_sentence_spans(pair.passage))
        token_keep, token_answer = np.zeros(len(doc.ids)), np.full(len(doc.ids), -100.0)
        for a, b in kept:
            token_keep[(starts >= a) & (starts < b)] = sentence_label
            token_answer[(starts >= a) & (starts < b)] = 0.0
        for a, b in answer_spans(pair.passage, pair.answers) if kept else ():
            token_keep[(starts >= a) & (starts < b)] = 1.0
            token_answer[(starts >= a) & (starts < b)] = 1.0
        for a, b in chunk_bounds(doc, max_length - len(question) - 3):
            window = token_keep[a:b]
            head = [cls, *question, sep]
            local = sentence[a:b] - sentence[a:b].min() if b > a else sentence[a:b]
            examples.append(
                Example(
                    [*head, *doc.ids[a:b].tolist(), sep],
                    [-100.0] * len(head) + window.tolist() + [-100.0],
                    float(window.any()),
                    [-1] * len(head) + local.tolist() + [-1],
                    [-100.0] * len(head) + token_answer[a:b].tolist() + [-100.0],
                )
            )
    kinds: dict[str, int] = {}
    for pair in pairs:
        kinds[pair.kind] = kinds.get(pair.kind, 0) + 1
    labelled = [v for e in examples for v in e.keep if v >= 0]
    stats = {
        "pairs": kinds,
        "windows": len(examples),
        "relevant_windows": round(float(np.mean([e.relevant for e in examples])), 4),
        "kept_token_share": round(float(np.mean(labelled)), 4) if labelled else 0.0,
        "tokens": sum(len(e.ids) for e in examples),
    }
    return examples, stats


@dataclass
class Batch:
    """Padded tensors of a batch of examples (``sentence`` is -1 on padding too)."""

    ids: Any
    mask: Any
    keep: Any
    relevant: Any
    sentence: Any
    answer: Any


def _tensors(batch: Sequence[Example], pad_id: int) -> Batch:
    import torch

    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    keep = torch.full((len(batch), width), -100.0)
    sentence = torch.full((len(batch), width), -1, dtype=torch.long)
    answer = torch.full((len(batch), width), -100.0)
    for row, example in enumerate(batch):
        n = len(example.ids)
        ids[row, :n] = torch.tensor(example.ids)
        mask[row, :n] = 1
        keep[row, :n] = torch.tensor(example.keep)
        sentence[row, :n] = torch.tensor(example.sentence)
        answer[row, :n] = torch.tensor(example.answer)
    relevant = torch.tensor([e.relevant for e in batch])
    return Batch(ids, mask, keep, relevant, sentence, answer)


def loss_of(
    logits: Any,
    batch: Batch,
    relevance_weight: float,
    ranking_weight: float = 0.0,
    answer_weight: float = 0.0,
) -> Any:
    """Binary cross-entropy of the keep channel on passage tokens plus that of the relevance
    channel at ``[CLS]``, plus ``ranking_weight`` x the sentence ranking loss, plus
    ``answer_weight`` x the binary cross-entropy of the answer channel (channel 1 after
    ``[CLS]``) on the tokens of kept sentences: which of them are the answer."""
    import torch.nn.functional as F

    keep = batch.keep
    labelled = keep >= 0
    token_loss = F.binary_cross_entropy_with_logits(logits[..., KEEP][labelled], keep[labelled])
    passage_loss = F.binary_cross_entropy_with_logits(logits[:, 0, RELEVANT], batch.relevant)
    loss = token_loss + relevance_weight * passage_loss
    if ranking_weight:
        loss = loss + ranking_weight * sentence_ranking_loss(logits[..., KEEP], batch)
    inside = batch.answer >= 0
    if answer_weight and inside.any():
        answer_logits = logits[..., ANSWER][inside]
        loss = loss + answer_weight * F.binary_cross_entropy_with_logits(
            answer_logits, batch.answer[inside]
        )
    return loss


def sentence_ranking_loss(keep_logits: Any, batch: Batch) -> Any:
    """Softmax cross-entropy over a window's sentences, each scored by the mean keep logit of
    its tokens (the compressor ranks sentences by that mean), the answer sentences being the
    target; over windows with an answer sentence and another sentence. The token loss alone
    scores tokens one by one and never asks which sentence of a passage ranks first, which is
    what a tight budget needs."""
    import torch

    losses = []
    for row in range(keep_logits.shape[0]):
        ranked = _ranked_sentences(keep_logits[row], batch.sentence[row], batch.keep[row])
        if ranked is not None:
            scores, positive = ranked
            losses.append(torch.logsumexp(scores, 0) - torch.logsumexp(scores[positive], 0))
    return torch.stack(losses).mean() if losses else keep_logits.sum() * 0.0


def _ranked_sentences(keep_logits: Any, sentence: Any, keep: Any) -> tuple[Any, Any] | None:
    """One window's sentences: the mean keep logit of each, and whether it holds an answer;
    None when there is nothing to rank (no answer sentence, or no other sentence)."""
    import torch

    inside = sentence >= 0
    index = sentence[inside]
    if not len(index):
        return None
    sizes = torch.bincount(index)
    totals = torch.zeros(len(sizes)).index_add(0, index, keep_logits[inside])
    positive = torch.zeros(len(sizes), dtype=torch.bool)
    positive[index[keep[inside] > 0]] = True
    present = sizes > 0
    positive = positive[present]
    if not positive.any() or positive.all():
        return None
    return totals[present] / sizes[present], positive


def evaluate(model: Any, examples: Sequence[Example], pad_id: int) -> dict[str, float]:
    """ROC AUC on dev windows of the token keep probability (kept sentences' sub-words against
    the rest), of the window relevance, and, inside kept sentences, of the answer channel on the
    answer's sub-words against their neighbours (``answer_auc``; 0.5 when there is no answer
    sub-word to tell apart); and ``top_sentence``, how often the best-scored sentence of a
    window with an answer sentence and another one holds the answer (what a tight budget
    keeps)."""
    import torch

    from ragpress.training.logistic import roc_auc

    token_p, window_p, window_y = [], [], []
    labels, top_hits, answer_p, answer_y = [], [], [], []
    model.eval()
    with torch.inference_mode():
        for batch in batches(examples, 32, random.Random(0)):
            tensors = _tensors(batch, pad_id)
            keep = tensors.keep
            logits = model(input_ids=tensors.ids, attention_mask=tensors.mask).logits
            token_p.append(logits[..., KEEP][keep >= 0].numpy())
            labels.append(keep[keep >= 0].numpy())
            window_p.append(logits[:, 0, RELEVANT].numpy())
            window_y.append(tensors.relevant.numpy())
            inside = tensors.answer >= 0
            answer_p.append(logits[..., ANSWER][inside].numpy())
            answer_y.append(tensors.answer[inside].numpy())
            for row in range(len(batch)):
                ranked = _ranked_sentences(logits[row, :, KEEP], tensors.sentence[row], keep[row])
                if ranked is not None:
                    scores, positive = ranked
                    top_hits.append(bool(positive[scores.argmax()]))
    label, scores = np.concatenate(labels), np.concatenate(token_p)
    answer = np.concatenate(answer_y) == 1.0
    answer_scores = np.concatenate(answer_p)
    answer_auc = roc_auc(answer, answer_scores) if 0 < answer.sum() < len(answer) else 0.5
    return {
        "token_auc": round(roc_auc(label > 0, scores), 4),
        "answer_auc": round(answer_auc, 4),
        "passage_auc": round(roc_auc(np.concatenate(window_y), np.concatenate(window_p)), 4),
        "top_sentence": round(float(np.mean(top_hits)), 4) if top_hits else 0.0,
    }


def training_pairs(
    seed: int,
    conflicts: int,
    limit: int | None = None,
    corrections: float = 0.0,
    sentences: float = 0.0,
) -> list[Pair]:
    """``disfl_qa`` train pairs (``corrections``, ``sentences``: see :func:`disfl_pairs`) and
    ``conflicts`` Natural Questions ones, a seeded sample of ``limit`` of them (all kinds in
    proportion)."""
    pairs = disfl_pairs("train", seed, corrections, sentences) + conflict_pairs(conflicts, seed)
    random.Random(seed).shuffle(pairs)
    return pairs[:limit] if limit is not None else pairs


def dev_pairs(seed: int, limit: int) -> list[Pair]:
    pairs = disfl_pairs("dev", seed)
    random.Random(seed).shuffle(pairs)
    return pairs[:limit]


def train(
    *,
    conflicts: int = 6000,
    pairs: int | None = None,
    dev_limit: int = 300,
    epochs: int = 1,
    train_layers: int = 6,
    batch_size: int = 16,
    lr: float = 1.5e-4,
    relevance_weight: float = 1.0,
    max_length: int = 192,
    seed: int = 0,
    threads: int = 2,
    output: Path,
    export: bool = True,
    max_steps: int | None = None,
    sentence_label: float = 0.6,
    ranking_weight: float = 0.0,
    answer_weight: float = 0.0,
    corrections: float = 0.0,
    sentences: float = 0.0,
    init: str = BASE,
) -> dict[str, Any]:
    """Pairs, labels, fine-tuning, the fp16 delta and the ONNX export, end to end. ``init``
    names the catalogue model to start from: the packaged MiniLM with a fresh head, or a
    trained relevance model to go on training (the shipped recipe's second stage)."""
    import torch

    from ragpress.onnx.catalogue import get_spec
    from ragpress.onnx.sources import load_tokenizer

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    started = time.perf_counter()
    base = get_spec(BASE)
    tokenizer = load_tokenizer(base)
    chosen = training_pairs(seed, conflicts, pairs, corrections, sentences)
    train_set, train_stats = build_examples(tokenizer, chosen, max_length, sentence_label)
    dev_set, dev_stats = build_examples(
        tokenizer, dev_pairs(seed, dev_limit), max_length, sentence_label
    )
    labelled = time.perf_counter()
    tqdm.write(json.dumps({"train": train_stats, "dev": dev_stats}))
    model, names = trainable_classifier(get_spec(init), LABELS, train_layers)
    pad = tokenizer.pad_token_id or 0
    per_epoch = len(batches(train_set, batch_size, random.Random(seed)))
    rng = random.Random(seed)

    def loss_of_batch(batch: list[Example]) -> Any:
        tensors = _tensors(batch, pad)
        logits = model(input_ids=tensors.ids, attention_mask=tensors.mask).logits
        return loss_of(logits, tensors, relevance_weight, ranking_weight, answer_weight)

    history = fit(
        model,
        lambda: batches(train_set, batch_size, rng),
        loss_of_batch,
        lambda: evaluate(model, dev_set, pad),
        lr=lr,
        epochs=epochs,
        steps=min(epochs * per_epoch, max_steps or epochs * per_epoch),
    )
    trained = time.perf_counter()
    stats: dict[str, Any] = {
        "recipe": {
            "labels": "answer sub-words 1, the rest of their sentence sentence_label; [CLS] = "
            "passage holds an answer",
            "sentence_label": sentence_label,
            "ranking_weight": ranking_weight,
            "answer_weight": answer_weight,
            "corrections": corrections,
            "sentences": sentences,
            "init": init,
            "conflicts": conflicts,
            "pairs": pairs,
            "epochs": epochs,
            "train_layers": train_layers,
            "steps": history[-1]["steps"],
            "batch_size": batch_size,
            "lr": lr,
            "relevance_weight": relevance_weight,
            "max_length": max_length,
            "seed": seed,
        },
        "train_labels": train_stats,
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
        stats["export"] = export_graphs("minilm-l6-relevance", "relevance")
    stats["minutes"]["total"] = round((time.perf_counter() - started) / 60, 1)
    return stats
