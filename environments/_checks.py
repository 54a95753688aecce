"""Argument checks shared by the environments.

Every failure raises ValueError naming the argument, the value received and what is allowed, so a
mistyped notebook cell points straight at the culprit.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np


def as_int(name: str, value: Any, *, minimum: int | None = None) -> int:
    """Return `value` as a Python int, rejecting bools, floats and values below `minimum`."""
    # operator.index accepts int and numpy integers but refuses 2.0 or "3", which would otherwise
    # slip through int() and hide a caller's mistake.
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {number}")
    return number


def as_table(name: str, value: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Return a read-only float64 copy of `value`, which must have `shape` and finite entries."""
    try:
        table = np.array(value, dtype=np.float64)  # a copy, so later edits by the caller don't leak in
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an array of numbers with shape {shape}, got {value!r}") from None
    if table.shape != shape:
        raise ValueError(f"{name} must have shape {shape}, got shape {table.shape}")
    if not np.all(np.isfinite(table)):
        raise ValueError(f"{name} must contain only finite numbers, got {table.tolist()}")
    table.flags.writeable = False
    return table


def check_render_mode(render_mode: str | None, allowed: list[str]) -> None:
    """Reject any render mode the environment does not declare in its metadata."""
    if render_mode is not None and render_mode not in allowed:
        raise ValueError(f"render_mode must be None or one of {allowed}, got {render_mode!r}")
