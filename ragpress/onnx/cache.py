"""Where prepared models live, and writes that never leave half a file behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def home() -> Path:
    """``$RAGPRESS_HOME``, else ``$XDG_CACHE_HOME/ragpress``, else ``~/.cache/ragpress``."""
    if os.environ.get("RAGPRESS_HOME"):
        return Path(os.environ["RAGPRESS_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ragpress"


def model_dir(name: str) -> Path:
    return home() / "models" / name


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a scratch folder that becomes ``target`` only if the block finishes.

    A crash or exception mid-way leaves ``target`` as it was (absent or complete); the rename of
    a folder within one file system is atomic.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        yield scratch
        if target.exists():
            shutil.rmtree(target)
        os.replace(scratch, target)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
