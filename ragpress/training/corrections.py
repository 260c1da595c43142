"""Synthetic self-corrected questions, so that the relevance model reads past what is taken back.

``disfl_qa``'s questions correct themselves: "In what year did Linde no Dewar experiment on
liquid oxygen ?". The retracted words often name another sentence of the same passage, and most
of the shipped model's misses at a tight budget are those: it keeps the sentence the retracted
words name and drops the one that answers. The questions made here put such a retraction in
front of a training question (its answer sentence stays the label), in two shapes:

* another question of the same passage, cut short, then an editing phrase, then the question:
  "Where did the Tran dynasty or rather What did Tugh Temur found ?";
* the question with one of its names or numbers said first as a name or number from another
  sentence of the passage: "In what year did Linde no Dewar experiment ...".

The sentence ranking loss then puts the answer sentence above the one the retraction points to.
Only training passages are used; the questions being corrected stay disfluent as they were.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from functools import lru_cache

from ragpress.text import trimmed_sentence_spans
from ragpress.training.qa import QAItem, answer_in

#: Editing phrases between the retracted words and the repair, as ``disfl_qa`` writes them.
EDITING_PHRASES = (
    "no", "no wait", "no sorry", "no I mean", "I mean", "or rather", "or actually", "uh",
    "um", "er", "sorry", "or make that", "no actually", "oops make that", "wait", "or no",
    "uh or rather", "no no", "better yet",
)  # fmt: skip
#: A name or a number: the words a speaker swaps in a self-correction.
_SWAPPABLE = re.compile(r"^(?:[A-Z][\w'-]+|\d[\d.,]*)$")


def corrected_questions(
    items: Sequence[QAItem], share: float, seed: int
) -> Iterator[tuple[QAItem, str]]:
    """For about ``share`` of ``items``: the item and its question with a retraction in front
    (either shape, at random), when its passage offers something else to retract."""
    rng = random.Random(seed)
    by_passage: dict[str, list[QAItem]] = defaultdict(list)
    for item in items:
        by_passage[item.gold].append(item)
    for item in items:
        if rng.random() >= share:
            continue
        swapped = _swapped_name(item, rng) if rng.random() >= 0.5 else ""
        question = swapped or _retracted_question(item, by_passage[item.gold], rng)
        if question:
            yield item, question


def _retracted_question(item: QAItem, neighbours: Sequence[QAItem], rng: random.Random) -> str:
    """The start of another question on the passage whose answer is in another sentence, an
    editing phrase, then the question; "" when no such question exists."""
    others = [other for other in neighbours if _answered_apart(item, other)]
    if not others:
        return ""
    words = rng.choice(others).question.split()
    cut = rng.randint(max(1, len(words) // 3), max(1, 2 * len(words) // 3))
    return " ".join([*words[:cut], rng.choice(EDITING_PHRASES), item.question])


def _swapped_name(item: QAItem, rng: random.Random) -> str:
    """The question with a wrong name or number said, then taken back, before one of its own;
    the wrong one comes from a passage sentence without the answer. "" when either is missing."""
    words = item.question.split()
    own = [i for i, word in enumerate(words) if i and _SWAPPABLE.match(word)]
    asked = set(words)
    elsewhere = [
        word
        for sentence in _sentences(item.gold)
        if not answer_in(item, sentence)
        for word in sentence.split()[1:]  # a sentence's first word is any word
        if _SWAPPABLE.match(word) and word not in asked
    ]
    if not own or not elsewhere:
        return ""
    at = rng.choice(own)
    return " ".join([*words[:at], rng.choice(elsewhere), rng.choice(EDITING_PHRASES), *words[at:]])


def _answered_apart(item: QAItem, other: QAItem) -> bool:
    """Whether ``other`` is answered, and by no sentence that answers ``item``."""
    if other is item or not other.answers:
        return False
    sentences = _sentences(item.gold)
    return any(answer_in(other, s) for s in sentences) and not any(
        answer_in(other, s) and answer_in(item, s) for s in sentences
    )


@lru_cache(maxsize=1024)
def _sentences(passage: str) -> tuple[str, ...]:
    """The passage's sentences, split once for all the questions asked of it."""
    return tuple(passage[start:end] for start, end in trimmed_sentence_spans(passage))
