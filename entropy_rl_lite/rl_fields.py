"""The RL fields `BanditConfig` and `TrainConfig` share, declared and validated once.

Both name the same knobs (objective, advantage, clip bounds, entropy control) because both feed the same
library functions; a subclass may change a default (the bandit's objective is REINFORCE, the trainer's PPO).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from ._checks import check_choice, check_int, check_number
from .advantages import ADVANTAGES, check_group_size
from .entropy_control import EntropyControlFields
from .field_docs import document_fields
from .losses import OBJECTIVES, check_loss_options, policy_loss

# policy_loss's keyword-only options (horizon, clip_cov_ratio, ...), except the generator the caller passes itself.
LOSS_OPTIONS = tuple(
    name
    for name, p in inspect.signature(policy_loss).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "generator"
)


@document_fields
@dataclass(frozen=True)
class RLFields(EntropyControlFields):
    """Objective, advantage, step size, group, epochs and clip bounds, on top of the entropy-control fields."""

    objective: str = "ppo"  # a policy_loss kind: reinforce, ppo (DAPO: eps_high > eps_low), gspo, cispo, ...
    advantage: str = "grpo"  # a group_advantages kind: grpo, rloo, dr_grpo, none
    adv_eps: float = 1e-6  # GRPO's eps in (R - mean R) / (std R + eps)
    lr: float = 1e-3  # η
    group_size: int = 8  # G samples per prompt (or bandit state) per step: the baseline's group
    epochs: int = 1  # passes over each batch; clipping can only bind from the second update on
    eps_low: float = 0.2  # PPO's lower clip: r >= 1 - eps_low
    eps_high: float = 0.2  # PPO's upper clip: r <= 1 + eps_high (DAPO's clip-higher: eps_high > eps_low)
    loss_kwargs: dict[str, Any] = field(default_factory=dict)  # extra policy_loss options (clip_cov_ratio, ...)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("advantage", self.advantage, ADVANTAGES)
        check_number("adv_eps", self.adv_eps, low=0.0)
        check_number("lr", self.lr, low=0.0)
        check_group_size(self.group_size, self.advantage)
        check_int("epochs", self.epochs, low=1)
        check_number("eps_low", self.eps_low, low=0.0, high=1.0)
        check_number("eps_high", self.eps_high, low=0.0)
        if self.adapo and not self.eps_high_min <= self.eps_high <= self.eps_high_max:
            raise ValueError(
                f"eps_high must lie in [eps_high_min, eps_high_max] = [{self.eps_high_min}, "
                f"{self.eps_high_max}] when adapo=True, got {self.eps_high}"
            )
        if not isinstance(self.loss_kwargs, dict):
            raise TypeError(f"loss_kwargs must be a dict, got {type(self.loss_kwargs).__name__}")
        unknown = sorted(set(self.loss_kwargs) - set(LOSS_OPTIONS))
        if unknown:
            raise ValueError(f"unknown loss_kwargs {unknown}; policy_loss options: {list(LOSS_OPTIONS)}")
        check_loss_options(**self.loss_kwargs)
