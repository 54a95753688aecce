"""bf16 helpers (docs/science.md §4): rounding, measuring the bias of an importance ratio, and what a biased
ratio does to the clip bounds.

If the computed ratio is b·r with b > 1, clipping it to [1-ε_low, 1+ε_high] clips the true r to
[(1-ε_low)/b, (1+ε_high)/b]: the upper bound tightens and the lower one loosens, i.e. asymmetric clipping
in the entropy-reducing direction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_eps, check_number, check_same_shape, check_tensor, fp32

# exp overflows float64 beyond ~709.8: ratio_stats refuses such log-ratios, expected_ratio takes them in log space
LOG_F64_MAX = 709.0


def round_bf16(x: Tensor) -> Tensor:
    """Round to the nearest bfloat16 (ties to even) and return in x's float dtype.

    float64 is rounded directly to bf16's 8 significant bits: torch's own float64 -> bf16 cast goes through
    fp32 and can round twice (27.1874998827 -> 27.25, though 27.125 is nearer).
    """
    check_tensor("x", x, allow_neg_inf=True)
    if x.dtype != torch.float64:
        return x.to(torch.bfloat16).to(x.dtype)
    mantissa, exponent = torch.frexp(x)  # x = m · 2^e, 0.5 <= |m| < 1: keep 8 bits of m
    rounded = torch.ldexp(torch.round(mantissa * 256) / 256, exponent)
    # Values in bf16's subnormal or overflow range take the cast (exactly representable in fp32 first).
    tiny, big = torch.finfo(torch.bfloat16).tiny, torch.finfo(torch.bfloat16).max
    special = (x.abs() < tiny) | (rounded.abs() > big) | ~torch.isfinite(x)
    return torch.where(special, x.to(torch.bfloat16).to(x.dtype), rounded)


def ratio_stats(logp: Tensor, logp_old: Tensor, mask: Tensor | None = None, tol: float = 1e-6) -> dict[str, float]:
    """Summary of r = exp(logp - logp_old) over valid tokens, for two code paths that should agree.

    On-policy r ≡ 1, so mean(r) estimates the multiplicative bias b. Shapes: any, all equal.
    """
    check_tensor("logp", logp)
    check_tensor("logp_old", logp_old)
    if logp.shape != logp_old.shape:
        raise ValueError(f"logp has shape {tuple(logp.shape)} but logp_old has {tuple(logp_old.shape)}")
    tol = check_number("tol", tol, low=0.0)
    log_r = fp32(logp).double() - fp32(logp_old).double()
    if log_r.numel() and float(log_r.abs().max()) > LOG_F64_MAX:
        raise ValueError(
            f"logp - logp_old reaches {float(log_r.abs().max()):.4g} in magnitude: the ratio exp(logp - logp_old) "
            f"over- or underflows float64 beyond {LOG_F64_MAX:g}; these are not two paths that should agree"
        )
    r = torch.exp(log_r)
    if mask is not None:
        if not isinstance(mask, Tensor):
            raise TypeError(f"mask must be a torch.Tensor (bool: which tokens count), got {type(mask).__name__}")
        if mask.shape != r.shape:
            raise ValueError(f"mask has shape {tuple(mask.shape)}, expected {tuple(r.shape)}")
        r = r[mask.bool()]
    if r.numel() == 0:
        raise ValueError("mask selects no token; nothing to measure")
    log_r = r.log()
    return {
        "mean": r.mean().item(),
        "median": r.median().item(),
        "std": r.std().item() if r.numel() > 1 else 0.0,
        "se": (r.std() / r.numel() ** 0.5).item() if r.numel() > 1 else 0.0,  # of the mean, tokens independent
        "mean_log": log_r.mean().item(),
        "frac_above": (r > 1 + tol).double().mean().item(),
        "frac_below": (r < 1 - tol).double().mean().item(),
        "max": r.max().item(),
        "min": r.min().item(),
        "n": r.numel(),
    }


def expected_ratio(logp: Tensor, logp_old: Tensor, logp_sampler: Tensor | None = None) -> Tensor:
    """E_{a~π_sampler}[exp(logp(a) - logp_old(a))], summed exactly over the last (vocabulary) dim. [..., V] -> [...].

    With exact, normalised log-probs and sampler = old this is exactly 1; rounding in either path moves it.
    logp_sampler defaults to logp_old (the policy that generated the data).
    """
    check_tensor("logp", logp, min_dim=1, allow_neg_inf=True)
    check_tensor("logp_old", logp_old, min_dim=1, allow_neg_inf=True)
    if logp_sampler is not None:
        check_tensor("logp_sampler", logp_sampler, min_dim=1, allow_neg_inf=True)
        check_same_shape(logp=logp, logp_old=logp_old, logp_sampler=logp_sampler)
    check_same_shape(logp=logp, logp_old=logp_old)
    sampler = logp_old if logp_sampler is None else logp_sampler
    lp, lo, ls = (fp32(t).double() for t in (logp, logp_old, sampler))
    log_ratio = torch.where(torch.isinf(lo), torch.zeros_like(lp), lp - lo)
    terms = ls.exp() * torch.exp(log_ratio)
    big = log_ratio > LOG_F64_MAX
    if bool(big.any()):  # exp(log_ratio) overflows while π_sampler may be ~0: multiply in log space there
        terms = torch.where(big, torch.exp(ls + log_ratio), terms)
    out = terms.sum(-1)
    if not bool(torch.isfinite(out).all()):
        raise ValueError(
            "the expected ratio overflows float64: logp exceeds logp_old by more than ~709 where logp_sampler has mass"
        )
    return out


def effective_clip_bounds(bias: float, eps_low: float, eps_high: float) -> tuple[float, float]:
    """(ε_low, ε_high) that the true ratio effectively sees when the computed ratio is bias·r.

    Clipping bias·r to [1-ε_low, 1+ε_high] clips r to [(1-ε_low)/b, (1+ε_high)/b], i.e.
    returns (1 - (1-ε_low)/b, (1+ε_high)/b - 1). b = 1.05 turns (0.2, 0.28) into (0.238, 0.219).
    """
    b = check_number("bias", bias, low=0.0, low_open=True)
    lo, hi = check_eps("eps_low", eps_low), check_eps("eps_high", eps_high)
    if float(torch.as_tensor(lo).max()) > 1:
        raise ValueError(f"eps_low must lie in [0, 1] (the ratio's lower clip 1 - eps_low is >= 0), got {eps_low}")
    return 1.0 - (1.0 - lo) / b, (1.0 + hi) / b - 1.0


# The dtypes a stack may compute its log-probs in; fp32 is the library's contract, the others emulate stacks without it.
LOGPROB_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def lowp_token_logprobs(
    hidden: Tensor, weight: Tensor, targets: Tensor, dtype: torch.dtype, temperature: float = 1.0
) -> tuple[Tensor, Tensor]:
    """log π(target) and entropy as a stack without the fp32 fix computes them: every op in `dtype`.

    hidden [B, T, D], weight [V, D], targets [B, T] int64 -> (logp [B, T], entropy [B, T]), returned as fp32
    but rounded like `dtype` all the way (logits, log-softmax, p·log p). Differentiable by plain autograd and
    not chunked: it exists to show what low precision does (TrainConfig.logprob_dtype), not for
    large vocabularies. dtype=torch.float32 is allowed and is the unchunked fp32 reference.
    """
    check_tensor("hidden", hidden, min_dim=2)
    check_tensor("weight", weight, min_dim=2)
    if dtype not in LOGPROB_DTYPES.values():
        raise ValueError(f"dtype must be one of {list(LOGPROB_DTYPES)}, got {dtype}")
    temperature = check_number("temperature", temperature, low=0.0, low_open=True)
    with torch.autocast(hidden.device.type, enabled=False):
        z = hidden.to(dtype) @ weight.to(dtype).T
        if temperature != 1.0:
            z = z / temperature
        logp_all = torch.log_softmax(z, dim=-1)  # in `dtype`: the rounding this function exists to show
        logp = logp_all.gather(-1, targets.long()[..., None]).squeeze(-1)
        entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp.float(), entropy.float()
