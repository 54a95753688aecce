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


def check_int(name: str, x: object, *, low: int | None = None, allow_tensor: bool = False) -> int:
    """Require an integer >= low; allow_tensor also takes a 0-d integer tensor (a count made with tensor ops)."""
    if allow_tensor and isinstance(x, Tensor) and x.dim() == 0 and not (x.is_floating_point() or x.is_complex()):
        x = x.item()  # a bool tensor becomes a bool, and is refused below
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        got = f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}" if isinstance(x, Tensor) else type(x).__name__
        allowed = "an int or a 0-d integer tensor" if allow_tensor else "an int"
        raise TypeError(f"{name} must be {allowed}, got {got}")
    x = int(x)
    if low is not None and x < low:
        raise ValueError(f"{name} must be >= {low}, got {x}")
    return x


def check_bool(name: str, x: object) -> bool:
    """Require a bool (a string such as "False" is truthy, so it is refused rather than guessed at)."""
    if not isinstance(x, bool):
        raise TypeError(f"{name} must be True or False, got {x!r}")
    return x


def check_nonnegative(name: str, x: Tensor, *, high: float | None = None) -> Tensor:
    """Require every entry of a checked tensor to be >= 0 (and <= high if given), e.g. probabilities or weights."""
    if x.numel() == 0:
        return x
    with torch.no_grad():
        lo, hi = x.amin().item(), x.amax().item()
    if lo < 0 or (high is not None and hi > high):
        allowed = f"in [0, {high:g}]" if high is not None else ">= 0"
        raise ValueError(f"{name} must hold values {allowed}, got values in [{lo:.4g}, {hi:.4g}]")
    return x


def check_dim(name: str, dim: object, ndim: int) -> None:
    """Require an int or a tuple of distinct ints naming dimensions of a tensor with ndim dimensions."""
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    if not dims or any(isinstance(d, bool) or not isinstance(d, numbers.Integral) for d in dims):
        raise TypeError(f"{name} must be an int or a non-empty tuple of ints, got {dim!r}")
    n = max(ndim, 1)  # torch lets a 0-d tensor reduce over dim 0 / -1
    if any(not -n <= d < n for d in dims):
        raise ValueError(f"{name}={dim!r} is out of range for {ndim}-dimensional inputs (allowed: {-n} to {n - 1})")
    if len({d % n for d in dims}) < len(dims):
        raise ValueError(f"{name}={dim!r} names a dimension twice")


def check_broadcast(name: str, x: object, shape: tuple[int, ...] | torch.Size, target: str) -> None:
    """Require a tensor x to broadcast to `shape` (the shape of `target`) without enlarging it; numbers pass."""
    if not isinstance(x, Tensor):
        return
    try:
        ok = torch.broadcast_shapes(x.shape, shape) == tuple(shape)
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"{name} has shape {tuple(x.shape)}, which does not broadcast to {target}'s {tuple(shape)}")


def check_per_problem(name: str, x: object, like: Tensor, batch_dims: int = 2) -> None:
    """A value per problem (see `per_problem`) must match like's leading dims, those before the last batch_dims."""
    if not isinstance(x, Tensor) or x.numel() <= 1:
        return
    lead = tuple(like.shape[: max(like.dim() - batch_dims, 0)])
    if x.dim() > len(lead) or any(a not in (1, b) for a, b in zip(x.shape, lead)):
        raise ValueError(
            f"{name} has shape {tuple(x.shape)}; one value per problem must match the leading dimensions "
            f"{lead} of the [..., B, T] inputs (shape {tuple(like.shape)}), or be a single number"
        )


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
    for k, v in tensors.items():
        if not isinstance(v, Tensor):
            raise TypeError(f"{k} must be a torch.Tensor, got {type(v).__name__}")
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
