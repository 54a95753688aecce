"""What a bandit run records: per-step observations of the policy and what each update did, stacked into a History."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class History:
    """Per-step, per-seed record of a run. Index [t] of entropy/reward/probs is the policy before update t."""

    entropy: Tensor  # [steps+1, seeds]  H(π(·|s)) averaged over states
    reward: Tensor  # [steps+1, seeds]  E_π[R], averaged over states
    probs: Tensor | None  # [steps+1, seeds, arms] or [steps+1, seeds, states, arms]
    loss: Tensor  # [steps, seeds]    surrogate loss, last epoch
    zeta: Tensor  # [steps, seeds]    ζ used at each step (config.zeta unless zeta_control)
    eps_high: Tensor  # [steps, seeds]    ε_high used at each step
    entropy_coef: Tensor  # [steps, seeds]    entropy-bonus coefficient used at each step
    clip_frac_low: Tensor  # [steps, seeds]    mean over epochs
    clip_frac_high: Tensor  # [steps, seeds]
    config: Any  # the BanditConfig that made it

    @property
    def clip_frac(self) -> Tensor:
        return self.clip_frac_low + self.clip_frac_high

    def to_rows(self) -> list[dict[str, float | int]]:
        """Tidy table: one dict per (step, seed), ready for pandas.DataFrame or plotting."""
        n_steps, n_seeds = self.entropy.shape
        rows = []
        for t in range(n_steps):
            for s in range(n_seeds):
                row: dict[str, float | int] = {
                    "step": t,
                    "seed": s,
                    "entropy": self.entropy[t, s].item(),
                    "reward": self.reward[t, s].item(),
                }
                if t < n_steps - 1:
                    for k in ("loss", "zeta", "eps_high", "entropy_coef", "clip_frac_low", "clip_frac_high"):
                        row[k] = getattr(self, k)[t, s].item()
                rows.append(row)
        return rows

    def to_dataframe(self):  # noqa: ANN201 (pandas is an optional dependency)
        """The tidy table as a pandas DataFrame (needs pandas)."""
        import pandas as pd

        return pd.DataFrame(self.to_rows())


@dataclass
class Observation:
    """The policy before an update, per seed: entropy and E_π[R] averaged over states, and π itself."""

    entropy: Tensor  # [seeds]
    reward: Tensor  # [seeds]
    probs: Tensor | None  # [seeds, states, arms] (None unless recorded)


@dataclass
class StepRecord:
    """What one iteration saw and did, per seed [seeds]."""

    before: Observation  # the policy that drew the batch
    loss: Tensor  # surrogate loss, last epoch
    zeta: Tensor  # ζ, ε_high and entropy coefficient in force
    eps_high: Tensor
    entropy_coef: Tensor
    clip_frac_low: Tensor  # mean over epochs
    clip_frac_high: Tensor


def stack_history(steps: list[StepRecord], final: Observation, config: Any, one_state: bool) -> History:
    """Stack the per-step records (and the final policy) into a History."""
    seen = [r.before for r in steps] + [final]
    per_step = {}
    for k in ("loss", "zeta", "eps_high", "entropy_coef", "clip_frac_low", "clip_frac_high"):
        rows = [torch.as_tensor(getattr(r, k), dtype=torch.float64).expand(config.seeds) for r in steps]
        per_step[k] = torch.stack(rows) if rows else torch.zeros(0, config.seeds, dtype=torch.float64)
    probs = None
    if config.record_probs:
        probs = torch.stack([o.probs[:, 0] if one_state else o.probs for o in seen])
    return History(
        entropy=torch.stack([o.entropy for o in seen]),
        reward=torch.stack([o.reward for o in seen]),
        probs=probs,
        config=config,
        **per_step,
    )
