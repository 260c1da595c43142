"""The contract every compressor keeps, checked on every registered method and a pipeline.

Methods are read from the registry, so a newly registered one is covered without editing this
file. Methods that load a model (``Compressor.loads_model``) run the real package-shipped
models and are marked ``real_model``; ``make test-fast`` runs the others.

* lossy methods are extractive: each output document is its kept spans, in order, joined by
  whitespace only, and every kept span points at the input document it came from;
* the lossless one (it has ``decompress``) round-trips exactly;
* the budget is never exceeded except by protected spans (code, JSON, URLs);
* a batch gives what single calls give;
* empty and whitespace-only contexts pass through unchanged, even without a query;
* bad arguments raise ValueError/TypeError naming the argument;
* the model compressors still keep what ``tests/golden`` recorded (see its tolerance).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
import pytest

import ragpress
from ragpress import checks
from ragpress.base import Compressor
from ragpress.integrations import check_query, needs_query
from ragpress.registry import accepted_options, available, factory
from ragpress.text import protected_spans
from ragpress.types import CompressionResult
from tests import golden

PIPELINE = "first-k+metatoken"  # a lossy stage then the lossless packer, no model
METHODS = [name for name in available() if name != "pipeline"] + [PIPELINE]
QUESTION = golden.QUESTION
DOCUMENTS = golden.sample_documents()
PROSE = [doc for doc in DOCUMENTS if not protected_spans(doc, numbers=False)] or DOCUMENTS[:1]


def _loads_model(method: str) -> bool:
    return any(factory(stage).loads_model for stage in method.split("+"))


def _param(method: str) -> object:
    marks = [pytest.mark.real_model] if _loads_model(method) else []
    return pytest.param(method, marks=marks, id=method)


ALL = [_param(method) for method in METHODS]


@cache
def _build(method: str) -> Compressor:
    return ragpress.get_compressor(method)


@pytest.fixture
def compressor(request: pytest.FixtureRequest) -> Compressor:
    return _build(request.param)


def parametrize_methods(test: Callable[..., None]) -> Callable[..., None]:
    return pytest.mark.parametrize("compressor", ALL, indirect=True)(test)


def is_lossless(compressor: Compressor) -> bool:
    return callable(getattr(compressor, "decompress", None))


def outputs(result: CompressionResult) -> list[str]:
    return result.documents if result.documents is not None else [result.text]


def assert_extractive(documents: list[str], result: CompressionResult) -> None:
    """Each output document is its kept spans, in order, joined by whitespace only."""
    assert all(0 <= s.doc < len(documents) for s in result.kept_spans)
    for index, (source, output) in enumerate(zip(documents, outputs(result), strict=True)):
        spans = [s for s in result.kept_spans if s.doc == index]
        assert all(0 <= s.start < s.end <= len(source) for s in spans), "span outside its input"
        assert all(a.end <= b.start for a, b in itertools.pairwise(spans)), "spans out of order"
        kept = "".join(source[s.start : s.end] for s in spans)
        assert re.sub(r"\s+", "", output) == re.sub(r"\s+", "", kept)
        for word in output.split():
            assert word in source, word


@parametrize_methods
def test_output_is_extractive_in_order_or_round_trips(compressor: Compressor) -> None:
    for context in (DOCUMENTS, "\n\n".join(DOCUMENTS)):
        result = compressor.compress(context, QUESTION, rate=0.3)
        documents = [context] if isinstance(context, str) else context
        assert result.original_tokens == compressor.tokenizer.count("\n\n".join(documents))
        if is_lossless(compressor) and "+" not in compressor.name:
            joined = "\n\n".join(documents)
            assert compressor.decompress(result.text) == joined  # type: ignore[attr-defined]
            for source, packed in zip(documents, outputs(result), strict=True):
                assert compressor.decompress(packed) == source  # type: ignore[attr-defined]
        elif "+" in compressor.name:  # the lossless stage restores the lossy stages' output
            unpacked = [compressor.stages[-1].decompress(d) for d in outputs(result)]  # type: ignore[attr-defined]
            result.documents = unpacked if result.documents is not None else None
            result.text = unpacked[0] if result.documents is None else result.text
            assert_extractive(documents, result)
        else:
            assert_extractive(documents, result)


@parametrize_methods
def test_budget_is_never_exceeded_except_by_protected_spans(compressor: Compressor) -> None:
    if is_lossless(compressor) and "+" not in compressor.name:
        pytest.skip("lossless: a budget is recorded, never enforced (nothing is dropped)")
    for options in ({"rate": 0.3}, {"target_tokens": 40}):
        result = compressor.compress(PROSE, QUESTION, **options)
        assert result.budget_tokens is not None
        assert result.compressed_tokens <= result.budget_tokens, options
    # Protected spans stay whatever the budget: the excess is at most what they cost.
    result = compressor.compress(DOCUMENTS, QUESTION, target_tokens=10)
    protected = [doc[a:b] for doc in DOCUMENTS for a, b in protected_spans(doc, numbers=False)]
    allowance = sum(compressor.tokenizer.count(" " + piece) for piece in protected)
    assert result.compressed_tokens <= 10 + allowance


@parametrize_methods
def test_a_batch_gives_what_single_calls_give(compressor: Compressor) -> None:
    items: list[dict[str, Any]] = [
        {"context": DOCUMENTS, "query": QUESTION, "rate": 0.3},
        {"context": "   ", "query": QUESTION},
        {"context": DOCUMENTS[0], "query": QUESTION, "target_tokens": 30},
    ]
    batch = compressor.compress_batch(items)
    single = [compressor.compress(**item) for item in items]
    assert [r.text for r in batch] == [r.text for r in single]
    assert [r.kept_spans for r in batch] == [r.kept_spans for r in single]
    assert [r.documents for r in batch] == [r.documents for r in single]


@parametrize_methods
@pytest.mark.parametrize("context", ["", "  \n\t ", ["", "   "], []], ids=repr)
def test_empty_and_whitespace_pass_through_without_a_query(
    compressor: Compressor, context: str | list[str]
) -> None:
    result = compressor.compress(context, rate=0.5)
    assert result.text == ("\n\n".join(context) if isinstance(context, list) else context)
    assert result.documents == (list(context) if isinstance(context, list) else None)
    assert result.compressed_tokens == result.original_tokens
    assert result.method == compressor.name
    assert "forward" not in result.timings  # no model ran


@parametrize_methods
@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"context": 42}, TypeError, "context"),
        ({"context": ["ok", b"no"]}, TypeError, r"context\[1\]"),
        ({"context": "x", "query": 5}, TypeError, "query"),
        ({"context": "x", "rate": 1.5}, ValueError, "rate"),
        ({"context": "x", "rate": "half"}, TypeError, "rate"),
        ({"context": "x", "target_tokens": -1}, ValueError, "target_tokens"),
        ({"context": "x", "rate": 0.5, "target_tokens": 3}, ValueError, "target_tokens"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(
    compressor: Compressor, kwargs: dict, error: type[Exception], argument: str
) -> None:
    with pytest.raises(error, match=argument):
        compressor.compress(**kwargs)


@pytest.mark.parametrize("method", METHODS)
def test_an_unknown_option_is_a_type_error_naming_it(method: str) -> None:
    with pytest.raises((TypeError, ValueError), match="no_such_option"):
        ragpress.get_compressor(method, no_such_option=1)


#: Every on/off option of the built-in methods, as (method, option).
SWITCHES = [
    ("entropy", "question_aware"),
    ("entropy", "coarse"),
    ("entropy", "iterative"),
    ("token-classifier", "keep_digits"),
    ("token-classifier", "drop_consecutive"),
    ("ib-filter", "coarse"),
    ("relevance", "rerank"),
    ("relevance", "partial_sentence"),
]


@pytest.mark.parametrize(("method", "option"), SWITCHES)
def test_a_switch_refuses_a_truthy_string(method: str, option: str) -> None:
    # Refused before any model loads; bool("False") would have turned the switch on.
    with pytest.raises(TypeError, match=f"{option} must be True or False"):
        ragpress.get_compressor(method, **{option: "False"})


@pytest.mark.parametrize("value", [True, False, np.True_, np.False_, 0, 1, np.int64(1)], ids=repr)
def test_a_switch_takes_bools_numpy_bools_and_0_or_1(value: object) -> None:
    assert checks.boolean(value, "rerank") is bool(value)


@pytest.mark.parametrize("value", [2, -1, 1.0, None, "true"], ids=repr)
def test_a_switch_refuses_other_values(value: object) -> None:
    with pytest.raises(TypeError, match="rerank must be True or False"):
        checks.boolean(value, "rerank")


@pytest.mark.parametrize("compressor", ALL[:-1], indirect=True)  # not the pipeline
def test_settings_rebuild_the_compressor(compressor: Compressor) -> None:
    """Each setting that is a constructor option, passed back, gives the same settings: every
    value a compressor reports is one its constructor accepts (what a config round trip, as
    LlamaIndex's to_dict / from_dict, relies on)."""
    _assert_settings_rebuild(compressor)


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("random", {"seed": 3}),
        pytest.param("entropy", {"coarse": False, "iterative": True}, marks=pytest.mark.real_model),
        pytest.param("token-classifier", {"threshold": 0.5}, marks=pytest.mark.real_model),
        pytest.param("relevance", {"threshold": 0.1, "rerank": True}, marks=pytest.mark.real_model),
        pytest.param("ib-filter", {"coarse": True}, marks=pytest.mark.real_model),
    ],
)
def test_settings_of_other_configurations_rebuild_too(method: str, options: dict) -> None:
    _assert_settings_rebuild(ragpress.get_compressor(method, **options))


def _assert_settings_rebuild(compressor: Compressor) -> None:
    accepted = accepted_options(compressor.name)
    options = {k: v for k, v in compressor.settings.items() if k in accepted}
    assert ragpress.get_compressor(compressor.name, **options).settings == compressor.settings


@parametrize_methods
def test_a_method_that_requires_a_query_says_so_once(compressor: Compressor) -> None:
    assert needs_query(compressor) == compressor.question_aware
    if compressor.requires_query:
        assert compressor.question_aware
        for query in (None, "   "):
            with pytest.raises(ValueError, match="query"):
                compressor.compress(DOCUMENTS, query)
        with pytest.raises(ValueError, match=compressor.name):
            check_query(compressor, None)
    else:
        result = compressor.compress(DOCUMENTS, rate=0.5)
        assert result.text


@parametrize_methods
def test_results_carry_provenance_and_model_time(compressor: Compressor) -> None:
    result = compressor.compress(DOCUMENTS, QUESTION, rate=0.5)
    assert result.method == compressor.name
    assert result.settings.items() >= compressor.settings.items()
    assert result.seconds > 0
    ran_model = _loads_model(compressor.name)
    assert ("forward" in result.timings) == ran_model
    if ran_model:
        assert 0 < result.timings["forward"] <= result.seconds


def test_every_alias_resolves_to_a_registered_method() -> None:
    from ragpress.registry import aliases

    for alias, name in aliases().items():
        assert name in available(), alias
        assert factory(alias) is factory(name)


@pytest.mark.real_model
@pytest.mark.parametrize("method", golden.golden_methods())
def test_model_compressors_keep_their_golden_spans(method: str) -> None:
    if not golden.path(method).is_file():
        pytest.fail(f"no golden file for {method}: run `python -m tests.golden --update {method}`")
    expected = golden.load(method)
    compressor = _build(method)
    for name, context in golden.cases().items():
        result = compressor.compress(context, expected["question"], rate=expected["rate"])
        score = golden.overlap(expected["cases"][name]["kept_spans"], result.kept_spans)
        assert score >= golden.MIN_OVERLAP, (
            f"{method} on the sample {name} keeps other text than tests/golden/{method}.json "
            f"(overlap {score:.3f} < {golden.MIN_OVERLAP}); if the change is deliberate, run "
            f"`python -m tests.golden --update {method}`"
        )
