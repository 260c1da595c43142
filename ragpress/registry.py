"""Names to compressors. A compressor module joins with ``@register("name", aliases=...)``.

Modules are imported lazily, the first time one of their names is asked for, so that
``import ragpress`` stays cheap and a missing optional dependency only bites its own method.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar

from ragpress.base import Compressor

C = TypeVar("C", bound=type[Compressor])

#: name -> module that registers it on import (the built-in compressors).
_BUILTIN_MODULES: dict[str, str] = {
    "metatoken": "ragpress.compressors.metatoken",
    "entropy": "ragpress.compressors.entropy",
    "attention-probe": "ragpress.compressors.attention_probe",
    "random": "ragpress.compressors.baselines",
    "first-k": "ragpress.compressors.baselines",
    "embedding-similarity": "ragpress.compressors.baselines",
    "ib-filter": "ragpress.compressors.ib_filter",
    "token-classifier": "ragpress.compressors.token_classifier",
    "pipeline": "ragpress.compressors.pipeline",
    "relevance": "ragpress.compressors.relevance",
}
_ALIASES: dict[str, str] = {
    "lossless": "metatoken",
    "meta-token": "metatoken",
    "selective-context": "entropy",
    "llmlingua": "entropy",
    "longllmlingua": "entropy",
    "truncate": "first-k",
    "embeddings": "embedding-similarity",
    "probe": "attention-probe",
    "sentinel": "attention-probe",
    "ib": "ib-filter",
    "llmlingua2": "token-classifier",
    "llmlingua-2": "token-classifier",
    "provence": "relevance",
    "pruner": "relevance",
}
_FACTORIES: dict[str, Callable[..., Compressor]] = {}
PIPELINE_SEPARATOR = "+"


def register(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[C], C]:
    """Class decorator: make a compressor reachable by ``get_compressor(name)``."""

    def decorate(cls: C) -> C:
        cls.name = name
        _FACTORIES[name] = cls
        for alias in aliases:
            _ALIASES[alias] = name
        return cls

    return decorate


def available() -> list[str]:
    """Every known method name (built-in or registered), sorted."""
    return sorted(set(_BUILTIN_MODULES) | set(_FACTORIES))


def resolve(name: str) -> str:
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def factory(name: str) -> Callable[..., Compressor]:
    """The class (or factory) registered as ``name`` or one of its aliases."""
    if not isinstance(name, str):
        raise TypeError(f"method name must be a str, got {type(name).__name__}")
    key = resolve(name)
    if key not in _FACTORIES and key in _BUILTIN_MODULES:
        importlib.import_module(_BUILTIN_MODULES[key])
    if key not in _FACTORIES:
        raise ValueError(f"unknown compressor {name!r}; known: {', '.join(available())}")
    return _FACTORIES[key]


def get_compressor(name: str, **options: Any) -> Compressor:
    """Build the compressor called ``name`` with ``options`` (its constructor's keywords).

    ``"a+b"`` names a pipeline of stages ``a`` then ``b`` (see ragpress.compressors.pipeline).
    """
    if isinstance(name, str) and PIPELINE_SEPARATOR in name:
        return factory("pipeline")(name.split(PIPELINE_SEPARATOR), **options)
    return factory(name)(**options)
