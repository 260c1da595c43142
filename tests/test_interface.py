"""The shared interface: validation, registry, results, batch, CLI."""

from __future__ import annotations

import json
import math

import pytest

import ragpress
from ragpress import CompressionRequest
from ragpress._runtime_check import installed_onnxruntime_distributions
from ragpress.tokenization import get_target_tokenizer
from tests.cli_runner import run_cli


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"context": b"bytes"}, TypeError, "bytes"),
        ({"context": 42}, TypeError, "context must be"),
        ({"context": ["ok", 3]}, TypeError, r"context\[1\]"),
        ({"context": "x\ud800y"}, ValueError, "lone surrogate"),
        ({"context": "x", "query": 5}, TypeError, "query"),
        ({"context": "x", "rate": 0}, ValueError, "rate"),
        ({"context": "x", "rate": 1.5}, ValueError, "rate"),
        ({"context": "x", "rate": float("nan")}, ValueError, "rate"),
        ({"context": "x", "rate": True}, TypeError, "rate"),
        ({"context": "x", "target_tokens": -1}, ValueError, "target_tokens"),
        ({"context": "x", "target_tokens": 2.5}, TypeError, "target_tokens"),
        ({"context": "x", "rate": 0.5, "target_tokens": 3}, ValueError, "not both"),
    ],
)
def test_bad_input_raises_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        ragpress.compress(**kwargs)


def test_budget_from_rate_or_target():
    assert CompressionRequest.create("x", rate=0.25).token_budget(10, None) == 3
    assert CompressionRequest.create("x", target_tokens=7).token_budget(10, 0.5) == 7
    assert CompressionRequest.create("x").token_budget(10, 0.5) == 5
    assert CompressionRequest.create("x").token_budget(10, None) is None


def test_empty_context_passes_through():
    result = ragpress.compress("   ")
    assert result.text == "   "
    assert result.original_tokens == result.compressed_tokens
    assert ragpress.compress("").text == ""


def test_unknown_method_lists_known_ones():
    with pytest.raises(ValueError, match="metatoken"):
        ragpress.get_compressor("no-such-method")
    assert "metatoken" in ragpress.available()
    assert ragpress.get_compressor("lossless").name == "metatoken"


def test_result_numbers_and_json():
    result = ragpress.compress("same words here. " * 40)
    assert isinstance(result.ratio, float) and result.ratio > 1
    assert math.isclose(result.rate * result.ratio, 1.0)
    data = result.to_dict()
    assert data["method"] == "metatoken"
    assert data["settings"]["target_tokenizer"] == "smollm2"
    json.dumps(data)
    assert result.seconds > 0


def test_compress_batch_matches_single_calls():
    compressor = ragpress.get_compressor("metatoken")
    items = ["a b c d e f " * 20, {"context": ["x y z w " * 20, "q"], "query": "q?"}]
    batch = compressor.compress_batch(items)
    single = [compressor.compress(items[0]), compressor.compress(**items[1])]
    assert [r.text for r in batch] == [r.text for r in single]
    with pytest.raises(TypeError, match="sequence of requests"):
        compressor.compress_batch("not a list")
    with pytest.raises(ValueError, match="context"):
        compressor.compress_batch([{"text": "x"}])


def test_a_request_built_directly_is_checked_like_one_from_create():
    compressor = ragpress.get_compressor("first-k")
    text = "one two three four five six seven eight"
    for bad, error in [
        (CompressionRequest((text,), rate=2.0), ValueError),
        (CompressionRequest((text,), rate=0.5, target_tokens=3), ValueError),
        (CompressionRequest((text, 7), is_list=True), TypeError),
        (CompressionRequest((text,), query=b"q"), TypeError),
    ]:
        with pytest.raises(error):
            compressor.compress_batch([bad])
    # One str as documents is one document, not one per character.
    direct = CompressionRequest(text, rate=0.5)
    listed = CompressionRequest((text, "nine ten"), rate=0.5, is_list=True)
    batch = compressor.compress_batch([direct, listed])
    assert batch[0].text == compressor.compress(text, rate=0.5).text
    assert batch[0].documents is None
    assert batch[1].documents == compressor.compress([text, "nine ten"], rate=0.5).documents


def test_target_tokenizer_variants():
    default = get_target_tokenizer()
    assert default.count("The capital of France is Paris.") == len(
        default.encode("The capital of France is Paris.")
    )
    assert "".join(default.pieces("naïve café 🎉 x")) == "naïve café 🎉 x"
    words = get_target_tokenizer(lambda text: text.split())
    assert words.count("one two three") == 3
    compressor = ragpress.get_compressor("metatoken", target_tokenizer=str.split)
    text = "alpha beta gamma delta " * 10
    result = compressor.compress(text)
    assert result.original_tokens == 40
    assert compressor.decompress(result.text) == text
    with pytest.raises(TypeError, match="target_tokenizer"):
        get_target_tokenizer(3.5)


def test_hf_tokenizer_object_is_accepted():
    from transformers import PreTrainedTokenizerFast

    from ragpress.tokenization import _named_tokenizer

    hf = PreTrainedTokenizerFast(tokenizer_object=_named_tokenizer("smollm2")._tokenizer)
    wrapped = get_target_tokenizer(hf)
    assert wrapped.encode("Hello world") == get_target_tokenizer().encode("Hello world")


def test_a_rust_tokenizer_object_is_accepted_and_a_counter_is_refused():
    from tokenizers import Tokenizer

    from ragpress.tokenization import _named_tokenizer

    rust = Tokenizer.from_str(_named_tokenizer("smollm2")._tokenizer.to_str())
    wrapped = get_target_tokenizer(rust)  # its encode gives an Encoding, not ids
    assert wrapped.encode("Hello world") == get_target_tokenizer().encode("Hello world")
    result = ragpress.get_compressor("first-k", target_tokenizer=rust).compress(
        "one two three four five six seven eight", rate=0.5
    )
    assert result.original_tokens == 8 and result.compressed_tokens <= 4
    with pytest.raises(TypeError, match="must give a list of tokens"):
        get_target_tokenizer(len).count("a count, not tokens")


def test_only_one_onnxruntime_build_installed():
    assert len(installed_onnxruntime_distributions()) <= 1


def test_cli_round_trips_the_sample(tmp_path):
    from importlib import resources

    sample = resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")
    packed = run_cli("compress", "sample", "--method", "metatoken")
    assert packed.returncode == 0, packed.stderr
    assert "metatoken:" in packed.stderr
    assert len(packed.stdout) < len(sample)
    path = tmp_path / "packed.txt"
    path.write_text(packed.stdout, encoding="utf-8")
    restored = run_cli("decompress", str(path))
    assert restored.returncode == 0, restored.stderr
    assert restored.stdout == sample


def test_cli_json_and_errors():
    result = run_cli("compress", "-", "--json", stdin="abc abc abc abc abc abc abc abc abc")
    assert json.loads(result.stdout)["original_tokens"] > 0
    bad = run_cli("compress", "-", "--rate", "3", stdin="text")
    assert bad.returncode == 2 and "rate" in bad.stderr
    unknown = run_cli("compress", "-", "--method", "nope", stdin="text")
    assert unknown.returncode == 2 and "known" in unknown.stderr
    assert "metatoken" in run_cli("methods").stdout
