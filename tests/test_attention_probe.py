"""Attention-probe sentence filter on the real proxies' attention graphs and their shipped probes
(Qwen2.5-0.5B, the default, and SmolLM2-135M)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import ragpress
from ragpress.compressors.attention_probe import Probe
from ragpress.onnx.export import MANIFEST, prepare
from ragpress.training.attention_probe import DEFAULT_MODEL, SHIPPED
from tests.test_entropy import FUEL, NOISE, assert_extractive

pytestmark = pytest.mark.real_model
QUESTION = "What is the first sign of fuel dilution?"
#: Layers and heads of each proxy a probe ships for.
SHAPES = {"qwen2.5-0.5b": (24, 14), "smollm2-135m": (30, 9)}


@pytest.fixture(scope="module", params=sorted(SHIPPED))
def probe(request):
    return ragpress.get_compressor("attention-probe", model=request.param)


def test_every_shipped_probe_matches_its_training_recipe():
    assert DEFAULT_MODEL == "qwen2.5-0.5b" and set(SHAPES) == set(SHIPPED)
    for model, shipped in SHIPPED.items():
        bundled = Probe.bundled(model)
        assert (bundled.model, bundled.recipe) == (model, shipped.recipe)


@pytest.mark.parametrize("role", ["attention", "attention-tail"])
def test_attention_rows_export_matches_torch(role):
    manifest = json.loads((prepare("smollm2-135m", role) / MANIFEST).read_text())
    assert manifest["parity"]["max_abs_diff"] < 1e-4


def test_tail_rows_end_with_the_final_row():
    from ragpress.onnx.models import AttentionRows, AttentionTailRows
    from ragpress.onnx.wrappers import TAIL_ROWS

    tail = AttentionTailRows()
    ids = tail.tokenizer.encode(f"{FUEL}\n\nQuestion: {QUESTION}\nAnswer:")
    (rows,) = tail.rows([ids])
    assert rows.shape == (30, 9, TAIL_ROWS, len(ids))
    np.testing.assert_allclose(rows[:, :, -1], AttentionRows().rows([ids])[0], atol=1e-5)
    np.testing.assert_allclose(rows.sum(axis=-1), 1.0, atol=1e-4)


def test_features_follow_the_probe_recipe(probe):
    layers, heads_per_layer = SHAPES[probe.runner.spec.name]
    units, raw, heads = probe.sentence_raw_features([FUEL, *NOISE], QUESTION)
    assert heads == heads_per_layer and raw.shape == (len(units), 4 * layers * heads + 1)
    assert np.isfinite(raw).all()
    units, features = probe.sentence_features([FUEL, *NOISE], QUESTION)
    assert features.shape == (len(units), len(probe.probe.weights))
    assert np.isfinite(features).all()
    assert len(units) == 4 + len(NOISE)  # FUEL has four sentences, each noise passage one


def test_answer_sentence_is_ranked_high_and_kept(probe):
    documents = [NOISE[0], FUEL, NOISE[1], NOISE[2]]
    result = probe.compress(documents, QUESTION, rate=0.25)
    assert "rises between services" in result.text
    assert_extractive(documents, result)
    ranked = sorted(result.scores, key=lambda s: -s.score)
    top = [documents[s.doc][s.start : s.end] for s in ranked[:2]]
    assert any("rises between services" in sentence for sentence in top)
    assert all(s.doc == 1 for s in ranked[:2])  # the relevant passage outranks the noise
    assert result.compressed_tokens <= result.budget_tokens


def test_threshold_mode_and_errors():
    strict = ragpress.get_compressor("attention-probe", threshold=0.99)
    result = strict.compress([FUEL, *NOISE], QUESTION)
    assert result.budget_tokens is None
    assert all(s.score >= 0.99 for s in result.scores if s.score >= 0.99)
    with pytest.raises(ValueError, match="query"):
        strict.compress(FUEL)
    with pytest.raises(ValueError, match="threshold"):
        ragpress.get_compressor("attention-probe", threshold=2.0)


def test_chunked_reading_gives_each_chunk_the_question(probe):
    small = ragpress.get_compressor(
        "attention-probe", model=probe.runner.spec.name, chunk_tokens=40
    )
    documents = [NOISE[0], FUEL, NOISE[1], NOISE[2]]
    chunks = small._chunks(documents, [(1, 0, 10), (2, 0, 10)], QUESTION)
    assert all(chunk.prompt.endswith(f"Question: {QUESTION}\nAnswer:") for chunk in chunks)
    result = small.compress(documents, QUESTION, rate=0.3)
    units, _ = small.sentence_features(documents, QUESTION)
    assert len(result.scores) == len(units)  # every sentence scored, across several chunks
    assert result.compressed_tokens <= result.budget_tokens
    assert_extractive(documents, result)
