"""Names to compressors. A compressor module joins with ``@register("name", aliases=...)``:
the decorator is the one place a name and its aliases are written.

The built-in modules (every public module of ``ragpress.compressors``, so a new method is one
new file) are imported the first time a name is looked up, not by ``import ragpress``; they
import their heavy dependencies (torch, onnxruntime, transformers) only when a compressor is
built, so a missing optional dependency only bites its own method.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from ragpress.base import Compressor
from ragpress.types import CompressionRequest

C = TypeVar("C", bound=type[Compressor])

BUILTIN_PACKAGE = "ragpress.compressors"
PIPELINE_SEPARATOR = "+"
_FACTORIES: dict[str, type[Compressor]] = {}
_ALIASES: dict[str, str] = {}
_FAILED: dict[str, str] = {}  # built-in module -> why it could not be imported
_loaded = False
_BY_KEYWORD = (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


class UnknownOptionError(TypeError, ValueError):
    """A keyword that no constructor it would reach takes. A TypeError, as Python's own for an
    unexpected keyword, and a ValueError, as every other bad option here (numpy's ``AxisError``
    is both in the same way)."""


def register(name: str, *, aliases: tuple[str, ...] = ()) -> Callable[[C], C]:
    """Class decorator: make a compressor reachable by ``get_compressor(name)`` and by each
    of ``aliases``. The class must implement ``_compress`` or ``_compress_batch``."""

    def decorate(cls: C) -> C:
        if cls._compress is Compressor._compress and cls._compress_batch is (
            Compressor._compress_batch
        ):
            raise TypeError(f"{cls.__name__} implements neither _compress nor _compress_batch")
        cls.name = name
        _FACTORIES[name] = cls
        for alias in aliases:
            _ALIASES[alias] = name
        return cls

    return decorate


def _load_builtins() -> None:
    """Import every public module of ``ragpress.compressors`` once (they register on import)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    package = importlib.import_module(BUILTIN_PACKAGE)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name.startswith("_"):
            continue
        qualified = f"{BUILTIN_PACKAGE}.{module.name}"
        try:
            importlib.import_module(qualified)
        except ImportError as error:  # recorded, named when a lookup fails
            _FAILED[qualified] = str(error)


def available() -> list[str]:
    """Every known method name (built-in or registered), sorted."""
    _load_builtins()
    return sorted(_FACTORIES)


def aliases() -> dict[str, str]:
    """Every alias and the name it stands for."""
    _load_builtins()
    return dict(_ALIASES)


def resolve(name: str) -> str:
    _load_builtins()
    key = name.strip().lower()
    return _ALIASES.get(key, key)


def factory(name: str) -> type[Compressor]:
    """The class registered as ``name`` or one of its aliases."""
    if not isinstance(name, str):
        raise TypeError(f"method name must be a str, got {type(name).__name__}")
    key = resolve(name)
    if key not in _FACTORIES:
        failed = "".join(f"; {module} failed to import: {why}" for module, why in _FAILED.items())
        raise ValueError(f"unknown compressor {name!r}; known: {', '.join(available())}{failed}")
    return _FACTORIES[key]


def accepted_options(name: str) -> set[str]:
    """Keyword arguments the compressor ``name`` takes: those of its ``__init__`` and of every
    base class ``__init__`` it hands ``**options`` on to (e.g. the model options)."""
    return {
        p.name
        for _, parameters in _init_chain(factory(name))
        for p in parameters
        if p.kind in _BY_KEYWORD and p.name != "self"
    }


def _init_chain(cls: type) -> Iterator[tuple[type, list[inspect.Parameter]]]:
    """Each ``__init__`` of ``cls``'s MRO that the one before hands ``**kwargs`` on to (the
    first one, then on while each takes ``**kwargs``), with its class and parameters."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = list(inspect.signature(init).parameters.values())
        yield klass, parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
            return


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Refuse keywords that method ``name`` does not take, naming those it does, before anything
    is built (a model may take a minute to export on first use). A pipeline (``"a+b"``, or
    ``"pipeline"`` with ``stages=``) checks its stages' names and options, see
    ``Pipeline.check_stages``. A class of your own whose ``__init__`` takes ``**kwargs`` is not
    checked here: what it does with them cannot be read from its signature."""
    if isinstance(name, str) and PIPELINE_SEPARATOR in name:
        factory("pipeline").check_stages(name.split(PIPELINE_SEPARATOR), options)  # type: ignore[attr-defined]
        return
    cls = factory(name)
    if cls.name == "pipeline":
        given = {key: value for key, value in options.items() if key != "stages"}
        cls.check_stages(options.get("stages"), given)  # type: ignore[attr-defined]
        return
    if _takes_unread_keywords(cls):
        return
    accepted = accepted_options(name)
    unknown = sorted(set(options) - accepted)
    if unknown:
        listed = ", ".join(repr(key) for key in unknown)
        raise UnknownOptionError(
            f"{cls.name} has no option{'s' if len(unknown) > 1 else ''} {listed} "
            f"(its options: {', '.join(sorted(accepted)) or 'none'})"
        )


def _takes_unread_keywords(cls: type[Compressor]) -> bool:
    """True when an ``__init__`` outside ragpress takes ``**kwargs`` (ragpress's own hand them
    on to their base class, which ``accepted_options`` reads)."""
    return any(
        not klass.__module__.startswith("ragpress.")
        and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)
        for klass, parameters in _init_chain(cls)
    )


def check_stage_options(
    stages: Sequence[object],
    shared: Mapping[str, Any],
    stage_options: Mapping[str, Mapping[str, Any]] | None,
    own: Sequence[str] = (),
) -> None:
    """A pipeline's options, checked before any stage is built: every stage name is known and
    not a pipeline, ``stage_options`` names stages and gives each only keywords it takes, and
    every shared option is taken by some named stage (stages given as instances take none);
    ``own`` are the pipeline's own options, named in the error."""
    names = [stage.strip() for stage in stages if isinstance(stage, str)]
    for name in names:
        if factory(name).name == "pipeline":
            raise ValueError(f"{name!r} is not a stage: name the stages, joined by '+'")
    by_stage = stage_options_by_method(stage_options)
    unknown = set(by_stage) - {resolve(name) for name in names}
    if unknown:
        raise ValueError(f"stage_options for {sorted(unknown)}, which are not stages: {names}")
    for name, options in by_stage.items():
        if not isinstance(options, Mapping):
            raise TypeError(f"stage_options[{name!r}] must map option names to values")
        check_options(name, options)
    taken = set().union(*(accepted_options(name) for name in names))
    unused = set(shared) - taken
    if unused:
        every = [
            stage if isinstance(stage, str) else getattr(stage, "name", "?") for stage in stages
        ]
        raise UnknownOptionError(
            f"options {sorted(unused)} are taken by no stage of {every} (the named stages' "
            f"options: {', '.join(sorted(taken)) or 'none'}; the pipeline's: {', '.join(own)})"
        )


def stage_options_by_method(
    stage_options: Mapping[str, Mapping[str, Any]] | None,
) -> dict[str, Mapping[str, Any]]:
    """``stage_options`` keyed by registered name, so a stage named by an alias (``probe``)
    takes options given under its name (``attention-probe``) and the other way round."""
    if stage_options is None:
        return {}
    if not isinstance(stage_options, Mapping):
        raise TypeError(f"stage_options must map stage names to options, got {stage_options!r}")
    by_method: dict[str, Mapping[str, Any]] = {}
    for key, options in stage_options.items():
        method = resolve(key) if isinstance(key, str) else key
        if method in by_method:
            raise ValueError(f"stage_options name the stage {method!r} twice (by an alias)")
        by_method[method] = options
    return by_method


def check_query_first(name: str, request: CompressionRequest) -> None:
    """The missing-query error of method ``name``, or of a stage of the pipeline ``"a+b"``
    that needs a query, raised before anything is built (a model may take a minute to export
    on first use)."""
    if request.is_empty:
        return  # passed through whatever the method
    for stage in name.split(PIPELINE_SEPARATOR):
        cls = factory(stage)
        if cls.requires_query is True:  # the class's own rule and message
            Compressor.check_query(cls, request)  # type: ignore[arg-type]


def get_compressor(name: str, **options: Any) -> Compressor:
    """Build the compressor called ``name`` with ``options`` (its constructor's keywords).

    ``"a+b"`` names a pipeline of stages ``a`` then ``b`` (see ragpress.compressors.pipeline).
    """
    check_options(name, options)
    if isinstance(name, str) and PIPELINE_SEPARATOR in name:
        return factory("pipeline")(name.split(PIPELINE_SEPARATOR), **options)  # type: ignore[call-arg]
    return factory(name)(**options)
