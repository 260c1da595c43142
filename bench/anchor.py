"""llmlingua 0.2.2 as a subprocess in its own venv, one JSON line per item.

The venv and the converted SmolLM2 folder come from ``bash bench/anchors/setup_llmlingua.sh``;
``bench/anchors/llmlingua_runner.py`` documents the JSON lines spoken over stdin/stdout.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from bench.qa import QAItem

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
ANCHOR_PY = CACHE / "llmlingua-venv" / "bin" / "python"
ANCHOR_RUNNER = ROOT / "bench" / "anchors" / "llmlingua_runner.py"
#: llmlingua only runs LLMLingua-2 on a folder whose name contains a known checkpoint's name.
LLMLINGUA2_FOLDER = CACHE / "ragpress-minilm-l6-keep-bert-base-multilingual-cased"
#: Display names of the runner's modes.
LABELS = {
    "llmlingua": "llmlingua LLMLingua-1",
    "longllmlingua": "llmlingua LongLLMLingua",
    "llmlingua2": "llmlingua LLMLingua-2",
}


def available() -> bool:
    """True when the anchor venv is built; prints how to build it when not."""
    if ANCHOR_PY.is_file():
        return True
    print("llmlingua venv missing: run bash bench/anchors/setup_llmlingua.sh", file=sys.stderr)
    return False


def llmlingua2_folder() -> Path:
    """Our shipped classifier as a plain Hugging Face folder llmlingua (transformers 4.46) can
    load, written again on every run: it must be the classifier of this checkout."""
    from ragpress.onnx.catalogue import get_spec
    from ragpress.onnx.sources import load_tokenizer, load_torch_model

    spec = get_spec("minilm-l6-keep")
    load_torch_model(spec).save_pretrained(LLMLINGUA2_FOLDER, safe_serialization=True)
    load_tokenizer(spec).save_pretrained(LLMLINGUA2_FOLDER)
    return LLMLINGUA2_FOLDER


def payload(item: QAItem, mode: str, rate: float, **fields: Any) -> dict[str, Any]:
    """One runner input line for ``item``: its shuffled documents, its question, the rate."""
    return {
        "id": item.id,
        "context": item.documents(),
        "question": item.question,
        "rate": rate,
        "mode": mode,
        **fields,
    }


class Session:
    """The runner kept alive: one call per line, so timings of ours and llmlingua's can be
    interleaved item by item (the machine drifts by +-20% over minutes; a ratio of two runs
    made one after the other inherits that drift, an interleaved one does not)."""

    def __init__(self, *, threads: int = 2, repeat: int = 1) -> None:
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed in close())
        self._process = subprocess.Popen(
            [
                str(ANCHOR_PY),
                str(ANCHOR_RUNNER),
                "--threads",
                str(threads),
                "--repeat",
                str(repeat),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def ask(self, line: dict[str, Any]) -> dict[str, Any]:
        """The runner's output for one input line; raises, with its stderr, when it died."""
        assert self._process.stdin and self._process.stdout
        try:
            self._process.stdin.write(json.dumps(line) + "\n")
            self._process.stdin.flush()
            answer = self._process.stdout.readline()
        except BrokenPipeError:  # it exited before reading (e.g. its model folder is missing)
            answer = ""
        if not answer:
            self._died()
        return json.loads(answer)

    def _died(self) -> NoReturn:
        self._stderr.seek(0)
        sys.stderr.write(self._stderr.read()[-3000:])
        raise RuntimeError("the llmlingua runner stopped; see its stderr above")

    def close(self) -> None:
        stdin, stdout = self._process.stdin, self._process.stdout
        with contextlib.suppress(BrokenPipeError):  # a dead runner cannot take the last flush
            if stdin and not stdin.closed:
                stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if stdout:
            stdout.close()
        self._stderr.close()


def run(
    lines: Sequence[dict[str, Any]], *, threads: int = 2, repeat: int = 1, strict: bool = True
) -> list[dict]:
    """Run the runner over ``lines`` (the first is repeated once, untimed, to warm the model
    up); returns one output per line. Raises when the runner stopped, or (``strict``) when any
    item failed; otherwise a failed item's row has an ``"error"``."""
    if not lines:
        return []
    with Session(threads=threads, repeat=repeat) as session:
        session.ask(lines[0])
        rows = [session.ask(line) for line in lines]
    report_failures(rows, strict=strict)
    return rows


def report_failures(rows: Sequence[dict], *, strict: bool = True) -> None:
    """Raise (``strict``) or warn when any runner row is an error."""
    failed = [row for row in rows if "error" in row]
    if failed and strict:
        raise RuntimeError(f"llmlingua failed on {len(failed)} items, e.g. {failed[0]['error']}")
    if failed:
        print(f"llmlingua: {len(failed)} items failed, e.g. {failed[0]['error']}", file=sys.stderr)
