"""Whether a method can run in this install, and why not: what ``ragpress methods`` prints.

A model method runs when its ONNX graph is prepared (onnxruntime alone then), or when it can be
prepared here (the ``export`` extra and the model's weights are installed).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

EXPORT_MODULES = ("torch", "transformers", "onnx")


@dataclass(frozen=True)
class Status:
    ready: bool
    reason: str


def method_status(name: str) -> Status:
    """Whether ``name`` (a method or ``a+b`` pipeline) runs here with its defaults."""
    stages = name.split("+")
    statuses = [_one(stage) for stage in stages]
    blocked = [s.reason for s in statuses if not s.ready]
    if blocked:
        return Status(False, "; ".join(dict.fromkeys(blocked)))
    return Status(True, "; ".join(dict.fromkeys(s.reason for s in statuses)))


def model_methods() -> dict[str, tuple[str, str]]:
    """Method -> (model, role) its defaults run, read from the classes (``ModelCompressor``'s
    ``default_model`` and its runner's role)."""
    from ragpress.registry import available, factory

    found = {}
    for name in available():
        cls = factory(name)
        runner = getattr(cls, "runner_class", None)
        if getattr(cls, "loads_model", False) and runner is not None:
            found[name] = (getattr(cls, "default_model"), runner.role)  # noqa: B009
    return found


def _one(name: str) -> Status:
    from ragpress.registry import factory, resolve

    key = resolve(name)
    if key == "pipeline":
        return Status(True, "stages joined with '+', e.g. probe+entropy")
    cls = factory(key)
    if not getattr(cls, "loads_model", False):
        return Status(True, "no model")
    needs = model_methods().get(key)
    if needs is None:
        return Status(True, "loads a model of its own (not checked here)")
    if importlib.util.find_spec("onnxruntime") is None:
        return Status(False, "needs onnxruntime: pip install 'ragpress[cpu]'")
    model, role = needs
    if _prepared(model, role):
        return Status(True, f"{model} {role} graph prepared")
    missing = [m for m in EXPORT_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return Status(
            False,
            f"{model} {role} graph not prepared, and preparing it needs the export extra "
            "(pip install 'ragpress[export]'), or copy a prepared $RAGPRESS_HOME",
        )
    from ragpress.onnx.catalogue import get_spec

    spec = get_spec(model)
    if spec.packaged is not None and not spec.packaged.available():
        return Status(False, f"{model} weights not installed: run `ragpress models install`")
    return Status(True, f"{model} {role} graph exported on first use (a few minutes, once)")


def _prepared(model: str, role: str) -> bool:
    from ragpress.onnx.export import MANIFEST, graph_dir

    return any((graph_dir(model, role, v) / MANIFEST).is_file() for v in ("fp32", "int8"))  # type: ignore[arg-type]
