"""Auto-checked exercises: compare a reader's function with the library's on random inputs.

    erl.exercises.check("entropy", my_entropy)       # a named exercise from EXERCISES
    erl.exercises.compare(my_fn, reference, make_inputs, name="my thing")

Each prints one line, ✓ or ✗ with the first mismatching input, and returns a Result that is truthy
only when every trial matched (so a solutions notebook can `assert` it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .advantages import group_advantages
from .entropy import centered_logp, entropy, pg_logit_step, predicted_entropy_change
from .metrics import pass_at_k
from .repo import repo_r

Inputs = tuple[tuple[Any, ...], dict[str, Any]]


@dataclass
class Result:
    """Outcome of a check: passed, trials run, and a message for the first mismatch ('' if none)."""

    name: str
    passed: bool
    trials: int
    message: str = ""

    def __bool__(self) -> bool:
        return self.passed


def _fmt(x: Any) -> str:
    if isinstance(x, dict):
        return "{" + ", ".join(f"{k}: {_fmt(v)}" for k, v in x.items()) + "}"
    if isinstance(x, Tensor):
        vals = [round(v, 4) for v in x.detach().double().flatten().tolist()[:8]]
        return f"tensor{list(x.shape)} {vals}" + (" ..." if x.numel() > 8 else "")
    return repr(x)


def _close(a: Any, b: Any, atol: float, rtol: float) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and a.keys() == b.keys() and all(_close(a[k], b[k], atol, rtol) for k in b)
    if isinstance(b, (tuple, list)):
        return isinstance(a, (tuple, list)) and len(a) == len(b) and all(_close(x, y, atol, rtol) for x, y in zip(a, b))
    if isinstance(b, Tensor):
        a = torch.as_tensor(a, dtype=b.dtype) if not isinstance(a, Tensor) else a
        return a.shape == b.shape and bool(torch.allclose(a.to(b.dtype), b, atol=atol, rtol=rtol, equal_nan=False))
    return abs(float(a) - float(b)) <= atol + rtol * abs(float(b))


def compare(
    candidate: Callable,
    reference: Callable,
    make_inputs: Callable[[torch.Generator], Inputs],
    trials: int = 20,
    atol: float = 1e-6,
    rtol: float = 1e-5,
    name: str = "exercise",
    seed: int = 0,
    verbose: bool = True,
) -> Result:
    """Run candidate and reference on `trials` random inputs; stop at the first mismatch or error."""
    g = torch.Generator().manual_seed(seed)
    for t in range(trials):
        args, kwargs = make_inputs(g)
        expected = reference(*args, **kwargs)
        shown = ", ".join([_fmt(a) for a in args] + [f"{k}={_fmt(v)}" for k, v in kwargs.items()])
        try:
            got = candidate(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 (a reader's bug is reported, not raised)
            res = Result(name, False, t + 1, f"trial {t + 1} raised {type(e).__name__}: {e}\n  input: {shown}")
            break
        if not _close(got, expected, atol, rtol):
            res = Result(
                name,
                False,
                t + 1,
                f"trial {t + 1} differs\n  input:   {shown}\n  yours:   {_fmt(got)}\n  library: {_fmt(expected)}",
            )
            break
    else:
        res = Result(name, True, trials)
    if verbose:
        print(
            f"✓ {name}: {res.trials}/{res.trials} random inputs match the library"
            if res.passed
            else f"✗ {name}: {res.message}"
        )
    return res


def _logits(g: torch.Generator) -> Inputs:
    K = int(torch.randint(2, 12, (1,), generator=g))
    return (torch.randn(3, K, dtype=torch.float64, generator=g) * 2,), {}


def _logits_adv_lr(g: torch.Generator) -> Inputs:
    (z,), _ = _logits(g)
    adv = (torch.rand(z.shape, generator=g) < 0.4).to(torch.float64)
    return (z, adv, float(torch.rand(1, generator=g)) * 0.5), {}


def _rewards(g: torch.Generator) -> Inputs:
    G = int(torch.randint(2, 6, (1,), generator=g))
    return (torch.randint(0, 3, (3 * G,), generator=g).to(torch.float64), G), {}


def _repo_r(g: torch.Generator) -> Inputs:
    adv = torch.randn(10, dtype=torch.float64, generator=g)
    logp = -torch.rand(10, dtype=torch.float64, generator=g) * 8
    return (adv, logp, float(torch.randn(1, generator=g)) * 0.2), {}


def _pass_at_k(g: torch.Generator) -> Inputs:
    n = int(torch.randint(1, 30, (1,), generator=g))
    c = int(torch.randint(0, n + 1, (1,), generator=g))
    k = int(torch.randint(1, n + 1, (1,), generator=g))
    return (n, c, k), {}


# name -> (library reference, random-input maker)
EXERCISES: dict[str, tuple[Callable, Callable[[torch.Generator], Inputs]]] = {
    "entropy": (entropy, _logits),
    "centered_logp": (centered_logp, _logits),
    "pg_logit_step": (pg_logit_step, _logits_adv_lr),
    "predicted_entropy_change": (predicted_entropy_change, _logits_adv_lr),
    "natural_entropy_change": (lambda z, a, lr: predicted_entropy_change(z, a, lr, "natural"), _logits_adv_lr),
    "rloo": (lambda r, G: group_advantages(r, G, "rloo"), _rewards),
    "grpo": (lambda r, G: group_advantages(r, G, "grpo"), _rewards),
    "dr_grpo": (lambda r, G: group_advantages(r, G, "dr_grpo"), _rewards),
    "repo_r": (repo_r, _repo_r),
    "pass_at_k": (pass_at_k, _pass_at_k),
}


def check(exercise: str, candidate: Callable, trials: int = 20, atol: float = 1e-6, rtol: float = 1e-5) -> Result:
    """Check a reader's function against the library for a named exercise (see EXERCISES)."""
    if exercise not in EXERCISES:
        raise ValueError(f"unknown exercise {exercise!r}; known: {', '.join(sorted(EXERCISES))}")
    reference, make_inputs = EXERCISES[exercise]
    return compare(candidate, reference, make_inputs, trials, atol, rtol, name=exercise)
