"""Checks of compressor options, so a bad value fails at construction with its name in the
message, never later inside a model or a numpy call."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np


def choice(value: Any, choices: Sequence[str], name: str) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
    return value


def boolean(value: Any, name: str) -> bool:
    """``value`` as a bool: a bool (numpy's too) or the int 0 or 1. Anything else is refused,
    so a truthy string such as "False" is never read as True."""
    if isinstance(value, (bool, np.bool_)) or (
        isinstance(value, numbers.Integral) and value in (0, 1)
    ):
        return bool(value)
    raise TypeError(f"{name} must be True or False (on the CLI: -o {name}=false), got {value!r}")


def number(
    value: Any, name: str, *, above: float | None = None, at_least: float | None = None
) -> float:
    """``value`` as a finite float (numpy scalars too), ``> above`` / ``>= at_least``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int past float's range
        value = math.inf if value > 0 else -math.inf
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    if above is not None and not value > above:
        raise ValueError(f"{name} must be > {above}, got {value}")
    if at_least is not None and not value >= at_least:
        raise ValueError(f"{name} must be >= {at_least}, got {value}")
    return value


def fraction(value: Any, name: str, *, low_open: bool = True) -> float | None:
    """``value`` in (0, 1] (``low_open``) or [0, 1]; None stays None (the option is off)."""
    if value is None:
        return None
    value = number(value, name)
    low_ok = value > 0 if low_open else value >= 0
    if not (low_ok and value <= 1):
        raise ValueError(f"{name} must be in {'(0' if low_open else '[0'}, 1], got {value}")
    return value


def integer(value: Any, name: str, *, at_least: int) -> int:
    """``value`` as an int (numpy integers too, not bools) of at least ``at_least``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {at_least}, got {value!r}")
    if value < at_least:
        raise ValueError(f"{name} must be an int >= {at_least}, got {value!r}")
    return int(value)


def strings(value: Any, name: str) -> tuple[str, ...]:
    """A sequence of strings as a tuple; one bare string is refused (it would iterate by
    character)."""
    if isinstance(value, str):
        raise TypeError(
            f"{name} must be a sequence of strings such as [{value!r}] (on the CLI: "
            f"-o {name}={value},), not one string"
        )
    items = tuple(value) if isinstance(value, Iterable) else None
    if items is None or not all(isinstance(item, str) for item in items):
        raise TypeError(f"{name} must be a sequence of strings, got {value!r}")
    return items
