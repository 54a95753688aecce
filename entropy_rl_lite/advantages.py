"""Group advantages (docs/science.md §2): the G samples of one prompt share a baseline.

Rewards come in consecutive groups of `group_size` along the last dimension. A group whose rewards are
all equal carries no signal and gets zero advantages (never NaN).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import (
    check_bool,
    check_choice,
    check_int,
    check_nonnegative,
    check_number,
    check_tensor,
    check_weights,
    fp32,
)

ADVANTAGES = ("grpo", "rloo", "dr_grpo", "none")
NEEDS_GROUP = ("grpo", "rloo", "dr_grpo")  # their baseline comes from the other samples of the group: G >= 2


def check_group_size(group_size: object, kind: str) -> int:
    """G must be an int >= 1, and >= 2 for an advantage whose baseline needs another sample."""
    group_size = check_int("group_size", group_size, low=1)
    if kind in NEEDS_GROUP and group_size < 2:
        raise ValueError(
            f"group_size must be >= 2 for advantage={kind!r} (its baseline needs another sample), got {group_size}"
        )
    return group_size


def group_advantages(rewards: Tensor, group_size: int, kind: str = "grpo", eps: float = 1e-6) -> Tensor:
    """Per-sample advantages from group statistics. [..., N] rewards, N = groups·group_size -> [..., N].

    grpo: (R - mean R) / (std R + eps), Bessel-corrected std.  rloo: R - mean of the other G-1 rewards.
    dr_grpo: R - mean R.  none: R itself (REINFORCE without a baseline).
    """
    check_tensor("rewards", rewards, min_dim=1)
    check_choice("kind", kind, ADVANTAGES)
    group_size = check_group_size(group_size, kind)
    eps = check_number("eps", eps, low=0.0)
    n = rewards.shape[-1]
    if n % group_size:
        raise ValueError(f"rewards' last dimension ({n}) must be a multiple of group_size ({group_size})")
    return group_advantages_unchecked(rewards, group_size, kind, eps)


def group_advantages_unchecked(rewards: Tensor, group_size: int, kind: str = "grpo", eps: float = 1e-6) -> Tensor:
    """`group_advantages` without input checks. [..., N] -> [..., N]."""
    n = rewards.shape[-1]
    rewards = fp32(rewards)
    if kind == "none":
        return rewards.clone()
    r = rewards.reshape(*rewards.shape[:-1], n // group_size, group_size)
    # The float mean of G equal rewards need not equal them exactly, and GRPO would divide that residue
    # by a residue std: find the all-equal groups directly and give them exactly zero.
    same = (r == r[..., :1]).all(-1, keepdim=True)
    centred = torch.where(same, torch.zeros_like(r), r - r.mean(-1, keepdim=True))
    if kind == "dr_grpo":
        adv = centred
    elif kind == "rloo":
        # R_i - mean_{j≠i} R_j = G/(G-1) · (R_i - mean R)
        adv = centred * (group_size / (group_size - 1))
    else:
        std = r.std(-1, keepdim=True, unbiased=True)
        adv = torch.where(same, torch.zeros_like(centred), centred / (std + eps))
    return adv.reshape(rewards.shape)


def expected_group_advantages(
    rewards: Tensor, probs: Tensor, kind: str = "grpo", eps: float = 1e-6, group_size: int | None = None
) -> Tensor:
    """Per-arm advantages whose π-weighted policy gradient is the expected gradient of sampled groups.

    rewards, probs [..., K] -> [..., K]. rloo: R - E_π R (exact at any G: the leave-one-out baseline is
    independent of the sample). dr_grpo: (G-1)/G · (R - E_π R), because each sample is in its own group
    mean with weight 1/G (R - E_π R when group_size is None, the G → ∞ limit). grpo: (R - E_π R) / (std_π R + eps),
    the G → ∞ limit; at finite G the std normalisation makes the expected update differ. none: R.
    """
    check_tensor("rewards", rewards, min_dim=1)
    check_nonnegative("probs", check_tensor("probs", probs, min_dim=1))
    try:  # a reward table [K] may be shared by many problems' probs [..., K]
        torch.broadcast_shapes(rewards.shape, probs.shape)
    except RuntimeError:
        raise ValueError(
            f"rewards {tuple(rewards.shape)} and probs {tuple(probs.shape)} do not broadcast: "
            "both must be [..., K] over the same K actions"
        ) from None
    check_choice("kind", kind, ADVANTAGES)
    eps = check_number("eps", eps, low=0.0)
    if group_size is not None:
        group_size = check_int("group_size", group_size, low=2)
    return expected_group_advantages_unchecked(rewards, probs, kind, eps, group_size)


def expected_group_advantages_unchecked(
    rewards: Tensor, probs: Tensor, kind: str = "grpo", eps: float = 1e-6, group_size: int | None = None
) -> Tensor:
    """`expected_group_advantages` without input checks. [..., K] -> [..., K]."""
    rewards, probs = fp32(rewards), fp32(probs)
    if kind == "none":
        return torch.broadcast_tensors(rewards, probs)[0].clone()
    # Before broadcasting: a reward table shared by many seeds is checked once, not once per seed.
    same = (rewards == rewards[..., :1]).all(-1, keepdim=True)
    centred = torch.where(same, 0.0, rewards - (probs * rewards).sum(-1, keepdim=True))
    if kind == "rloo":
        return centred
    if kind == "dr_grpo":
        return centred if group_size is None else centred * ((group_size - 1) / group_size)
    std = (probs * centred.square()).sum(-1, keepdim=True).sqrt()
    return torch.where(same | (std == 0), 0.0, centred / (std + eps))


def scale_advantages(adv: Tensor, mask: Tensor | None = None, center: bool = False, eps: float = 1e-6) -> Tensor:
    """Batch scaling: divide by the (mask-weighted) std over the whole batch, optionally centre first.

    Shapes: adv [B, T] (or any), mask like adv -> like adv. Used by REINFORCE++-style global normalisation.
    """
    check_tensor("adv", adv)
    eps = check_number("eps", eps, low=0.0)
    check_bool("center", center)
    adv = fp32(adv)
    if mask is None:
        w = torch.ones_like(adv)
    else:
        if not isinstance(mask, Tensor) or mask.shape != adv.shape:
            raise ValueError(
                f"mask must be a tensor shaped like adv {tuple(adv.shape)}, "
                f"got {tuple(mask.shape) if isinstance(mask, Tensor) else type(mask).__name__}"
            )
        w = check_weights("mask", mask.to(adv.dtype))
    total = w.sum()
    if total <= 0:
        raise ValueError("mask selects no element (its sum is 0)")
    mean = (w * adv).sum() / total
    var = (w * (adv - mean).square()).sum() / total
    out = adv - mean if center else adv
    return out / (var.sqrt() + eps) if var > 0 else out * 0
