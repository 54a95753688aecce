"""Entropy control in one place: the config fields that choose it, and the controllers that run it.

`EntropyControlFields` declares REPO (β, ζ and ζ's controller), ADAPO (ε_high's controller) and the
entropy bonus (its coefficient and controller) once; the bandit engine's `BanditConfig`, the trainer's
`TrainConfig` and the TRL adapter's `EntropyControl` all build on it, so names, defaults and checks
cannot drift apart. `EntropyControls` turns such a config into the controllers, updates them once per
iteration from the measured entropy and saves/restores them with a checkpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ._checks import check_bool, check_choice, check_number
from .adapo import EpsHighController
from .controllers import EntropyCoefController, EntropyTargetController
from .field_docs import document_fields
from .repo import REPO_VARIANTS, ZETA_LIMIT, ZetaController


@document_fields
@dataclass(frozen=True)
class EntropyControlFields:
    """Which entropy control runs and how it is tuned. Validated on creation; errors name the field."""

    repo: str | None = None  # None, "beta" (fixed β), "decorrelate" (β*), "repo_d" (ζ·β*, [ours]), "repo_r"
    beta: float = 0.0  # β for repo="beta": A - β·L
    zeta: float = 0.0  # ζ for repo_d / repo_r (the start value when zeta_control is on)
    zeta_control: bool = False  # steer ζ with ZetaController toward target_entropy
    zeta_min: float = 1e-4  # ζ's smallest non-zero magnitude (the controller's step from and to 0)
    # ζ's largest magnitude. 0.05 is the paper's bound for LLM token log-probs; it cannot stop collapse in the
    # book's 10-arm bandit, where REPO-R holds entropy with a toy-scale ζ_max = 5 [ours] (chapter 06 §7)
    zeta_max: float = 0.05
    adapo: bool = False  # steer eps_high with EpsHighController toward target_entropy
    eps_high_min: float = 0.2  # ADAPO's bounds on ε_high [ours]
    eps_high_max: float = 1.0
    adapo_factor: float = 1.5  # ADAPO's multiplicative step on ε_high [ours]
    entropy_coef: float = 0.0  # explicit entropy bonus: the loss gets -entropy_coef · H
    entropy_coef_control: bool = False  # adapt entropy_coef toward target_entropy (EntropyCoefController)
    entropy_coef_rate: float = 0.1  # its step: coef += rate · (target - H)
    target_entropy: float | None = None  # the controllers' target; None = the entropy measured at the first update

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # every switch, here and in the configs built on these fields
            if f.type == "bool":
                check_bool(f.name, getattr(self, f.name))
        check_choice("repo", self.repo, REPO_VARIANTS)
        check_number("beta", self.beta)
        check_number("zeta", self.zeta, low=-ZETA_LIMIT, high=ZETA_LIMIT)
        check_number("zeta_min", self.zeta_min, low=0.0, low_open=True)
        check_number("zeta_max", self.zeta_max, low=self.zeta_min, high=ZETA_LIMIT)
        if self.zeta_control and self.repo not in ("repo_d", "repo_r"):
            raise ValueError(f"zeta_control=True needs repo='repo_d' or 'repo_r', got repo={self.repo!r}")
        if self.zeta_control and self.zeta != 0 and not self.zeta_min <= abs(self.zeta) <= self.zeta_max:
            raise ValueError(
                f"zeta must be 0 or have |zeta| in [zeta_min, zeta_max] = [{self.zeta_min:g}, "
                f"{self.zeta_max:g}] when zeta_control=True, got {self.zeta:g}"
            )
        check_number("eps_high_min", self.eps_high_min, low=0.0)
        check_number("eps_high_max", self.eps_high_max, low=self.eps_high_min)
        check_number("adapo_factor", self.adapo_factor, low=1.0, low_open=True)
        check_number("entropy_coef", self.entropy_coef, low=0.0 if self.entropy_coef_control else None)
        check_number("entropy_coef_rate", self.entropy_coef_rate, low=0.0, low_open=True)
        if self.target_entropy is not None:
            check_number("target_entropy", self.target_entropy, low=0.0)

    def control_fields(self) -> dict[str, Any]:
        """The entropy-control fields alone, by name (e.g. to compare two configs' controls)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(EntropyControlFields)}


CONTROLLERS = ("zeta", "eps_high", "entropy_coef")  # the values EntropyControls steers, by config field name


class EntropyControls:
    """The controllers a config asks for, and the values in force: ζ, ε_high and the entropy coefficient.

    A value whose controller is off stays at its config value. seeds=None: one run, values are floats;
    seeds=S: S independent runs (the bandit engine), values are float64 tensors [S], each seed steered by
    its own entropy. eps_high: the start value of ε_high (the config's, or TRL's epsilon_high).
    """

    def __init__(self, fields: EntropyControlFields, eps_high: float, seeds: int | None = None) -> None:
        start = {"zeta": fields.zeta, "eps_high": eps_high, "entropy_coef": fields.entropy_coef}
        self._fixed = {k: _per_seed(v, seeds) for k, v in start.items()}
        f, target = fields, fields.target_entropy
        self.controllers: dict[str, EntropyTargetController] = {}
        if f.zeta_control:
            self.controllers["zeta"] = ZetaController(self._fixed["zeta"], f.zeta_min, f.zeta_max, target)
        if f.adapo:
            self.controllers["eps_high"] = EpsHighController(
                self._fixed["eps_high"], f.eps_high_min, f.eps_high_max, f.adapo_factor, target
            )
        if f.entropy_coef_control:
            self.controllers["entropy_coef"] = EntropyCoefController(
                self._fixed["entropy_coef"], f.entropy_coef_rate, target
            )

    @classmethod
    def from_config(cls, cfg: Any, seeds: int | None = None) -> "EntropyControls":
        """From a BanditConfig or TrainConfig (anything with the fields and eps_high)."""
        return cls(cfg, cfg.eps_high, seeds)

    def value(self, name: str) -> float | Tensor:
        """The value in force of "zeta", "eps_high" or "entropy_coef"."""
        ctrl = self.controllers.get(name)
        return ctrl.value if ctrl is not None else self._fixed[name]

    @property
    def zeta(self) -> float | Tensor:
        return self.value("zeta")

    @property
    def eps_high(self) -> float | Tensor:
        return self.value("eps_high")

    @property
    def entropy_coef(self) -> float | Tensor:
        return self.value("entropy_coef")

    def update(self, entropy: float | Tensor) -> tuple[float | Tensor, float | Tensor, float | Tensor]:
        """Step every active controller once with the measured entropy; -> (ζ, ε_high, entropy_coef) now in force."""
        for ctrl in self.controllers.values():
            ctrl.update(entropy)
        return self.zeta, self.eps_high, self.entropy_coef

    def state_dict(self) -> dict[str, Any]:
        """The active controllers' states by name (JSON-serialisable)."""
        return {name: ctrl.state_dict() for name, ctrl in self.controllers.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the same controllers must be active."""
        if set(state) != set(self.controllers):
            raise ValueError(f"saved controllers {sorted(state)} differ from this run's {sorted(self.controllers)}")
        for name, ctrl in self.controllers.items():
            ctrl.load_state_dict(state[name])

    def __repr__(self) -> str:
        return f"EntropyControls({', '.join(f'{k}={self.value(k)}' for k in CONTROLLERS)})"


def _per_seed(value: float, seeds: int | None) -> float | Tensor:
    """One run: the float; S runs: a float64 tensor [S] filled with it."""
    return float(value) if seeds is None else torch.full((seeds,), value, dtype=torch.float64)
