"""Text utilities every compressor shares: sentences, words, sub-word alignment, protected spans.

All functions work on character offsets into the original text, so whatever a compressor keeps
can be cut out of the input verbatim (extractive output, provenance for free).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Sequence
from json import JSONDecoder
from typing import Literal

import numpy as np

Interval = tuple[int, int]

_WORD = re.compile(r"\w+(?:[-'’.]\w+)*|[^\w\s]", re.UNICODE)
_URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'`]+|www\.[^\s<>\"'`]+", re.IGNORECASE)
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"[-+]?[$€£¥]?\d(?:[\d,.:/]*\d)?(?:%|st|nd|rd|th)?")
_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_JSON_OPEN = re.compile(r"[\[{]")
#: The keyword switches of :func:`protected_spans`.
PROTECT_KINDS = ("code", "json", "urls", "numbers")


def sentence_spans(text: str) -> list[Interval]:
    """Sentence boundaries as ``(start, end)`` offsets that tile ``text`` (nupunkt, Punkt model).

    Spans are contiguous: whitespace between sentences belongs to the sentence before it, so
    joining the kept spans of consecutive sentences reproduces the original text exactly.
    """
    if not text:
        return []
    import nupunkt

    starts = sorted({start for start, _ in nupunkt.sent_spans(text) if 0 < start < len(text)})
    bounds = [0, *starts, len(text)]
    return list(itertools.pairwise(bounds))


def trimmed_sentence_spans(text: str) -> list[Interval]:
    """Sentence spans without their surrounding whitespace (empty ones dropped)."""
    trimmed = []
    for start, end in sentence_spans(text):
        piece = text[start:end]
        left = len(piece) - len(piece.lstrip())
        right = len(piece.rstrip())
        if right > left:
            trimmed.append((start + left, start + right))
    return trimmed


def word_spans(text: str) -> list[Interval]:
    """Words (letters/digits with inner hyphens, apostrophes, dots) and single punctuation marks."""
    return [match.span() for match in _WORD.finditer(text)]


def align_tokens_to_words(
    token_offsets: Sequence[Interval] | np.ndarray, words: Sequence[Interval]
) -> np.ndarray:
    """For each sub-word token, the index of its word, or -1 (whitespace only).

    A token spanning several words (``"%."``) goes to the last of them.
    """
    if not len(token_offsets):
        return np.zeros(0, dtype=np.int64)
    tokens = np.asarray(token_offsets, dtype=np.int64).reshape(-1, 2)
    if not len(words):
        return np.full(len(tokens), -1, dtype=np.int64)
    word_array = np.asarray(words, dtype=np.int64)
    # A token belongs to the last word starting at or before its last character.
    last_char = np.maximum(tokens[:, 1] - 1, tokens[:, 0])
    index = np.searchsorted(word_array[:, 0], last_char, side="right") - 1
    valid = index >= 0
    overlaps = np.zeros(len(tokens), dtype=bool)
    overlaps[valid] = (word_array[index[valid], 1] > tokens[valid, 0]) & (
        word_array[index[valid], 0] < tokens[valid, 1]
    )
    return np.where(overlaps, index, -1)


def token_spans(
    text: str, token_offsets: Sequence[Interval] | np.ndarray
) -> tuple[list[Interval], np.ndarray]:
    """Sub-word tokens as units: their spans without surrounding whitespace, and for each token
    the index of its span (-1: whitespace only). Offsets come in order, as tokenizers give them;
    tokens sharing characters (one character split over several byte-level tokens) share one
    span, so spans never overlap."""
    spans: list[Interval] = []
    owner = np.full(len(token_offsets), -1, dtype=np.int64)
    for index, (start, end) in enumerate(np.asarray(token_offsets).reshape(-1, 2).tolist()):
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if start == end:
            continue
        if spans and start < spans[-1][1]:
            spans[-1] = (min(start, spans[-1][0]), max(end, spans[-1][1]))
        else:
            spans.append((start, end))
        owner[index] = len(spans) - 1
    return spans, owner


def aggregate_to_words(
    token_values: np.ndarray,
    token_to_word: np.ndarray,
    num_words: int,
    how: Literal["mean", "first", "sum", "max"] = "mean",
) -> np.ndarray:
    """Pool token-level values into word-level values (vectorised; words with no token get NaN)."""
    values = np.asarray(token_values, dtype=np.float64)
    mask = token_to_word >= 0
    words, values = token_to_word[mask], values[mask]
    out = np.full(num_words, np.nan)
    if not len(words):
        return out
    if how == "sum" or how == "mean":
        sums = np.bincount(words, weights=values, minlength=num_words)
        if how == "sum":
            return np.where(np.bincount(words, minlength=num_words) > 0, sums, np.nan)
        counts = np.bincount(words, minlength=num_words)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    if how == "first":
        first = np.unique(words, return_index=True)
        out[first[0]] = values[first[1]]
        return out
    if how == "max":
        np.fmax.at(out, words, values)
        return out
    raise ValueError(f"how must be one of mean, first, sum, max; got {how!r}")


def check_protect(kinds: str | Sequence[str]) -> tuple[str, ...]:
    """Validate a compressor's ``protect`` argument: kinds of :data:`PROTECT_KINDS`."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    unknown = set(kinds) - set(PROTECT_KINDS)
    if unknown:
        raise ValueError(f"unknown protect kinds {sorted(unknown)}; known: {PROTECT_KINDS}")
    return kinds


def protected_spans(
    text: str,
    *,
    force_tokens: Iterable[str] = (),
    code: bool = True,
    json: bool = True,
    urls: bool = True,
    numbers: bool = True,
) -> list[Interval]:
    """Spans a lossy compressor must never drop: code, JSON, URLs, e-mails, numbers, forced strings.

    Returned merged and sorted. ``force_tokens`` are literal strings (matched case-sensitively).
    """
    spans: list[Interval] = []
    if code:
        spans += [m.span() for m in _FENCED_CODE.finditer(text)]
        spans += [m.span() for m in _INLINE_CODE.finditer(text)]
    if json:
        spans += _json_spans(text)
    if urls:
        spans += [m.span() for m in _URL.finditer(text)]
        spans += [m.span() for m in _EMAIL.finditer(text)]
    if numbers:
        spans += [m.span() for m in _NUMBER.finditer(text)]
    for token in force_tokens:
        if not isinstance(token, str) or not token:
            raise ValueError(f"force_tokens must be non-empty strings, got {token!r}")
        spans += [m.span() for m in re.finditer(re.escape(token), text)]
    return merge_intervals(spans)


def merge_intervals(spans: Iterable[Interval]) -> list[Interval]:
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(start, end) for start, end in merged]


def overlaps_any(units: Sequence[Interval], spans: Sequence[Interval]) -> np.ndarray:
    """For each unit, whether it overlaps one of the (merged, sorted) ``spans``."""
    if not len(units):
        return np.zeros(0, dtype=bool)
    if not spans:
        return np.zeros(len(units), dtype=bool)
    unit_array = np.asarray(units, dtype=np.int64)
    span_array = np.asarray(spans, dtype=np.int64)
    # The last span starting before the unit ends is the only candidate once spans are merged.
    index = np.searchsorted(span_array[:, 0], unit_array[:, 1], side="left") - 1
    valid = index >= 0
    result = np.zeros(len(units), dtype=bool)
    result[valid] = span_array[index[valid], 1] > unit_array[valid, 0]
    return result


def _json_spans(text: str) -> list[Interval]:
    """Objects and arrays that parse as JSON (at least one key or two items, to skip "[1]")."""
    decoder = JSONDecoder()
    spans: list[Interval] = []
    position = 0
    while True:
        match = _JSON_OPEN.search(text, position)
        if match is None:
            return spans
        start = match.start()
        try:
            value, end = decoder.raw_decode(text, start)
        except ValueError:
            position = start + 1
            continue
        if (isinstance(value, dict) and value) or (isinstance(value, list) and len(value) > 1):
            spans.append((start, end))
            position = end
        else:
            position = start + 1
