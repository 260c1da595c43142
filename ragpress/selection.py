"""Extractive selection shared by the lossy compressors: units in, kept text out.

A *unit* is a character span of one document (a word, phrase or sentence) with a score; the
selector keeps the best units within a token budget counted in the target tokenizer, always
keeps protected units, and renders the kept units in their original order with their original
whitespace, so the output only ever holds text from the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragpress.text import Interval, merge_intervals
from ragpress.tokenization import TargetTokenizer
from ragpress.types import DOCUMENT_SEPARATOR, ScoredSpan, Span


@dataclass
class Units:
    """All units of one request, over all its documents, in reading order."""

    doc: np.ndarray  # document index of each unit
    start: np.ndarray  # character offsets into that document
    end: np.ndarray
    score: np.ndarray
    forced: np.ndarray  # protected: kept whatever the budget

    def __len__(self) -> int:
        return len(self.doc)

    @classmethod
    def from_spans(
        cls, spans: Sequence[tuple[int, int, int]], score: np.ndarray | None = None
    ) -> Units:
        """Units from ``(doc, start, end)`` triples, unprotected, scored 0 unless given."""
        array = np.asarray(spans, dtype=np.int64).reshape(-1, 3)
        score = np.zeros(len(array)) if score is None else np.asarray(score, dtype=np.float64)
        forced = np.zeros(len(array), dtype=bool)
        return cls(array[:, 0].copy(), array[:, 1].copy(), array[:, 2].copy(), score, forced)

    def take(self, index: np.ndarray | slice) -> Units:
        """The units at ``index`` (a mask, positions or a slice), in that order."""
        return Units(*(getattr(self, f)[index] for f in _FIELDS))

    @classmethod
    def concat(cls, parts: Sequence[Units]) -> Units:
        if not parts:
            empty = np.zeros(0, dtype=np.int64)
            return cls(empty, empty, empty, np.zeros(0), np.zeros(0, dtype=bool))
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("doc", "start", "end", "score", "forced")


@dataclass
class Selection:
    documents: list[str]
    text: str
    kept_spans: list[Span]
    tokens: int
    units: Units  # what was selected from, and which of them are kept
    keep: np.ndarray


def unit_pieces(documents: Sequence[str], units: Units) -> list[str]:
    """Each unit with the whitespace before it (what it costs when kept after its neighbour)."""
    pieces = []
    for doc, start, end in zip(
        units.doc.tolist(), units.start.tolist(), units.end.tolist(), strict=True
    ):
        text = documents[doc]
        lead = start
        while lead > 0 and text[lead - 1].isspace():
            lead -= 1
        pieces.append(text[lead:end])
    return pieces


def unit_costs(tokenizer: TargetTokenizer, pieces: list[str]) -> np.ndarray:
    encode_batch = getattr(tokenizer, "encode_batch", None)
    if encode_batch is not None:
        return np.fromiter((len(ids) for ids in encode_batch(pieces)), dtype=np.int64)
    return np.fromiter((tokenizer.count(piece) for piece in pieces), dtype=np.int64)


def select(
    documents: Sequence[str],
    units: Units,
    tokenizer: TargetTokenizer,
    budget: int | None,
    *,
    threshold: float | None = None,
    skip_floor: float = 0.0,
) -> Selection:
    """Keep units by score until ``budget`` target tokens (or those scoring >= ``threshold``);
    past the first unit that does not fit, only those scoring at least ``skip_floor`` times its
    score (see :func:`fill_by_score`)."""
    keep = units.forced.copy()
    order = np.argsort(-units.score, kind="stable")
    if budget is None:
        if threshold is None:
            raise ValueError("give a token budget or a threshold")
        keep |= units.score >= threshold
        return render(documents, units, keep, tokenizer)
    # Words priced one at a time overcount the joined text ("f():" is cheaper than "f" "(" ...),
    # so a budget the whole text fits must keep it whole: rate=1.0 is the identity (units a
    # method ruled out with score -inf stay out).
    everything = render(documents, units, units.forced | np.isfinite(units.score), tokenizer)
    if everything.tokens <= budget:
        return everything
    costs = unit_costs(tokenizer, unit_pieces(documents, units))
    room = budget - int(costs[keep].sum())
    fill_by_score(keep, order[~keep[order]], costs, room, units.score, skip_floor)
    selection = render(documents, units, keep, tokenizer)
    # Unit costs are measured alone; joined text can differ by a few tokens. Trim to the budget.
    weakest_first = iter([i for i in order[::-1].tolist() if keep[i] and not units.forced[i]])
    while selection.tokens > budget:
        excess, dropped = selection.tokens - budget, 0
        for index in weakest_first:
            keep[index] = False
            dropped += max(1, int(costs[index]))
            if dropped >= excess:
                break
        if not dropped:
            break  # only protected units are left
        selection = render(documents, units, keep, tokenizer)
    return selection


def fill_by_score(
    keep: np.ndarray,
    candidates: np.ndarray,
    costs: np.ndarray,
    room: int,
    scores: np.ndarray | None = None,
    skip_floor: float = 0.0,
) -> None:
    """Mark ``candidates`` (best first) kept, greedily within ``room``, skipping a unit that does
    not fit and trying the next ones: with sentence units a long sentence must not leave the
    rest of the budget unused. With ``skip_floor``, only next ones scoring at least that share
    of the first unit skipped: for a caller that fills the room left with part of that unit,
    which is worth more than a much weaker whole one."""
    prefix = np.cumsum(costs[candidates]) <= room  # the common case, vectorised
    taken = int(prefix.sum())
    keep[candidates[:taken]] = True
    room -= int(costs[candidates[:taken]].sum())
    rest = candidates[taken:]
    if skip_floor > 0 and scores is not None and len(rest):
        rest = rest[scores[rest] >= skip_floor * scores[rest[0]]]
    for index in rest.tolist():
        if room <= 0:
            break
        if costs[index] <= room:
            keep[index] = True
            room -= int(costs[index])


def render(
    documents: Sequence[str], units: Units, keep: np.ndarray, tokenizer: TargetTokenizer
) -> Selection:
    """Kept units in order, each after its original whitespace; a space where a dropped unit
    (or text no unit covers) left two kept ones touching, so words never fuse.

    Two kept units are joined as in the input only when nothing but whitespace lies between
    them in the document: adjacency is read from the text, not from unit numbers, which a
    method may have thinned out before selection."""
    outputs: list[list[str]] = [[] for _ in documents]
    spans: list[list[Interval]] = [[] for _ in documents]
    previous = (-1, -1)  # (doc, end offset) of the last kept unit
    for index in np.flatnonzero(keep).tolist():
        doc, start, end = int(units.doc[index]), int(units.start[index]), int(units.end[index])
        text = documents[doc]
        lead = start
        while lead > 0 and text[lead - 1].isspace():
            lead -= 1
        adjacent = previous == (doc, lead) or (previous[0] == doc and previous[1] > lead)
        if not outputs[doc]:
            piece = text[start:end]
        elif adjacent:
            piece = text[max(lead, previous[1]) : end]
        elif lead == start:
            piece = " " + text[start:end]
        else:
            piece = text[lead:end]
        outputs[doc].append(piece)
        spans[doc].append((lead if adjacent else start, end))  # adjacent: touch and merge
        previous = (doc, end)
    compressed = ["".join(parts) for parts in outputs]
    text = DOCUMENT_SEPARATOR.join(doc for doc in compressed if doc)
    kept = [
        Span(doc, start, end)
        for doc, intervals in enumerate(spans)
        for start, end in merge_intervals(intervals)
    ]
    return Selection(compressed, text, kept, tokenizer.count(text), units, keep)


def best_window(scores: np.ndarray, costs: np.ndarray, room: int) -> slice | None:
    """The run of consecutive units with the highest total score whose costs fit ``room``, None
    when no unit fits. Scores must be >= 0: then, for each last unit, the longest run that fits
    is the best one ending there, so one sliding pass finds it."""
    if (np.asarray(scores) < 0).any():
        raise ValueError("best_window needs scores >= 0")
    best, best_total, left, total, cost = None, -1.0, 0, 0.0, 0
    for right in range(len(scores)):
        total, cost = total + float(scores[right]), cost + int(costs[right])
        while cost > room and left <= right:
            total, cost = total - float(scores[left]), cost - int(costs[left])
            left += 1
        if left <= right and total > best_total:
            best, best_total = slice(left, right + 1), total
    return best


def add_window(
    documents: Sequence[str],
    selection: Selection,
    pieces: Units,
    tokenizer: TargetTokenizer,
    budget: int,
) -> Selection:
    """``selection`` plus the best run of consecutive ``pieces`` (finer units, scored >= 0, that
    overlap no kept unit) in the room it leaves, cut from its weaker end until the joined text
    fits ``budget``; ``selection`` itself when no piece fits."""
    room = budget - selection.tokens
    if room <= 0 or not len(pieces):
        return selection
    costs = unit_costs(tokenizer, unit_pieces(documents, pieces))
    window = best_window(pieces.score, costs, room)
    if window is None:
        return selection
    low, high = window.start, window.stop
    while high > low:
        units = Units.concat([selection.units, pieces.take(slice(low, high))])
        keep = np.concatenate([selection.keep, np.ones(high - low, dtype=bool)])
        order = np.lexsort((units.start, units.doc))  # reading order, as render expects
        widened = render(documents, units.take(order), keep[order], tokenizer)
        if widened.tokens <= budget:
            return widened
        if pieces.score[low] <= pieces.score[high - 1]:
            low += 1
        else:
            high -= 1
    return selection


def scored_spans(units: Units) -> list[ScoredSpan]:
    return [
        ScoredSpan(doc, start, end, score)
        for doc, start, end, score in zip(
            units.doc.tolist(),
            units.start.tolist(),
            units.end.tolist(),
            units.score.tolist(),
            strict=True,
        )
    ]
