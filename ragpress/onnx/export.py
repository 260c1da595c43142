"""Export one ONNX graph per role, check it against PyTorch on real text, write a manifest.

Roles export only what their compressor reads, so no vocabulary-sized tensor leaves the graph:
``nll`` returns per-token negative log-likelihood (B, S) with log-softmax and gather inside the
graph; ``token-logits`` returns token-classification logits (B, S, C); ``attention`` returns
the final position's attention to every position, per layer and head (B, L, H, S); ``hidden``
returns an encoder's last hidden states (B, S, D), for sentence embeddings.

Attention is exported as one fused onnxruntime op per layer (``ragpress.onnx.fusion``), not as
the exporter's MatMul + Softmax decomposition; the parity reference stays the unchanged PyTorch
model with its SDPA attention.

Variants: ``fp32``; ``int8`` (dynamic quantization of the MatMul weights, per channel, with the
MLP down-projections left in fp32: quantizing them wrecks NLL ranking); ``fp16`` for CUDA.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ragpress.onnx.cache import atomic_directory, model_dir, settled_is_file, sha256
from ragpress.onnx.catalogue import ModelSpec, Role, get_spec
from ragpress.onnx.sources import load_tokenizer, load_torch_model, weights_folder

Variant = Literal["fp32", "int8", "fp16"]
VARIANTS: tuple[Variant, ...] = ("fp32", "int8", "fp16")
MANIFEST = "manifest.json"
GRAPH = "model.onnx"
OPSET = 18
#: Bumped whenever exported graphs change meaning or shape: cached graphs of an older format are
#: exported again (2: fused GroupQueryAttention, NLL as log-sum-exp minus the target logit;
#: 3: the NLL graph cuts the last position before the vocabulary projection, not after;
#: 4: int8 quantizes the tied vocabulary projection too).
EXPORT_FORMAT = 4
#: Causal LMs whose logits are the output embedding of the decoder's last hidden state, with no
#: scaling or soft-capping after it (the NLL graph applies the head itself).
PLAIN_HEAD = frozenset({"llama", "qwen2", "mistral", "qwen3", "phi3"})
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    spearman: float | None = None  # rank agreement of NLLs (nll role)
    keep_agreement: float | None = None  # share of equal argmax labels (token-logits role)
    tokens: int = 0


def graph_dir(name: str, role: Role, variant: Variant) -> Path:
    return model_dir(name) / f"{role}-{variant}"


def prepare(
    name: str | ModelSpec,
    role: Role | None = None,
    variant: Variant = "fp32",
    *,
    force: bool = False,
) -> Path:
    """Export (once) and return the folder holding ``model.onnx`` and its manifest.

    ``name`` is a catalogue name, folder or hub id, or a spec (ad-hoc ones keep their kind)."""
    spec = get_spec(name)
    role = role or spec.roles[0]
    if role not in _WRAPPERS:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(_WRAPPERS)}")
    if role not in spec.roles:
        raise ValueError(
            f"{spec.name} is a {spec.kind} model: it has no {role!r} graph; "
            f"its roles: {', '.join(spec.roles)}"
        )
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; variants: {', '.join(VARIANTS)}")
    target = graph_dir(spec.name, role, variant)
    if _ready(spec, target) and not force:
        return target
    from ragpress.onnx.progress import job

    steps = _typical_seconds(
        spec, fp32=variant == "fp32" or not _ready(spec, target, "fp32"), derive=variant != "fp32"
    )
    with job(f"preparing {spec.name} {role} {variant} (once)", steps):
        if variant == "fp32":
            _export_fp32(spec, role, target)
        else:
            _derive_variant(spec, role, variant, target)
    return target


def _ready(spec: ModelSpec, target: Path, variant: str | None = None) -> bool:
    if variant is not None:
        target = target.with_name(target.name.rsplit("-", 1)[0] + f"-{variant}")
    return settled_is_file(target / MANIFEST) and not _stale(spec, target)


def _typical_seconds(spec: ModelSpec, *, fp32: bool, derive: bool) -> dict[str, float]:
    """The steps to run (the fp32 export, a derived variant) with their usual length on 2 CPU
    cores (SmolLM2-135M, MiniLM-L6): the progress bar's weights and ETA."""
    large = spec.kind == "causal-lm"
    steps: dict[str, float] = {}
    if fp32:
        steps["load weights"] = 40.0 if large else 4.0
        steps["export"] = 90.0 if large else 15.0
        steps["check parity"] = 10.0 if large else 2.0
    if derive:
        steps["quantize"] = 25.0 if large else 5.0
        steps["check int8 parity"] = 10.0 if large else 2.0
    return steps


def _delta_sha256(spec: ModelSpec) -> str | None:
    """The sha256 of a shipped weight delta (a retrained classifier), None for other models."""
    if spec.packaged is None or not spec.packaged.delta or not spec.packaged.available():
        return None
    return sha256(spec.packaged.paths()[-1])


def _stale(spec: ModelSpec, target: Path) -> bool:
    """A graph an older ragpress exported (another graph format or another shipped delta), or
    a manifest that cannot be read: exported again."""
    try:
        manifest = json.loads((target / MANIFEST).read_text())
    except (OSError, ValueError):
        return True
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        return True
    expected = _delta_sha256(spec)
    return expected is not None and manifest.get("delta_sha256") != expected


def _export_fp32(spec: ModelSpec, role: Role, target: Path) -> None:
    from ragpress.onnx.progress import step

    with step("load weights"):
        import torch

        model = load_torch_model(spec, head=role != "hidden")
        tokenizer = load_tokenizer(spec)
        sample = _parity_inputs(tokenizer)
        with torch.no_grad():  # the reference is the unchanged PyTorch model (SDPA attention)
            reference = _WRAPPERS[role](model).eval()(*sample.values()).numpy()
    wrapper = _WRAPPERS[role](model, fused=True).eval()
    with atomic_directory(target) as scratch:
        with step("export"):
            started = time.perf_counter()
            _torch_export(wrapper, sample, scratch / GRAPH, role, model)
            if spec.kind == "encoder":
                _fuse_encoder(scratch / GRAPH, model.config)
            export_seconds = time.perf_counter() - started
        np.save(scratch / "reference.npy", reference)
        np.savez(scratch / "parity_inputs.npz", **{k: v.numpy() for k, v in sample.items()})
        with step("check parity"):
            parity = _check_parity(scratch / GRAPH, sample, reference, role)
        tokenizer.save_pretrained(scratch / "tokenizer")
        _write_manifest(scratch, spec, role, "fp32", parity, export_seconds)


def _torch_export(wrapper: Any, sample: dict, graph: Path, role: Role, model: Any) -> None:
    import torch

    from ragpress.onnx import fusion

    torch.onnx.export(
        wrapper,
        (sample["input_ids"], sample["attention_mask"]),
        str(graph),
        dynamo=True,
        input_names=["input_ids", "attention_mask"],
        output_names=[_OUTPUT[role]],
        dynamic_shapes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
        },
        opset_version=OPSET,
        external_data=_too_big_for_one_file(model),
        optimize=True,
        custom_translation_table=fusion.translation_table(),
    )


def _fuse_encoder(graph: Path, config: Any) -> None:
    """Fuse BERT-family subgraphs (SkipLayerNorm, BiasGelu, ...) with onnxruntime's transformer
    optimizer: ~1.4x faster MiniLM on CPU. Parity is checked on the fused graph; a graph the
    optimizer cannot handle stays as exported."""
    try:
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(
            str(graph),
            model_type="bert",
            num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size,
            opt_level=0,
        )
        fused.save_model_to_file(str(graph))
    except Exception as error:  # the optimizer's pattern matching fails in many ways
        log.warning("encoder fusion skipped for %s: %s", graph, error)


def _derive_variant(spec: ModelSpec, role: Role, variant: Variant, target: Path) -> None:
    from ragpress.onnx.progress import step

    source = Path(prepare(spec, role, "fp32"))
    sample = dict(np.load(source / "parity_inputs.npz"))
    reference = np.load(source / "reference.npy")
    with atomic_directory(target) as scratch:
        started = time.perf_counter()
        with step("quantize"):
            if variant == "int8":
                _quantize_int8(source / GRAPH, scratch / GRAPH)
            else:
                _convert_fp16(source / GRAPH, scratch / GRAPH)
        seconds = time.perf_counter() - started
        with step("check int8 parity"):
            parity = (
                _check_parity(scratch / GRAPH, sample, reference, role)
                if variant == "int8"
                else None
            )
        np.save(scratch / "reference.npy", reference)
        np.savez(scratch / "parity_inputs.npz", **sample)
        import shutil

        shutil.copytree(source / "tokenizer", scratch / "tokenizer")
        _write_manifest(scratch, spec, role, variant, parity, seconds)


def _quantize_int8(source: Path, target: Path) -> None:
    """Dynamic int8 of MatMul weights, per channel, except the MLP down-projections.

    The down-projections read the wide MLP activations, where outliers live; quantizing their
    inputs per tensor is what wrecks NLL ranks (SmolLM2-135M on the bundled sample: Spearman
    with fp32 0.93 with them quantized, 0.99 without). The tied vocabulary projection is
    quantized from an untied copy of its weight (see ``_untie_transposed_weights``).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    untied = target.with_name("untied-" + target.name)
    _untie_transposed_weights(source, untied)
    graph = onnx.load(str(untied), load_external_data=False).graph
    shapes = {init.name: tuple(init.dims) for init in graph.initializer}
    weights = {
        node.name: shapes[name]
        for node in graph.node
        if node.op_type == "MatMul"
        for name in node.input
        if len(shapes.get(name, ())) == 2
    }
    widest_input = max((rows for rows, _ in weights.values()), default=0)
    keep_fp32 = [name for name, (rows, _) in weights.items() if rows == widest_input]
    quantize_dynamic(
        str(untied),
        str(target),
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=keep_fp32,
    )
    for leftover in (untied, untied.with_name(untied.name + ".data")):
        leftover.unlink(missing_ok=True)


def _untie_transposed_weights(source: Path, target: Path) -> None:
    """Replace ``MatMul(x, Transpose(W))`` by ``MatMul(x, W_t)`` with ``W_t`` a constant.

    A tied vocabulary projection is exported as the transpose of the embedding table, which
    ``quantize_dynamic`` skips (it quantizes constant weights only), leaving 18% of an int8
    SmolLM2 forward in fp32. Quantizing an untied copy makes a 250-token forward 16% faster,
    with Spearman 0.989 against fp32 NLLs on dev passages (0.991 with the head in fp32). The
    embedding lookup keeps its fp32 table.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    for node in list(graph.node):
        if node.op_type != "Transpose" or node.input[0] not in initializers:
            continue
        weight = numpy_helper.to_array(initializers[node.input[0]])
        perm = next((list(a.ints) for a in node.attribute if a.name == "perm"), [1, 0])
        if weight.ndim != 2 or perm != [1, 0]:
            continue
        constant = f"{node.input[0]}.transposed"
        graph.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight.T), constant))
        graph.node.remove(node)
        for other in graph.node:
            other.input[:] = [constant if name == node.output[0] else name for name in other.input]
    onnx.save(model, str(target), save_as_external_data=True, location=target.name + ".data")


def _convert_fp16(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load(str(source))
    # Inputs/outputs stay fp32 so callers need not care; the body runs in fp16 on CUDA.
    converted = convert_float_to_float16(model, keep_io_types=True)
    onnx.save(converted, str(target))


def _check_parity(graph: Path, sample: dict, reference: np.ndarray, role: Role) -> Parity:
    from ragpress.onnx.runtime import create_session

    session = create_session(graph, device="cpu", verify=False)
    inputs = {k: np.asarray(v, dtype=np.int64) for k, v in sample.items()}
    output = session.run(None, inputs)[0]
    mask = inputs["attention_mask"].astype(bool)
    if role == "nll":
        mask[:, 0] = False  # the first token has no prediction
        ours, theirs = output[mask], reference[mask]
        return Parity(
            max_abs_diff=float(np.abs(ours - theirs).max()),
            spearman=_spearman(ours, theirs),
            tokens=int(mask.sum()),
        )
    if role == "attention":
        return Parity(max_abs_diff=float(np.abs(output - reference).max()), tokens=int(mask.sum()))
    if role == "hidden":
        return Parity(
            max_abs_diff=float(np.abs(output[mask] - reference[mask]).max()),
            tokens=int(mask.sum()),
        )
    ours, theirs = output[mask], reference[mask]
    return Parity(
        max_abs_diff=float(np.abs(ours - theirs).max()),
        keep_agreement=float((ours.argmax(-1) == theirs.argmax(-1)).mean()),
        tokens=int(mask.sum()),
    )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    ranks_a = np.argsort(np.argsort(a)).astype(np.float64)
    ranks_b = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def _parity_inputs(tokenizer: Any) -> dict:
    """Real text: the bundled sample, cut into two rows of different lengths (padding tested)."""
    import torch

    text = resources.files("ragpress.data").joinpath("sample.txt").read_text("utf-8")
    half = len(text) // 2
    batch = tokenizer(
        [text[:half], text[half : half + half // 2]],
        padding=True,
        truncation=True,
        max_length=512,
        return_tensors="pt",
    )
    return {
        "input_ids": batch["input_ids"].to(torch.int64),
        "attention_mask": batch["attention_mask"].to(torch.int64),
    }


def _write_manifest(
    folder: Path,
    spec: ModelSpec,
    role: Role,
    variant: Variant,
    parity: Parity | None,
    seconds: float,
) -> None:
    import onnxruntime
    import torch
    import transformers

    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "model": spec.name,
        "role": role,
        "variant": variant,
        "source": weights_folder(spec),
        "hub_id": spec.hub_id,
        "opset": OPSET,
        "format": EXPORT_FORMAT,
        "exporter": "torch.onnx.export(dynamo=True)",
        "attention": "com.microsoft::GroupQueryAttention",  # ragpress.onnx.fusion
        "seconds": round(seconds, 1),
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        "parity": asdict(parity) if parity else None,
        "delta_sha256": _delta_sha256(spec),
        "sha256": {str(p.relative_to(folder)): sha256(p) for p in files},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2))


def _too_big_for_one_file(model: Any) -> bool:
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    return size > 1_800_000_000  # protobuf's 2 GB limit, with headroom for the graph


def _nll_wrapper(model: Any, fused: bool = False) -> Any:
    import torch

    if fused:
        _use_fused_attention(model)

    class TokenNLL(torch.nn.Module):
        """Per-token NLL; position 0 (no context) is 0. Padding positions are 0 too."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            logits = self.logits(input_ids, attention_mask).float()
            target = input_ids[:, 1:].unsqueeze(-1)
            # log-sum-exp minus the target's logit: no (B, S, vocab) log-softmax is written out
            nll = torch.logsumexp(logits, dim=-1) - torch.gather(logits, -1, target).squeeze(-1)
            # where, not a product: padded rows of a fused attention may hold any value
            nll = torch.where(attention_mask[:, 1:].bool(), nll, torch.zeros_like(nll))
            return torch.nn.functional.pad(nll, (1, 0))

        def logits(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            """Logits predicting tokens 1..S-1. Where the head is a plain projection, the last
            position is cut from the hidden states before it: cutting the (B, S, vocab) logits
            instead is a copy of all of them in the graph (4-8% of a forward on CPU)."""
            if getattr(model.config, "model_type", None) in PLAIN_HEAD:
                hidden = model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask)
                return model.get_output_embeddings()(hidden.last_hidden_state[:, :-1, :])
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            return logits[:, :-1, :]

    return TokenNLL()


def _use_fused_attention(model: Any) -> None:
    from ragpress.onnx.fusion import use_fused_attention

    use_fused_attention(model)


def _attention_wrapper(model: Any, fused: bool = False) -> Any:
    """Attention of the final position to every position, per layer and head: (B, L, H, S).

    The forward keeps SDPA (or, ``fused``, the attention of ``ragpress.onnx.fusion``); beside
    it each layer computes softmax(q_last . K^T * scale) for the last position only (a few KB),
    never a full S x S map. The vocabulary projection is skipped (only the base model runs).
    Rows are exact when the last position is a real token, i.e. with no right padding (the
    runtime runs this role one sequence at a time).
    """
    import torch
    from transformers import AttentionInterface
    from transformers.integrations.sdpa_attention import repeat_kv, sdpa_attention_forward
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    rows: list[torch.Tensor] = []

    def probe_attention(module, query, key, value, attention_mask, **kwargs):
        keys = repeat_kv(key, module.num_key_value_groups)
        scores = torch.matmul(query[:, :, -1:, :], keys.transpose(-1, -2)) * module.scaling
        rows.append(torch.softmax(scores.float(), dim=-1)[:, :, 0, :])
        return forward(module, query, key, value, attention_mask, **kwargs)

    # Attention functions are registered globally by name: each wrapper takes its own name, so
    # a later wrapper (an export's parity reference, a second model) never captures its rows.
    name = f"{PROBE_ATTENTION}_{next(_WRAPPER_IDS)}"
    if fused:
        from ragpress.onnx import fusion

        forward = fusion.attention_forward
        name = fusion.register(f"{name}_fused", probe_attention)
    else:
        forward = sdpa_attention_forward  # type: ignore[assignment]
        AttentionInterface.register(name, probe_attention)
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, sdpa_mask)
    model.config._attn_implementation = name
    base = model.model if hasattr(model, "model") else model

    class AttentionRows(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.base = base

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            rows.clear()
            self.base(input_ids=input_ids, attention_mask=attention_mask)
            return torch.stack(rows, dim=1)

    return AttentionRows()


def _logits_wrapper(model: Any, fused: bool = False) -> Any:
    import torch

    if fused:
        _use_fused_attention(model)

    class TokenLogits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    return TokenLogits()


def _hidden_wrapper(model: Any, fused: bool = False) -> Any:
    import torch

    if fused:
        _use_fused_attention(model)

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            output = self.model(input_ids=input_ids, attention_mask=attention_mask)
            return output.last_hidden_state

    return HiddenStates()


PROBE_ATTENTION = "ragpress_probe"
_WRAPPER_IDS = itertools.count()
_WRAPPERS = {
    "nll": _nll_wrapper,
    "token-logits": _logits_wrapper,
    "attention": _attention_wrapper,
    "hidden": _hidden_wrapper,
}
_OUTPUT = {"nll": "nll", "token-logits": "logits", "attention": "attention", "hidden": "hidden"}
