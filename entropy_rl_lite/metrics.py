"""What we measure: unbiased pass@k, distinct correct answers, cumulative entropy, clip fractions."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence

import numpy as np
from torch import Tensor

from ._checks import check_int, check_tensor, fp32, per_problem


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Evaluated as 1 - Π_{i=n-c+1..n} (1 - k/i), which never forms the huge binomials.
    """
    n, c, k = check_int("n", n, low=1), check_int("c", c, low=0), check_int("k", k, low=1)
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
    if is_correct is not None:
        if len(is_correct) != len(answers):
            raise ValueError(f"is_correct has {len(is_correct)} flags for {len(answers)} answers")
        return len({a for a, ok in zip(answers, is_correct) if ok})
    good = set(correct)
    return len({a for a in answers if a in good})


def expected_distinct_correct(probs: Tensor, correct: Tensor, k: int) -> Tensor:
    """Expected number of distinct correct arms among k samples from π: Σ_{a correct} 1 - (1 - π_a)^k.

    probs [..., K], correct [K] or [..., K] bool -> [...]. Exact, for softmax bandits.
    """
    check_tensor("probs", probs, min_dim=1)
    k = check_int("k", k, low=1)
    probs = fp32(probs)
    hit = 1.0 - (1.0 - probs).clamp(0, 1).pow(k)
    return (hit * correct.to(probs.dtype)).sum(-1)


def cumulative_entropy(entropy: Tensor, dim: int = 0, normalize: bool = False) -> Tensor:
    """Entropy summed along a run (the area under the entropy curve); normalize=True gives the mean.

    entropy [steps, ...] -> [...] (with dim=0).
    """
    check_tensor("entropy", entropy, min_dim=1)
    total = fp32(entropy).sum(dim)
    return total / entropy.shape[dim] if normalize else total


def clip_fractions(
    ratio: Tensor, adv: Tensor, weights: Tensor, eps_low: float | Tensor, eps_high: float | Tensor
) -> dict[str, Tensor]:
    """Weighted share of tokens whose PPO clip is active (zero gradient). [..., B, T] -> dict of [...].

    clip_frac_low: r < 1 - eps_low with A < 0 (the step that lowers this token's probability is stopped).
    clip_frac_high: r > 1 + eps_high with A > 0 (the step that raises it is stopped).
    """
    ratio, adv = fp32(ratio), fp32(adv)
    lo = 1.0 - per_problem(eps_low, ratio)
    hi = 1.0 + per_problem(eps_high, ratio)
    w = weights.to(ratio.dtype)
    total = w.sum((-2, -1))
    low = ((ratio < lo) & (adv < 0)).to(ratio.dtype)
    high = ((ratio > hi) & (adv > 0)).to(ratio.dtype)
    frac_low = (w * low).sum((-2, -1)) / total
    frac_high = (w * high).sum((-2, -1)) / total
    return {"clip_frac_low": frac_low, "clip_frac_high": frac_high, "clip_frac": frac_low + frac_high}
