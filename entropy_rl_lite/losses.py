"""Per-token policy surrogates and how they are aggregated (docs/science.md §2).

Token-level tensors are [..., B, T]: B sequences of T tokens, with a `mask` of the same shape that is
bool (which tokens count) or float (per-token weights; the exact bandit engine weights every arm by
π_old this way). Leading dimensions are independent problems (e.g. bandit seeds): every reduction is
over the last two dimensions only, so `policy_loss` returns a scalar for [B, T] input and a tensor of
shape [...] otherwise. Advantages may be per token [..., B, T] or per sequence [..., B].

One small function per surrogate (`reinforce`, `ppo_clip`, `cispo`, `clip_cov_drop`, `kl_cov_penalty`),
the GSPO `sequence_ratio`, and `policy_loss`, which checks its inputs and dispatches to them. Each public
function checks its arguments once, then calls an `*_unchecked` kernel that holds the math alone; the
library's loops call the kernels.

Every importance ratio is exp(clamp(log-ratio, ±LOG_RATIO_LIMIT)): see `ratio_from_log`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import (
    check_broadcast,
    check_choice,
    check_eps,
    check_number,
    check_per_problem,
    check_same_shape,
    check_tensor,
    check_weights,
    fp32,
    per_problem,
)
from .aggregation import AGGREGATIONS, aggregate, aggregate_unchecked, as_weights, masked_mean
from .metrics import clip_fractions_unchecked

OBJECTIVES = ("reinforce", "ppo", "gspo", "cispo", "clip_cov", "kl_cov")


# -- ratios -----------------------------------------------------------------------------------------------
# The log-ratio log π - log π_old is clamped to ±20 before exp, as verl (compute_policy_loss) and TRL's GRPO
# importance weights do. Without it, fp32 exp overflows past a log-ratio of 88.7: PPO with A < 0 takes the
# unclipped branch r·A, so one such token makes the loss inf and its gradient inf or NaN, which then poisons
# every parameter. What the clamp can change, and why none of it was a meaningful result:
#   log-ratio > 20 (r > 4.85e8): with A > 0 the clip already holds r·A at (1+ε_high)·A with zero gradient, so
#     nothing changes; with A < 0 (and in kl_cov's -r·A, and in the metrics) the token's term is capped at
#     e^20·|A| with zero gradient, as dual-clip PPO caps it (at 3·|A|): a probability that grew 5e8-fold in one
#     update is no signal to follow, and unclamped it would outweigh the rest of the batch by ~1e8 or overflow.
#   log-ratio < -20 (r < 2.1e-9): with A < 0 the clip already zeroes the gradient; with A > 0 the token's
#     term r·A was below 2.1e-9·|A|, under fp32 resolution next to any O(|A|) token, and is now held there.
#   cispo weights by clip(r, lo, hi), which the clamp leaves alone for any clip range inside [e^-20, e^20].
# For |log-ratio| <= 20 the clamp is the identity: results are bit-for-bit those without it.
LOG_RATIO_LIMIT = 20.0


def ratio_from_log(log_ratio: Tensor) -> Tensor:
    """exp(clamp(log_ratio, -LOG_RATIO_LIMIT, LOG_RATIO_LIMIT)): a finite ratio, zero gradient beyond the clamp."""
    return torch.exp(log_ratio.clamp(-LOG_RATIO_LIMIT, LOG_RATIO_LIMIT))


def sequence_ratio(logp: Tensor, logp_old: Tensor, mask: Tensor) -> Tensor:
    """GSPO's s_i = exp(mean_t (log π - log π_old)) over a sequence's tokens (science.md §2). [..., B, T] -> [..., B].

    The mean log-ratio is clamped to ±LOG_RATIO_LIMIT (20) before exp, so s_i is finite (see `ratio_from_log`).
    """
    check_tensor("logp", logp, min_dim=2)
    check_tensor("logp_old", logp_old, min_dim=2)
    check_same_shape(logp=logp, logp_old=logp_old)
    logp = fp32(logp)
    w = as_weights(mask, logp)
    return ratio_from_log(_sequence_log_ratio(logp - fp32(logp_old).to(logp.dtype).detach(), w))


def _sequence_log_ratio(log_ratio: Tensor, w: Tensor) -> Tensor:
    """Weighted mean of the per-token log-ratio within each sequence. [..., B, T] -> [..., B]."""
    return (w * log_ratio).sum(-1) / w.sum(-1).clamp_min(torch.finfo(log_ratio.dtype).tiny)


# -- checks of the surrogates' own arguments ----------------------------------------------------------------
def _check_broadcastable(**tensors: Tensor) -> None:
    """Named tensors (already checked) must broadcast together; the error lists every shape."""
    try:
        torch.broadcast_shapes(*(t.shape for t in tensors.values()))
    except RuntimeError:
        detail = ", ".join(f"{k} {tuple(t.shape)}" for k, t in tensors.items())
        raise ValueError(f"shapes do not broadcast together: {detail}") from None


def _check_clip_range(lo: float | Tensor, hi: float | Tensor, like: Tensor) -> None:
    """The ratio's clip range [lo, hi] = [1-ε_low, 1+ε_high]: numbers or tensors, 0 <= lo <= 1 <= hi."""
    for name, x in (("lo", lo), ("hi", hi)):
        if isinstance(x, Tensor):
            check_tensor(name, x)
            check_broadcast(name, x, like.shape, "ratio")
        else:
            check_number(name, x)
    if float(torch.as_tensor(lo).min()) < 0 or float(torch.as_tensor(lo).max()) > 1:
        raise ValueError(f"lo (= 1 - eps_low) must lie in [0, 1], got {lo}")
    if float(torch.as_tensor(hi).min()) < 1:
        raise ValueError(f"hi (= 1 + eps_high) must be >= 1, got {hi}")


def _check_token_weights(name: str, w: object, like: Tensor) -> Tensor:
    """Float per-token weights shaped like `like` (the surrogates take the float view `policy_loss` makes)."""
    check_tensor(name, w, min_dim=2)
    check_same_shape(**{name: w, "logp": like})
    return check_weights(name, w)


def _check_generator(generator: object) -> None:
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")


# -- surrogates: per-token losses [..., B, T] -------------------------------------------------------------
def reinforce(logp: Tensor, adv: Tensor) -> Tensor:
    """-A·log π (docs/science.md §2, REINFORCE); on-policy it has PPO's gradient at r = 1. logp, adv broadcastable."""
    check_tensor("logp", logp)
    check_tensor("adv", adv)
    _check_broadcastable(logp=logp, adv=adv)
    return reinforce_unchecked(logp, adv)


def reinforce_unchecked(logp: Tensor, adv: Tensor) -> Tensor:
    """`reinforce` without input checks."""
    return -adv * logp


def ppo_clip(ratio: Tensor, adv: Tensor, lo: float | Tensor, hi: float | Tensor) -> Tensor:
    """-min(r·A, clip(r, 1-ε_low, 1+ε_high)·A) with lo = 1-ε_low, hi = 1+ε_high (docs/science.md §2, PPO-clip)."""
    check_tensor("ratio", ratio)
    check_tensor("adv", adv)
    _check_broadcastable(ratio=ratio, adv=adv)
    _check_clip_range(lo, hi, ratio)
    return ppo_clip_unchecked(ratio, adv, lo, hi)


def ppo_clip_unchecked(ratio: Tensor, adv: Tensor, lo: float | Tensor, hi: float | Tensor) -> Tensor:
    """`ppo_clip` without input checks."""
    return -torch.minimum(ratio * adv, torch.clamp(ratio, lo, hi) * adv)


def cispo(ratio: Tensor, adv: Tensor, logp: Tensor, lo: float | Tensor, hi: float | Tensor) -> Tensor:
    """-sg(clip(r, lo, hi))·A·log π: the clipped ratio is a weight, and every token keeps its gradient (CISPO)."""
    check_tensor("ratio", ratio)
    check_tensor("adv", adv)
    check_tensor("logp", logp)
    _check_broadcastable(ratio=ratio, adv=adv, logp=logp)
    _check_clip_range(lo, hi, ratio)
    return cispo_unchecked(ratio, adv, logp, lo, hi)


def cispo_unchecked(ratio: Tensor, adv: Tensor, logp: Tensor, lo: float | Tensor, hi: float | Tensor) -> Tensor:
    """`cispo` without input checks."""
    return -torch.clamp(ratio, lo, hi).detach() * adv * logp


def cov_scores(logp: Tensor, adv: Tensor, w: Tensor) -> Tensor:
    """Per-token (log π - mean log π)(A - mean A), means over each problem's valid tokens (Cui et al.). [..., B, T]"""
    lp = logp.detach()
    lp_c = lp - masked_mean(lp, w)[..., None, None]
    a_c = adv - masked_mean(adv, w)[..., None, None]
    return lp_c * a_c


def _top_tokens(score: Tensor, eligible: Tensor, ratio: float, w: Tensor) -> Tensor:
    """The max(1, int(ratio · n_valid)) eligible tokens of each problem with the highest score. -> bool like score."""
    flat = torch.where(eligible, score, torch.full_like(score, -torch.inf)).flatten(-2)
    n_valid = (w > 0).flatten(-2).sum(-1)
    # At least one token whenever ratio > 0 (as Cui et al.'s code does), at most the eligible ones.
    k = (ratio * n_valid).floor().long().clamp(min=1 if ratio > 0 else 0)
    k = torch.minimum(k, eligible.flatten(-2).sum(-1))  # [...]
    order = flat.argsort(-1, descending=True)
    rank = torch.empty_like(order)
    rank.scatter_(-1, order, torch.arange(order.shape[-1], device=order.device).expand_as(order))
    return (rank < k.unsqueeze(-1)).reshape(score.shape)


def clip_cov_drop(
    ratio: Tensor,
    adv: Tensor,
    logp: Tensor,
    w: Tensor,
    lo: float | Tensor,
    hi: float | Tensor,
    frac: float,
    bounds: tuple[float, float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """Clip-Cov's tokens to drop from PPO's gradient: a random `frac` of those with cov in `bounds`. -> bool [..., B, T]

    Tokens PPO already clips carry no gradient; Clip-Cov chooses among the others (Cui et al.). ratio, adv,
    logp and the float weights w share a shape [..., B, T].
    """
    check_tensor("logp", logp, min_dim=2)
    for name, x in (("ratio", ratio), ("adv", adv)):
        check_tensor(name, x, min_dim=2)
        check_same_shape(**{name: x, "logp": logp})
    _check_token_weights("w", w, logp)
    _check_clip_range(lo, hi, ratio)
    frac, bounds = check_number("frac", frac, low=0.0, high=1.0), _check_bounds("bounds", bounds)
    _check_generator(generator)
    return clip_cov_drop_unchecked(ratio, adv, logp, w, lo, hi, frac, bounds, generator)


def clip_cov_drop_unchecked(
    ratio: Tensor,
    adv: Tensor,
    logp: Tensor,
    w: Tensor,
    lo: float | Tensor,
    hi: float | Tensor,
    frac: float,
    bounds: tuple[float, float],
    generator: torch.Generator | None = None,
) -> Tensor:
    """`clip_cov_drop` without input checks."""
    low, high = bounds
    cov = cov_scores(logp, adv, w)
    ppo_clipped = (torch.clamp(ratio, lo, hi) * adv < ratio * adv).detach()
    eligible = (w > 0) & (cov > low) & (cov < high) & ~ppo_clipped
    # Drawn where the generator lives (a CPU generator cannot fill a CUDA tensor), then moved.
    gen_device = generator.device if generator is not None else cov.device
    noise = torch.rand(cov.shape, generator=generator, dtype=cov.dtype, device=gen_device).to(cov.device)
    return _top_tokens(noise, eligible, frac, w)


def kl_cov_penalty(
    logp: Tensor, logp_old: Tensor, adv: Tensor, w: Tensor, frac: float, coef: float
) -> tuple[Tensor, Tensor]:
    """KL-Cov's per-token penalty coef·|log π - log π_old| on the `frac` tokens of largest cov. -> (penalty, chosen).

    logp, logp_old, adv and the float weights w share a shape [..., B, T].
    """
    check_tensor("logp", logp, min_dim=2)
    for name, x in (("logp_old", logp_old), ("adv", adv)):
        check_tensor(name, x, min_dim=2)
        check_same_shape(**{name: x, "logp": logp})
    _check_token_weights("w", w, logp)
    frac, coef = check_number("frac", frac, low=0.0, high=1.0), check_number("coef", coef, low=0.0)
    return kl_cov_penalty_unchecked(logp, logp_old, adv, w, frac, coef)


def kl_cov_penalty_unchecked(
    logp: Tensor, logp_old: Tensor, adv: Tensor, w: Tensor, frac: float, coef: float
) -> tuple[Tensor, Tensor]:
    """`kl_cov_penalty` without input checks."""
    chosen = _top_tokens(cov_scores(logp, adv, w), w > 0, frac, w)
    return coef * chosen * (logp - logp_old.detach()).abs(), chosen


# -- the loss ---------------------------------------------------------------------------------------------
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
    """Per-token surrogate of `kind`, then aggregation. logp, logp_old, mask [..., B, T]; adv [..., B, T] or [..., B].

    Returns (loss [...] — a scalar for 2-D input —, metrics of detached [...] tensors). Kinds: reinforce,
    ppo (DAPO's clip-higher is eps_high > eps_low), gspo (ppo on `sequence_ratio`), cispo, clip_cov (ppo
    minus `clip_cov_drop`'s tokens), kl_cov (-r·A plus `kl_cov_penalty`). eps_low/eps_high are numbers or
    one per problem [...]. GSPO's own objective averages per sequence: pass agg="seq-mean-token-mean".
    Every ratio is exp of the log-ratio clamped to ±20 (`ratio_from_log`): finite, with zero gradient beyond.
    """
    check_choice("kind", kind, OBJECTIVES)
    check_choice("agg", agg, AGGREGATIONS)
    check_tensor("logp", logp, min_dim=2)
    check_tensor("logp_old", logp_old, min_dim=2)
    check_tensor("adv", adv, min_dim=1)
    if logp_old.shape != logp.shape:
        raise ValueError(f"logp_old has shape {tuple(logp_old.shape)} but logp has {tuple(logp.shape)}")
    _check_generator(generator)
    if adv.shape == logp.shape[:-1]:
        adv = adv.unsqueeze(-1).expand_as(logp)  # one advantage per sequence, shared by its tokens
    elif adv.shape != logp.shape:
        raise ValueError(
            f"adv has shape {tuple(adv.shape)}; expected {tuple(logp.shape)} (per token) "
            f"or {tuple(logp.shape[:-1])} (per sequence)"
        )
    eps_low, eps_high = check_eps("eps_low", eps_low), check_eps("eps_high", eps_high)
    check_per_problem("eps_low", eps_low, logp)
    check_per_problem("eps_high", eps_high, logp)
    if float(torch.as_tensor(eps_low).max()) > 1:
        raise ValueError(f"eps_low must be <= 1 (the ratio's lower bound 1 - eps_low must be >= 0), got {eps_low}")
    options = check_loss_options(
        horizon=horizon,
        clip_cov_ratio=clip_cov_ratio,
        clip_cov_bounds=clip_cov_bounds,
        kl_cov_ratio=kl_cov_ratio,
        kl_coef=kl_coef,
    )
    logp = fp32(logp)
    return policy_loss_unchecked(
        logp,
        fp32(logp_old).to(logp.dtype),
        fp32(adv).to(logp.dtype),
        as_weights(mask, logp),
        kind,
        eps_low,
        eps_high,
        agg,
        generator=generator,
        **options,
    )


def check_loss_options(**options: Any) -> dict[str, Any]:
    """Validate `policy_loss`'s keyword options (as a config's loss_kwargs holds them); -> them as numbers."""
    out = dict(options)
    if options.get("horizon") is not None:
        out["horizon"] = check_number("horizon", options["horizon"], low=0.0, low_open=True)
    for name in ("clip_cov_ratio", "kl_cov_ratio"):
        if name in options:
            out[name] = check_number(name, options[name], low=0.0, high=1.0)
    if "kl_coef" in options:
        out["kl_coef"] = check_number("kl_coef", options["kl_coef"], low=0.0)
    if "clip_cov_bounds" in options:
        out["clip_cov_bounds"] = _check_bounds("clip_cov_bounds", options["clip_cov_bounds"])
    return out


def _check_bounds(name: str, bounds: object) -> tuple[float, float]:
    """A pair (low, high) of finite numbers with low <= high."""
    if not isinstance(bounds, (tuple, list)) or len(bounds) != 2:
        raise TypeError(f"{name} must be a pair (low, high), got {bounds!r}")
    low = check_number(f"{name}[0]", bounds[0])
    return low, check_number(f"{name}[1]", bounds[1], low=low)


def policy_loss_unchecked(
    logp: Tensor,
    logp_old: Tensor,
    adv: Tensor,
    w: Tensor,
    kind: str,
    eps_low: float | Tensor,
    eps_high: float | Tensor,
    agg: str = "token-mean",
    *,
    horizon: int | None = None,
    clip_cov_ratio: float = 2e-4,
    clip_cov_bounds: tuple[float, float] = (1.0, 5.0),
    kl_cov_ratio: float = 2e-3,
    kl_coef: float = 1.0,
    generator: torch.Generator | None = None,
    ratio_metrics: bool = True,
    centered_logp: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """`policy_loss` without input checks: fp32 logp, logp_old, adv and float weights w, all [..., B, T].

    Its only guard is the log-ratio clamp of `ratio_from_log` (one elementwise op).

    ratio_metrics=False: of the metrics, only the clip fractions (all the bandit engine records).
    centered_logp [..., B, T] (L under π_old): also the entropy-raising clipped shares (`clip_fractions_unchecked`).
    """
    log_ratio = logp - logp_old.detach()
    metrics: dict[str, Tensor] = {}
    if kind == "reinforce":  # no ratio in the loss, so nothing is clipped
        per_token = reinforce_unchecked(logp, adv)
        ratio = ratio_from_log(log_ratio) if ratio_metrics else None
        zero = torch.zeros(w.shape[:-2], dtype=w.dtype, device=w.device)
        metrics.update(clip_frac_low=zero, clip_frac_high=zero, clip_frac=zero)
    else:
        # ε may be one number per problem ([seeds] in the bandit engine): per_problem makes it [..., 1, 1].
        lo = torch.as_tensor(1.0 - per_problem(eps_low, logp), dtype=logp.dtype)
        hi = torch.as_tensor(1.0 + per_problem(eps_high, logp), dtype=logp.dtype)
        if kind == "gspo":
            # s_{i,t} = sg[s_i] · π_t / sg[π_t]: equals s_i in value, carries each token's own gradient.
            ratio = ratio_from_log(_sequence_log_ratio(log_ratio, w).detach().unsqueeze(-1) + logp - logp.detach())
        else:
            ratio = ratio_from_log(log_ratio)
        if kind == "cispo":
            per_token = cispo_unchecked(ratio, adv, logp, lo, hi)
        elif kind == "kl_cov":
            penalty, chosen = kl_cov_penalty_unchecked(logp, logp_old, adv, w, kl_cov_ratio, kl_coef)
            per_token = -ratio * adv + penalty
            metrics["cov_frac"] = masked_mean(chosen.to(logp.dtype), (w > 0).to(logp.dtype)).detach()
        else:  # ppo, gspo, clip_cov
            per_token = ppo_clip_unchecked(ratio, adv, lo, hi)
            if kind == "clip_cov":
                drop = clip_cov_drop_unchecked(ratio, adv, logp, w, lo, hi, clip_cov_ratio, clip_cov_bounds, generator)
                per_token = per_token * (~drop)  # dropped tokens contribute neither value nor gradient
                metrics["cov_frac"] = masked_mean(drop.to(logp.dtype), (w > 0).to(logp.dtype)).detach()
        metrics.update(clip_fractions_unchecked(ratio.detach(), adv, w, eps_low, eps_high, centered_logp))
    loss = aggregate_unchecked(per_token, w, agg, horizon)
    if ratio_metrics:
        metrics.update(_ratio_metrics(ratio.detach(), log_ratio.detach(), w))
    return loss, metrics


def _ratio_metrics(ratio: Tensor, log_ratio: Tensor, w: Tensor) -> dict[str, Tensor]:
    """k3 estimator of KL(old‖new), mean, spread and max ratio over the weighted tokens. -> dict of [...]."""
    metrics = {"approx_kl": masked_mean((ratio - 1) - log_ratio, w)}  # k3 estimator of KL(old‖new)
    metrics["ratio_mean"] = masked_mean(ratio, w)
    # weighted standard deviation (no Bessel correction): the spread a mismatch puts around 1 before any step
    metrics["ratio_std"] = masked_mean((ratio - metrics["ratio_mean"][..., None, None]) ** 2, w).sqrt()
    metrics["ratio_max"] = torch.where(w > 0, ratio, -torch.inf).flatten(-2).amax(-1)
    return metrics


def entropy_bonus_loss(
    entropy: Tensor, mask: Tensor, coef: float, agg: str = "token-mean", horizon: int | None = None
) -> Tensor:
    """The explicit entropy bonus as a loss to add: -coef · aggregate(H). entropy, mask [..., B, T] -> [...].

    Needs the full-vocabulary entropy at every position (e.g. from `token_logprobs`), unlike REPO.
    """
    check_tensor("entropy", entropy, min_dim=2)
    coef = check_number("coef", coef)
    return -coef * aggregate(fp32(entropy), mask, agg, horizon)
