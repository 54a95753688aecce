"""What we measure: unbiased pass@k, distinct correct answers, cumulative entropy, clip fractions."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
import torch
from torch import Tensor

from ._checks import (
    check_bool,
    check_broadcast,
    check_dim,
    check_eps,
    check_int,
    check_nonnegative,
    check_per_problem,
    check_same_shape,
    check_tensor,
    check_weights,
    fp32,
    per_problem,
)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Evaluated as 1 - Π_{i=n-c+1..n} (1 - k/i), which never forms the huge binomials. n, c and k are ints
    or 0-d integer tensors (e.g. c = (answers == truth).sum()).
    """
    n = check_int("n", n, low=1, allow_tensor=True)
    c = check_int("c", c, low=0, allow_tensor=True)
    k = check_int("k", k, low=1, allow_tensor=True)
    if c > n:
        raise ValueError(f"c must be <= n (correct samples among n), got c={c}, n={n}")
    if k > n:
        raise ValueError(f"k must be <= n (cannot draw {k} of {n} samples), got k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def distinct_correct(
    answers: Sequence[Hashable], correct: Iterable[Hashable] | None = None, is_correct: Sequence[bool] | None = None
) -> int:
    """How many different correct answers a set of samples contains (diversity that pass@1 cannot see).

    Give either the set of correct answers, or one correctness flag per answer.
    """
    if (correct is None) == (is_correct is None):
        raise ValueError("give exactly one of correct (the set of correct answers) or is_correct (flags)")
    _check_sequence("answers", answers)
    if is_correct is not None:
        _check_sequence("is_correct", is_correct)
        if len(is_correct) != len(answers):
            raise ValueError(f"is_correct has {len(is_correct)} flags for {len(answers)} answers")
        return len({a for a, ok in zip(answers, is_correct) if ok})
    if not isinstance(correct, Iterable) or isinstance(correct, str):
        raise TypeError(f"correct must be a collection of correct answers (a set or list), got {correct!r}")
    good = set(correct)
    return len({a for a in answers if a in good})


def _check_sequence(name: str, x: object) -> None:
    """A list-like of items (a tensor counts); a bare number or string is refused."""
    if isinstance(x, str) or not (isinstance(x, (Sequence, Tensor)) or hasattr(x, "__len__")):
        raise TypeError(f"{name} must be a sequence (a list, tuple or 1-D tensor), got {type(x).__name__}")


def expected_distinct_correct(probs: Tensor, correct: Tensor, k: int) -> Tensor:
    """Expected number of distinct correct arms among k samples from π: Σ_{a correct} 1 - (1 - π_a)^k.

    probs [..., K], correct [K] or [..., K] bool -> [...]. Exact, for softmax bandits.
    """
    # high: 1 plus rounding (the kernel clamps 1 - π to [0, 1] for that); a probability of 1.5 is no probability
    check_nonnegative("probs", check_tensor("probs", probs, min_dim=1), high=1.0 + 1e-6)
    if not isinstance(correct, Tensor) or correct.dtype != torch.bool:
        got = f"dtype {correct.dtype}" if isinstance(correct, Tensor) else type(correct).__name__
        raise TypeError(f"correct must be a bool tensor (which arms are correct), got {got}")
    check_broadcast("correct", correct, probs.shape, "probs")
    k = check_int("k", k, low=1, allow_tensor=True)
    probs = fp32(probs)
    hit = 1.0 - (1.0 - probs).clamp(0, 1).pow(k)
    return (hit * correct.to(probs.dtype)).sum(-1)


def cumulative_entropy(entropy: Tensor, dim: int = 0, normalize: bool = False) -> Tensor:
    """Entropy summed along a run (the area under the entropy curve); normalize=True gives the mean.

    entropy [steps, ...] -> [...] (with dim=0). The mean of a run with no steps is undefined and raises.
    """
    check_tensor("entropy", entropy, min_dim=1)
    check_dim("dim", dim, entropy.dim())
    check_bool("normalize", normalize)
    if normalize and entropy.shape[dim] == 0:
        raise ValueError(
            f"entropy has no steps along dim {dim} (shape {tuple(entropy.shape)}): an empty run has no mean"
        )
    total = fp32(entropy).sum(dim)
    return total / entropy.shape[dim] if normalize else total


def clip_fractions(
    ratio: Tensor, adv: Tensor, weights: Tensor, eps_low: float | Tensor, eps_high: float | Tensor
) -> dict[str, Tensor]:
    """Weighted share of tokens whose PPO clip is active (zero gradient). [..., B, T] -> dict of [...].

    clip_frac_low: r < 1 - eps_low with A < 0 (the step that lowers this token's probability is stopped).
    clip_frac_high: r > 1 + eps_high with A > 0 (the step that raises it is stopped).
    ratio, adv and weights (bool or float >= 0, selecting a token in every problem) share a shape;
    eps_low/eps_high are numbers or one per problem [...].
    """
    check_tensor("ratio", ratio, min_dim=2)
    check_tensor("adv", adv, min_dim=2)
    if not isinstance(weights, Tensor):
        raise TypeError(f"weights must be a torch.Tensor, got {type(weights).__name__}")
    check_same_shape(ratio=ratio, adv=adv, weights=weights)
    w = check_weights("weights", weights.to(fp32(ratio).dtype))
    if bool((w.sum((-2, -1)) <= 0).any()):
        raise ValueError("weights select no token (their sum is 0) for at least one problem")
    for name, eps in (("eps_low", eps_low), ("eps_high", eps_high)):
        check_eps(name, eps)
        check_per_problem(name, eps, ratio)
    return clip_fractions_unchecked(ratio, adv, weights, eps_low, eps_high)


def clip_fractions_unchecked(
    ratio: Tensor,
    adv: Tensor,
    weights: Tensor,
    eps_low: float | Tensor,
    eps_high: float | Tensor,
    centered_logp: Tensor | None = None,
) -> dict[str, Tensor]:
    """`clip_fractions` without input checks.

    centered_logp (L = log π_old + H_old, same shape) adds the clipped updates that would have raised entropy:
    clip_frac_high_neg_L (raising a below-average token, L < 0) and clip_frac_low_pos_L (lowering an
    above-average one, L > 0), as shares of all tokens, like the clip fractions themselves.
    """
    ratio, adv = fp32(ratio), fp32(adv)
    lo = 1.0 - per_problem(eps_low, ratio)
    hi = 1.0 + per_problem(eps_high, ratio)
    w = weights.to(ratio.dtype)
    total = w.sum((-2, -1))
    low = (ratio < lo) & (adv < 0)
    high = (ratio > hi) & (adv > 0)
    frac_low = (w * low).sum((-2, -1)) / total
    frac_high = (w * high).sum((-2, -1)) / total
    out = {"clip_frac_low": frac_low, "clip_frac_high": frac_high, "clip_frac": frac_low + frac_high}
    if centered_logp is not None:
        out["clip_frac_high_neg_L"] = (w * (high & (centered_logp < 0))).sum((-2, -1)) / total
        out["clip_frac_low_pos_L"] = (w * (low & (centered_logp > 0))).sum((-2, -1)) / total
    return out
