"""ADAPO: adaptive asymmetric clipping (docs/science.md §6).

DAPO's fixed ε_high lets entropy drift; ADAPO moves ε_high toward a target entropy: a larger ε_high
lets entropy-raising updates through, a smaller one holds them back. The multiplicative bang-bang step
rule, its factor and its bounds are [ours]: the paper states the direction, not the rule. ADAPO only
acts when clipping binds, i.e. when a batch is reused for several updates.
"""

from __future__ import annotations

from torch import Tensor

from ._checks import check_number, check_tensor
from .controllers import EntropyTargetController


class EpsHighController(EntropyTargetController):
    """ε_high controller: entropy below target -> min(ε·factor, eps_high_max); above -> max(ε/factor, eps_high_min)."""

    def __init__(
        self,
        eps_high: float | Tensor = 0.28,
        eps_high_min: float = 0.2,
        eps_high_max: float = 1.0,
        adapo_factor: float = 1.5,
        target_entropy: float | Tensor | None = None,
    ) -> None:
        self.eps_high_min = check_number("eps_high_min", eps_high_min, low=0.0)
        self.eps_high_max = check_number("eps_high_max", eps_high_max, low=self.eps_high_min)
        self.adapo_factor = check_number("adapo_factor", adapo_factor, low=1.0, low_open=True)
        lo, hi = self.eps_high_min, self.eps_high_max
        if isinstance(eps_high, Tensor):
            check_tensor("eps_high", eps_high)
            if bool(((eps_high < lo) | (eps_high > hi)).any()):
                raise ValueError(
                    f"eps_high must lie in [eps_high_min, eps_high_max] = [{lo}, {hi}], "
                    f"got values in [{eps_high.min().item():.4g}, {eps_high.max().item():.4g}]"
                )
        else:
            eps_high = check_number("eps_high", eps_high, low=lo, high=hi)
        super().__init__(eps_high, target_entropy)

    def _raise(self, v: Tensor) -> Tensor:
        return (v * self.adapo_factor).clamp_max(self.eps_high_max)

    def _lower(self, v: Tensor) -> Tensor:
        return (v / self.adapo_factor).clamp_min(self.eps_high_min)

    def _params(self) -> dict[str, float]:
        return {"eps_high_min": self.eps_high_min, "eps_high_max": self.eps_high_max, "adapo_factor": self.adapo_factor}
