"""Token-classifier compression (LLMLingua-2): an encoder labels every word keep or drop.

An encoder with a token-classification head (label 1 = keep) reads the context in chunks of its
window, cut at sentence boundaries and run as one batch; the keep probability of each sub-word
token is pooled to the encoder's words (``mean`` or ``first`` sub-word, as LLMLingua-2), and the
words are kept by probability:

* ``policy="global"`` (default): one threshold over the whole input, chosen so the output meets
  the budget counted in the target tokenizer (LLMLingua computes a percentile per 512-token
  chunk, so its rate only holds locally);
* ``threshold=p``: keep the words with probability >= p, no fixed rate;
* ``policy="chunk"``: LLMLingua-2's own rule, for side-by-side comparisons: per chunk, keep the
  words above the ``1 - rate`` percentile of the probabilities weighted by target tokens.

Words are the encoder's pre-tokenizer words (BERT: split at spaces and punctuation; XLM-R: at
spaces), sub-words merged, so a word is never cut. Post-processing is numpy over arrays: the
encoder forward dominates the time. The default model, ``minilm-l6-keep``, is ragpress's own
classifier (``ragpress train token-classifier``), shipped in the package; any Hugging Face
token-classification checkpoint (e.g. ``microsoft/llmlingua-2-xlm-roberta-large-meetingbank``)
loads by hub id or folder.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ragpress import checks
from ragpress.model_compressor import ModelCompressor
from ragpress.onnx.models import TokenTagger
from ragpress.registry import register
from ragpress.selection import Units, render, scored_spans, unit_costs
from ragpress.text import (
    MAX_WORD_CHARS,
    PROTECT_KINDS,
    aggregate_to_words,
    cap_span,
    check_protect,
    overlaps_any,
    protected_spans,
    sentence_spans,
)
from ragpress.types import CompressionRequest, CompressionResult

DEFAULT_MODEL = "minilm-l6-keep"
_NON_SPACE = re.compile(r"\S+")
Policy = Literal["global", "chunk"]
Pooling = Literal["mean", "first"]


@dataclass
class EncodedDoc:
    """One document in encoder sub-words, with the encoder's words as character spans."""

    text: str
    ids: np.ndarray  # (T,) sub-word ids, no special tokens
    word: np.ndarray  # (T,) word index of each sub-word
    words: np.ndarray  # (W, 2) character spans of the words


def encode_words(tokenizer: Any, texts: Sequence[str]) -> list[EncodedDoc]:
    """Tokenize without special tokens; words come from the fast tokenizer's ``word_ids``."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("the token classifier needs a fast (Rust) tokenizer for word offsets")
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
    docs = []
    for index, text in enumerate(texts):
        ids = np.asarray(encoded["input_ids"][index], dtype=np.int64)
        offsets = np.asarray(encoded["offset_mapping"][index], dtype=np.int64).reshape(-1, 2)
        raw = np.asarray([-1 if w is None else w for w in encoded.word_ids(index)], dtype=np.int64)
        # Renumber 0..W-1 (a pre-token with no sub-word would leave a gap).
        _, word = np.unique(raw, return_inverse=True)
        words = np.zeros((int(word.max()) + 1 if len(word) else 0, 2), dtype=np.int64)
        if len(word):
            words[:, 0] = np.full(len(words), np.iinfo(np.int64).max)
            np.minimum.at(words[:, 0], word, offsets[:, 0])
            np.maximum.at(words[:, 1], word, offsets[:, 1])
        words = _cover_orphans(text, _trim_spans(text, words))
        word, words = _cap_words(text, offsets, word.astype(np.int64), words)
        docs.append(EncodedDoc(text, ids, word, words))
    return docs


def _cap_words(
    text: str, offsets: np.ndarray, word: np.ndarray, words: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Words longer than ``MAX_WORD_CHARS`` (Thai or CJK without spaces, which the encoder
    reads as one word, or one ``[UNK]``) cut into pieces, as :func:`ragpress.text.word_spans`
    cuts them; each sub-word goes to the piece its first character is in. A piece no sub-word
    starts in scores 0."""
    if not len(words) or int((words[:, 1] - words[:, 0]).max()) <= MAX_WORD_CHARS:
        return word, words
    pieces = [
        piece
        for start, end in words.tolist()
        for piece in cap_span(text, start, end, MAX_WORD_CHARS)  # one piece when short
    ]
    capped = np.asarray(pieces, dtype=np.int64)
    first_char = np.clip(offsets[:, 0], words[word, 0], words[word, 1] - 1)  # inside its word
    return np.searchsorted(capped[:, 0], first_char, side="right") - 1, capped


def _cover_orphans(text: str, words: np.ndarray) -> np.ndarray:
    """Stretch the words over the characters the encoder dropped (control and format
    characters, a BOM, combining accents its normaliser strips), so every non-space character
    belongs to a word: kept words then render as the input had them, never fused over a gap.

    A dropped run touching a word joins it; one standing alone joins the next word (the last
    word when none follows). A text of dropped characters only is one word (that no sub-word
    scores), so it is still there to keep."""
    if not len(words):
        runs = [match.span() for match in _NON_SPACE.finditer(text)]
        return np.asarray(runs[:1] and [(runs[0][0], runs[-1][1])], dtype=np.int64).reshape(-1, 2)
    last = len(words) - 1
    for gap in range(len(words) + 1):  # gap i lies before word i; gap W after the last word
        begin = int(words[gap - 1, 1]) if gap else 0
        stop = int(words[gap, 0]) if gap <= last else len(text)
        for run in _NON_SPACE.finditer(text, begin, stop):
            if gap and (run.start() == words[gap - 1, 1] or gap > last):
                words[gap - 1, 1] = max(int(words[gap - 1, 1]), run.end())
            else:
                words[gap, 0] = min(int(words[gap, 0]), run.start())
    return words


def _trim_spans(text: str, spans: np.ndarray) -> np.ndarray:
    """Offsets of some tokenizers include the space before a word ("▁word"): cut it off."""
    for row in np.flatnonzero([text[a:b] != text[a:b].strip() for a, b in spans.tolist()]):
        start, end = spans[row]
        piece = text[start:end]
        spans[row] = (start + len(piece) - len(piece.lstrip()), start + len(piece.rstrip()))
    return spans


def chunk_bounds(doc: EncodedDoc, max_tokens: int) -> list[tuple[int, int]]:
    """Sub-word ranges of at most ``max_tokens``, cut at sentence ends, else at word starts."""
    total = len(doc.ids)
    if total <= max_tokens:
        return [(0, total)] if total else []
    first_char = doc.words[doc.word, 0]
    word_start = np.concatenate([[True], doc.word[1:] != doc.word[:-1]])
    starts = np.asarray([a for a, _ in sentence_spans(doc.text)], dtype=np.int64)
    sentence = np.searchsorted(starts, first_char, side="right") - 1
    sentence_start = np.concatenate([[True], sentence[1:] != sentence[:-1]])
    bounds, begin = [], 0
    while begin < total:
        end = min(begin + max_tokens, total)
        if end < total:
            end = _last_cut(sentence_start, begin, end) or _last_cut(word_start, begin, end) or end
        bounds.append((begin, end))
        begin = end
    return bounds


def _last_cut(cuts: np.ndarray, begin: int, end: int) -> int | None:
    """The last position in (begin, end] where a new unit starts, or None."""
    found = np.flatnonzero(cuts[begin + 1 : end + 1])
    return begin + 1 + int(found[-1]) if len(found) else None


@register("token-classifier", aliases=("llmlingua2", "llmlingua-2"))
class TokenClassifierCompressor(ModelCompressor):
    """Model options: see ``ragpress.model_compressor``."""

    runner_class = TokenTagger
    default_model = DEFAULT_MODEL
    default_rate: float | None = 0.5

    def __init__(
        self,
        *,
        policy: Policy = "global",
        threshold: float | None = None,
        pooling: Pooling = "mean",
        max_length: int = 512,
        force_tokens: Sequence[str] = (),
        keep_digits: bool = False,
        protect: Sequence[str] = ("code", "json", "urls"),
        drop_consecutive: bool = False,
        document_rate: float | None = None,
        **options: Any,
    ) -> None:
        self.policy = checks.choice(policy, ("global", "chunk"), "policy")
        self.pooling = checks.choice(pooling, ("mean", "first"), "pooling")
        self.threshold = checks.fraction(threshold, "threshold", low_open=False)
        if threshold is not None and policy == "chunk":
            raise ValueError("threshold mode and policy='chunk' exclude each other")
        if threshold is not None:
            self.default_rate = None  # threshold mode: no fixed rate
        self.document_rate = checks.fraction(document_rate, "document_rate")
        max_length = checks.integer(max_length, "max_length", at_least=8)
        self.force_tokens = checks.strings(force_tokens, "force_tokens")
        protected_spans("", force_tokens=self.force_tokens)  # validates them
        self.protect = check_protect(protect)
        keep_digits = checks.boolean(keep_digits, "keep_digits")
        drop_consecutive = checks.boolean(drop_consecutive, "drop_consecutive")
        if keep_digits and "numbers" not in self.protect:
            self.protect = (*self.protect, "numbers")
        self.keep_digits, self.drop_consecutive = keep_digits, drop_consecutive
        super().__init__(**options)
        self.max_length = self.encoder_window(max_length)
        self._cls, self._sep = _special_ids(self.runner.tokenizer)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            **super().settings,
            "policy": self.policy,
            "threshold": self.threshold,
            "pooling": self.pooling,
            "max_length": self.max_length,
            "force_tokens": list(self.force_tokens),
            "protect": list(self.protect),
            "drop_consecutive": self.drop_consecutive,
            "document_rate": self.document_rate,
        }

    # -- model ---------------------------------------------------------------------------

    def word_probabilities(self, texts: Sequence[str]) -> list[tuple[EncodedDoc, np.ndarray]]:
        """Each text's encoder words and their keep probabilities, chunks of all texts batched."""
        docs = encode_words(self.runner.tokenizer, texts)
        body = self.max_length - len(self._cls) - len(self._sep)
        jobs = [(d, a, b) for d, doc in enumerate(docs) for a, b in chunk_bounds(doc, body)]
        logits = self.runner.logits(
            [[*self._cls, *docs[d].ids[a:b].tolist(), *self._sep] for d, a, b in jobs]
        )
        token_probs = [np.zeros(len(doc.ids)) for doc in docs]
        for (d, a, b), chunk in zip(jobs, logits, strict=True):
            token_probs[d][a:b] = _keep_probability(chunk[len(self._cls) : len(self._cls) + b - a])
        out = []
        for doc, probs in zip(docs, token_probs, strict=True):
            words = aggregate_to_words(probs, doc.word, len(doc.words), self.pooling)
            out.append((doc, np.nan_to_num(words, nan=0.0)))
        return out

    # -- compression ---------------------------------------------------------------------

    def _compress_batch(self, requests: Sequence[CompressionRequest]) -> list[CompressionResult]:
        pairs = [
            (i, j)
            for i, request in enumerate(requests)
            for j, doc in enumerate(request.documents)
            if doc
        ]
        scored = self.word_probabilities([requests[i].documents[j] for i, j in pairs])
        return [
            self._compress_one(
                request, [(j, s) for (r, j), s in zip(pairs, scored, strict=True) if r == i]
            )
            for i, request in enumerate(requests)
        ]

    def _compress_one(
        self, request: CompressionRequest, parts: list[tuple[int, tuple[EncodedDoc, np.ndarray]]]
    ) -> CompressionResult:
        units = Units.concat([self._units(index, doc, probs) for index, (doc, probs) in parts])
        original = self.tokenizer.count(request.context)
        budget = request.token_budget(original, self.default_rate)
        if self.document_rate is not None and len(parts) > 1:
            _filter_documents(units, self.document_rate)
        if self.policy == "chunk":
            # The request's own rate when given: int(100 (1 - rate) + 1) is sensitive to it.
            rate = request.rate or (1.0 if budget is None else min(1.0, budget / max(original, 1)))
            keep = self._chunk_policy(request, parts, units, rate)
            return self._chunk_result(request, units, keep, original)
        units = units.take(np.isfinite(units.score) | units.forced)
        if self.threshold is not None:
            units = units.take((units.score >= self.threshold) | units.forced)
            if budget is None:
                return self.keep_best(request, units, original=original, threshold=-np.inf)
        return self.keep_best(request, units, original=original, budget=budget)

    def _units(self, index: int, doc: EncodedDoc, probs: np.ndarray) -> Units:
        spans = doc.words
        protected = protected_spans(
            doc.text,
            force_tokens=self.force_tokens,
            **{kind: kind in self.protect for kind in PROTECT_KINDS},
        )
        forced = overlaps_any([tuple(s) for s in spans.tolist()], protected)
        score = probs.astype(np.float64).copy()
        if self.drop_consecutive and self.force_tokens:
            repeat = _consecutive_forced_repeats(doc.text, spans, self.force_tokens)
            forced &= ~repeat
            score[repeat] = -np.inf
        doc_index = np.full(len(spans), index, dtype=np.int64)
        return Units(doc_index, spans[:, 0].copy(), spans[:, 1].copy(), score, forced)

    def _chunk_policy(
        self,
        request: CompressionRequest,
        parts: list[tuple[int, tuple[EncodedDoc, np.ndarray]]],
        units: Units,
        rate: float,
    ) -> np.ndarray:
        """LLMLingua-2's rule: per encoder chunk, keep words above the ``int(100 (1 - rate) + 1)``
        percentile of word probabilities repeated once per target token; forced words count
        as probability 1."""
        body = self.max_length - len(self._cls) - len(self._sep)
        keep = np.zeros(len(units), dtype=bool)
        probs = np.where(units.forced, 1.0, units.score)
        spans = zip(units.doc.tolist(), units.start.tolist(), units.end.tolist(), strict=True)
        # LLMLingua-2 counts each word as the encoder sees it (normalised: lowercased for
        # uncased BERT), alone, in the target tokenizer.
        normalizer = getattr(self.runner.tokenizer.backend_tokenizer, "normalizer", None)
        texts = [request.documents[d][a:b] for d, a, b in spans]
        if normalizer is not None:
            texts = [normalizer.normalize_str(text) or text for text in texts]
        costs = np.maximum(unit_costs(self.tokenizer, texts), 1)
        offset = 0
        for _, (doc, _) in parts:
            for a, b in chunk_bounds(doc, body):
                chunk = offset + np.unique(doc.word[a:b])
                weighted = np.repeat(probs[chunk], costs[chunk])
                cut = np.percentile(weighted, min(100, int(100 * (1 - rate) + 1)))
                keep[chunk] = (probs[chunk] > cut) | ((cut == 1.0) & (probs[chunk] == 1.0))
            offset += len(doc.words)
        return keep

    def _chunk_result(
        self, request: CompressionRequest, units: Units, keep: np.ndarray, original: int
    ) -> CompressionResult:
        """The chunk policy decides every word itself: render exactly those, no budget pass."""
        selection = render(request.documents, units, keep, self.tokenizer)
        return self.selection_result(
            request, selection, original=original, budget=None, scores=scored_spans(units)
        )


def _keep_probability(logits: np.ndarray) -> np.ndarray:
    """Softmax probability of label 1 (keep), computed stably in float64."""
    logits = logits.astype(np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp[:, 1] / exp.sum(axis=-1)


def _filter_documents(units: Units, rate: float) -> None:
    """Document-level filter (LLMLingua-2's context filter): keep the ``rate`` share of the
    documents (at least one) with the highest mean keep probability; drop the others whole."""
    docs = np.unique(units.doc)
    means = np.array([units.score[units.doc == d].mean() for d in docs])
    keep = docs[np.argsort(-means, kind="stable")[: max(1, round(rate * len(docs)))]]
    dropped = ~np.isin(units.doc, keep)
    units.score[dropped] = -np.inf
    units.forced[dropped] = False


def _consecutive_forced_repeats(
    text: str, spans: np.ndarray, force_tokens: Sequence[str]
) -> np.ndarray:
    """Words equal to a forced token and to the word right before them ("\\n \\n", "? ?")."""
    words = [text[a:b] for a, b in spans.tolist()]
    forced = set(force_tokens)
    repeat = np.zeros(len(words), dtype=bool)
    for index in range(1, len(words)):
        repeat[index] = words[index] in forced and words[index] == words[index - 1]
    return repeat


def _special_ids(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids an encoder expects around a sequence: [CLS] ... [SEP] (BERT), <s> ... </s>."""
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    return ([first] if first is not None else []), ([last] if last is not None else [])
