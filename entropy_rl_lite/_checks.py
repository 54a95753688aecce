"""Argument checks shared by the public API: fail fast with a message that names the argument.

Public functions call these once at their entry, then an `*_unchecked` kernel that holds only the math;
the library's own loops (bandit engine, trainer) validate their inputs once and call the kernels directly.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

import torch
from torch import Tensor


def check_tensor(name: str, x: object, *, min_dim: int = 0, allow_neg_inf: bool = False) -> Tensor:
    """Require a floating-point tensor with no NaN (and no inf unless -inf is allowed)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have at least {min_dim} dimension(s), got shape {tuple(x.shape)}")
    if x.numel() == 0:
        return x
    # Two reductions (NaN propagates through both) instead of elementwise masks: no copy of a large weight.
    with torch.no_grad():  # a check must not add nodes (or saved tensors) to the caller's autograd graph
        hi, lo = x.amax().item(), x.amin().item()
    if math.isnan(hi) or hi == math.inf or (lo == -math.inf and not allow_neg_inf):
        bad = torch.isnan(x) | (torch.isposinf(x) if allow_neg_inf else torch.isinf(x))
        allowed = "finite values or -inf" if allow_neg_inf else "finite values"
        raise ValueError(f"{name} contains NaN or inf ({int(bad.sum())} entries); only {allowed} are allowed")
    return x


def check_number(
    name: str, x: object, *, low: float | None = None, high: float | None = None, low_open: bool = False
) -> float:
    """Require a finite real number inside [low, high] (or (low, high] with low_open)."""
    if isinstance(x, Tensor) and x.numel() == 1:
        x = x.item()
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise TypeError(f"{name} must be a real number, got {type(x).__name__}")
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    if low is not None and (x <= low if low_open else x < low):
        raise ValueError(f"{name} must be {'>' if low_open else '>='} {low}, got {x}")
    if high is not None and x > high:
        raise ValueError(f"{name} must be <= {high}, got {x}")
    return x


def check_int(name: str, x: object, *, low: int | None = None) -> int:
    """Require an integer >= low."""
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(x).__name__}")
    x = int(x)
    if low is not None and x < low:
        raise ValueError(f"{name} must be >= {low}, got {x}")
    return x


def check_weights(name: str, w: Tensor) -> Tensor:
    """Per-element weights (a float view of a bool or float mask) must be finite and >= 0."""
    if bool(torch.isnan(w).any()) or bool((w < 0).any()) or bool(torch.isinf(w).any()):
        raise ValueError(f"{name} must hold finite weights >= 0 (or bools)")
    return w


def check_choice(name: str, x: object, allowed: Iterable[str]) -> str:
    """Require one of the allowed names; the error lists them."""
    allowed = tuple(allowed)
    if x not in allowed:
        raise ValueError(f"unknown {name} {x!r}; known: {', '.join(repr(a) for a in allowed)}")
    return x  # type: ignore[return-value]


def check_eps(name: str, x: float | Tensor) -> float | Tensor:
    """A clip bound: a finite number >= 0, or a tensor of them (one per independent problem)."""
    if isinstance(x, Tensor) and x.numel() > 1:
        check_tensor(name, x)
        if bool((x < 0).any()):
            raise ValueError(f"{name} must be >= 0, got min {x.min().item():.4g}")
        return x
    return check_number(name, x, low=0.0)


def check_same_shape(**tensors: Tensor) -> None:
    """Require every named tensor to have the same shape."""
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    if len(set(shapes.values())) > 1:
        detail = ", ".join(f"{k} {s}" for k, s in shapes.items())
        raise ValueError(f"shapes disagree: {detail}")


def fp32(x: Tensor) -> Tensor:
    """Upcast to float32; float64 stays float64 (the library's precision contract)."""
    return x if x.dtype == torch.float64 else x.float()


def per_problem(x: float | Tensor, like: Tensor) -> float | Tensor:
    """A scalar stays a float; a tensor of leading shape [...] becomes [..., 1, 1] to broadcast over [..., B, T].

    Clip bounds and controller values may be one number, or one per independent problem (the bandit
    engine steers each seed by its own ε_high or ζ).
    """
    if isinstance(x, Tensor) and x.numel() > 1:
        return x.to(like.dtype).reshape(*x.shape, *([1] * (like.dim() - x.dim())))
    return float(x)
