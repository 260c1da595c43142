"""onnxruntime and onnxruntime-gpu share one import name; installed together, the CUDA
provider silently disappears. Refuse to start rather than run on the wrong device."""

from __future__ import annotations

from importlib import metadata

_CPU, _GPU = "onnxruntime", "onnxruntime-gpu"


def installed_onnxruntime_distributions() -> list[str]:
    found = []
    for name in (_CPU, _GPU):
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
        found.append(name)
    return found


def ensure_single_onnxruntime() -> None:
    if installed_onnxruntime_distributions() == [_CPU, _GPU]:
        raise ImportError(
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other and "
            "the CUDA provider is lost. Keep one: `pip uninstall -y onnxruntime onnxruntime-gpu "
            "&& pip install 'ragpress[gpu]'` (or 'ragpress[cpu]')."
        )
