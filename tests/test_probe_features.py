"""The attention probe's features on synthetic attention, its tail-rows graph on a tiny random
Llama (shapes and causality only), recipes, probe files and the dev survival measure."""

from __future__ import annotations

import numpy as np
import pytest

from ragpress.compressors.attention_probe import (
    BLOCKS,
    LEGACY_RECIPE,
    Probe,
    _Chunk,
    _chunk_features,
    recipe_blocks,
    recipe_features,
)
from ragpress.training.attention_probe import Collected, survival

LAYERS, HEADS, TAIL = 2, 3, 4
# "aa bb. cc." + tail: sentence 0 is tokens 0-1, sentence 1 token 2, then 3 tail tokens
CHUNK = _Chunk("aa bb. cc.???", [(0, 6), (7, 10)], [0, 1])
OFFSETS = [(0, 2), (3, 6), (7, 10), (10, 11), (11, 12), (12, 13)]


def _attention(seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).random((LAYERS, HEADS, TAIL, len(OFFSETS)))
    return rows / rows.sum(axis=-1, keepdims=True)


def _block(features: np.ndarray, name: str) -> np.ndarray:
    width = LAYERS * HEADS
    index = BLOCKS.index(name)
    return features[:, index * width : (index + 1) * width]


def test_blocks_pool_each_sentences_share_of_context_attention():
    attention = _attention()
    features = _chunk_features(CHUNK, OFFSETS, attention, frozenset(BLOCKS))
    assert features.shape == (2, 4 * LAYERS * HEADS + 1)
    context = attention[..., :3] / attention[..., :3].sum(axis=-1, keepdims=True) * 3
    final = context[:, :, -1].reshape(-1, 3)
    tail = context.mean(axis=2).reshape(-1, 3)
    np.testing.assert_allclose(
        _block(features, "final-mean")[0], np.log(final[:, :2].mean(1) + 1e-3)
    )
    np.testing.assert_allclose(_block(features, "final-max")[0], np.log(final[:, :2].max(1) + 1e-3))
    np.testing.assert_allclose(_block(features, "tail-mean")[1], np.log(tail[:, 2] + 1e-3))
    np.testing.assert_allclose(_block(features, "tail-max")[0], np.log(tail[:, :2].max(1) + 1e-3))
    np.testing.assert_allclose(features[:, -1], np.log([2, 1]))


def test_only_the_blocks_asked_for_are_computed_and_final_rows_alone_work():
    attention = _attention(1)
    every = _chunk_features(CHUNK, OFFSETS, attention, frozenset(BLOCKS))
    legacy = _chunk_features(CHUNK, OFFSETS, attention, recipe_blocks(LEGACY_RECIPE))
    np.testing.assert_allclose(_block(legacy, "final-mean"), _block(every, "final-mean"))
    assert not _block(legacy, "tail-max").any()
    # the (L, H, S) rows of the final-position graph give the same final blocks
    final_only = _chunk_features(CHUNK, OFFSETS, attention[:, :, -1], frozenset(BLOCKS))
    np.testing.assert_allclose(_block(final_only, "final-max"), _block(every, "final-max"))


def test_recipes_cut_columns_and_refuse_unknown_features():
    raw = _chunk_features(CHUNK, OFFSETS, _attention(), frozenset(BLOCKS))
    assert recipe_features(raw, HEADS, LEGACY_RECIPE).shape == (2, LAYERS * HEADS)
    per_layer = recipe_features(raw, HEADS, "tail-mean@layer+length")
    assert per_layer.shape == (2, LAYERS + 1)
    np.testing.assert_allclose(per_layer[:, 0], _block(raw, "tail-mean")[:, :HEADS].mean(axis=1))
    with pytest.raises(ValueError, match="tail-mean"):
        recipe_features(raw, HEADS, "tail-median")
    with pytest.raises(ValueError, match="block@layer"):
        recipe_blocks("final-mean@head")


def test_probe_files_keep_their_recipe_and_old_files_read_as_legacy(tmp_path):
    probe = Probe(np.ones(3), 0.5, np.zeros(3), np.ones(3), "m", "tail-max@layer+length")
    probe.save(tmp_path / "p.npz", dev_auc=0.9)
    assert Probe.load(tmp_path / "p.npz").recipe == "tail-max@layer+length"
    np.savez(tmp_path / "old.npz", weights=np.ones(3), bias=np.array(0.0), mean=np.zeros(3),
             scale=np.ones(3), model=np.array("m"))  # fmt: skip
    assert Probe.load(tmp_path / "old.npz").recipe == LEGACY_RECIPE


def test_survival_keeps_by_score_within_the_budget():
    # item 0's answer sentence (cost 5) fits its 4x budget of 40 tokens only when it outranks
    # the 38-token sentence; item 1's budget (10) holds one of its two sentences
    data = Collected(
        x=np.zeros((5, 1)),
        y=np.array([0, 1, 0, 0, 1]),
        group=np.array([0, 0, 0, 1, 1]),
        cost=np.array([38, 5, 100, 10, 10]),
        original=np.array([160, 40]),
        heads=1,
    )
    assert survival(data, np.array([0.9, 0.1, 0.0, 0.1, 0.9]), 1 / 4) == 0.5
    assert survival(data, np.array([0.1, 0.9, 0.0, 0.1, 0.9]), 1 / 4) == 1.0
    assert survival(data, np.array([0.1, 0.9, 0.0, 0.9, 0.1]), 1 / 4) == 0.5


def test_tail_rows_graph_matches_eager_attention_on_a_tiny_llama():
    torch = pytest.importorskip("torch")
    from transformers import LlamaConfig, LlamaForCausalLM

    from ragpress.onnx.wrappers import TAIL_ROWS, attention_tail_wrapper, attention_wrapper

    torch.manual_seed(0)
    sizes = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
    config = LlamaConfig(vocab_size=64, num_attention_heads=4, num_key_value_heads=2, **sizes)
    ids = torch.randint(0, 64, (1, 12))
    mask = torch.ones_like(ids)
    eager = LlamaForCausalLM(config).eval()
    eager.config._attn_implementation = "eager"
    with torch.no_grad():
        reference = eager(ids, attention_mask=mask, output_attentions=True).attentions
        expected = torch.stack([layer[:, :, -TAIL_ROWS:, :] for layer in reference], dim=1)
        tail = attention_tail_wrapper(LlamaForCausalLM(config).eval())
        tail.base.load_state_dict(eager.model.state_dict())
        rows = tail(ids, mask)
        final = attention_wrapper(tail.base)(ids, mask)
    assert rows.shape == (1, 2, 4, TAIL_ROWS, 12)
    torch.testing.assert_close(rows, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(final, rows[:, :, :, -1], atol=1e-6, rtol=1e-5)
    assert not rows[0, :, :, 0, -TAIL_ROWS + 1 :].any()  # causal: later positions unseen
