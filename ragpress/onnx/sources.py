"""Turn a model spec into PyTorch weights: safetensors or GGUF only, never pickle or remote code."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

from ragpress.onnx.cache import atomic_directory, model_dir
from ragpress.onnx.catalogue import ModelSpec

log = logging.getLogger(__name__)


class ModelNotFoundError(FileNotFoundError):
    """No source of a model is reachable; the message says how to provide one."""


def weights_folder(spec: ModelSpec, *, allow_hub: bool = True) -> str:
    """A folder (or hub id) that ``transformers.from_pretrained`` reads as safetensors."""
    if spec.local_dir:
        return spec.local_dir
    if spec.packaged is not None and spec.packaged.available():
        if spec.packaged.delta:
            return str(_patched_folder(spec))
        if spec.packaged.gguf is None:
            return str(spec.packaged.paths()[0])
        return str(_dequantized_folder(spec))
    if spec.hub_id and allow_hub:
        return spec.hub_id
    install = f" ({spec.packaged.install})" if spec.packaged else ""
    raise ModelNotFoundError(
        f"no weights for {spec.name!r}: install its package{install}, give a local folder, "
        "or allow the hub id"
    )


def load_torch_model(spec: ModelSpec, *, attn_implementation: str = "sdpa") -> Any:
    """The PyTorch model for ``spec`` in eval mode (float32)."""
    transformers = _transformers()
    source = weights_folder(spec)
    common = {"use_safetensors": True, "trust_remote_code": False}
    if spec.kind == "causal-lm":
        model = transformers.AutoModelForCausalLM.from_pretrained(
            source, attn_implementation=attn_implementation, dtype="float32", **common
        )
    else:
        import torch

        torch.manual_seed(0)  # a new token-classification head is initialised reproducibly
        model = transformers.AutoModelForTokenClassification.from_pretrained(
            source, num_labels=spec.num_labels, **common
        )
    return model.eval()


def load_tokenizer(spec: ModelSpec) -> Any:
    return _transformers().AutoTokenizer.from_pretrained(weights_folder(spec))


def _dequantized_folder(spec: ModelSpec) -> Path:
    """GGUF -> float32 safetensors folder, done once (dequantizing takes 20-60 s on 2 cores)."""
    target = model_dir(spec.name) / "hf"
    if (target / "config.json").is_file():
        return target
    transformers = _transformers()
    gguf_path = _gguf_file(spec)
    log.info("dequantizing %s (once; cached in %s)", gguf_path.name, target)
    with atomic_directory(target) as scratch:
        model = transformers.AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name, dtype="float32"
        )
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name
        )
        # transformers refuses to save a GGUF-loaded model: copy the dequantized weights into a
        # plain model built from the config without its quantization entry.
        config = model.config
        if hasattr(config, "quantization_config"):
            delattr(config, "quantization_config")
        plain = transformers.AutoModelForCausalLM.from_config(config, dtype="float32")
        plain.load_state_dict(model.state_dict())
        plain.save_pretrained(scratch, safe_serialization=True)
        tokenizer.save_pretrained(scratch)
    return target


def _patched_folder(spec: ModelSpec) -> Path:
    """Base folder + shipped delta -> a full safetensors folder, rebuilt when the delta changes.

    The delta (safetensors, never pickle) holds the fine-tuned tensors and, in its metadata, the
    config entries that differ from the base (``num_labels``, labels).
    """
    import json

    from safetensors import safe_open

    from ragpress.onnx.cache import sha256

    base, delta = spec.packaged.paths()  # type: ignore[union-attr]
    target = model_dir(spec.name) / "hf"
    stamp = sha256(delta)
    if (target / "delta.sha256").is_file() and (target / "delta.sha256").read_text() == stamp:
        return target
    transformers = _transformers()
    with safe_open(str(delta), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key).float() for key in handle.keys()}  # noqa: SIM118
        config_changes = json.loads((handle.metadata() or {}).get("config", "{}"))
    config = transformers.AutoConfig.from_pretrained(str(base), **config_changes)
    model = transformers.AutoModelForTokenClassification.from_pretrained(
        str(base), config=config, use_safetensors=True
    )
    missing = set(tensors) - set(model.state_dict())
    if missing:
        raise ValueError(f"{delta} holds tensors the base model lacks: {sorted(missing)[:5]}")
    model.load_state_dict(tensors, strict=False)
    with atomic_directory(target) as scratch:
        model.save_pretrained(scratch, safe_serialization=True)
        transformers.AutoTokenizer.from_pretrained(str(base)).save_pretrained(scratch)
        (scratch / "delta.sha256").write_text(stamp)
    return target


def _gguf_file(spec: ModelSpec) -> Path:
    assert spec.packaged is not None and spec.packaged.gguf is not None
    parts = spec.packaged.paths()
    if len(parts) == 1:
        return parts[0]
    joined = model_dir(spec.name) / "gguf" / spec.packaged.gguf
    if not joined.is_file():
        with atomic_directory(joined.parent) as scratch, (scratch / joined.name).open("wb") as out:
            for part in parts:
                with part.open("rb") as chunk:
                    shutil.copyfileobj(chunk, out, 1 << 24)
    return joined


def _transformers() -> Any:
    try:
        import transformers
    except ImportError as error:
        raise ImportError(
            "preparing models needs the export extra: pip install 'ragpress[export]'"
        ) from error
    return transformers
