"""Validation of the RL fields BanditConfig and TrainConfig share, so the two configs cannot drift apart.

Both name the same knobs (objective, advantage, clip bounds, REPO, the controllers) because both feed the
same library functions; this is the one place their allowed values are written down.
"""
from __future__ import annotations

import inspect
from typing import Any

from ._checks import check_choice, check_number
from .advantages import ADVANTAGES
from .losses import OBJECTIVES, policy_loss
from .repo import REPO_VARIANTS

# policy_loss's keyword-only options (horizon, clip_cov_ratio, ...), except the generator the caller passes itself.
LOSS_OPTIONS = tuple(name for name, p in inspect.signature(policy_loss).parameters.items()
                     if p.kind is inspect.Parameter.KEYWORD_ONLY and name != "generator")


def check_rl_fields(cfg: Any) -> None:
    """Validate the shared fields of a BanditConfig or TrainConfig; errors name the field and what is allowed."""
    check_choice("objective", cfg.objective, OBJECTIVES)
    check_choice("advantage", cfg.advantage, ADVANTAGES)
    check_choice("repo", cfg.repo, REPO_VARIANTS)
    check_number("lr", cfg.lr, low=0.0)
    check_number("adv_eps", cfg.adv_eps, low=0.0)
    check_number("eps_low", cfg.eps_low, low=0.0, high=1.0)
    check_number("eps_high", cfg.eps_high, low=0.0)
    check_number("entropy_coef", cfg.entropy_coef, low=0.0 if cfg.entropy_coef_control else None)
    check_number("entropy_coef_rate", cfg.entropy_coef_rate, low=0.0, low_open=True)
    check_number("beta", cfg.beta)
    check_number("zeta", cfg.zeta)
    check_number("zeta_min", cfg.zeta_min, low=0.0, low_open=True)
    check_number("zeta_max", cfg.zeta_max, low=cfg.zeta_min)
    if cfg.zeta_control and cfg.repo not in ("repo_d", "repo_r"):
        raise ValueError(f"zeta_control=True needs repo='repo_d' or 'repo_r', got repo={cfg.repo!r}")
    if cfg.zeta_control and cfg.zeta != 0 and not cfg.zeta_min <= abs(cfg.zeta) <= cfg.zeta_max:
        raise ValueError(f"zeta must be 0 or have |zeta| in [zeta_min, zeta_max] = [{cfg.zeta_min:g}, "
                         f"{cfg.zeta_max:g}] when zeta_control=True, got {cfg.zeta:g}")
    check_number("eps_high_min", cfg.eps_high_min, low=0.0)
    check_number("eps_high_max", cfg.eps_high_max, low=cfg.eps_high_min)
    check_number("adapo_factor", cfg.adapo_factor, low=1.0, low_open=True)
    if cfg.adapo and not cfg.eps_high_min <= cfg.eps_high <= cfg.eps_high_max:
        raise ValueError(f"eps_high must lie in [eps_high_min, eps_high_max] = [{cfg.eps_high_min}, "
                         f"{cfg.eps_high_max}] when adapo=True, got {cfg.eps_high}")
    if cfg.target_entropy is not None:
        check_number("target_entropy", cfg.target_entropy, low=0.0)
    if not isinstance(cfg.loss_kwargs, dict):
        raise TypeError(f"loss_kwargs must be a dict, got {type(cfg.loss_kwargs).__name__}")
    unknown = sorted(set(cfg.loss_kwargs) - set(LOSS_OPTIONS))
    if unknown:
        raise ValueError(f"unknown loss_kwargs {unknown}; policy_loss options: {list(LOSS_OPTIONS)}")
