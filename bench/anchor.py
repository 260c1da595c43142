"""llmlingua 0.2.2 as a subprocess: one call per batch of items, in its own venv.

The venv and the converted SmolLM2 folder come from ``bash bench/anchors/setup_llmlingua.sh``;
``bench/anchors/llmlingua_runner.py`` documents the JSON lines spoken over stdin/stdout.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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


def run(
    lines: Sequence[dict[str, Any]], *, threads: int = 2, repeat: int = 1, strict: bool = True
) -> list[dict]:
    """Run the runner over ``lines`` (the first is repeated once, untimed, to warm the model
    up); returns one output per line. Raises, with the runner's stderr, when it stopped early
    or (``strict``) when any item failed; otherwise a failed item's row has an ``"error"``."""
    if not lines:
        return []
    text = "\n".join(json.dumps(line) for line in [lines[0], *lines]) + "\n"
    completed = subprocess.run(
        [str(ANCHOR_PY), str(ANCHOR_RUNNER), "--threads", str(threads), "--repeat", str(repeat)],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = [json.loads(line) for line in completed.stdout.splitlines() if line.strip()][1:]
    failed = [row for row in rows if "error" in row]
    if len(rows) != len(lines) or (strict and failed):
        sys.stderr.write(completed.stderr[-3000:])
        raise RuntimeError("the llmlingua runner failed; see its stderr above")
    if failed:
        print(f"llmlingua: {len(failed)} items failed, e.g. {failed[0]['error']}", file=sys.stderr)
    return rows
