"""Training never writes into the installed package unless asked (``--ship``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ragpress.training.outputs import PACKAGE_DATA, output_path


def test_trained_files_go_to_the_cache_unless_shipped(tmp_path, monkeypatch):
    monkeypatch.setenv("RAGPRESS_HOME", str(tmp_path))
    assert output_path("probe-x.npz") == tmp_path / "trained" / "probe-x.npz"
    assert output_path("probe-x.npz", out=Path("elsewhere.npz")) == Path("elsewhere.npz")
    shipped = output_path("probe-x.npz", ship=True)
    assert shipped == PACKAGE_DATA / "probe-x.npz"
    assert (PACKAGE_DATA / "sample.txt").is_file()  # the folder the package ships
    with pytest.raises(ValueError, match="--ship"):
        output_path("probe-x.npz", out=Path("x"), ship=True)


@pytest.mark.parametrize("command", ["attention-probe", "token-classifier"])
def test_cli_refuses_out_and_ship_together(command, tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "ragpress.cli", "train", command, "--out", str(tmp_path / "x"),
         "--ship"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--ship" in result.stderr
    assert not (tmp_path / "x").exists()
