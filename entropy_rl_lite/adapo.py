"""ADAPO: adaptive asymmetric clipping (paper.md §6).

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
    """ε_high controller: entropy below target -> min(ε_high·factor, eps_max); above -> max(ε_high/factor, eps_min)."""

    def __init__(self, eps_high: float | Tensor = 0.28, eps_min: float = 0.2, eps_max: float = 1.0,
                 factor: float = 1.5, target: float | Tensor | None = None) -> None:
        self.eps_min = check_number("eps_min", eps_min, low=0.0)
        self.eps_max = check_number("eps_max", eps_max, low=self.eps_min)
        self.factor = check_number("factor", factor, low=1.0, low_open=True)
        if isinstance(eps_high, Tensor):
            check_tensor("eps_high", eps_high)
            if bool(((eps_high < self.eps_min) | (eps_high > self.eps_max)).any()):
                raise ValueError(f"eps_high must lie in [eps_min, eps_max] = [{self.eps_min}, {self.eps_max}], "
                                 f"got values in [{eps_high.min().item():.4g}, {eps_high.max().item():.4g}]")
        else:
            eps_high = check_number("eps_high", eps_high, low=self.eps_min, high=self.eps_max)
        super().__init__(eps_high, target)

    def _raise(self, v: Tensor) -> Tensor:
        return (v * self.factor).clamp_max(self.eps_max)

    def _lower(self, v: Tensor) -> Tensor:
        return (v / self.factor).clamp_min(self.eps_min)

    def _params(self) -> dict[str, float]:
        return {"eps_min": self.eps_min, "eps_max": self.eps_max, "factor": self.factor}
