"""The CLI's output and errors in a shell: strict JSON, "error: ..." with exit 2 instead of a
traceback, messages in the CLI's own terms, and a result line that ends on a terminal."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import tty
from pathlib import Path

import pytest

from tests.cli_runner import run_cli

TEXT = "The pump runs hot when the filter clogs. Replace the filter every ten days"


def _strict(text: str) -> dict:
    """``text`` read as JSON that a strict parser takes (no Infinity / NaN)."""

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


# -- --json ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "args"),
    [
        (TEXT, ["-m", "first-k", "--target-tokens", "0"]),
        pytest.param(
            "Birds sing.",
            ["-m", "relevance", "-q", "bolt torque?"],  # keeps nothing
            marks=pytest.mark.real_model,
        ),
    ],
)
def test_json_of_a_result_that_keeps_nothing_is_strict_with_a_null_ratio(stdin, args):
    run = run_cli("compress", "-", *args, "--json", stdin=stdin)
    assert run.returncode == 0, run.stderr
    data = _strict(run.stdout)
    assert data["compressed_tokens"] == 0 and data["original_tokens"] > 0
    assert data["ratio"] is None and data["text"] == "" and data["kept_spans"] == []


# -- --html ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        lambda tmp: tmp,  # a folder
        lambda tmp: tmp / "missing" / "view.html",  # in a missing folder
        lambda tmp: tmp / ("x" * 300 + ".html"),  # a name the file system refuses
    ],
    ids=["folder", "missing-folder", "name-too-long"],
)
def test_an_html_path_that_cannot_be_written_is_an_error_not_a_traceback(tmp_path, where):
    page: Path = where(tmp_path)
    run = run_cli(
        "compress", "-", "-m", "first-k", "--rate", "0.5", "--html", str(page), stdin=TEXT
    )
    assert run.returncode == 2, run.stderr
    assert run.stderr.startswith("error: ") and "Traceback" not in run.stderr
    assert run.stdout == ""


# -- messages in the CLI's terms ---------------------------------------------------------------


def test_an_option_the_method_does_not_take_names_the_method_and_its_options():
    run = run_cli("compress", "-", "--query", "Q", "-o", "coarse=false", stdin="x")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "relevance has no option 'coarse' (its options: " in run.stderr, run.stderr
    assert "threshold" in run.stderr and "__init__" not in run.stderr
    cheap = run_cli("compress", "-", "-m", "first-k", "-o", "seed=1", "-o", "zz=1", stdin="x")
    assert cheap.returncode == 2
    assert "first-k has no option 'zz' (its options: seed, target_tokenizer)" in cheap.stderr


def test_a_pipeline_option_no_stage_takes_is_refused_with_their_options():
    run = run_cli("compress", "-", "-m", "first-k+random", "-o", "zz=1", stdin="x y z")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "options ['zz'] are taken by no stage of ['first-k', 'random']" in run.stderr
    assert "(the named stages' options: seed, target_tokenizer; the pipeline's: headroom, " in (
        run.stderr
    ), run.stderr


def test_json_and_show_together_are_refused():
    run = run_cli("compress", "-", "-m", "first-k", "--json", "--show", stdin=TEXT)
    assert run.returncode == 2 and "--json and --show" in run.stderr and run.stdout == ""


def test_a_missing_query_names_the_query_option():
    run = run_cli("compress", "-", "-m", "relevance", stdin=TEXT)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "--query" in run.stderr and "query=" not in run.stderr, run.stderr


# -- the result's last line --------------------------------------------------------------------


def _run_on_a_terminal(*args: str, stdin: str) -> tuple[bytes, str]:
    """The CLI with stdout on a (raw) pseudo-terminal and stderr in a pipe, as with
    ``ragpress compress ... 2>/dev/null`` typed at a prompt: (stdout bytes, stderr)."""
    master, slave = pty.openpty()
    tty.setraw(slave)  # no "\n" -> "\r\n": the bytes as written
    try:
        run = subprocess.run(
            [sys.executable, "-m", "ragpress.cli", *args],
            input=stdin.encode(),
            stdout=slave,
            stderr=subprocess.PIPE,
            check=False,
        )
    finally:
        os.close(slave)
    out = b""
    try:
        while chunk := os.read(master, 65536):
            out += chunk
    except OSError:  # EIO: the terminal is closed and drained
        pass
    finally:
        os.close(master)
    assert run.returncode == 0, run.stderr
    return out, run.stderr.decode()


def test_a_result_on_a_terminal_ends_its_line():
    args = ("compress", "-", "-m", "first-k", "--rate", "0.5")
    piped = run_cli(*args, stdin=TEXT)
    out, err = _run_on_a_terminal(*args, stdin=TEXT)
    assert not piped.stdout.endswith("\n")  # into a pipe: the result's bytes only
    assert out == piped.stdout.encode() + b"\n"
    assert piped.stderr.startswith("\nfirst-k:")  # the line ended on stderr, as before
    assert err.startswith("first-k:")  # not twice on a terminal (no blank line)


def test_a_piped_lossless_result_round_trips_byte_for_byte(tmp_path):
    packed = run_cli("compress", "-", "-m", "metatoken", stdin=TEXT * 3)
    assert packed.returncode == 0, packed.stderr
    path = tmp_path / "packed.txt"
    path.write_bytes(packed.stdout.encode())
    restored = run_cli("decompress", str(path))
    assert restored.returncode == 0 and restored.stdout == TEXT * 3


def test_split_reads_blank_lines_of_crlf_files_too(tmp_path):
    lf = "Pumps run hot.\nFilters clog.\n\nOil rises.\n"
    outputs = []
    for name, text in (("lf.txt", lf), ("crlf.txt", lf.replace("\n", "\r\n"))):
        (tmp_path / name).write_bytes(text.encode())
        run = run_cli(
            "compress", str(tmp_path / name), "-m", "first-k", "--rate", "1", "--split", "--json"
        )
        assert run.returncode == 0, run.stderr
        outputs.append([doc.replace("\r", "") for doc in _strict(run.stdout)["documents"]])
    assert outputs[0] == outputs[1] == ["Pumps run hot.\nFilters clog.", "Oil rises."]
