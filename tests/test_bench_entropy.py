"""The entropy benchmark's interleaved timing (bench/entropy.py) and its live llmlingua runner
(bench/anchor.py), driven by a stand-in runner script: no model is loaded."""

from __future__ import annotations

import math
import sys
import textwrap

import pytest

from bench import anchor
from bench.entropy import PAIRS, speed_ratios, timing, turn_order

THEIRS, OURS = PAIRS[1]


def test_speed_ratios_are_of_totals_and_per_item_medians_skipping_failed_items() -> None:
    outcomes = {
        THEIRS: {"seconds": [4.0, 9.0, math.nan, 3.0]},
        OURS: {"seconds": [1.0, 2.0, 5.0, 1.5]},
    }
    [row] = speed_ratios(outcomes)
    assert (row["anchor"], row["ragpress"], row["items"]) == (THEIRS, OURS, 3)
    assert row["speedup"] == round(16.0 / 4.5, 2)  # the failed item's 5 s are not counted
    assert row["speedup_median_per_item"] == 4.0  # median of 4.0, 4.5, 2.0


def test_speed_ratios_need_both_sides_of_a_pair() -> None:
    assert speed_ratios({OURS: {"seconds": [1.0]}}) == []


def test_speed_ratios_skip_a_pair_llmlingua_failed_on_entirely() -> None:
    outcomes = {THEIRS: {"seconds": [math.nan, math.nan]}, OURS: {"seconds": [1.0, 2.0]}}
    assert speed_ratios(outcomes) == []
    assert timing(outcomes[THEIRS]["seconds"]) == {"s_per_item_mean": None, "s_per_item_p50": None}
    assert timing([1.0, math.nan, 3.0]) == {"s_per_item_mean": 2.0, "s_per_item_p50": 2.0}


def test_each_timed_pair_runs_back_to_back_taking_turns_to_go_first() -> None:
    names = ["random word drop", *PAIRS[0], OURS, THEIRS]
    assert turn_order(names, 0) == [PAIRS[0][1], PAIRS[0][0], OURS, THEIRS, "random word drop"]
    assert turn_order(names, 1) == [PAIRS[0][0], PAIRS[0][1], THEIRS, OURS, "random word drop"]
    assert turn_order(["random word drop", OURS], 1) == ["random word drop", OURS]


@pytest.fixture
def stand_in_runner(tmp_path, monkeypatch):
    """A runner that answers each line with its id and its line number, reports an error for
    "bad", dies on "die", and exits before reading anything under RUNNER_EXITS_AT_ONCE."""
    script = tmp_path / "runner.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, os, sys
            if os.environ.get("RUNNER_EXITS_AT_ONCE"):
                print("model folder missing", file=sys.stderr)
                sys.exit(2)
            for number, line in enumerate(sys.stdin):
                item = json.loads(line)
                if item["id"] == "bad":
                    print(json.dumps({"id": "bad", "error": "ValueError: no"}), flush=True)
                    continue
                if item["id"] == "die":
                    print("boom: the runner gave up", file=sys.stderr)
                    sys.exit(3)
                print(json.dumps({"id": item["id"], "seconds": float(number)}), flush=True)
            """
        )
    )
    monkeypatch.setattr(anchor, "ANCHOR_PY", sys.executable)
    monkeypatch.setattr(anchor, "ANCHOR_RUNNER", script)


@pytest.mark.usefixtures("stand_in_runner")
def test_a_session_answers_line_by_line_in_one_process() -> None:
    with anchor.Session() as session:
        answers = [session.ask({"id": name}) for name in ("a", "b", "c")]
    assert [(row["id"], row["seconds"]) for row in answers] == [("a", 0.0), ("b", 1.0), ("c", 2.0)]


@pytest.mark.usefixtures("stand_in_runner")
def test_a_session_whose_runner_died_raises_with_its_stderr(capsys) -> None:
    with anchor.Session() as session, pytest.raises(RuntimeError, match="runner stopped"):
        session.ask({"id": "die"})
    assert "boom: the runner gave up" in capsys.readouterr().err


@pytest.mark.usefixtures("stand_in_runner")
def test_a_runner_that_exits_before_reading_raises_with_its_stderr(monkeypatch, capsys) -> None:
    monkeypatch.setenv("RUNNER_EXITS_AT_ONCE", "1")
    session = anchor.Session()
    session._process.wait()  # it is gone before the first line: writing to it breaks the pipe
    with session, pytest.raises(RuntimeError, match="runner stopped"):
        session.ask({"id": "a"} | {"padding": "x" * 100_000})
    assert "model folder missing" in capsys.readouterr().err


@pytest.mark.usefixtures("stand_in_runner")
def test_a_failed_item_fails_a_strict_run_and_is_an_error_row_otherwise(capsys) -> None:
    lines = [{"id": "a"}, {"id": "bad"}]
    with pytest.raises(RuntimeError, match="llmlingua failed on 1 items"):
        anchor.run(lines)
    rows = anchor.run(lines, strict=False)
    assert rows[1] == {"id": "bad", "error": "ValueError: no"}
    assert "1 items failed" in capsys.readouterr().err


@pytest.mark.usefixtures("stand_in_runner")
def test_run_warms_up_on_the_first_line_and_returns_one_row_per_line() -> None:
    rows = anchor.run([{"id": "a"}, {"id": "b"}])
    assert [(row["id"], row["seconds"]) for row in rows] == [("a", 1.0), ("b", 2.0)]
