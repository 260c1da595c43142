"""One onnxruntime session factory for every model, and batched runs over token sequences.

Providers: CUDA when asked for (or ``device="auto"``) and available, then CPU. onnxruntime falls
back to CPU silently when CUDA cannot attach; we check the providers after the session is made,
warn, and report the device actually used. Sessions are cached and shared: ``run`` is
thread-safe in onnxruntime.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from ragpress._runtime_check import ensure_single_onnxruntime
from ragpress.onnx.cache import settled_is_file, sha256

Device = Literal["auto", "cpu", "cuda"]
_SESSIONS: dict[tuple, Any] = {}
_VERIFIED: set[tuple] = set()
VERIFIED_STAMPS = ".verified.json"
_LOCK = threading.Lock()


class ModelFileError(RuntimeError):
    """A prepared model is missing, truncated or does not match its manifest."""


def onnxruntime() -> Any:
    ensure_single_onnxruntime()
    try:
        import onnxruntime as ort
    except ImportError as error:
        raise ImportError(
            "the ONNX backend needs onnxruntime: pip install 'ragpress[cpu]' (or 'ragpress[gpu]')"
        ) from error
    return ort


def create_session(
    graph: str | Path,
    *,
    device: Device = "auto",
    threads: int | None = None,
    verify: bool = True,
    device_id: int = 0,
    spinning: bool = True,
) -> Any:
    """A shared ``InferenceSession`` for ``graph``; ``verify`` checks the manifest's sha256.
    ``spinning=False``: its intra-op threads sleep as soon as a run ends (for a session used
    between single-threaded runs, whose cores they would otherwise keep busy)."""
    graph = Path(graph)
    key = (str(graph.resolve()), device, threads, device_id, spinning)
    with _LOCK:
        if key in _SESSIONS:
            return _SESSIONS[key]
        if verify:
            verify_files(graph.parent)
        session = _new_session(graph, device, threads, device_id, spinning)
        _SESSIONS[key] = session
        return session


def active_device(session: Any) -> str:
    return "cuda" if "CUDAExecutionProvider" in session.get_providers() else "cpu"


def _new_session(
    graph: Path, device: Device, threads: int | None, device_id: int, spinning: bool = True
) -> Any:
    ort = onnxruntime()
    if not graph.is_file():
        raise ModelFileError(f"{graph} does not exist: run `ragpress models prepare` again")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # The CPU arena grows in powers of two and keeps its peak: at 8k tokens SmolLM2's NLL graph
    # asked for more than 12 GB of address space with it, and peaks at 5 GB RSS without it.
    options.enable_cpu_mem_arena = False
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    wants_cuda = asks_for_cuda(device)
    providers: list[Any] = ["CPUExecutionProvider"]
    if wants_cuda:
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_id}))
    try:
        session = ort.InferenceSession(str(graph), options, providers=providers)
    except Exception as error:  # onnxruntime raises its own untyped errors for bad files
        raise ModelFileError(
            f"{graph} could not be loaded ({error}); it is corrupt or truncated: delete its "
            f"folder {graph.parent} and run `ragpress models prepare` again"
        ) from error
    if wants_cuda and active_device(session) != "cuda":
        warnings.warn(
            f"CUDA was requested for {graph.name} but onnxruntime fell back to CPU "
            f"(providers: {session.get_providers()}); install onnxruntime-gpu with a matching "
            "CUDA/cuDNN",
            RuntimeWarning,
            stacklevel=3,
        )
    return session


def asks_for_cuda(device: Device) -> bool:
    """Whether a session made for ``device`` tries CUDA first (it may still fall back)."""
    return device == "cuda" or (
        device == "auto" and "CUDAExecutionProvider" in onnxruntime().get_available_providers()
    )


def verify_files(folder: Path) -> dict:
    """Check every file against the manifest's sha256.

    A file is hashed once per state (size, mtime, inode): the states already verified are kept
    in memory and in ``.verified.json`` beside the manifest, so a new process does not hash
    hundreds of MB again (0.5 s for SmolLM2's int8 graph) unless a file changed.
    """
    manifest_path = folder / "manifest.json"
    if not settled_is_file(manifest_path):
        raise ModelFileError(
            f"{folder} has no manifest.json: the export did not finish; run "
            "`ragpress models prepare` again"
        )
    try:
        manifest = json.loads(manifest_path.read_text())
        files = dict(manifest["sha256"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ModelFileError(
            f"{manifest_path} is not a valid manifest ({type(error).__name__}: {error}); run "
            "`ragpress models prepare --force` to export the model again"
        ) from None
    stamps = _read_stamps(folder)
    fresh = {}
    for relative, expected in files.items():
        path = folder / relative
        state = (str(path), *_stat(path))
        if state in _VERIFIED or stamps.get(relative) == [*state[1:], expected]:
            fresh[relative] = [*state[1:], expected]
            continue
        if not path.is_file():
            raise ModelFileError(f"{path} is missing; run `ragpress models prepare --force`")
        if sha256(path) != expected:
            raise ModelFileError(
                f"{path} does not match the sha256 in {manifest_path} (corrupted or changed); "
                "run `ragpress models prepare --force`"
            )
        _VERIFIED.add(state)
        fresh[relative] = [*state[1:], expected]
    if fresh != stamps:
        _write_stamps(folder, fresh)
    return manifest


def _read_stamps(folder: Path) -> dict:
    try:
        stamps = json.loads((folder / VERIFIED_STAMPS).read_text())
    except (OSError, ValueError):
        return {}
    return stamps if isinstance(stamps, dict) else {}


def _write_stamps(folder: Path, stamps: dict) -> None:
    """Best effort (a read-only cache just hashes again next time); atomic by rename."""
    scratch = folder / f".{VERIFIED_STAMPS}.{os.getpid()}.{threading.get_ident()}"
    try:
        scratch.write_text(json.dumps(stamps))
        os.replace(scratch, folder / VERIFIED_STAMPS)
    except OSError:
        scratch.unlink(missing_ok=True)


def _stat(path: Path) -> tuple[int, int, int]:
    try:
        info = path.stat()
    except FileNotFoundError:
        return (-1, -1, -1)
    return (info.st_size, info.st_mtime_ns, info.st_ino)


@dataclass(frozen=True)
class Batch:
    indices: list[int]
    input_ids: np.ndarray
    attention_mask: np.ndarray


def length_batches(
    sequences: Sequence[Sequence[int]], *, batch_size: int, pad_id: int, max_tokens: int = 16384
) -> list[Batch]:
    """Sort by length and cut into batches padded to their longest row.

    Sorting keeps padding small; ``max_tokens`` bounds batch x length so long rows go alone.
    """
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    batches: list[Batch] = []
    current: list[int] = []
    for index in order:
        longest = len(sequences[index])
        if current and (len(current) >= batch_size or (len(current) + 1) * longest > max_tokens):
            batches.append(_pad(sequences, current, pad_id))
            current = []
        current.append(index)
    if current:
        batches.append(_pad(sequences, current, pad_id))
    return batches


def _pad(sequences: Sequence[Sequence[int]], indices: list[int], pad_id: int) -> Batch:
    width = max(1, max(len(sequences[i]) for i in indices))
    ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    for row, index in enumerate(indices):
        sequence = sequences[index]
        ids[row, : len(sequence)] = sequence
        mask[row, : len(sequence)] = 1
    return Batch(indices, ids, mask)


class BatchProgress(Protocol):
    """Told how many tokens a model call will run, then each batch's tokens as it finishes."""

    def planned(self, tokens: int) -> None: ...

    def ran(self, tokens: int) -> None: ...


_PROGRESS: contextvars.ContextVar[BatchProgress | None] = contextvars.ContextVar(
    "ragpress_batch_progress", default=None
)


@contextlib.contextmanager
def reporting_batches(progress: BatchProgress) -> Iterator[None]:
    """Within the block, every ONNX model call of this thread reports to ``progress`` (the
    CLI's bar on long compressions)."""
    token = _PROGRESS.set(progress)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def run_batches(
    session: Any,
    sequences: Sequence[Sequence[int]],
    *,
    batch_size: int = 8,
    pad_id: int = 0,
    max_tokens: int = 16384,
    sequence_axis: int = 1,
    workers: int = 1,
    lone_session: Callable[[], Any] | None = None,
) -> list[np.ndarray]:
    """Run the graph over token sequences; returns each row's output trimmed to its length
    along ``sequence_axis`` (an axis of the batched output, 1 for (B, S, ...)). ``workers``:
    how many batches may run at once (see :func:`_outputs`); ``lone_session``: where a call of
    a single batch runs instead, when the side-by-side sessions are single-threaded (one batch
    would leave the other cores idle). It runs in the caller's thread, outside the shared pool:
    concurrent lone calls share that session's intra-op threads, not the pool's limit."""
    outputs: list[np.ndarray | None] = [None] * len(sequences)
    progress = _PROGRESS.get()
    if progress is not None:
        progress.planned(sum(len(sequence) for sequence in sequences))
    batches = length_batches(sequences, batch_size=batch_size, pad_id=pad_id, max_tokens=max_tokens)
    if len(batches) == 1 and lone_session is not None:
        session = lone_session()
    for batch, result in _outputs(session, batches, workers):
        for row, index in enumerate(batch.indices):
            outputs[index] = _trim(result[row], sequence_axis - 1, len(sequences[index]))
        if progress is not None:
            progress.ran(sum(len(sequences[index]) for index in batch.indices))
    return outputs  # type: ignore[return-value]


def _outputs(session: Any, batches: list[Batch], workers: int) -> Iterator[tuple[Batch, Any]]:
    """Each batch with the graph's output, in the order they finish. With ``workers`` > 1, up
    to that many ``session.run`` calls at once on a pool shared by every runner (onnxruntime
    releases the GIL and its ``run`` is thread-safe), the largest batches first so the last
    to start are the shortest."""
    if workers <= 1 or len(batches) <= 1:
        for batch in batches:
            yield batch, _run(session, batch.input_ids, batch.attention_mask)
        return
    largest_first = sorted(batches, key=lambda batch: -batch.input_ids.size)
    pool = _pool(workers, os.getpid())
    futures = {
        pool.submit(_run, session, batch.input_ids, batch.attention_mask): batch
        for batch in largest_first
    }
    for future in as_completed(futures):
        yield futures[future], future.result()


@cache
def _pool(workers: int, pid: int) -> ThreadPoolExecutor:
    """One pool per size for the whole process: concurrent callers (server threads, client
    threads) share its workers instead of each starting as many runs as there are cores.
    Keyed by ``pid`` too: a forked child has none of its parent's threads."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ragpress-onnx")


def _trim(array: np.ndarray, axis: int, length: int) -> np.ndarray:
    index = [slice(None)] * array.ndim
    index[axis] = slice(0, length)
    return array[tuple(index)]


def _run(session: Any, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    if active_device(session) != "cuda":
        return session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})[0]
    # On CUDA, bind inputs and outputs so the output is allocated on the device once and only
    # copied back at the end (onnxruntime docs, "IOBinding").
    ort = onnxruntime()
    binding = session.io_binding()
    for name, array in (("input_ids", input_ids), ("attention_mask", attention_mask)):
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, "cuda", 0))
    binding.bind_output(session.get_outputs()[0].name, "cuda")
    session.run_with_iobinding(binding)
    return binding.copy_outputs_to_cpu()[0]
