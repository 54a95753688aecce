"""Masks as weights, and how per-token values become one number per problem (docs/science.md §2, aggregation modes).

Token-level tensors are [..., B, T] with a mask of the same shape (bool, or float weights); every reduction
is over the last two dimensions, so leading dimensions are independent problems (e.g. bandit seeds).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import check_choice, check_number, check_tensor, check_weights, fp32

AGGREGATIONS = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm")


def as_weights(mask: Tensor, like: Tensor) -> Tensor:
    """A bool or float mask as float weights shaped like `like`; rejects negative, NaN and empty masks."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a torch.Tensor, got {type(mask).__name__}")
    if mask.shape != like.shape:
        raise ValueError(f"mask has shape {tuple(mask.shape)} but the per-token values have {tuple(like.shape)}")
    w = float_weights(mask, like)
    check_weights("mask", w)
    empty = (w.flatten(-2).sum(-1) <= 0) if w.dim() >= 2 else (w.sum() <= 0)
    if bool(empty.any()):
        raise ValueError("mask selects no token (its sum is 0) for at least one problem; nothing to learn from")
    return w


def float_weights(mask: Tensor, like: Tensor) -> Tensor:
    """The float view of a bool or float mask, in `like`'s dtype (no checks)."""
    return mask.to(like.dtype) if mask.dtype == torch.bool else fp32(mask).to(like.dtype)


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
    check_tensor("values", values, min_dim=2)  # per-token values [..., B, T], finite
    if horizon is not None:
        check_number("horizon", horizon, low=0.0, low_open=True)
    values = fp32(values)
    return aggregate_unchecked(values, as_weights(mask, values), agg, horizon)


def aggregate_unchecked(values: Tensor, w: Tensor, agg: str = "token-mean", horizon: int | None = None) -> Tensor:
    """`aggregate` without input checks: fp32 values and float weights [..., B, T] -> [...]."""
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
    return seq_sum.sum(-1) / (values.shape[-2] * horizon)
