"""Per-token policy surrogates and how they are aggregated (paper.md §2).

Token-level tensors are [..., B, T]: B sequences of T tokens, with a `mask` of the same shape that is
bool (which tokens count) or float (per-token weights; the exact bandit engine weights every arm by
π_old this way). Leading dimensions are independent problems (e.g. bandit seeds): every reduction is
over the last two dimensions only, so `policy_loss` returns a scalar for [B, T] input and a tensor of
shape [...] otherwise. Advantages may be per token [..., B, T] or per sequence [..., B].
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_choice, check_eps, check_number, check_tensor, check_weights, fp32, is_trusted
from .metrics import clip_fractions, per_problem

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")
OBJECTIVES = ("reinforce", "ppo", "gspo", "cispo", "clip_cov", "kl_cov")


def as_weights(mask: Tensor, like: Tensor) -> Tensor:
    """A bool or float mask as float weights shaped like `like`; rejects negative, NaN and empty masks."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != like.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but the per-token values have {tuple(like.shape)}")
    w = mask.to(like.dtype) if mask.dtype == torch.bool else fp32(mask).to(like.dtype)
    if is_trusted():
        return w
    check_weights("mask", w)
    empty = (w.flatten(-2).sum(-1) <= 0) if w.dim() >= 2 else (w.sum() <= 0)
    if bool(empty.any()):
        raise ValueError("mask selects no token (its sum is 0) for at least one problem; nothing to learn from")
    return w


def masked_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Σ w·v / Σ w over the last two dimensions. [..., B, T] -> [...]."""
    return (weights * values).sum((-2, -1)) / weights.sum((-2, -1))


def aggregate(values: Tensor, mask: Tensor, agg: str = "token-mean", horizon: int | None = None) -> Tensor:
    """Reduce per-token values to one number per problem. [..., B, T] -> [...].

    token-mean: Σ m·v / Σ m over the whole batch (every token counts equally).
    seq-mean-token-mean: mean over sequences of each sequence's token mean (every sequence counts equally).
    seq-mean-token-sum: mean over sequences of each sequence's token sum (long sequences count more).
    seq-mean-token-sum-norm: Σ m·v / (B · horizon), a constant normaliser (Dr.GRPO); horizon defaults to T.
    """
    check_choice("agg", agg, AGGREGATIONS)
    if values.dim() < 2:
        raise ValueError(f"per-token values must be [..., B, T], got shape {tuple(values.shape)}")
    values = fp32(values)
    w = as_weights(mask, values)
    if agg == "token-mean":
        return masked_mean(values, w)
    seq_w = w.sum(-1)  # [..., B]
    seq_sum = (w * values).sum(-1)
    has_tokens = (seq_w > 0).to(values.dtype)
    n_seq = has_tokens.sum(-1)
    if agg == "seq-mean-token-mean":
        seq_mean = seq_sum / seq_w.clamp_min(torch.finfo(values.dtype).tiny)
        return (seq_mean * has_tokens).sum(-1) / n_seq
    if agg == "seq-mean-token-sum":
        return seq_sum.sum(-1) / n_seq
    horizon = values.shape[-1] if horizon is None else horizon
    check_number("horizon", horizon, low=0.0, low_open=True)
    return seq_sum.sum(-1) / (values.shape[-2] * horizon)


def _cov_scores(logp: Tensor, adv: Tensor, w: Tensor) -> Tensor:
    """Per-token (log π - mean log π)(A - mean A), means over the valid tokens of each problem (Cui et al.)."""
    lp = logp.detach()
    lp_c = lp - masked_mean(lp, w)[..., None, None]
    a_c = adv - masked_mean(adv, w)[..., None, None]
    return lp_c * a_c


def _select(score: Tensor, eligible: Tensor, ratio: float, w: Tensor) -> Tensor:
    """Pick max(1, int(ratio · n_valid)) eligible tokens per problem with the highest score. -> bool like score."""
    flat = torch.where(eligible, score, torch.full_like(score, -torch.inf)).flatten(-2)
    n_valid = (w > 0).flatten(-2).sum(-1)
    # At least one token whenever ratio > 0 (as Cui et al.'s code does), at most the eligible ones.
    k = (ratio * n_valid).floor().long().clamp(min=1 if ratio > 0 else 0)
    k = torch.minimum(k, eligible.flatten(-2).sum(-1))  # [...]
    order = flat.argsort(-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return (rank < k.unsqueeze(-1)).reshape(score.shape)


def policy_loss(
    logp: Tensor,
    logp_old: Tensor,
    adv: Tensor,
    mask: Tensor,
    kind: str = "ppo",
    eps_low: float | Tensor = 0.2,
    eps_high: float | Tensor = 0.2,
    agg: str = "token-mean",
    *,
    horizon: int | None = None,
    clip_cov_ratio: float = 2e-4,
    clip_cov_bounds: tuple[float, float] = (1.0, 5.0),
    kl_cov_ratio: float = 2e-3,
    kl_coef: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-token surrogate, then aggregation. logp, logp_old, mask [..., B, T]; adv [..., B, T] or [..., B].

    Returns (loss [...] — a scalar for 2-D input —, metrics of detached [...] tensors). Kinds:
    reinforce  -A·log π (the ratio is ignored; the on-policy gradient is the same)
    ppo        -min(r·A, clip(r, 1-eps_low, 1+eps_high)·A); DAPO clip-higher is eps_high > eps_low
    gspo       ppo on the sequence ratio s = exp(mean_t(log π - log π_old)), gradient per token
    cispo      -sg(clip(r, 1-eps_low, 1+eps_high))·A·log π: clipped weight, every token keeps a gradient
    clip_cov   ppo, with a random max(1, int(clip_cov_ratio·n)) of the tokens whose centred cov(log π, A)
               lies in clip_cov_bounds (and that PPO does not already clip) removed from the gradient (Cui et al.)
    kl_cov     -r·A plus kl_coef·|log π - log π_old| on the max(1, int(kl_cov_ratio·n)) tokens of largest cov
    GSPO's own objective averages per sequence: pass agg="seq-mean-token-mean" with kind="gspo"
    (token-mean weights long sequences more). Bandits (one token per episode) are unaffected.
    """
    check_choice("kind", kind, OBJECTIVES)
    check_choice("agg", agg, AGGREGATIONS)
    check_tensor("logp", logp, min_dim=2)
    check_tensor("logp_old", logp_old, min_dim=2)
    check_tensor("adv", adv, min_dim=1)
    if logp_old.shape != logp.shape:
        raise ValueError(f"logp_old has shape {tuple(logp_old.shape)} but logp has {tuple(logp.shape)}")
    if adv.shape == logp.shape[:-1]:
        adv = adv.unsqueeze(-1).expand_as(logp)  # one advantage per sequence, shared by its tokens
    elif adv.shape != logp.shape:
        raise ValueError(f"adv has shape {tuple(adv.shape)}; expected {tuple(logp.shape)} (per token) "
                         f"or {tuple(logp.shape[:-1])} (per sequence)")
    eps_low, eps_high = check_eps("eps_low", eps_low), check_eps("eps_high", eps_high)
    if float(torch.as_tensor(eps_low).max()) > 1:
        raise ValueError(f"eps_low must be <= 1 (the ratio's lower bound 1 - eps_low must be >= 0), got {eps_low}")

    logp, logp_old, adv = fp32(logp), fp32(logp_old).to(fp32(logp).dtype), fp32(adv).to(fp32(logp).dtype)
    w = as_weights(mask, logp)
    lo = torch.as_tensor(1.0 - per_problem(eps_low, logp), dtype=logp.dtype)
    hi = torch.as_tensor(1.0 + per_problem(eps_high, logp), dtype=logp.dtype)
    log_ratio = logp - logp_old.detach()
    metrics: dict[str, Tensor] = {}

    if kind == "gspo":
        seq_log_ratio = (w * log_ratio).sum(-1) / w.sum(-1).clamp_min(torch.finfo(logp.dtype).tiny)  # [..., B]
        # s_{i,t} = sg[s_i] · π_t / sg[π_t]: equals s_i in value, carries each token's own gradient.
        ratio = torch.exp(seq_log_ratio.detach().unsqueeze(-1) + logp - logp.detach())
    else:
        ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, lo, hi)

    if kind == "reinforce":
        per_token = -adv * logp
    elif kind == "cispo":
        per_token = -clipped.detach() * adv * logp
    elif kind == "kl_cov":
        per_token = -ratio * adv
        top = _select(_cov_scores(logp, adv, w), w > 0, check_number("kl_cov_ratio", kl_cov_ratio, low=0.0, high=1.0), w)
        per_token = per_token + check_number("kl_coef", kl_coef, low=0.0) * top * (logp - logp_old.detach()).abs()
        metrics["cov_frac"] = masked_mean(top.to(logp.dtype), (w > 0).to(logp.dtype)).detach()
    else:  # ppo, gspo, clip_cov
        per_token = -torch.minimum(ratio * adv, clipped * adv)
        if kind == "clip_cov":
            low, high = clip_cov_bounds
            check_number("clip_cov_bounds[0]", low)
            check_number("clip_cov_bounds[1]", high, low=low)
            cov = _cov_scores(logp, adv, w)
            # Tokens PPO already clips carry no gradient; Clip-Cov chooses among the others.
            ppo_clipped = (clipped * adv < ratio * adv).detach()
            eligible = (w > 0) & (cov > low) & (cov < high) & ~ppo_clipped
            # Drawn where the generator lives (a CPU generator cannot fill a CUDA tensor), then moved.
            gen_device = generator.device if generator is not None else cov.device
            noise = torch.rand(cov.shape, generator=generator, dtype=cov.dtype, device=gen_device).to(cov.device)
            drop = _select(noise, eligible, check_number("clip_cov_ratio", clip_cov_ratio, low=0.0, high=1.0), w)
            per_token = per_token * (~drop)  # dropped tokens contribute neither value nor gradient
            metrics["cov_frac"] = masked_mean(drop.to(logp.dtype), (w > 0).to(logp.dtype)).detach()

    loss = aggregate(per_token, w, agg, horizon)
    if kind == "reinforce":  # nothing is clipped, by construction
        zero = torch.zeros(w.shape[:-2], dtype=w.dtype)
        metrics.update(clip_frac_low=zero, clip_frac_high=zero, clip_frac=zero)
    else:
        metrics.update(clip_fractions(ratio.detach(), adv, w, eps_low, eps_high))
    metrics["approx_kl"] = masked_mean((ratio.detach() - 1) - log_ratio.detach(), w)  # k3 estimator of KL(old‖new)
    metrics["ratio_mean"] = masked_mean(ratio.detach(), w)
    metrics["ratio_max"] = torch.where(w > 0, ratio.detach(), -torch.inf).flatten(-2).amax(-1)
    return loss, metrics


def entropy_bonus_loss(entropy: Tensor, mask: Tensor, coef: float, agg: str = "token-mean",
                       horizon: int | None = None) -> Tensor:
    """The explicit entropy bonus as a loss to add: -coef · aggregate(H). entropy, mask [..., B, T] -> [...].

    Needs the full-vocabulary entropy at every position (e.g. from `token_logprobs`), unlike REPO.
    """
    check_tensor("entropy", entropy, min_dim=2)
    coef = check_number("coef", coef)
    return -coef * aggregate(fp32(entropy), mask, agg, horizon)
