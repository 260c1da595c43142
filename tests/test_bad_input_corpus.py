"""The bad-input corpus of issue #20, run over every registered method with its real shipped
model: no output text that is not in the input (extractive methods; see tests/extractive.py), the
lossless one round-trips, no budget overrun unless protected spans (code, JSON, URLs) force one,
the reported token count is the output's, no exception but ValueError/TypeError for invalid
input, and no call beyond a generous per-call time limit.

Methods are read from ``ragpress.available()``, so a new method is covered as soon as it is
registered; ``pipeline`` is run as two representative pipelines.
"""

from __future__ import annotations

import json
import time
from functools import cache

import pytest

import ragpress
from ragpress.base import Compressor
from ragpress.text import protected_spans
from ragpress.types import DOCUMENT_SEPARATOR
from tests.extractive import assert_extractive_text

pytestmark = pytest.mark.real_model

QUERY = "What is the price of item 42?"
PIPELINES = ("attention-probe+entropy", "entropy+metatoken")
METHODS = [m for m in ragpress.available() if m != "pipeline"] + list(PIPELINES)
#: Generous: the slowest call here (a pipeline reading 2k SmolLM2 tokens twice) takes seconds on
#: 2 idle cores and under a minute on a machine loaded 8-fold. A call past it means super-linear
#: time came back (before issue #20: one-line JSON took 2 minutes, a 200k-character word 128 s;
#: tests/test_hardening.py times span detection on 200k characters).
PER_CALL_SECONDS = 300.0

CORPUS: dict[str, str | list[str]] = {
    "empty": "",
    "whitespace": "  \n\t  \n",
    "whitespace-documents": ["", "  ", "\n"],
    "one-character": "a",
    "one-mark": "?",
    "ansi-escapes": "ok \x1b[31mred\x1b[0m text and more text here.",
    "control-characters": "a\x00b\x07c d\x1ce and the rest of it.",
    "format-characters": "Price \u200f100\u200f USD, zero\u200bwidth and joi\u200dned.",
    "byte-order-marks": "\ufeffPrices rose. \ufeffAgain they rose.",
    "decomposed-accents": "Cafe\u0301 cre\u0300me bru\u0302le\u0301e. Noe\u0308l a\u0300 Arles.",
    "emoji-sequences": "The family 👩‍👩‍👧 waved 🇫🇷 flags. 👍🏽 ok.",
    "right-to-left": "مرحبا بالعالم. שלום עולם. Mixed עם English.",
    "punctuation-runs": "ok??Yes!! foo(bar) a/b ... ---- ==== f(x): y; Call f(): now",
    "code-json-urls": (
        'Call `f()` now. See https://example.com/a?b=c or mail a.b@c.org. {"k": [1, 2]} end.'
    ),
    "deep-brackets": "[" * 1000,
    "deep-json-in-prose": "Before. " + '{"a": ' * 1000 + "1" + "}" * 1000 + " After.",
    "long-word": "x" * 8_000,
    "one-line-json": json.dumps(
        [{"id": i, "name": f"item {i}", "price": i * 3, "tags": ["red", "blue"]} for i in range(60)]
    ),
    "one-line-table": " | ".join(f"item {i} costs {i * 3} euros" for i in range(100)),
    "cjk-without-punctuation": "東京は日本の首都であり人口が多く交通網が発達している" * 40,
    "newlines": "\n" * 3000 + "the end of it all.",
    "header-like": "«meta 3»\n" + " ".join(f"header{i}: value {i}" for i in range(40)),
    "mixed-documents": ["", "First document, item 42 costs 126 euros.", "  ", "\x1b[1mBold\x1b[0m"],
}
INVALID: dict[str, object] = {"lone-surrogate": "a\ud800b", "bytes": b"text", "number": 42}
#: Methods that keep every unit at rate 1.0, so their output is the input (stripped).
IDENTITY = {"first-k", "random", "entropy", "token-classifier", "attention-probe",
            "embedding-similarity"}  # fmt: skip


@cache
def compressor(method: str) -> Compressor:
    return ragpress.get_compressor(method)


def documents(context: str | list[str]) -> list[str]:
    return [context] if isinstance(context, str) else context


def lossless(instance: Compressor) -> Compressor | None:
    """The stage whose ``decompress`` inverts the output (the method, or a pipeline's last)."""
    last = getattr(instance, "stages", [instance])[-1]
    return last if callable(getattr(last, "decompress", None)) else None


def compress_timed(method: str, context, rate: float):
    started = time.perf_counter()
    result = compressor(method).compress(context, QUERY, rate=rate)
    seconds = time.perf_counter() - started
    assert seconds < PER_CALL_SECONDS, f"{method} took {seconds:.0f} s"
    return result


@pytest.mark.parametrize("name", list(CORPUS))
@pytest.mark.parametrize("method", METHODS)
def test_corpus(method, name):
    context = CORPUS[name]
    instance = compressor(method)
    result = compress_timed(method, context, rate=0.5)
    docs = documents(context)
    assert result.compressed_tokens == instance.tokenizer.count(result.text)
    if not any(doc.strip() for doc in docs):
        assert result.text == DOCUMENT_SEPARATOR.join(docs)  # passed through unchanged
        return
    unpacker = lossless(instance)
    if unpacker is instance:
        assert unpacker.decompress(result.text) == DOCUMENT_SEPARATOR.join(docs)
        for doc, packed in zip(docs, result.document_texts(len(docs)), strict=True):
            assert unpacker.decompress(packed) == doc
        return
    output = unpacker.decompress(result.text) if unpacker else result.text
    assert_extractive_text(docs, output)
    if result.documents is not None and unpacker is None:
        for doc, text in zip(docs, result.documents, strict=True):
            assert_extractive_text([doc], text)
    protected = any(protected_spans(doc, numbers=False) for doc in docs)
    if result.budget_tokens is not None and not protected:
        assert result.compressed_tokens <= result.budget_tokens


@pytest.mark.parametrize("name", list(INVALID))
@pytest.mark.parametrize("method", METHODS)
def test_invalid_input_is_a_clear_error(method, name):
    with pytest.raises((ValueError, TypeError), match="context"):
        compressor(method).compress(INVALID[name], QUERY, rate=0.5)


SHORT = [
    name
    for name, context in CORPUS.items()
    if len(DOCUMENT_SEPARATOR.join(documents(context))) < 200
]


@pytest.mark.parametrize("name", SHORT)
@pytest.mark.parametrize("method", sorted(IDENTITY & set(METHODS)))
def test_rate_one_is_the_identity(method, name):
    context = CORPUS[name]
    result = compress_timed(method, context, rate=1.0)
    expected = [doc.strip() for doc in documents(context)]
    if not any(expected):
        return  # whitespace only: passed through (checked above)
    if result.documents is not None:
        assert result.documents == expected
    else:
        assert result.text == expected[0]
