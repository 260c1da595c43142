"""Where prepared models live, and writes that never leave half a file behind."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock


def home() -> Path:
    """``$RAGPRESS_HOME``, else ``$XDG_CACHE_HOME/ragpress``, else ``~/.cache/ragpress``."""
    if os.environ.get("RAGPRESS_HOME"):
        return Path(os.environ["RAGPRESS_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ragpress"


def model_dir(name: str) -> Path:
    return home() / "models" / name


class CacheError(RuntimeError):
    """The model cache cannot be written or holds something in the way; the message says how
    to fix it (a writable ``RAGPRESS_HOME``, a path to remove)."""


#: Scratch and set-aside folders are named ``.NAME.tmp-PID-XXXX`` / ``.NAME.old-PID-XXXX``.
_SCRATCH = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>[0-9]+)-[^.]+$")
#: A folder of a process still alive is left alone unless it is older than this (a PID reused).
_STALE_SECONDS = 24 * 3600


@contextlib.contextmanager
def atomic_directory(target: Path) -> Iterator[Path]:
    """Yield a scratch folder that becomes ``target`` only if the block finishes.

    A crash or exception mid-way leaves ``target`` as it was (absent or complete). The swap runs
    under a file lock: the old folder (or a stray file in the way) is renamed aside, the new one
    renamed in, then the old one deleted, so readers never see a half-deleted folder and
    concurrent writers never delete each other's. Scratch folders a killed process left behind
    are removed on the next write next to them.
    """
    parent = _writable_parent(target)
    remove_stale_scratch(parent)
    scratch = _mkdtemp(parent, f".{target.name}.tmp-{os.getpid()}-")
    try:
        yield scratch
        aside = None
        with FileLock(str(parent / f".{target.name}.lock")):  # see settled_is_file
            if target.exists() or target.is_symlink():
                aside = _mkdtemp(parent, f".{target.name}.old-{os.getpid()}-") / "old"
                os.replace(target, aside)
            os.replace(scratch, target)
        if aside is not None:
            shutil.rmtree(aside.parent, ignore_errors=True)
    finally:
        if scratch.exists():
            shutil.rmtree(scratch, ignore_errors=True)


def settled_is_file(path: Path) -> bool:
    """``path.is_file()`` for a file inside a cache folder, waiting out a swap in progress (the
    new folder is renamed in a moment after the old one is renamed aside)."""
    if path.is_file():
        return True
    folder = path.parent
    if not folder.parent.is_dir():
        return False
    with FileLock(str(folder.parent / f".{folder.name}.lock")):
        return path.is_file()


def remove_stale_scratch(parent: Path) -> list[Path]:
    """Delete the scratch and set-aside folders in ``parent`` whose process is gone; returns
    what was removed."""
    removed = []
    try:
        entries = list(parent.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _SCRATCH.match(entry.name)
        if match is None or not entry.is_dir() or not _is_stale(entry, int(match["pid"])):
            continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


def _is_stale(entry: Path, pid: int) -> bool:
    """Left by a dead process (or older than a day: the PID may have been reused)."""
    try:
        age = time.time() - entry.stat().st_mtime
    except OSError:
        return False
    if age > _STALE_SECONDS:
        return True
    if pid == os.getpid() or os.name == "nt":  # on Windows, signal 0 would interrupt the PID
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # alive, another user's
    return False


def _writable_parent(target: Path) -> Path:
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise CacheError(
            f"cannot create the cache folder {parent}: a file is in the way ({error.filename}); "
            "remove that file, or set RAGPRESS_HOME to another folder"
        ) from None
    except OSError as error:
        raise CacheError(_unwritable(parent, error)) from None
    return parent


def _mkdtemp(parent: Path, prefix: str) -> Path:
    try:
        return Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    except OSError as error:
        raise CacheError(_unwritable(parent, error)) from None


def _unwritable(path: Path, error: OSError) -> str:
    return (
        f"cannot write to the model cache at {path} ({error.strerror or error}); set "
        "RAGPRESS_HOME to a writable folder"
    )


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
