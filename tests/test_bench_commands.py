"""Each benchmark owns the command that writes its results (the Makefile runs it) and its part
of the report (bench/report.py only assembles them)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

from bench import report
from bench.report import BENCHMARKS, EXPECTED, PARAGRAPHS, SECTION_NOTES, TOPICS

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


@pytest.mark.parametrize("name", BENCHMARKS)
def test_every_benchmark_module_provides_its_report_paragraphs(name: str) -> None:
    module = importlib.import_module(f"bench.{name}")
    assert isinstance(module.REPORT, dict), f"bench.{name} has no REPORT"
    for topic, paragraph in module.REPORT.items():
        text = paragraph({})  # nothing measured yet: a paragraph saying so, not a crash
        assert text.startswith("**") and text.endswith("."), (name, topic, text)
        for command in re.findall(r"`(python -m bench\.[^`]+)`", text):
            assert command in EXPECTED.values(), f"{topic!r} names an unknown {command!r}"


def test_the_report_shows_every_topic_once_in_its_order() -> None:
    assert tuple(PARAGRAPHS) == TOPICS
    assert set(SECTION_NOTES) <= set(EXPECTED)  # a note for a result no benchmark writes


def test_two_modules_cannot_report_one_topic(monkeypatch: pytest.MonkeyPatch) -> None:
    serve = importlib.import_module("bench.serve")
    monkeypatch.setitem(serve.REPORT, "entropy", serve.REPORT["serving"])
    owners = re.escape("bench.serve and bench.entropy both report 'entropy'")
    with pytest.raises(ValueError, match=owners):
        report.paragraphs()
