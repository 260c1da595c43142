"""Lossless meta-token compression ("Lossless Token Sequence Compression via Meta-Tokens", 2025).

Repeated runs of tokens are replaced by meta-tokens defined once in a dictionary in front of the
sequence. Two renderings, both exactly reversible:

* **ids**: token ids, with ids ``>= meta_base`` reserved: ``meta_base`` ends the dictionary and
  ``meta_base + 1 + k`` is meta-token ``k``. Layout: ``[m0, run0..., m1, run1..., SEP, body...]``;
  a sequence without reserved ids is its own encoding. For models fine-tuned on the format.
* **text**: what an off-the-shelf LLM can read::

      «meta 2»
      «1=the repeated text»
      «2=another repeated text»
      body where «1» and «2» stand for their entries

  The two marker characters are chosen among ones absent from the input, so nothing in the
  input can be mistaken for a placeholder; input that already looks like a header is framed with
  an empty dictionary. Runs are found over the target tokenizer's tokens (as pieces of text).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragpress.base import Compressor
from ragpress.compressors._repeats import Repeats, find_repeats
from ragpress.registry import register
from ragpress.types import CompressionRequest, CompressionResult, Span

# Cheapest first: « and » cost one byte-level BPE token each in common LLM vocabularies.
MARKER_PAIRS = (("«", "»"), ("‹", "›"), ("⟦", "⟧"), ("【", "】"), ("\ue000", "\ue001"))
_HEADER = re.compile(r"(.)meta ([0-9]+)(.)\n", re.DOTALL)
_HEADER_LIKE = re.compile(r"meta [0-9]+.\n", re.DOTALL)


@dataclass(frozen=True)
class MetaTokenIds:
    """The ids rendering: the encoded sequence and where its reserved ids start."""

    ids: list[int]
    meta_base: int
    entries: int


def compress_ids(ids: Sequence[int], meta_base: int, *, max_run: int = 512) -> MetaTokenIds:
    """Encode token ids; every id must be below ``meta_base`` (ids above it are meta-tokens)."""
    codes = np.asarray(ids, dtype=np.int64).reshape(-1)
    if len(codes) and (codes.min() < 0 or codes.max() >= meta_base):
        raise ValueError(f"token ids must lie in [0, meta_base={meta_base})")
    plan = _Plan(find_repeats(codes, max_run=max_run), len(codes))
    if not plan.entries:
        return MetaTokenIds(codes.tolist(), meta_base, 0)
    dictionary: list[int] = []
    for index, (start, length) in enumerate(plan.entry_spans()):
        dictionary.append(meta_base + 1 + index)
        dictionary.extend(codes[start : start + length].tolist())
    body = np.where(plan.symbol >= 0, meta_base + 1 + plan.symbol, codes[plan.kept])
    encoded = [*dictionary, meta_base, *body.tolist()]
    if len(encoded) >= len(codes):  # the separator ate the whole saving
        return MetaTokenIds(codes.tolist(), meta_base, 0)
    return MetaTokenIds(encoded, meta_base, plan.entries)


def decompress_ids(ids: Sequence[int], meta_base: int) -> list[int]:
    """Invert :func:`compress_ids`, strictly: what it cannot have produced raises ValueError."""
    ids = list(ids)
    try:
        separator = ids.index(meta_base)
    except ValueError:
        if any(i > meta_base for i in ids):
            raise ValueError("meta-tokens without a dictionary separator") from None
        return ids
    entries: dict[int, list[int]] = {}
    current: list[int] = []
    for token in ids[:separator]:
        if token > meta_base:
            expected = meta_base + 1 + len(entries)
            if token != expected:
                raise ValueError(f"dictionary entry {token} out of order: expected {expected}")
            current = entries.setdefault(token, [])
        elif not entries:
            raise ValueError("the dictionary must start with a meta-token")
        else:
            current.append(token)
    if any(len(run) < 2 for run in entries.values()):
        raise ValueError("a dictionary entry holds fewer than two tokens")
    output: list[int] = []
    used: set[int] = set()
    for token in ids[separator + 1 :]:
        if token == meta_base:
            raise ValueError("a second dictionary separator in the body")
        if token > meta_base:
            if token not in entries:
                raise ValueError(f"meta-token {token} is not in the dictionary")
            used.add(token)
            output.extend(entries[token])
        else:
            output.append(token)
    if used != set(entries):
        raise ValueError(f"dictionary entries {sorted(set(entries) - used)} are never used")
    return output


def compress_text(
    text: str,
    pieces: Sequence[str],
    *,
    markers: tuple[str, str] | None = None,
    ref_cost: int = 4,
    def_cost: int = 6,
    max_run: int = 512,
) -> tuple[str, int]:
    """Render ``text`` (cut into ``pieces`` that concatenate to it) with a text dictionary.

    ``ref_cost`` / ``def_cost`` are the token costs of a placeholder and of an entry's framing,
    so only runs that save target tokens are replaced. Returns the rendering and entry count.
    """
    if "".join(pieces) != text:
        raise ValueError("pieces must concatenate to the text")
    opening, closing = markers or choose_markers(text)
    if opening in text or closing in text or len(opening) != 1 or len(closing) != 1:
        raise ValueError("markers must be two single characters absent from the text")
    table: dict[str, int] = {}
    codes = np.fromiter(
        (table.setdefault(piece, len(table)) for piece in pieces), dtype=np.int64, count=len(pieces)
    )
    plan = _Plan(
        find_repeats(codes, ref_cost=ref_cost, def_cost=def_cost, max_run=max_run), len(codes)
    )
    if not plan.entries and not looks_like_header(text):
        return text, 0
    header = [f"{opening}meta {plan.entries}{closing}\n"]
    for index, (start, length) in enumerate(plan.entry_spans(), start=1):
        header.append(f"{opening}{index}={''.join(pieces[start : start + length])}{closing}\n")
    body = [
        pieces[position] if symbol < 0 else f"{opening}{symbol + 1}{closing}"
        for position, symbol in zip(plan.kept.tolist(), plan.symbol.tolist(), strict=True)
    ]
    return "".join(header) + "".join(body), plan.entries


def decompress_text(rendered: str) -> str:
    """Invert :func:`compress_text`; text without a header is returned as it is.

    Strict: a header, dictionary or body that :func:`compress_text` cannot have produced (a
    marker character outside a placeholder, an unknown, unused or out-of-order entry, a
    truncated rendering) raises ValueError instead of decoding to something else."""
    header = _HEADER.match(rendered)
    if header is None:
        return rendered
    opening, digits, closing = header.group(1), header.group(2), header.group(3)
    if opening == closing or opening.isspace() or closing.isspace() or opening.isalnum():
        raise ValueError(f"malformed meta-token header {header.group(0)!r}")
    _check_number(digits, "entry count")
    count, position = int(digits), header.end()
    entries: list[str] = []
    for index in range(1, count + 1):
        prefix = f"{opening}{index}="
        end = rendered.find(closing, position)
        if not rendered.startswith(prefix, position) or end < 0:
            raise ValueError(f"malformed or missing meta-token dictionary entry {index}")
        entry = rendered[position + len(prefix) : end]
        if not entry or opening in entry or not rendered.startswith(closing + "\n", end):
            raise ValueError(f"malformed meta-token dictionary entry {index}")
        entries.append(entry)
        position = end + len(closing) + 1
    output: list[str] = []
    first_uses: list[int] = []
    cursor = position
    for match in re.finditer(re.escape(opening) + r"([0-9]+)" + re.escape(closing), rendered):
        if match.start() < position:
            continue
        output.append(_literal(rendered[cursor : match.start()], opening, closing))
        _check_number(match.group(1), "placeholder")
        index = int(match.group(1))
        if not 1 <= index <= count:
            raise ValueError(f"placeholder {match.group(0)} is not in the dictionary")
        if index not in first_uses:
            first_uses.append(index)
        output.append(entries[index - 1])
        cursor = match.end()
    output.append(_literal(rendered[cursor:], opening, closing))
    if first_uses != list(range(1, count + 1)):
        raise ValueError("dictionary entries are unused or not in order of first use")
    return "".join(output)


def _literal(text: str, opening: str, closing: str) -> str:
    """Body text between placeholders: the markers never occur in it."""
    if opening in text or closing in text:
        raise ValueError("a marker character outside a placeholder: not a valid rendering")
    return text


def _check_number(digits: str, what: str) -> None:
    if len(digits) > 1 and digits.startswith("0"):
        raise ValueError(f"malformed meta-token {what} {digits!r}")


def looks_like_header(text: str) -> bool:
    """Whether ``text`` starts like a rendering (and so must be framed to round-trip)."""
    return _HEADER.match(text) is not None


def choose_markers(text: str) -> tuple[str, str]:
    """The first marker pair whose characters do not occur in ``text`` (private use as fallback)."""
    present = set(text)
    for opening, closing in MARKER_PAIRS:
        if opening not in present and closing not in present:
            return opening, closing
    free = (chr(c) for c in range(0xF0000, 0xFFFFE) if chr(c) not in present)
    return next(free), next(free)


class _Plan:
    """Where the repeats go: dictionary entries in order of first use, and the body layout.

    ``kept`` are the sequence positions that stay in the body (literals and the first slot of
    each use); ``symbol[i]`` is the entry index standing at ``kept[i]``, or -1 for a literal.
    """

    def __init__(self, repeats: list[Repeats], size: int) -> None:
        firsts = [found.first_positions() for found in repeats]
        first = np.concatenate([np.zeros(0, dtype=np.int64), *firsts])
        lengths = np.concatenate(
            [np.zeros(0, dtype=np.int64)]
            + [np.full(found.groups, found.length, dtype=np.int64) for found in repeats]
        )
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        self.entries = len(order)
        self._first, self._lengths = first[order], lengths[order]

        keep = np.ones(size, dtype=bool)
        symbol_at = np.full(size, -1, dtype=np.int64)
        offset = 0
        for found in repeats:
            keep[found.covered()] = False
            keep[found.positions] = True  # a use's first slot holds its symbol
            symbol_at[found.positions] = rank[offset + found.group]
            offset += found.groups
        self.kept = np.flatnonzero(keep)
        self.symbol = symbol_at[self.kept]

    def entry_spans(self) -> list[tuple[int, int]]:
        return list(zip(self._first.tolist(), self._lengths.tolist(), strict=True))


@register("metatoken", aliases=("lossless", "meta-token"))
class MetaTokenCompressor(Compressor):
    """Lossless: ``decompress(result.text) == context`` always. Budgets do not apply (nothing is
    dropped); ``rate`` and ``target_tokens`` are validated, then not enforced."""

    def __init__(self, *, target_tokenizer=None, max_run: int = 512) -> None:
        super().__init__(target_tokenizer=target_tokenizer)
        if max_run < 2:
            raise ValueError(f"max_run must be >= 2, got {max_run}")
        self.max_run = max_run
        self._marker_costs: dict[tuple[str, str], tuple[int, int]] = {}

    @property
    def settings(self) -> dict:
        return {**super().settings, "max_run": self.max_run, "rendering": "text"}

    def decompress(self, text: str) -> str:
        """The original context back from a result's ``text`` (or one of its ``documents``)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be str, got {type(text).__name__}")
        return decompress_text(text)

    def framing_tokens(self, text: str) -> int:
        """Tokens an extract of ``text`` may grow by when packed: text that starts like a
        rendering is framed with an empty dictionary's header (0 when no extract can start so).
        A pipeline leaves this room under its budget."""
        if _HEADER_LIKE.search(text) is None:
            return 0
        pairs = (*MARKER_PAIRS, choose_markers(text))
        return 1 + max(self.tokenizer.count(f"{o}meta 0{c}\n") for o, c in pairs)

    def compress_ids(self, text: str) -> MetaTokenIds:
        """The ids rendering of ``text`` in the target tokenizer (meta ids above its vocabulary)."""
        return compress_ids(self.tokenizer.encode(text), self._meta_base(), max_run=self.max_run)

    def decompress_ids(self, encoded: MetaTokenIds) -> list[int]:
        return decompress_ids(encoded.ids, encoded.meta_base)

    def _meta_base(self) -> int:
        size = getattr(self.tokenizer, "vocab_size", None)
        if size is None:
            raise TypeError("the ids rendering needs a target tokenizer with a vocab_size")
        return size

    def _compress(self, request: CompressionRequest) -> CompressionResult:
        text, original, compressed = self._render(request.context)
        documents = [self._render(doc)[0] for doc in request.documents] if request.is_list else None
        return CompressionResult(
            text=text,
            original_tokens=original,
            compressed_tokens=compressed,
            method=self.name,
            settings=self.settings,
            documents=documents,
            kept_spans=[Span(i, 0, len(doc)) for i, doc in enumerate(request.documents) if doc],
        )

    def _render(self, text: str) -> tuple[str, int, int]:
        """The rendering and the token counts of input and output.

        Falls back to the input itself when the rendering is not shorter (placeholders can
        re-tokenize worse than predicted at their edges); input that looks like a header keeps
        its framing, which decompression needs.
        """
        markers = choose_markers(text)
        ref_cost, def_cost = self._costs(markers)
        rendered, _ = compress_text(
            text,
            self.tokenizer.pieces(text),
            markers=markers,
            ref_cost=ref_cost,
            def_cost=def_cost,
            max_run=self.max_run,
        )
        original = self.tokenizer.count(text)
        compressed = self.tokenizer.count(rendered) if rendered is not text else original
        if compressed >= original and not looks_like_header(text):
            return text, original, original
        return rendered, original, compressed

    def _costs(self, markers: tuple[str, str]) -> tuple[int, int]:
        """Target tokens of a placeholder and of an entry's framing, for these markers."""
        if markers not in self._marker_costs:
            opening, closing = markers
            # +1: a placeholder often splits a merge its neighbours would have made.
            reference = self.tokenizer.count(f" {opening}12{closing}") + 1
            definition = self.tokenizer.count(f"{opening}12=") + self.tokenizer.count(
                f"{closing}\n"
            )
            self._marker_costs[markers] = (max(1, reference), max(1, definition))
        return self._marker_costs[markers]
