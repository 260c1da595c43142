"""Where training writes: never into the installed package unless asked.

A trained file goes to ``--out PATH`` when given, else to ``$RAGPRESS_HOME/trained/NAME``; only
``--ship`` writes the file the package ships (``ragpress/data/NAME``), which the compressors
load by default, so an experiment never replaces the shipped model by accident.
"""

from __future__ import annotations

from pathlib import Path

from ragpress.onnx.cache import home

#: The package's data folder: what ``--ship`` writes.
PACKAGE_DATA = Path(__file__).resolve().parents[1] / "data"


def output_path(name: str, *, out: Path | None = None, ship: bool = False) -> Path:
    """Where a trained ``name`` goes: ``out``, the package (``ship``), else the cache."""
    if out is not None and ship:
        raise ValueError("give either --out or --ship, not both: --ship writes ragpress/data")
    if out is not None:
        return out
    return PACKAGE_DATA / name if ship else home() / "trained" / name
