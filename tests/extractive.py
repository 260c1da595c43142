"""What "extractive" means, checked from the texts alone (no trust in a result's provenance).

An output is extractive when it is ``p1 s1 p2 s2 ... pn``: the ``pi`` are substrings of the input
at increasing, non-overlapping offsets, and each separator ``si`` is the input's own text between
``pi`` and ``pi+1`` when they touch, else whitespace (a space, the original whitespace, or the
document separator). Equivalently: the output's whitespace-separated tokens occur in the input in
order, none overlapping the one before, and none ends inside a letter+accent cluster (an accent
cut from its letter changes the word). An output with text the input never had (two neighbours
fused over a dropped character, a cut accent) fails.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from ragpress.types import DOCUMENT_SEPARATOR


def extractive_failure(documents: Sequence[str], output: str) -> str | None:
    """None when ``output`` is extractive from ``documents`` (joined as a request joins them),
    else the first output token that is not."""
    source = DOCUMENT_SEPARATOR.join(documents)
    cursor = 0
    for token in output.split():
        found = source.find(token, cursor)
        while found >= 0 and _cuts_a_cluster(source, found, found + len(token)):
            found = source.find(token, found + 1)
        if found < 0:
            return token
        cursor = found + len(token)
    return None


def assert_extractive_text(documents: Sequence[str], output: str) -> None:
    failure = extractive_failure(documents, output)
    assert failure is None, f"output token {failure!r} is not in the input (in order): {output!r}"


def _cuts_a_cluster(source: str, start: int, end: int) -> bool:
    """Whether ``[start, end)`` starts or stops between a letter and its combining mark."""
    return bool(
        (end < len(source) and unicodedata.combining(source[end]))
        or (start > 0 and unicodedata.combining(source[start]))
    )
