"""Token-classifier compression: the shipped MiniLM keep classifier (real) and tiny random
XLM-R / BERT checkpoints built from configs (architecture support only)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from ragpress.compressors.token_classifier import (
    TokenClassifierCompressor,
    chunk_bounds,
    encode_words,
)
from ragpress.onnx.catalogue import get_spec
from ragpress.text import sentence_spans
from tests.test_entropy import FUEL, NOISE, assert_extractive

SAMPLE = resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")
FUNCTION_WORDS = {"the", "of", "a", "an", "and", "in", "on", "to", "is", "that", "it", "for"}


# -- the shipped classifier ------------------------------------------------------------------


@pytest.fixture(scope="module")
def keep():
    return TokenClassifierCompressor()


@pytest.mark.real_model
@pytest.mark.parametrize("rate", [0.33, 0.5])
def test_readme_sample_offline_budget_met_in_target_tokens(keep, rate):
    result = keep.compress(SAMPLE, rate=rate)
    assert result.settings["model"] == "minilm-l6-keep"
    assert result.budget_tokens == int(np.ceil(rate * result.original_tokens))
    assert result.compressed_tokens == keep.tokenizer.count(result.text)
    assert result.budget_tokens - 10 <= result.compressed_tokens <= result.budget_tokens
    assert_extractive([SAMPLE], result)


@pytest.mark.real_model
def test_trained_classifier_drops_function_words_before_content(keep):
    """What training taught it: function words are far less likely to be kept."""
    (doc, probs), *_ = keep.word_probabilities([FUEL + " " + NOISE[0]])
    words = [doc.text[a:b].lower() for a, b in doc.words.tolist()]
    function = [p for w, p in zip(words, probs, strict=True) if w in FUNCTION_WORDS]
    content = [p for w, p in zip(words, probs, strict=True) if w.isalpha() and len(w) > 5]
    assert np.mean(function) + 0.2 < np.mean(content)


@pytest.mark.real_model
def test_documents_target_tokens_and_force_tokens(keep):
    forcing = TokenClassifierCompressor(force_tokens=["piston", "Grenoble"])
    documents = [FUEL, *NOISE]
    result = forcing.compress(documents, target_tokens=40)
    assert result.compressed_tokens <= 40
    assert "piston" in result.documents[0] and "Grenoble" in result.documents[1]
    assert_extractive(documents, result)
    assert "piston" not in keep.compress(documents, target_tokens=10).text


@pytest.mark.real_model
def test_threshold_mode_keeps_exactly_the_words_above_p(keep):
    (doc, probs), *_ = keep.word_probabilities([FUEL])
    for p in (0.3, 0.7):
        result = TokenClassifierCompressor(threshold=p, protect=()).compress(FUEL)
        assert result.budget_tokens is None
        kept = {(s.start, s.end) for s in result.scores}
        expected = {tuple(w) for w, q in zip(doc.words.tolist(), probs, strict=True) if q >= p}
        assert kept == expected
        assert_extractive([FUEL], result)
    loose = TokenClassifierCompressor(threshold=0.3).compress(FUEL).compressed_tokens
    strict = TokenClassifierCompressor(threshold=0.7).compress(FUEL).compressed_tokens
    assert strict < loose


@pytest.mark.real_model
def test_long_input_is_chunked_at_sentences_and_one_threshold_rules_all_chunks():
    long_text = " ".join([SAMPLE, FUEL, *NOISE] * 2)
    small = TokenClassifierCompressor(max_length=128, protect=())
    (doc, probs), *_ = small.word_probabilities([long_text])
    bounds = chunk_bounds(doc, 126)
    assert len(bounds) >= 6 and bounds[-1][1] == len(doc.ids)
    sentence_starts = {a for a, _ in sentence_spans(long_text)}
    starts_at_sentence = [doc.words[doc.word[a], 0] in sentence_starts for a, _ in bounds[1:]]
    assert np.mean(starts_at_sentence) > 0.8  # the rest: sentences longer than a window
    result = small.compress(long_text, rate=0.4)
    assert result.compressed_tokens <= result.budget_tokens
    kept = np.zeros(len(doc.words), dtype=bool)
    for span in result.kept_spans:
        kept |= (doc.words[:, 0] >= span.start) & (doc.words[:, 1] <= span.end)
    # one global threshold: hardly any dropped word scores above the weakest kept one
    assert (probs[~kept] > probs[kept].min()).sum() <= 5
    chunked = TokenClassifierCompressor(max_length=128, protect=(), policy="chunk")
    per_chunk = chunked.compress(long_text, rate=0.4)
    assert per_chunk.text != result.text


@pytest.mark.real_model
def test_chunk_policy_keeps_the_rate_in_each_chunk():
    chunked = TokenClassifierCompressor(max_length=128, protect=(), policy="chunk")
    result = chunked.compress(SAMPLE, rate=0.5)
    (doc, _), *_ = chunked.word_probabilities([SAMPLE])
    kept = np.zeros(len(doc.words), dtype=bool)
    for span in result.kept_spans:
        kept |= (doc.words[:, 0] >= span.start) & (doc.words[:, 1] <= span.end)
    for a, b in chunk_bounds(doc, 126):
        words = np.unique(doc.word[a:b])
        assert 0.25 < kept[words].mean() < 0.75


@pytest.mark.real_model
def test_batch_equals_single_calls(keep):
    items = [{"context": SAMPLE, "rate": 0.5}, {"context": [FUEL, *NOISE], "rate": 0.3}, "  "]
    batched = keep.compress_batch(items)
    assert batched[0].text == keep.compress(SAMPLE, rate=0.5).text
    assert batched[1].documents == keep.compress([FUEL, *NOISE], rate=0.3).documents
    assert batched[2].text == "  "


@pytest.mark.real_model
def test_onnx_torch_and_int8_agree(keep):
    torch_backend = TokenClassifierCompressor(backend="torch")
    int8 = TokenClassifierCompressor(variant="int8")
    (_, onnx_probs), *_ = keep.word_probabilities([SAMPLE])
    (_, torch_probs), *_ = torch_backend.word_probabilities([SAMPLE])
    (_, int8_probs), *_ = int8.word_probabilities([SAMPLE])
    assert np.abs(onnx_probs - torch_probs).max() < 1e-3
    assert ((onnx_probs >= 0.5) == (int8_probs >= 0.5)).mean() > 0.95
    assert torch_backend.compress(SAMPLE, rate=0.5).text == keep.compress(SAMPLE, rate=0.5).text


@pytest.mark.real_model
def test_drop_consecutive_force_tokens_and_document_filter():
    text = "Is the oil level rising ? ? ? Then change the oil now ."
    plain = TokenClassifierCompressor(force_tokens=["?"]).compress(text, rate=0.6)
    assert plain.text.count("?") == 3
    dropping = TokenClassifierCompressor(force_tokens=["?"], drop_consecutive=True)
    assert dropping.compress(text, rate=0.6).text.count("?") == 1
    filtering = TokenClassifierCompressor(document_rate=0.5)
    result = filtering.compress([FUEL, *NOISE], rate=0.5)
    assert len({span.doc for span in result.kept_spans}) == 2


# -- architectures: tiny random checkpoints built from configs --------------------------------


def _tiny_tokenizer(kind: str):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    if kind == "bert":
        names = ("pad", "unk", "cls", "sep", "mask")
        specials = {name: f"[{name.upper()}]" for name in names}
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=False)  # cased, like mBERT
        tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=list(specials.values()))
    else:
        specials = {"cls": "<s>", "pad": "<pad>", "sep": "</s>", "unk": "<unk>", "mask": "<mask>"}
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()  # XLM-R: words start with "▁"
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(  # type: ignore[assignment]
            vocab_size=400, special_tokens=list(specials.values()), unk_token="<unk>"
        )
    tokenizer.train_from_iterator([SAMPLE, FUEL, *NOISE], trainer)
    cls, sep = specials["cls"], specials["sep"]
    tokenizer.post_processor = TemplateProcessing(
        single=f"{cls} $A {sep}",
        special_tokens=[(cls, tokenizer.token_to_id(cls)), (sep, tokenizer.token_to_id(sep))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        model_max_length=512,
        **{f"{role}_token": token for role, token in specials.items()},
    )


def _tiny_model(folder: Path, kind: str) -> Path:
    import torch
    from transformers import (
        BertConfig,
        BertForTokenClassification,
        XLMRobertaConfig,
        XLMRobertaForTokenClassification,
    )

    tokenizer = _tiny_tokenizer(kind)
    sizes = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=2,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    if kind == "bert":
        model = BertForTokenClassification(BertConfig(max_position_embeddings=512, **sizes))
    else:
        model = XLMRobertaForTokenClassification(  # type: ignore[assignment]
            XLMRobertaConfig(max_position_embeddings=514, **sizes)
        )
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["bert", "xlm-roberta"])
def test_tiny_random_checkpoints_load_and_run(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("RAGPRESS_HOME", str(tmp_path / "home"))
    folder = _tiny_model(tmp_path / f"tiny-{kind}", kind)
    assert (folder / "model.safetensors").is_file()
    assert get_spec(str(folder)).kind == "encoder"
    compressor = TokenClassifierCompressor(model=str(folder), protect=())
    long_text = " ".join([SAMPLE, FUEL] * 2)  # over 512 sub-words: several chunks
    result = compressor.compress(long_text, rate=0.5)
    assert result.compressed_tokens <= result.budget_tokens
    assert_extractive([long_text], result)
    (doc, probs), *_ = compressor.word_probabilities([long_text])
    assert len(chunk_bounds(doc, 510)) >= 2 and np.all((probs > 0) & (probs < 1))
    words = [long_text[a:b] for a, b in doc.words.tolist()]
    if kind == "xlm-roberta":  # whitespace words, punctuation attached
        assert "rings." in words
    else:  # split at punctuation
        assert "rings" in words and "." in words
    torch_probs = TokenClassifierCompressor(model=str(folder), backend="torch")
    assert np.abs(torch_probs.word_probabilities([long_text])[0][1] - probs).max() < 1e-4


def test_ad_hoc_hub_ids_can_be_encoders():
    assert get_spec("microsoft/llmlingua-2-xlm-roberta-large-meetingbank").kind == "causal-lm"
    spec = get_spec("microsoft/llmlingua-2-xlm-roberta-large-meetingbank", kind="encoder")
    assert spec.kind == "encoder" and spec.roles == ("token-logits", "hidden")
    with pytest.raises(ValueError, match="kind"):
        get_spec("org/model", kind="decoder")


def test_encode_words_merges_sub_words():
    from transformers import AutoTokenizer

    from ragpress.onnx.sources import weights_folder

    tokenizer = AutoTokenizer.from_pretrained(weights_folder(get_spec("minilm-l6")))
    (doc,) = encode_words(tokenizer, ["Unburned fuel-dilution, 58213!"])
    words = [doc.text[a:b] for a, b in doc.words.tolist()]
    assert words == ["Unburned", "fuel", "-", "dilution", ",", "58213", "!"]
    assert len(doc.ids) > len(words)  # "unburned", "58213" are several sub-words


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"policy": "local"}, ValueError, "policy"),
        ({"pooling": "max"}, ValueError, "pooling"),
        ({"threshold": 1.5}, ValueError, "threshold"),
        ({"threshold": "high"}, TypeError, "threshold"),
        ({"threshold": 0.5, "policy": "chunk"}, ValueError, "exclude"),
        ({"document_rate": 0.0}, ValueError, "document_rate"),
        ({"force_tokens": "abc"}, TypeError, "force_tokens"),
        ({"force_tokens": [""]}, ValueError, "force_tokens"),
        ({"protect": ["emoji"]}, ValueError, "protect"),
        ({"max_length": 4}, ValueError, "max_length"),
        ({"model": "no-such-model"}, ValueError, "unknown model"),
        ({"backend": "tensorflow"}, ValueError, "backend"),
    ],
)
def test_bad_options_raise_clear_errors(options, error, match):
    with pytest.raises(error, match=match):
        TokenClassifierCompressor(**options)


@pytest.mark.real_model
def test_bad_requests_raise_clear_errors(keep):
    with pytest.raises(TypeError, match="context"):
        keep.compress(123)
    with pytest.raises(ValueError, match="rate"):
        keep.compress(FUEL, rate=0)
    with pytest.raises(ValueError, match="rate or target_tokens"):
        keep.compress(FUEL, rate=0.5, target_tokens=10)
    assert keep.compress("   ").text == "   "
