"""REPO: regulate entropy through the advantage (docs/science.md §5).

General form: A_REPO = A - β·L with L = log π + H. By Theorem 1, β > 0 raises entropy and β < 0 lowers it.
Its expected gradient is ∇J + β∇H: an entropy bonus estimated from the sampled tokens alone.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ._checks import (
    check_bool,
    check_broadcast,
    check_choice,
    check_dim,
    check_nonnegative,
    check_number,
    check_same_shape,
    check_tensor,
    fp32,
)
from .controllers import EntropyTargetController

ZETA_LIMIT = 1e6
REPO_VARIANTS = (None, "beta", "decorrelate", "repo_d", "repo_r")


def repo_advantage(adv: Tensor, centered_logp: Tensor, beta: float | Tensor) -> Tensor:
    """A - β·L, with L detached (β·L shapes the advantage; it is not differentiated). [...] -> [...].

    beta: a number, or a tensor broadcastable to adv (one β per state, per problem...).
    """
    check_tensor("adv", adv)
    check_tensor("centered_logp", centered_logp)
    check_same_shape(adv=adv, centered_logp=centered_logp)
    beta = _check_coef("beta", beta, adv)
    return _repo_advantage(adv, centered_logp, beta)


def _check_coef(name: str, x: object, adv: Tensor) -> float | Tensor:
    """β or ζ: a finite number, or a finite tensor that broadcasts to adv's shape."""
    if isinstance(x, Tensor):
        check_tensor(name, x)
        check_broadcast(name, x, adv.shape, "adv")
        return x
    return check_number(name, x)


def _repo_advantage(adv: Tensor, L: Tensor, beta: float | Tensor) -> Tensor:
    return fp32(adv) - (fp32(beta) if isinstance(beta, Tensor) else beta) * fp32(L).detach()


def decorrelating_beta(
    adv: Tensor, centered_logp: Tensor, probs: Tensor, weights: Tensor, dim: int | tuple[int, ...] = -1
) -> Tensor:
    """β* = E_w[π·A·L] / E_w[π·L²]: the β whose REPO step has zero first-order entropy change.

    All inputs share a shape and reduce over `dim` (-1 over arms, (-2, -1) over a [B, T] batch):
        β* = Σ w·π·A·L / Σ w·π·L²
    Two different π appear. `weights` (w) is the expectation's weight: π_old itself for an exact sum over
    every action, a 0/1 mask (or 1/n) for tokens sampled from π. `probs` (π) is Theorem 1's extra factor
    of the vanilla gradient, ΔH ≈ -η E_π[π·A·L]; for natural policy gradient (ΔH ≈ -η Cov_π(log π, A))
    pass probs = 1: β* = E_w[A·L] / E_w[L²].
    Assumes A is centred under π (E_π A = 0), as policy-gradient advantages are; otherwise the
    baseline's share E_π A · Σ π² L also moves entropy and β* does not cancel it.
    """
    _check_beta_inputs(adv, centered_logp, probs, weights, dim)
    return _decorrelating_beta(adv, centered_logp, probs, weights, dim)


def _check_beta_inputs(adv: Tensor, centered_logp: Tensor, probs: Tensor, weights: Tensor, dim: object) -> None:
    """`decorrelating_beta`'s inputs: finite tensors of one shape, probs and weights >= 0, dims in range."""
    for name, x in (("adv", adv), ("centered_logp", centered_logp), ("probs", probs), ("weights", weights)):
        check_tensor(name, x)
    check_same_shape(adv=adv, centered_logp=centered_logp, probs=probs, weights=weights)
    check_nonnegative("probs", probs)
    check_nonnegative("weights", weights)
    check_dim("dim", dim, adv.dim())


def _decorrelating_beta(adv: Tensor, L: Tensor, probs: Tensor, w: Tensor, dim: int | tuple[int, ...]) -> Tensor:
    adv, L, probs, w = fp32(adv), fp32(L).detach(), fp32(probs).detach(), fp32(w)
    num = (w * probs * adv * L).sum(dim)
    den = (w * probs * L.square()).sum(dim)
    # A uniform policy has L ≡ 0: no β can move entropy to first order, and 0 is the honest answer. L is
    # then pure rounding noise (~1e-16), so "zero" means an rms L below 100 machine epsilons.
    noise = (w * probs).sum(dim) * (100 * torch.finfo(den.dtype).eps) ** 2
    return torch.where(den > noise, num / den.clamp_min(torch.finfo(den.dtype).tiny), torch.zeros_like(num))


def repo_d_beta(
    adv: Tensor,
    centered_logp: Tensor,
    probs: Tensor,
    weights: Tensor,
    zeta: float | Tensor,
    dim: int | tuple[int, ...] = -1,
) -> Tensor:
    """REPO-D [ours]: β = ζ · β*, so ζ = 1 cancels the first-order entropy change and ζ > 1 reverses it.

    Shapes as `decorrelating_beta`; zeta a number or a tensor broadcastable to the reduced shape.
    """
    zeta = _check_zeta(zeta)
    beta = decorrelating_beta(adv, centered_logp, probs, weights, dim)
    check_broadcast("zeta", zeta, beta.shape, "the reduced β*")
    return zeta * beta


def repo_r(adv: Tensor, logp: Tensor, zeta: float | Tensor, logp_floor: float = -20.0) -> Tensor:
    """REPO-R: rescale A by the token's surprise; sign-preserving. [...] -> [...] (docs/science.md §5, App. D.2).

    A > 0: A·(1 - ζ·log π) clamped to >= 0;  A < 0: A·(1 + ζ·log π) clamped to <= 0;  A = 0: 0.
    log π is the current policy's, detached and floored at logp_floor. ζ > 0 raises entropy.
    """
    check_tensor("adv", adv)
    check_tensor("logp", logp, allow_neg_inf=True)
    check_same_shape(adv=adv, logp=logp)
    logp_floor = check_number("logp_floor", logp_floor, high=0.0)
    zeta = _check_zeta(zeta)
    check_broadcast("zeta", zeta, adv.shape, "adv")
    return _repo_r(adv, logp, zeta, logp_floor)


def _check_zeta(zeta: float | Tensor) -> float | Tensor:
    """ζ: a finite number or tensor with |ζ| <= ZETA_LIMIT."""
    if isinstance(zeta, Tensor):
        check_tensor("zeta", zeta)
        big = zeta.abs().max().item() if zeta.numel() else 0.0
    else:
        zeta = big = check_number("zeta", zeta)
    if abs(big) > ZETA_LIMIT:  # beyond this ζ·log π overflows meaningfully; the paper's |ζ| is <= 10
        raise ValueError(f"|zeta| must be <= {ZETA_LIMIT:g}, got {big:g}")
    return zeta


def _repo_r(adv: Tensor, logp: Tensor, zeta: float | Tensor, logp_floor: float = -20.0) -> Tensor:
    zeta = fp32(zeta) if isinstance(zeta, Tensor) else zeta
    adv = fp32(adv)
    lp = fp32(logp).detach().clamp_min(logp_floor)
    up = (adv * (1 - zeta * lp)).clamp_min(0)
    down = (adv * (1 + zeta * lp)).clamp_max(0)
    return torch.where(adv > 0, up, torch.where(adv < 0, down, torch.zeros_like(adv)))


def shape_advantage(
    adv: Tensor,
    logp: Tensor,
    entropy: Tensor,
    weights: Tensor,
    variant: str | None,
    *,
    zeta: float | Tensor = 0.0,
    beta: float | Tensor = 0.0,
    natural: bool = False,
    dim: int | tuple[int, ...] = -1,
) -> Tensor:
    """Apply a REPO variant to the advantages of sampled actions. All inputs [...], same shape -> [...].

    The one place the bandit engine and the LLM trainer turn A into A_REPO:
      None          A unchanged
      "beta"        A - β·L with a fixed β (L = log π + H, detached)
      "decorrelate" A - β*·L, β* from `decorrelating_beta` (first-order ΔH = 0)
      "repo_d"      A - ζ·β*·L  [ours]
      "repo_r"      `repo_r(A, log π, ζ)`
    entropy: H(π(·|s)) of each action's state (full vocabulary), so L = logp + entropy.
    weights: how each entry counts in β*'s expectation (π_old for an exact sum, the mask for samples);
    β* is reduced over `dim` (the arms of one state, or every token of a batch). zeta and beta are
    numbers or tensors broadcastable to `adv`. natural=True drops the π factor (natural PG moves
    entropy by E_π[A·L], not E_π[A·L·π]).
    """
    check_choice("variant", variant, REPO_VARIANTS)
    zeta = _check_zeta(zeta)
    check_tensor("adv", adv)
    if variant in ("repo_r", "repo_d"):
        check_broadcast("zeta", zeta, adv.shape, "adv")
    if variant is not None:
        check_tensor("logp", logp, allow_neg_inf=variant == "repo_r")
        check_same_shape(adv=adv, logp=logp)
    if variant in ("beta", "decorrelate", "repo_d"):
        check_tensor("entropy", entropy)
        check_same_shape(adv=adv, logp=logp, entropy=entropy)
    if variant == "beta":
        beta = _check_coef("beta", beta, adv)
    if variant in ("decorrelate", "repo_d"):
        check_nonnegative("weights", check_tensor("weights", weights))
        check_same_shape(adv=adv, weights=weights)
        check_dim("dim", dim, adv.dim())
        check_bool("natural", natural)
    return shape_advantage_unchecked(
        adv, logp, entropy, weights, variant, zeta=zeta, beta=beta, natural=natural, dim=dim
    )


def shape_advantage_unchecked(
    adv: Tensor,
    logp: Tensor,
    entropy: Tensor,
    weights: Tensor,
    variant: str | None,
    *,
    zeta: float | Tensor = 0.0,
    beta: float | Tensor = 0.0,
    natural: bool = False,
    dim: int | tuple[int, ...] = -1,
) -> Tensor:
    """`shape_advantage` without input checks, for loops that validated their inputs once."""
    if variant is None:
        return fp32(adv)
    if variant == "repo_r":
        return _repo_r(adv, logp, zeta)
    L = (fp32(logp) + fp32(entropy)).detach()
    if variant == "beta":
        return _repo_advantage(adv, L, beta)
    probs = torch.ones_like(L) if natural else fp32(logp).detach().exp()
    b = _decorrelating_beta(adv, L, probs, weights, dim)
    for d in sorted(d % adv.dim() for d in ((dim,) if isinstance(dim, int) else dim)):
        b = b.unsqueeze(d)  # keep the reduced dims so β broadcasts back over them
    scale = 1.0 if variant == "decorrelate" else zeta
    return _repo_advantage(adv, L, scale * b)


class ZetaController(EntropyTargetController):
    """Steers REPO's ζ toward a target entropy, once per iteration (docs/science.md §5).

    Entropy too low:  ζ >= 0 -> min(2ζ, ζ_max) (0 -> ζ_min);  ζ < 0 -> ζ/2, flipping to +ζ_min once above -ζ_min.
    Entropy too high: ζ > 0 -> ζ/2, flipping to -ζ_min once below ζ_min;  ζ < 0 -> max(2ζ, -ζ_max).
    ζ = 0 with too much entropy -> -ζ_min is [ours]: the paper leaves that case open; we mirror the other side.
    """

    def __init__(
        self,
        zeta: float | Tensor = 1e-3,
        zeta_min: float = 1e-4,
        zeta_max: float = 0.05,
        target_entropy: float | Tensor | None = None,
    ) -> None:
        self.zeta_min = check_number("zeta_min", zeta_min, low=0.0, low_open=True)
        self.zeta_max = check_number("zeta_max", zeta_max, low=self.zeta_min, high=ZETA_LIMIT)
        z = check_tensor("zeta", zeta) if isinstance(zeta, Tensor) else check_number("zeta", zeta)
        mag = torch.as_tensor(z, dtype=torch.float64).abs()
        if bool(((mag > self.zeta_max) | ((mag > 0) & (mag < self.zeta_min))).any()):
            raise ValueError(
                f"zeta must be 0 or have |zeta| in [zeta_min, zeta_max] = "
                f"[{self.zeta_min:g}, {self.zeta_max:g}], got {z}"
            )
        super().__init__(z, target_entropy)

    def _raise(self, v: Tensor) -> Tensor:
        grown = torch.where(v == 0, torch.full_like(v, self.zeta_min), (2 * v).clamp_max(self.zeta_max))
        halved = torch.where(v / 2 > -self.zeta_min, torch.full_like(v, self.zeta_min), v / 2)
        return torch.where(v >= 0, grown, halved)

    def _lower(self, v: Tensor) -> Tensor:
        grown = torch.where(v == 0, torch.full_like(v, -self.zeta_min), (2 * v).clamp_min(-self.zeta_max))
        halved = torch.where(v / 2 < self.zeta_min, torch.full_like(v, -self.zeta_min), v / 2)
        return torch.where(v <= 0, grown, halved)

    def _params(self) -> dict[str, float]:
        return {"zeta_min": self.zeta_min, "zeta_max": self.zeta_max}
