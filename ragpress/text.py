"""Text utilities every compressor shares: sentences, words, sub-word alignment, protected spans.

All functions work on character offsets into the original text, so whatever a compressor keeps
can be cut out of the input verbatim (extractive output, provenance for free).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from typing import Literal

import numpy as np

Interval = tuple[int, int]

_URL = re.compile(r"(?:https?|ftp)://[^\s<>\"'`]+|www\.[^\s<>\"'`]+", re.IGNORECASE)
# The look-behind lets a match start only where a run of address characters starts: without
# it the engine rescans a long word from every position (quadratic: 128 s on a 200k word).
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NUMBER = re.compile(r"[-+]?[$€£¥]?\d(?:[\d,.:/]*\d)?(?:%|st|nd|rd|th)?")
_FENCED_CODE = re.compile(r"```.*?(?:```|\Z)", re.DOTALL)
_INLINE_CODE = re.compile(r"`[^`\n]+`")
_JSON_TOKEN = re.compile(r'[][{}"\n]')
_CLOSER = {"]": "[", "}": "{"}
#: Deeper brackets than this are not parsed as JSON (json recurses per level).
MAX_JSON_DEPTH = 200
#: Sentence units longer than this many characters are cut at clauses, then spaces, then
#: anywhere (one-line JSON, tables, CJK without punctuation): a sentence filter must not read
#: an 8k-token line as one unit.
MAX_UNIT_CHARS = 600
#: Word units longer than this many characters are cut (see :func:`word_spans`).
MAX_WORD_CHARS = 64
_CLAUSE_MARKS = (",", ";", ":", ")", "]", "}", "，", "、", "；", "：", "。", "！", "？")
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
    bounds = [0, *(start for start in starts if not _false_break(text, start)), len(text)]
    return list(itertools.pairwise(bounds))


#: A period after one letter (an initial, "U . S .", "i . e .") or after a number that another
#: number follows ("91 . 3"): Punkt breaks there in pre-tokenized text (SQuAD, PTB style),
#: cutting names, decimals and citations in two.
_SHORT_BEFORE_PERIOD = re.compile(r"(?:^|[\s(\[])(?P<token>[^\W\d_]|\d+)\s?\.\s*$")


def _false_break(text: str, start: int) -> bool:
    """Whether Punkt's boundary before ``start`` is no sentence end: the next sentence starts
    with a lower-case letter, or the previous one ends in a period after a lone letter (or after
    a number, with a digit next)."""
    head = text[start : start + 1]
    if head.islower():
        return True
    before = _SHORT_BEFORE_PERIOD.search(text, max(0, start - 40), start)
    if before is None:
        return False
    return not before["token"].isdigit() or head.isdigit()


def trimmed_sentence_spans(text: str, max_chars: int | None = MAX_UNIT_CHARS) -> list[Interval]:
    """Sentence spans without their surrounding whitespace (empty ones dropped); a sentence
    longer than ``max_chars`` is cut into pieces (see :func:`cap_span`)."""
    trimmed = []
    for start, end in sentence_spans(text):
        pieces = [(start, end)] if max_chars is None else cap_span(text, start, end, max_chars)
        for begin, stop in pieces:
            piece = text[begin:stop]
            left = len(piece) - len(piece.lstrip())
            right = len(piece.rstrip())
            if right > left:
                trimmed.append((begin + left, begin + right))
    return trimmed


def cap_span(text: str, start: int, end: int, max_chars: int = MAX_UNIT_CHARS) -> list[Interval]:
    """``[start, end)`` cut into consecutive pieces of at most ``max_chars`` characters: after
    the last clause mark in reach (``, ; :`` and their CJK forms, closing brackets), else at the
    last whitespace, else anywhere but before a combining mark. Linear in the span's length."""
    if max_chars < 8:
        raise ValueError(f"max_chars must be >= 8, got {max_chars}")
    pieces = []
    while end - start > max_chars:
        window = text[start : start + max_chars]
        cut = _last_clause_end(window, max_chars // 4)
        if cut is None:
            space = max((window.rfind(c) for c in " \t\n"), default=-1)
            cut = space if space > max_chars // 4 else max_chars
            while cut > 1 and unicodedata.combining(text[start + cut]):
                cut -= 1  # never split a letter from its accent
        pieces.append((start, start + cut))
        start += cut
    pieces.append((start, end))
    return pieces


def _last_clause_end(window: str, minimum: int) -> int | None:
    """Just after the last clause mark of ``window`` that leaves at least ``minimum`` chars."""
    best = max(window.rfind(mark) for mark in _CLAUSE_MARKS)
    return best + 1 if best + 1 > minimum else None


#: Where a sentence may be cut into clauses: whitespace after ``, ; :`` and before an opening
#: bracket; but not inside a number written "10 , 000" (pre-tokenized text, as in SQuAD).
_CLAUSE_CUT = re.compile(r"(?<=[,;:])\s+|\s+(?=[(\[])")
_DIGIT_MARK = re.compile(r"\d ?[,:.]$")


def clause_spans(text: str, start: int, end: int, min_words: int = 4) -> list[Interval]:
    """``[start, end)`` (a sentence without its surrounding whitespace) cut into clauses, each
    without the whitespace between them; a clause of fewer than ``min_words`` words joins the
    one before it (the first one, the next), so no fragment is too short to read."""
    if min_words < 1:
        raise ValueError(f"min_words must be >= 1, got {min_words}")
    if start >= end:
        return []
    cuts = [
        match.span()
        for match in _CLAUSE_CUT.finditer(text, start, end)
        if not _inside_number(text, *match.span())
    ]
    bounds = [start, *(after for _, after in cuts)]
    ends = [*(before for before, _ in cuts), end]
    clauses: list[Interval] = []
    for begin, stop in zip(bounds, ends, strict=True):
        short = len(text[begin:stop].split()) < min_words
        if clauses and (short or len(text[slice(*clauses[-1])].split()) < min_words):
            clauses[-1] = (clauses[-1][0], stop)
        else:
            clauses.append((begin, stop))
    return clauses


def _inside_number(text: str, before: int, after: int) -> bool:
    """Whether the whitespace ``[before, after)`` sits in a number: "10 , 000", "12 : 30"."""
    return text[after : after + 1].isdigit() and bool(
        _DIGIT_MARK.search(text, max(0, before - 3), before)
    )


def word_spans(text: str, max_chars: int = MAX_WORD_CHARS) -> list[Interval]:
    """Words (letters/digits with inner hyphens, apostrophes, dots) and single punctuation marks,
    each with the combining marks that follow it (an accent is never cut from its letter). A
    run longer than ``max_chars`` (CJK or Thai without spaces, a hash, base64) is cut into
    pieces of that length, as over-long sentences are: a budget smaller than one giant "word"
    would otherwise keep nothing of it."""
    spans = []
    for match in _word_pattern().finditer(text):
        start, end = match.span()
        spans += (
            [(start, end)] if end - start <= max_chars else cap_span(text, start, end, max_chars)
        )
    return spans


@functools.cache
def _word_pattern() -> re.Pattern[str]:
    r"""``\w`` leaves out combining marks (Unicode category M: accents, vowel signs), so they
    are added to the word characters here; built once, on first use, from a scan of the planes
    that hold marks (0-3 and the variation selectors of plane 14)."""
    ranges = []
    for low, high in ((0, 0x40000), (0xE0000, 0xE1000)):
        start = None
        for code in range(low, high + 1):  # one past the end closes an open range
            is_mark = code < high and unicodedata.category(chr(code))[0] == "M"
            if is_mark and start is None:
                start = code
            elif not is_mark and start is not None:
                ranges.append(f"{re.escape(chr(start))}-{re.escape(chr(code - 1))}")
                start = None
    marks = f"[{''.join(ranges)}]"
    letters = rf"(?:\w|{marks})+"
    return re.compile(rf"{letters}(?:[-'’.]{letters})*|[^\w\s]{marks}*")


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


def overlaps_any(units: Sequence[Interval] | np.ndarray, spans: Sequence[Interval]) -> np.ndarray:
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
    """Objects and arrays that parse as JSON (at least one key or two items, to skip "[1]").

    Linear time, no recursion: one scan finds the balanced bracket regions; each outermost one is
    parsed once, and a region that fails is searched for JSON inside it at most two levels down.
    """
    spans: list[Interval] = []
    covered = 0  # end of the last JSON span
    failed: list[int] = []  # ends of the enclosing failed regions
    for start, end, depth in sorted(_bracket_regions(text)):
        if start < covered:
            continue
        while failed and failed[-1] <= start:
            failed.pop()
        if len(failed) >= 2:
            continue
        # "[0,0]" is the shortest block worth keeping; deep nesting is not parsed at all.
        if end - start >= 5 and depth <= MAX_JSON_DEPTH and _is_json_block(text[start:end]):
            spans.append((start, end))
            covered = end
        else:
            failed.append(end)
    return spans


def _is_json_block(piece: str) -> bool:
    try:
        value = json.loads(piece)
    except ValueError:
        return False
    return (isinstance(value, dict) and bool(value)) or (isinstance(value, list) and len(value) > 1)


def _bracket_regions(text: str) -> list[tuple[int, int, int]]:
    """Balanced ``[...]`` / ``{...}`` regions as ``(start, end, nesting depth inside)``.

    Quotes open a string only where JSON allows one (after ``[ { , :``), so an apostrophe or a
    stray quote in prose does not swallow the text after it; a string never spans a newline.
    """
    regions: list[tuple[int, int, int]] = []
    stack: list[list[int]] = []  # [position, opener, deepest nesting inside]
    string_from = -1
    for match in _JSON_TOKEN.finditer(text):
        position, char = match.start(), match.group()
        if string_from >= 0:
            if char == '"' and _unescaped(text, string_from, position):
                string_from = -1
            elif char == "\n":
                stack, string_from = [], -1
            continue
        if char in "[{":
            stack.append([position, ord(char), 0])
        elif char in "]}":
            if not stack or stack[-1][1] != ord(_CLOSER[char]):
                stack = []
                continue
            start, _, depth = stack.pop()
            regions.append((start, position + 1, depth + 1))
            if stack:
                stack[-1][2] = max(stack[-1][2], depth + 1)
        elif char == '"' and stack and _string_may_start(text, position):
            string_from = position + 1
    return regions


def _string_may_start(text: str, position: int) -> bool:
    before = position - 1
    while before >= 0 and text[before] in " \t\r\n":
        before -= 1
    return before >= 0 and text[before] in "[{,:"


def _unescaped(text: str, start: int, position: int) -> bool:
    """Whether the quote at ``position`` closes a string opened at ``start`` (an even number
    of backslashes before it)."""
    slashes = 0
    while position - 1 - slashes >= start and text[position - 1 - slashes] == "\\":
        slashes += 1
    return slashes % 2 == 0
