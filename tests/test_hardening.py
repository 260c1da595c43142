"""Issue #20: one reproducer per defect of the bad-input and fault campaign (the corpus over
every method is tests/test_bad_input_corpus.py)."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ragpress
from ragpress.cli import app
from ragpress.compressors.metatoken import (
    MetaTokenCompressor,
    compress_ids,
    decompress_ids,
    decompress_text,
)
from ragpress.onnx.cache import (
    CacheError,
    atomic_directory,
    remove_stale_scratch,
    settled_is_file,
)
from ragpress.text import (
    MAX_UNIT_CHARS,
    MAX_WORD_CHARS,
    protected_spans,
    trimmed_sentence_spans,
    word_spans,
)
from tests.extractive import assert_extractive_text

#: A generous bound for calls that used to be quadratic (minutes) and are now linear
#: (milliseconds): it only fails if the quadratic behaviour comes back.
LINEAR_SECONDS = 10.0


def _timed(function, *args, **kwargs):
    started = time.perf_counter()
    value = function(*args, **kwargs)
    return value, time.perf_counter() - started


# -- 1. invented text: the token classifier's words tile the input ------------------------------

IDENTITY_INPUTS = [
    "ok \x1b[31mred",
    "Price \u200f100\u200f USD",
    "\ufeffPrices rose.\ufeffAgain they rose.",
    "Cafe\u0301 au lait",
    "x \u200b y",
    "Call f(): now",
]


@pytest.fixture(scope="module")
def classifier():
    return ragpress.get_compressor("token-classifier")


@pytest.mark.real_model
@pytest.mark.parametrize("text", IDENTITY_INPUTS)
def test_token_classifier_at_rate_one_is_the_identity(classifier, text):
    assert classifier.compress(text, rate=1.0).text == text.strip()


@pytest.mark.real_model
def test_token_classifier_keeps_a_document_of_characters_its_encoder_drops(classifier):
    documents = ["Hello world.", "\x00\x01\u200b"]  # no sub-word at all in the second
    assert classifier.compress(documents, rate=1.0).documents == documents


@pytest.mark.real_model
def test_token_classifier_never_fuses_neighbours_of_dropped_words():
    text = "foo(bar) a/b and ok??Yes"
    threshold = ragpress.get_compressor("token-classifier", threshold=0.5)
    assert_extractive_text([text], threshold.compress(text).text)
    repeats = ragpress.get_compressor("token-classifier", force_tokens=["?"], drop_consecutive=True)
    output = repeats.compress("ok??Yes", rate=1.0).text
    assert output == "ok? Yes"  # the repeated "?" is dropped, the words around it stay apart
    assert_extractive_text(["ok??Yes"], output)


# -- 2 and 3. span detection: no recursion, linear time -----------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "[" * 1000,
        "[" * 1000 + "]" * 1000,
        "prose " + '{"a": ' * 1000 + "1" + "}" * 1000 + " prose",
        '{"k": ' * 5000,
    ],
)
def test_deep_brackets_do_not_recurse(text):
    protected_spans(text)  # raised RecursionError from the JSON detector


def test_json_spans_are_still_found_among_stray_quotes_and_brackets():
    text = 'He said "hi [there" and {"a": 1, "b": [1, 2]} then [x, {"c": 2, "d": 3}]'
    spans = [text[a:b] for a, b in protected_spans(text, numbers=False)]
    assert spans == ['{"a": 1, "b": [1, 2]}', '{"c": 2, "d": 3}']


@pytest.mark.parametrize(
    "text",
    [
        "x" * 200_000,
        "a@" + "x" * 200_000,
        "x." * 100_000,
        "[" * 200_000,
        "[{" * 100_000,
        '["' * 100_000,
        "`" + "x" * 200_000,
    ],
    ids=["word", "at-word", "dots", "brackets", "mixed-brackets", "quotes", "backtick"],
)
def test_span_detection_is_linear_on_200k_characters(text):
    _, seconds = _timed(protected_spans, text)
    assert seconds < LINEAR_SECONDS  # the e-mail pattern alone took 128 s on the 200k word


def test_email_pattern_finds_the_same_addresses():
    text = "write to foo.bar+x@ex-ample.co.uk, a@b@c.d or x@y today"
    spans = [text[a:b] for a, b in protected_spans(text, json=False, numbers=False)]
    assert spans == ["foo.bar+x@ex-ample.co.uk", "b@c.d"]


@pytest.mark.real_model
def test_token_classifier_on_a_200k_character_word(classifier):
    result, seconds = _timed(classifier.compress, "x" * 200_000, rate=0.5)
    assert seconds < 60  # 128 s before, the e-mail pattern's quadratic scan
    assert result.compressed_tokens <= result.budget_tokens


# -- 5. rate=1.0 is the identity ----------------------------------------------------------------


@pytest.mark.parametrize("method", ["first-k", "random"])
@pytest.mark.parametrize("text", ["Call f(): now", "f(x): y", "a,b;c. «d» — e…"])
def test_rate_one_keeps_everything(method, text):
    assert ragpress.compress(text, method=method, rate=1.0).text == text


# -- 6. the weights cache has a manifest, checked before use -------------------------------------


@pytest.mark.real_model
def test_corrupted_weights_cache_is_rebuilt_from_the_package(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    from ragpress.onnx.catalogue import get_spec
    from ragpress.onnx.sources import WEIGHTS_MANIFEST, weights_folder, weights_intact

    monkeypatch.setenv("RAGPRESS_HOME", str(tmp_path))
    spec = get_spec("minilm-l6-keep")
    folder = Path(weights_folder(spec))
    manifest = json.loads((folder / WEIGHTS_MANIFEST).read_text())
    weights = folder / "model.safetensors"
    assert set(manifest["sources"]) == {"model.safetensors", "minilm-l6-keep.safetensors"}
    original = weights.read_bytes()
    corrupted = bytearray(original)
    corrupted[-400:-200] = bytes(255 - b for b in corrupted[-400:-200])  # 200 bytes flipped
    weights.write_bytes(bytes(corrupted))
    sources = spec.packaged.paths()
    assert not weights_intact(folder, [sources[0] / "model.safetensors", sources[1]])
    assert Path(weights_folder(spec)) == folder  # rebuilt in place, from the package
    assert weights.read_bytes() == original


# -- 7. sentence units are capped ---------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(300)]),
        "東京は日本の首都であり人口が多く交通網が発達している" * 100,
        " | ".join(f"cell {i}" for i in range(2000)),
        "x" * 5000,
        ("Cafe\u0301" * 400),
    ],
    ids=["json", "cjk", "table", "word", "accents"],
)
def test_sentence_units_are_capped_and_tile_the_text(text):
    spans = trimmed_sentence_spans(text)
    assert max(end - start for start, end in spans) <= MAX_UNIT_CHARS
    kept = "".join(text[a:b] for a, b in spans)
    assert "".join(kept.split()) == "".join(text.split())  # nothing lost, nothing repeated
    assert all(not ("\u0300" <= text[a] <= "\u036f") for a, _ in spans)  # accents stay on


# -- 8. cache writes: atomic swaps under a lock, stale scratch removed -------------------------


def _write_many(target: str, count: int) -> None:
    for index in range(count):
        with atomic_directory(Path(target)) as scratch:
            (scratch / "manifest.json").write_text(str(index))
            (scratch / "model.onnx").write_bytes(os.urandom(2048))


def _read_many(target: str, count: int, misses) -> None:
    missing = 0
    for _ in range(count):
        missing += not settled_is_file(Path(target) / "manifest.json")
    misses.value = missing


def test_concurrent_writers_and_readers(tmp_path):
    target = tmp_path / "models" / "m" / "nll-fp32"
    _write_many(str(target), 1)
    context = multiprocessing.get_context("spawn")
    misses = context.Value("i", -1)
    writers = [context.Process(target=_write_many, args=(str(target), 30)) for _ in range(4)]
    reader = context.Process(target=_read_many, args=(str(target), 2000, misses))
    for process in [*writers, reader]:
        process.start()
    for process in [*writers, reader]:
        process.join(timeout=300)
        assert process.exitcode == 0  # a writer that raised exits 1
    assert misses.value == 0
    assert sorted(p.name for p in target.parent.iterdir()) == [".nll-fp32.lock", "nll-fp32"]


def test_stale_scratch_of_a_dead_process_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    stale = tmp_path / f".nll-fp32.tmp-{int(dead.stdout)}-abc"
    live = tmp_path / f".nll-fp32.tmp-{os.getpid()}-def"
    for folder in (stale, live):
        folder.mkdir()
        (folder / "model.onnx").write_bytes(b"half")
    assert remove_stale_scratch(tmp_path) == [stale]
    assert live.is_dir()


def test_a_file_where_a_cache_folder_belongs_is_replaced(tmp_path):
    target = tmp_path / "nll-fp32"
    target.write_text("not a folder")
    with atomic_directory(target) as scratch:
        (scratch / "manifest.json").write_text("{}")
    assert (target / "manifest.json").is_file()


def test_a_file_in_place_of_the_cache_parent_names_it(tmp_path):
    (tmp_path / "models").write_text("a file")
    target = tmp_path / "models" / "m" / "nll-fp32"
    with pytest.raises(CacheError, match="a file is in the way"), atomic_directory(target):
        pass


def test_unwritable_home_names_ragpress_home(monkeypatch):
    from ragpress.onnx.cache import model_dir

    monkeypatch.setenv("RAGPRESS_HOME", "/proc/ragpress-cannot-write-here")
    target = model_dir("m") / "nll-fp32"
    with pytest.raises(CacheError, match="RAGPRESS_HOME"), atomic_directory(target):
        pass


# -- 10. decompress validates its input strictly --------------------------------------------------

REPEATED = "the quick brown fox jumps over the lazy dog. " * 6 + "The end, the quick brown fox."


def test_decompress_rejects_markers_inside_an_entry():
    with pytest.raises(ValueError):
        MetaTokenCompressor().decompress("«meta 1»\n«1=a«1»b»\nX «1»")


@pytest.mark.parametrize(
    "tampered",
    [
        "«meta 1»\n«1=ab»\nX «2»",  # unknown placeholder
        "«meta 2»\n«1=ab»\n«2=cd»\nX «2» «1»",  # entries out of order of first use
        "«meta 1»\n«1=ab»\nX",  # an entry never used
        "«meta 1»\n«1=ab»\nX «1» «",  # a stray marker
        "«meta 1»\n«1=ab»\nX «01»",  # not a number the renderer writes
        "«meta 01»\n«1=ab»\nX «1»",
        "«meta 1»\n«1=»\nX «1»",  # an empty entry
        "«meta 1»\n«2=ab»\nX «1»",
    ],
)
def test_decompress_rejects_tampered_renderings(tampered):
    with pytest.raises(ValueError):
        decompress_text(tampered)


def test_truncated_renderings_raise_or_decode_to_a_prefix():
    compressor = MetaTokenCompressor()
    rendered = compressor.compress(REPEATED).text
    assert rendered.startswith("«meta ")
    header = rendered.index("\n") + 1  # shorter cuts have no header: returned as they are
    for cut in range(header, len(rendered)):
        try:
            decoded = decompress_text(rendered[:cut])
        except ValueError:
            continue
        assert REPEATED.startswith(decoded), cut  # never text the input did not have


def test_decompress_ids_rejects_duplicate_and_unused_entries():
    encoded = compress_ids([1, 2, 3, 1, 2, 3, 1, 2, 3, 4], meta_base=100)
    assert decompress_ids(encoded.ids, 100) == [1, 2, 3, 1, 2, 3, 1, 2, 3, 4]
    for tampered in (
        [101, 1, 2, 101, 3, 4, 100, 101, 101],  # entry 101 defined twice
        [101, 1, 2, 102, 3, 4, 100, 101, 101],  # entry 102 never used
        [102, 1, 2, 100, 102, 102],  # numbering does not start at 101
        [101, 1, 100, 101, 101],  # an entry of one token
        [101, 1, 2, 100, 101, 100, 101],  # a second separator
    ):
        with pytest.raises(ValueError):
            decompress_ids(tampered, 100)


# -- 11. raw exceptions become errors that name the fix --------------------------------------------


@pytest.mark.parametrize(
    ("content", "match"),
    [("not json", "not a valid manifest"), ('{"format": 4}', "not a valid manifest")],
)
def test_bad_manifest_is_a_model_file_error(tmp_path, content, match):
    from ragpress.onnx.runtime import ModelFileError, verify_files

    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(ModelFileError, match=match):
        verify_files(tmp_path)


def test_unreadable_manifest_means_export_again(tmp_path):
    from ragpress.onnx.catalogue import get_spec
    from ragpress.onnx.export import _stale

    (tmp_path / "manifest.json").write_text("{truncated")
    assert _stale(get_spec("smollm2-135m"), tmp_path)


def test_prepare_refuses_a_role_the_model_lacks(tmp_path, monkeypatch):
    from ragpress.onnx.export import prepare

    monkeypatch.setenv("RAGPRESS_HOME", str(tmp_path))
    with pytest.raises(ValueError, match="roles: token-logits"):
        prepare("minilm-l6-keep", "nll")
    assert not (tmp_path / "models").exists()  # refused before any work


def test_query_methods_fail_before_building_a_model(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGPRESS_HOME", str(tmp_path))
    for method in (
        "attention-probe",
        "embedding-similarity",
        "relevance+first-k",
        "first-k+attention-probe",
    ):
        with pytest.raises(ValueError, match="pass query"):
            ragpress.compress("Some context. More of it.", method=method)
    assert not (tmp_path / "models").exists()


def test_bad_options_are_rejected():
    with pytest.raises(TypeError, match="seed"):
        ragpress.get_compressor("random", seed="x")
    with pytest.raises(ValueError, match="coarse_factor"):
        ragpress.get_compressor("entropy", coarse_factor=float("nan"))


@pytest.mark.parametrize(
    ("method", "options", "error", "name"),
    [
        ("embedding-similarity", {"max_length": 0}, ValueError, "max_length"),
        ("embedding-similarity", {"max_length": "x"}, TypeError, "max_length"),
        ("entropy", {"force_tokens": "SB-2291"}, TypeError, "force_tokens"),
        ("entropy", {"window": 1024.5}, TypeError, "window"),
        ("entropy", {"relevance": "x"}, TypeError, "relevance"),
        ("relevance", {"threshold": "0.5"}, TypeError, "threshold"),
        ("relevance", {"device": "gpu"}, ValueError, "device"),
        ("relevance", {"threads": 0}, ValueError, "threads"),
        ("attention-probe", {"chunk_tokens": "x"}, TypeError, "chunk_tokens"),
        ("random+first-k", {"headroom": 10**400}, ValueError, "headroom"),
        ("ib-filter", {"floor": float("nan")}, ValueError, "floor"),
        ("ib-filter", {"coarse_weight": float("nan")}, ValueError, "coarse_weight"),
        ("random+first-k", {"headroom": float("inf")}, ValueError, "headroom"),
        ("random+first-k", {"headroom": "2"}, TypeError, "headroom"),
    ],
)
def test_a_bad_option_is_named_before_any_model_loads(
    method, options, error, name, tmp_path, monkeypatch
):
    monkeypatch.setenv("RAGPRESS_HOME", str(tmp_path))
    with pytest.raises(error, match=name):
        ragpress.get_compressor(method, **options)
    assert not (tmp_path / "models").exists()


def test_a_huge_headroom_lets_every_stage_but_the_last_keep_everything():
    result = ragpress.get_compressor("random+random+first-k", headroom=1e300).compress(
        "a b c d e f g h", rate=0.5
    )
    assert result.text == "a b c d"  # first-k alone decides


@pytest.mark.real_model
@pytest.mark.parametrize("method", ["relevance", "embedding-similarity"])
def test_a_window_longer_than_the_encoder_reads_is_cut_to_it(method):
    compressor = ragpress.get_compressor(method, max_length=600)
    assert compressor.max_length == 512  # MiniLM's positions
    filler = "The weather was mild and the fields along the river were green. " * 60  # > 512
    documents = ["The price is 3 dollars.", filler]
    result = compressor.compress(documents, "What is the price?", rate=0.5)
    assert "3 dollars" in result.text


def test_cli_errors_name_the_fix(tmp_path):
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("café crème".encode("latin-1"))
    runner = CliRunner()
    result = runner.invoke(app, ["compress", str(latin), "-m", "first-k"])
    assert result.exit_code == 2 and "is not UTF-8 text (byte 0xe9" in _flat(result.output)
    assert "iconv" in result.output
    result = runner.invoke(app, ["decompress", "-m", "nosuch"], input="text")
    assert result.exit_code == 2 and "unknown compressor 'nosuch'" in result.output
    result = runner.invoke(app, ["models", "prepare", "minilm-l6-keep", "--role", "nll"])
    assert result.exit_code == 2 and "its roles: token-logits" in result.output


def _flat(output: str) -> str:
    """Click's error box without its frame and line breaks."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", output).split())


# -- 12. adapters and pipelines -------------------------------------------------------------------


@pytest.mark.parametrize("documents", [None, "one string", 3])
def test_the_lcel_node_names_a_documents_value_that_is_no_list(documents):
    pytest.importorskip("langchain_core")
    from ragpress.integrations.langchain import as_langchain

    with pytest.raises(TypeError, match="'documents' must be a list of Documents"):
        as_langchain("first-k", rate=0.5).invoke({"documents": documents, "question": "q"})


def test_pipeline_is_no_stage_of_a_pipeline():
    with pytest.raises(ValueError, match="'pipeline' is not a stage"):
        ragpress.get_compressor("pipeline+first-k")


def test_langchain_refuses_to_overwrite_a_documents_own_key():
    Document = pytest.importorskip("langchain_core.documents").Document
    from ragpress.integrations.langchain import RagpressCompressor

    compressor = RagpressCompressor("first-k", rate=0.5)
    mine = Document(page_content="one two three four", metadata={"ragpress": "my own"})
    with pytest.raises(ValueError, match="rename that key"):
        compressor.compress_documents([mine], "q")
    with pytest.raises(TypeError, match=r"documents\[1\] must be a langchain Document"):
        compressor.compress_documents([Document(page_content="a b"), "text"], "q")
    # Figures of an earlier ragpress pass are ragpress's own: compressing again replaces them.
    once = compressor.compress_documents([Document(page_content="one two three four")], "q")
    twice = compressor.compress_documents(once, "q")
    assert (
        twice[0].metadata["ragpress"]["original_tokens"]
        == once[0].metadata["ragpress"]["compressed_tokens"]
    )


def test_llamaindex_checks_items_and_metadata():
    pytest.importorskip("llama_index.core")
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

    from ragpress.integrations.llamaindex import RagpressPostprocessor

    postprocessor = RagpressPostprocessor("first-k", rate=0.5)
    node = NodeWithScore(node=TextNode(text="one two three", metadata={"ragpress": 1}))
    with pytest.raises(ValueError, match="rename that key"):
        postprocessor.postprocess_nodes([node], QueryBundle("q"))
    with pytest.raises(TypeError, match=r"nodes\[0\] must be a NodeWithScore"):
        postprocessor.postprocess_nodes([TextNode(text="x")], QueryBundle("q"))


@pytest.mark.parametrize("context", ["   \n  ", ["", "  ", "\n"]])
def test_pipeline_passes_whitespace_through_without_a_budget(context):
    result = ragpress.compress(context, method="first-k+metatoken", target_tokens=0)
    assert result.budget_tokens is None
    assert result.text == ("\n\n".join(context) if isinstance(context, list) else context)
    if isinstance(context, list):
        assert result.documents == context


def test_pipeline_with_metatoken_last_meets_the_budget_on_header_like_text():
    text = "«meta 3»\n" + " ".join(f"header{i}: value {i}" for i in range(60))
    pipeline = ragpress.get_compressor("first-k+metatoken")
    for rate in (0.1, 0.5, 0.9):
        result = pipeline.compress(text, rate=rate)
        assert result.compressed_tokens <= result.budget_tokens
        assert_extractive_text([text], pipeline.stages[-1].decompress(result.text))


def test_rng_seed_is_validated_as_an_int():
    assert ragpress.get_compressor("random", seed=np.int64(3)).seed == 3


# -- 12. a run without spaces larger than the budget is cut, not dropped whole ------------------

UNSPACED = {
    "latin": "x" * 20_000,
    "cjk": "東京は日本の首都であり人口が多く交通網が発達している" * 15,
    "thai": "ภาษาไทยเป็นภาษาที่มีระดับเสียงของคำแน่นอนหรือวรรณยุกต์" * 8,
}


@pytest.mark.parametrize("text", UNSPACED.values(), ids=UNSPACED.keys())
def test_word_units_are_capped_and_tile_the_text(text):
    spans = word_spans(text)
    assert max(end - start for start, end in spans) <= MAX_WORD_CHARS
    assert "".join(text[a:b] for a, b in spans) == text


@pytest.mark.parametrize(
    ("method", "options"),
    [
        ("first-k", {}),
        ("random", {}),
        pytest.param("token-classifier", {}, marks=pytest.mark.real_model),
        pytest.param("entropy", {}, marks=pytest.mark.real_model),
    ],
)
@pytest.mark.parametrize("text", [UNSPACED["cjk"], UNSPACED["thai"]], ids=["cjk", "thai"])
def test_an_unspaced_document_keeps_part_of_itself(method, options, text):
    documents = ["Hello world.", text]
    result = ragpress.get_compressor(method, **options).compress(documents, rate=0.5)
    assert result.compressed_tokens <= result.budget_tokens
    assert result.compressed_tokens >= result.budget_tokens // 4  # it was 0 before: "" kept
    assert_extractive_text(documents, result.text)


@pytest.mark.real_model
def test_entropy_sentence_units_are_capped():
    # One 2,300-character sentence: whole, it fits no budget below the full text.
    text = ", ".join(f"item {i} is red" for i in range(150)) + "."
    result = ragpress.get_compressor("entropy", unit="sentence").compress(text, rate=0.5)
    assert 0 < result.compressed_tokens <= result.budget_tokens


def test_numpy_budgets_are_numbers():
    rate = ragpress.compress("a b c d e f", method="first-k", rate=np.float32(0.5))
    tokens = ragpress.compress("a b c d e f", method="first-k", target_tokens=np.int64(2))
    assert (rate.text, tokens.text) == ("a b c", "a b")
    assert type(tokens.budget_tokens) is int  # JSON-ready, as a Python int
    with pytest.raises(TypeError, match="target_tokens must be an int"):
        ragpress.compress("a b", method="first-k", target_tokens=np.float64(2.0))


@pytest.mark.parametrize("content", [b"not a probe", b"PK\x03\x04 truncated", b"npy", None])
def test_a_probe_file_that_is_no_probe_is_named_before_the_model_loads(
    content, tmp_path, monkeypatch
):
    monkeypatch.setenv("RAGPRESS_HOME", str(tmp_path / "home"))
    path = tmp_path / "probe.npz"
    if content is None:
        np.savez(path, weights=np.zeros(3))  # an .npz without the probe's arrays
    elif content == b"npy":
        np.save(path.with_suffix(".npy"), np.zeros(3))
        path = path.with_suffix(".npy")  # one array, not an archive
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match="is not an attention probe"):
        ragpress.get_compressor("attention-probe", probe=path)
    assert not (tmp_path / "home" / "models").exists()
