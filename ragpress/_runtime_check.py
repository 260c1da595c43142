"""onnxruntime and onnxruntime-gpu share one import name; installed together, the CUDA
provider silently disappears. Refuse to start rather than run on the wrong device."""

from __future__ import annotations

import os
import re
import sys

_CPU, _GPU = "onnxruntime", "onnxruntime-gpu"
# Installed distributions leave "<name>-<version>.dist-info" folders on sys.path; reading the
# folder names is what importlib.metadata does, without its ~0.1 s import (every start pays it).
_DIST_INFO = re.compile(r"^(onnxruntime|onnxruntime_gpu)-[^-]+\.dist-info$", re.IGNORECASE)


def installed_onnxruntime_distributions() -> list[str]:
    found: set[str] = set()
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # not a folder (a zip, a missing path)
            continue
        for name in names:
            match = _DIST_INFO.match(name)
            if match:
                found.add(_GPU if match.group(1).lower().endswith("gpu") else _CPU)
    return [name for name in (_CPU, _GPU) if name in found]


def ensure_single_onnxruntime() -> None:
    if installed_onnxruntime_distributions() == [_CPU, _GPU]:
        raise ImportError(
            "both onnxruntime and onnxruntime-gpu are installed; they overwrite each other and "
            "the CUDA provider is lost. Keep one: `pip uninstall -y onnxruntime onnxruntime-gpu "
            "&& pip install 'ragpress[gpu]'` (or 'ragpress[cpu]')."
        )
