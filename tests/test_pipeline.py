"""Pipelines: one budget handed down the stages, provenance back to the input, lossless last."""

from __future__ import annotations

import math

import pytest

import ragpress
from ragpress.compressors.pipeline import Pipeline
from tests.test_entropy import FUEL, NOISE, assert_extractive

QUESTION = "What is the first sign of fuel dilution?"
DOCUMENTS = [NOISE[0], FUEL, NOISE[1], NOISE[2]]


def test_budget_is_handed_down_and_met():
    pipeline = ragpress.get_compressor("random+first-k")
    result = pipeline.compress(DOCUMENTS, rate=0.3)
    budget = math.ceil(0.3 * result.original_tokens)
    assert result.budget_tokens == budget
    assert result.compressed_tokens <= budget
    first, last = result.stages
    assert (first.method, first.budget_tokens) == ("random", 2 * budget)  # headroom 2
    assert first.input_tokens == result.original_tokens
    assert first.output_tokens <= 2 * budget
    assert (last.method, last.budget_tokens) == ("first-k", budget)
    assert last.input_tokens == first.output_tokens
    assert result.method == "random+first-k"
    assert set(result.timings) == {"0:random", "1:first-k"}


def test_one_instance_twice_gets_each_stage_its_own_allowance():
    first_k = ragpress.get_compressor("first-k")
    result = Pipeline([first_k, first_k]).compress(DOCUMENTS, target_tokens=30)
    assert [stage.budget_tokens for stage in result.stages] == [60, 30]
    assert result.compressed_tokens <= 30


def test_kept_spans_point_into_the_original_input():
    result = Pipeline(["random", "random"], headroom=1.5).compress(DOCUMENTS, rate=0.4)
    assert result.compressed_tokens < result.original_tokens
    assert_extractive(DOCUMENTS, result)


def test_lossless_last_stage_packs_what_the_lossy_stages_kept():
    text = "ERROR disk full on node 7, retrying in 5 s. " * 30 + FUEL
    pipeline = ragpress.get_compressor("first-k+metatoken")
    result = pipeline.compress(text, rate=0.8)
    lossy = ragpress.get_compressor("first-k").compress(text, rate=0.8)
    assert pipeline.stages[-1].decompress(result.text) == lossy.text
    assert result.compressed_tokens < lossy.compressed_tokens  # the repeats were packed
    assert result.kept_spans == lossy.kept_spans


def test_emptied_documents_stay_in_place_after_the_lossless_stage():
    documents = ["alpha beta gamma. " * 20, "delta epsilon."]
    result = ragpress.get_compressor("first-k+metatoken").compress(documents, target_tokens=20)
    assert result.documents is not None and len(result.documents) == 2
    assert result.documents[1] == ""
    assert not result.text.endswith("\n")


def test_batch_matches_single_calls():
    pipeline = ragpress.get_compressor("first-k+first-k")  # random draws per call: not comparable
    items = [
        {"context": DOCUMENTS, "rate": 0.5},
        {"context": FUEL, "target_tokens": 20},
        {"context": "   "},
    ]
    batch = pipeline.compress_batch(items)
    single = [pipeline.compress(**item) for item in items]
    assert [r.text for r in batch] == [r.text for r in single]
    assert [r.kept_spans for r in batch] == [r.kept_spans for r in single]


@pytest.mark.parametrize(
    ("stages", "options", "match"),
    [
        ("metatoken+random", {}, "only come last"),
        ("random+", {}, "unknown compressor ''"),
        ("random+no-such", {}, "known"),
        ("random+first-k", {"variant": "int8"}, "taken by no stage"),
        ("random+first-k", {"stage_options": {"entropy": {}}}, "not stages"),
        ("random+first-k", {"headroom": 0.5}, "headroom"),
    ],
)
def test_bad_pipelines_raise_clear_errors(stages, options, match):
    with pytest.raises(ValueError, match=match):
        ragpress.get_compressor(stages, **options)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"stage_options": {"random": {"zz": 1}}}, r"random has no option 'zz' \(its options: "),
        ({"zz": 1}, r"options \['zz'\] are taken by no stage"),
        ({"stage_options": {"no-such": {}}}, "not stages"),
        ({"stage_options": {"random": 5}}, r"stage_options\['random'\] must map"),
    ],
)
def test_bad_options_fail_before_any_stage_is_built(monkeypatch, options, match):
    """A bad option of the last stage is found before the first stage's model would load."""
    import ragpress.compressors.pipeline as module

    built: list[str] = []

    def recording(name, **kwargs):
        built.append(name)
        return ragpress.get_compressor(name, **kwargs)

    monkeypatch.setattr(module, "get_compressor", recording)
    with pytest.raises((TypeError, ValueError), match=match):
        Pipeline(["first-k", "random"], **options)
    assert built == []


def test_an_unknown_option_is_a_type_error_and_a_value_error_naming_the_options():
    with pytest.raises(ragpress.UnknownOptionError) as caught:
        ragpress.get_compressor("random", seed=1, zz=2)
    assert isinstance(caught.value, TypeError) and isinstance(caught.value, ValueError)
    assert str(caught.value) == "random has no option 'zz' (its options: seed, target_tokenizer)"
    with pytest.raises(ValueError, match="not a stage"):
        ragpress.get_compressor("first-k+pipeline")
    by_keyword = ragpress.get_compressor("pipeline", stages=["first-k", "random"], seed=3)
    assert by_keyword.name == "first-k+random"  # stages= by keyword, with a shared option
    assert by_keyword.stages[1].settings["seed"] == 3
    with pytest.raises(ragpress.UnknownOptionError, match="taken by no stage"):
        ragpress.get_compressor("pipeline", stages=["first-k", "random"], zz=3)
    with pytest.raises(ValueError, match="taken by no stage"):
        ragpress.get_compressor("first-k+random", stages=["first-k"])
    with pytest.raises(TypeError, match="method name must be a str"):
        ragpress.get_compressor(None)


def test_the_order_of_stages_is_checked_before_any_is_built(monkeypatch):
    import ragpress.compressors.pipeline as module

    built: list[str] = []
    monkeypatch.setattr(module, "get_compressor", lambda name, **kw: built.append(name))
    for stages in (["metatoken", "first-k"], ["first-k", "metatoken", "random"]):
        with pytest.raises(ValueError, match="only come last"):
            Pipeline(stages)
    assert built == []


def test_a_registered_class_of_your_own_taking_kwargs_keeps_its_options():
    from ragpress.base import Compressor
    from ragpress.registry import _FACTORIES, register

    class Mine(Compressor):
        def __init__(self, **options):
            self.level = options.pop("level", 1)
            super().__init__(**options)

        def _compress(self, request):
            raise NotImplementedError

    try:
        register("test-mine")(Mine)
        assert ragpress.get_compressor("test-mine", level=3).level == 3
        pipeline = Pipeline(["test-mine", "first-k"], stage_options={"test-mine": {"level": 4}})
        assert pipeline.stages[0].level == 4
    finally:
        _FACTORIES.pop("test-mine", None)


def test_a_pipeline_has_two_stages_one_lossy():
    with pytest.raises(ValueError, match="two stages"):
        Pipeline(["random"])
    with pytest.raises(ValueError, match="lossy"):
        Pipeline(["metatoken", "metatoken"])


def test_shared_and_per_stage_options_reach_the_stages():
    pipeline = ragpress.get_compressor(
        "random+random", seed=7, stage_options={"random": {"seed": 3}}
    )
    assert [stage.seed for stage in pipeline.stages] == [3, 3]
    pipeline = ragpress.get_compressor("random+first-k", seed=5)
    assert [stage.seed for stage in pipeline.stages] == [5, 5]


def test_without_a_budget_each_stage_keeps_what_it_keeps_alone():
    words = " ".join(f"w{i}" for i in range(200))
    first, second = ragpress.get_compressor("random+first-k", seed=3).compress(words).stages
    alone = ragpress.get_compressor("random", seed=3).compress(words)
    assert first.output_tokens == alone.compressed_tokens < first.input_tokens  # its own 0.5
    assert second.output_tokens == pytest.approx(second.input_tokens / 2, abs=2)


def test_stage_options_find_a_stage_by_its_name_or_an_alias():
    by_name = ragpress.get_compressor(
        "random+lossless", stage_options={"metatoken": {"max_run": 4}}
    )
    by_alias = ragpress.get_compressor(
        "random+metatoken", stage_options={"lossless": {"max_run": 5}}
    )
    assert by_name.stages[1].max_run == 4 and by_alias.stages[1].max_run == 5
    with pytest.raises(ValueError, match="twice"):
        ragpress.get_compressor(
            "random+metatoken", stage_options={"lossless": {}, "metatoken": {"max_run": 3}}
        )


@pytest.mark.real_model
def test_probe_then_entropy_keeps_the_answer_within_budget():
    pipeline = ragpress.get_compressor("probe+entropy")
    assert pipeline.requires_query and pipeline.question_aware
    result = pipeline.compress(DOCUMENTS, QUESTION, rate=0.3)
    assert result.compressed_tokens <= math.ceil(0.3 * result.original_tokens)
    assert "rises between services" in result.text
    assert_extractive(DOCUMENTS, result)
    probe, entropy = result.stages
    assert probe.output_tokens < probe.input_tokens  # the coarse stage dropped sentences
    assert entropy.input_tokens == probe.output_tokens
    with pytest.raises(ValueError, match="query"):
        pipeline.compress(DOCUMENTS, rate=0.3)


@pytest.mark.real_model
def test_cli_runs_a_pipeline():
    from typer.testing import CliRunner

    from ragpress.cli import app

    outcome = CliRunner().invoke(
        app,
        ["compress", "sample", "--method", "probe+entropy", "--query", QUESTION, "--json"],
    )
    assert outcome.exit_code == 0, outcome.output
    assert '"method": "attention-probe+entropy"' in outcome.stdout
