"""Each benchmark owns the command that writes its results; the Makefile runs those commands."""

from __future__ import annotations

import re
from pathlib import Path

from bench.report import BENCHMARKS, EXPECTED

MAKEFILE = Path(__file__).resolve().parents[1] / "Makefile"


def test_every_expected_result_has_its_module_command_and_the_makefile_runs_it():
    ran = {
        re.sub(r"^\$\(BIN\)/", "", line.strip())
        for line in MAKEFILE.read_text().splitlines()
        if "-m bench." in line
    }
    assert set(BENCHMARKS) <= set(EXPECTED)
    for name, command in EXPECTED.items():
        assert command.startswith("python -m bench."), name
        assert command in ran, f"the Makefile does not run {command!r} (writes {name})"
