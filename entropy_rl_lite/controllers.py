"""Controllers that steer one value from the measured entropy, once per iteration.

`EntropyTargetController` is the base: compare entropy with a target, step the value. REPO's ζ
(`repo.ZetaController`) and ADAPO's ε_high (`adapo.EpsHighController`) step it bang-bang; the
entropy-bonus coefficient here (`EntropyCoefController`) steps it by dual ascent. Their constructor
arguments carry the config fields' names (`eps_high_min`, `entropy_coef_rate`, `target_entropy`, ...);
`entropy_control.EntropyControls` builds all three from a config.

A controller holds one value per independent run: a float, or a tensor of shape [seeds] when the
bandit engine runs many seeds at once (each seed is steered by its own measured entropy).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._checks import check_number, check_tensor


def _as_f64(name: str, x: float | Tensor) -> Tensor:
    if isinstance(x, Tensor):
        check_tensor(name, x)
        return x.detach().to(torch.float64).clone()
    return torch.tensor(check_number(name, x), dtype=torch.float64)


def _plain(x: Tensor | None) -> float | list | None:
    """JSON-friendly copy: a float for one run, a list for several."""
    if x is None:
        return None
    return x.item() if x.dim() == 0 else x.tolist()


def _from_plain(name: str, x: Any) -> float | Tensor | None:
    """Inverse of `_plain`: a number stays a number, a list becomes a float64 tensor [seeds]."""
    if isinstance(x, list):
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in x):
            raise TypeError(f"{name} must be a number or a list of numbers, got {x!r}")
        return torch.tensor(x, dtype=torch.float64)
    return x


class EntropyTargetController:
    """Base class: `update(entropy)` raises the value when entropy is below target, lowers it when above.

    target_entropy=None: the first update records the measured entropy as the target and leaves the value as is.
    Subclasses define `_raise` and `_lower` (elementwise on float64 tensors), or override `_step`.
    """

    def __init__(self, value: float | Tensor, target_entropy: float | Tensor | None = None) -> None:
        self._value = _as_f64("value", value)
        self._target = None if target_entropy is None else _as_f64("target_entropy", target_entropy)
        if self._target is not None and bool((self._target < 0).any()):
            raise ValueError(f"target_entropy must be >= 0 (an entropy), got {target_entropy}")

    @property
    def value(self) -> float | Tensor:
        """Current value: a float, or a float64 tensor [seeds] when steering several runs."""
        return self._value.item() if self._value.dim() == 0 else self._value.clone()

    @property
    def target_entropy(self) -> float | Tensor | None:
        """The entropy it steers toward (None until the first update when none was given)."""
        if self._target is None:
            return None
        return self._target.item() if self._target.dim() == 0 else self._target.clone()

    def update(self, entropy: float | Tensor) -> float | Tensor:
        """Compare the measured entropy (float, or [seeds]) with the target and step the value once."""
        h = _as_f64("entropy", entropy)
        if self._target is None:
            self._target = h.clone()
            self._value = self._value.expand_as(h).clone() if h.dim() else self._value
            return self.value
        v = self._value.expand(torch.broadcast_shapes(self._value.shape, h.shape, self._target.shape))
        self._value = self._step(v, h, self._target)
        return self.value

    def _step(self, v: Tensor, h: Tensor, target: Tensor) -> Tensor:
        """One bang-bang step: raise below target, lower above, keep on target."""
        return torch.where(h < target, self._raise(v), torch.where(h > target, self._lower(v), v))

    def _raise(self, v: Tensor) -> Tensor:  # entropy too low
        raise NotImplementedError

    def _lower(self, v: Tensor) -> Tensor:  # entropy too high
        raise NotImplementedError

    def _params(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: value, target and the rule's parameters (JSON-serialisable)."""
        return {
            "kind": type(self).__name__,
            "value": _plain(self._value),
            "target_entropy": _plain(self._target),
            **self._params(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from `state_dict()`; the parameters must match this controller's, and the value and target
        pass the constructor's checks (a damaged checkpoint fails here, not steps later)."""
        if not isinstance(state, dict):
            raise TypeError(f"a controller state must be a dict, got {type(state).__name__}")
        if state.get("kind") != type(self).__name__:
            raise ValueError(f"state kind {state.get('kind')!r} does not match {type(self).__name__}")
        missing = sorted({"value", "target_entropy", *self._params()} - set(state))
        if missing:
            raise ValueError(f"{type(self).__name__} state lacks {missing}")
        for k, v in self._params().items():
            if state.get(k) != v:
                raise ValueError(f"state has {k}={state.get(k)!r} but this controller has {k}={v!r}")
        value, target = (_from_plain(n, state[n]) for n in ("value", "target_entropy"))
        checked = type(self)(value, **self._params(), target_entropy=target)  # the constructor validates both
        self._value, self._target = checked._value, checked._target

    def __repr__(self) -> str:
        return f"{type(self).__name__}(value={self.value}, target_entropy={self.target_entropy})"


class EntropyCoefController(EntropyTargetController):
    """Adaptive coefficient of an explicit entropy bonus: coef ← max(0, coef + entropy_coef_rate · (target - H)).

    The bonus grows while entropy is below target and shrinks (never below 0) while above: dual ascent on
    the constraint H >= target, as in SAC's temperature tuning. A baseline the book compares REPO with.
    """

    def __init__(
        self,
        entropy_coef: float | Tensor = 0.0,
        entropy_coef_rate: float = 0.1,
        target_entropy: float | Tensor | None = None,
    ) -> None:
        self.entropy_coef_rate = check_number("entropy_coef_rate", entropy_coef_rate, low=0.0, low_open=True)
        if isinstance(entropy_coef, Tensor):
            check_tensor("entropy_coef", entropy_coef)
            if bool((entropy_coef < 0).any()):
                raise ValueError("entropy_coef must be >= 0")
        else:
            entropy_coef = check_number("entropy_coef", entropy_coef, low=0.0)
        super().__init__(entropy_coef, target_entropy)

    def _step(self, v: Tensor, h: Tensor, target: Tensor) -> Tensor:
        return (v + self.entropy_coef_rate * (target - h)).clamp_min(0.0)

    def _params(self) -> dict[str, float]:
        return {"entropy_coef_rate": self.entropy_coef_rate}
