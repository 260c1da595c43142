"""Export one ONNX graph per role, check it against PyTorch on real text, write a manifest.

Roles export only what their compressor reads, so no vocabulary-sized tensor leaves the graph:
``nll`` returns per-token negative log-likelihood (B, S) with log-softmax and gather inside the
graph; ``token-logits`` returns token-classification logits (B, S, C); ``attention`` returns
the final position's attention to every position, per layer and head (B, L, H, S)
(``attention-tail``: of each of the last few positions, (B, L, H, K, S)); ``hidden``
returns an encoder's last hidden states (B, S, D), for sentence embeddings; ``relevance`` returns
a cross-encoder's (B, S, 2) logits: each token's keep logit, and the relevance logit at position 0
and each token's answer logit after it.

Attention is exported as one fused onnxruntime op per layer (``ragpress.onnx.fusion``), not as
the exporter's MatMul + Softmax decomposition; the parity reference stays the unchanged PyTorch
model with its SDPA attention.

Variants, derived by ``ragpress.onnx.surgery``: ``fp32``; ``int8`` (dynamic quantization of the
MatMul weights, per channel, with the MLP down-projections left in fp32: quantizing them wrecks
NLL ranking); ``fp16`` for CUDA. The torch modules exported are in ``ragpress.onnx.wrappers``.
"""

from __future__ import annotations

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
from ragpress.onnx.surgery import convert_fp16, quantize_int8
from ragpress.onnx.wrappers import WRAPPERS

Variant = Literal["fp32", "int8", "fp16"]
VARIANTS: tuple[Variant, ...] = ("fp32", "int8", "fp16")
MANIFEST = "manifest.json"
GRAPH = "model.onnx"
OPSET = 18
#: Bumped whenever exported graphs change meaning or shape: cached graphs of an older format are
#: exported again (2: fused GroupQueryAttention, NLL as log-sum-exp minus the target logit;
#: 3: the NLL graph cuts the last position before the vocabulary projection, not after;
#: 4: int8 quantizes the tied vocabulary projection too; 5: int8 weights in 7 bits, the same
#: integers on every x86 CPU, see ``surgery.quantize_int8``; 6: the relevance graph's attention
#: fused too, which its wrapper had left as MatMul + Softmax while the manifest said fused).
EXPORT_FORMAT = 6
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
    if role not in WRAPPERS:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(WRAPPERS)}")
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
            reference = WRAPPERS[role](model).eval()(*sample.values()).numpy()
    wrapper = WRAPPERS[role](model, fused=True).eval()
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
                quantize_int8(source / GRAPH, scratch / GRAPH)
            else:
                convert_fp16(source / GRAPH, scratch / GRAPH)
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
    if role in ("attention", "attention-tail"):
        return Parity(max_abs_diff=float(np.abs(output - reference).max()), tokens=int(mask.sum()))
    if role == "relevance":
        ours, theirs = output[mask], reference[mask]
        return Parity(
            max_abs_diff=float(np.abs(ours - theirs).max()),
            keep_agreement=float(((ours > 0) == (theirs > 0)).mean()),
            tokens=int(mask.sum()),
        )
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


_OUTPUT = {
    "nll": "nll",
    "token-logits": "logits",
    "attention": "attention",
    "attention-tail": "attention",
    "hidden": "hidden",
    "relevance": "relevance",
}
