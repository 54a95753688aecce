"""Entropy of softmax policies and first-order predictions of how a step changes it (docs/science.md §1).

Notation: z = logits, π = softmax(z), H = -Σ π log π, L = log π + H (the centred log-probability).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_choice, check_number, check_same_shape, check_tensor, fp32

GRADIENTS = ("vanilla", "natural")


def _logp(logits: Tensor) -> Tensor:
    """log_softmax in fp32 (float64 stays float64); -inf logits give log π = -inf."""
    return torch.log_softmax(fp32(logits), dim=-1)


def entropy_from_logp(logp: Tensor, probs: Tensor | None = None) -> Tensor:
    """H = -Σ π log π from log-probabilities (no checks: for loops that hold a log_softmax). [..., K] -> [...].

    probs: exp(logp), when the caller has it already. Arms with π = 0 contribute 0 (not 0·(-inf) = NaN).
    """
    probs = logp.exp() if probs is None else probs
    # where(π == 0) rather than where(π > 0): a NaN must propagate, not read as a zero-probability arm.
    return torch.where(probs == 0, 0.0, -probs * logp).sum(-1) + 0.0  # + 0.0: no "-0.0"


def _check_logits(logits: object, name: str = "logits") -> Tensor:
    """Logits of a distribution: at least one action, and at least one finite logit per row (-inf masks an arm)."""
    check_tensor(name, logits, min_dim=1, allow_neg_inf=True)
    if logits.shape[-1] == 0:
        raise ValueError(f"{name} must have at least one action in the last dimension, got shape {tuple(logits.shape)}")
    if not bool(torch.isfinite(logits).any(-1).all()):
        raise ValueError(f"{name} has a row that is entirely -inf: no action has positive probability")
    return logits


def entropy(logits: Tensor) -> Tensor:
    """H(softmax(logits)) in nats. [..., K] -> [...]."""
    _check_logits(logits)
    return entropy_from_logp(_logp(logits))


def centered_logp(logits: Tensor) -> Tensor:
    """L = log π + H(π), mean zero under π. [..., K] -> [..., K]."""
    _check_logits(logits)
    logp = _logp(logits)
    return logp + entropy_from_logp(logp).unsqueeze(-1)


def entropy_change_first_order(logits: Tensor, delta_logits: Tensor) -> Tensor:
    """The Lemma: H(softmax(z + Δz)) - H(softmax(z)) ≈ -Cov_π(log π, Δz). [..., K] x2 -> [...]."""
    check_tensor("logits", logits, min_dim=1)
    check_tensor("delta_logits", delta_logits, min_dim=1)
    check_same_shape(logits=logits, delta_logits=delta_logits)
    return _entropy_change_first_order(logits, delta_logits)


def _entropy_change_first_order(logits: Tensor, delta_logits: Tensor) -> Tensor:
    logp = _logp(logits)
    probs = logp.exp()
    # Cov_π(log π, Δz) = E_π[L · Δz] because L already has mean zero under π.
    L = logp + entropy_from_logp(logp).unsqueeze(-1)
    return -(probs * L * fp32(delta_logits)).sum(-1)


def entropy_change_exact(logits: Tensor, delta_logits: Tensor) -> Tensor:
    """The true change H(softmax(z + Δz)) - H(softmax(z)). [..., K] x2 -> [...]."""
    _check_logits(logits)
    check_tensor("delta_logits", delta_logits, min_dim=1)
    check_same_shape(logits=logits, delta_logits=delta_logits)
    moved = fp32(logits) + fp32(delta_logits)
    if not bool((moved < torch.inf).all()):  # +inf or NaN: a finite sum that overflowed
        raise ValueError("logits + delta_logits overflows: keep |logits + delta_logits| below the float range")
    return entropy_from_logp(_logp(moved)) - entropy_from_logp(_logp(logits))


def pg_logit_step(logits: Tensor, adv: Tensor, lr: float, gradient: str = "vanilla") -> Tensor:
    """Δz of one exact policy-gradient step on E_π[A]. [..., K] logits and advantages -> [..., K].

    vanilla: Δz = lr · π ⊙ (A - E_π A), the exact gradient of E_π[A] w.r.t. the logits.
    natural: Δz = lr · (A - E_π A), the gradient preconditioned by the inverse Fisher of the softmax.
    """
    check_tensor("logits", logits, min_dim=1)
    check_tensor("adv", adv, min_dim=1)
    check_same_shape(logits=logits, adv=adv)
    lr = check_number("lr", lr, low=0.0)
    check_choice("gradient", gradient, GRADIENTS)
    step = _pg_logit_step(logits, adv, lr, gradient)
    if not bool(torch.isfinite(step).all()):
        raise ValueError(f"lr · adv overflows {step.dtype} (lr = {lr:g}): use a smaller lr or smaller advantages")
    return step


def _pg_logit_step(logits: Tensor, adv: Tensor, lr: float, gradient: str) -> Tensor:
    probs = _logp(logits).exp()
    adv = fp32(adv)
    centred = adv - (probs * adv).sum(-1, keepdim=True)
    return lr * (probs * centred if gradient == "vanilla" else centred)


def predicted_entropy_change(logits: Tensor, adv: Tensor, lr: float, gradient: str = "vanilla") -> Tensor:
    """First-order ΔH of one exact PG step (Theorem 1 for vanilla, Cui et al. for natural). [..., K] -> [...].

    vanilla: ΔH ≈ -lr · Σ_a π(a)² A(a) L(a) (with A centred under π); natural: ΔH ≈ -lr · Cov_π(log π, A).
    """
    # Composed rather than written out: the Lemma ΔH ≈ -Σ π L Δz with the vanilla step Δz = lr·π⊙(A - E_π A)
    # gives ΔH ≈ -lr · Σ_a π(a)² (A(a) - E_π A) L(a), Theorem 1's form; with A centred, E_π A = 0.
    # pg_logit_step checks this function's own arguments; the Lemma's kernel then needs none (an error
    # from the public entropy_change_first_order would name delta_logits, which the caller never passed).
    return _entropy_change_first_order(logits, pg_logit_step(logits, adv, lr, gradient))


def clip_entropy_bounds(entropy: Tensor, eps_low: float, eps_high: float) -> tuple[Tensor, Tensor]:
    """Theorem 2: if every ratio π'/π lies in [1-ε_low, 1+ε_high], then
    (1-ε_low)·H(π) - log(1+ε_high) <= H(π') <= (1+ε_high)·H(π).  [...] -> ([...], [...]).

    Why: H(π') = -Σ π r log π - Σ π r log r; the first sum is r-weighted H, the second lies in [0, log(1+ε_high)]
    because Σ π r = 1 (Jensen gives >= 0) and r <= 1+ε_high. (The lower bound is loose: writing
    π' = (1-ε_low)π + ε_low·w with w a distribution, concavity gives H(π') >= (1-ε_low)·H(π); chapter 04.)
    """
    check_tensor("entropy", entropy)
    eps_low = check_number("eps_low", eps_low, low=0.0, high=1.0)
    eps_high = check_number("eps_high", eps_high, low=0.0)
    h = fp32(entropy)
    return (1 - eps_low) * h - torch.log1p(torch.tensor(eps_high, dtype=h.dtype)), (1 + eps_high) * h
