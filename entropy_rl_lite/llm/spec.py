"""The run spec of an experiment: model, task, warm start, LoRA and the algorithms to compare.

`configs/<profile>.yaml` holds one spec per profile; `load_spec` reads one, with `--set key.sub=value`
overrides, and every section is validated on creation (errors name the dotted key).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._checks import check_choice, check_int, check_number
from .config import TrainConfig
from .model import quiet_peft
from .profiles import PROFILES

CONFIG_DIR = Path(__file__).parent / "configs"
TASKS = ("SumTo", "SumToShifted")


@dataclass(frozen=True)
class TaskSpec:
    """A text task of `environments.text_tasks` by name and arguments."""

    name: str = "SumTo"
    min_target: int = 3
    max_target: int = 12
    max_len: int = 3
    shift: int | None = None  # None: the task's default (0 for SumTo, 1 for SumToShifted)

    def __post_init__(self) -> None:
        check_choice("task.name", self.name, TASKS)

    def make(self) -> Any:
        """The environment (it validates its own arguments)."""
        from environments.text_tasks import SumToEnv, SumToShiftedEnv  # the library core never imports environments

        cls = SumToEnv if self.name == "SumTo" else SumToShiftedEnv
        kwargs = {} if self.shift is None else {"shift": self.shift}
        return cls(min_target=self.min_target, max_target=self.max_target, max_len=self.max_len, **kwargs)


@dataclass(frozen=True)
class WarmStartSpec:
    steps: int = 300
    batch_size: int = 64
    lr: float = 3e-3

    def __post_init__(self) -> None:
        check_int("warm_start.steps", self.steps, low=0)
        check_int("warm_start.batch_size", self.batch_size, low=1)
        check_number("warm_start.lr", self.lr, low=0.0)


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapters through peft: only these train; the base weights stay frozen."""

    r: int = 8
    alpha: int = 16
    dropout: float = 0.0  # > 0 makes logp_old (train mode) noisy relative to sampling (eval mode): keep 0 for RL
    target_modules: tuple[str, ...] | str = ("q_proj", "k_proj", "v_proj", "o_proj")  # or a peft string: "all-linear"

    def __post_init__(self) -> None:
        check_int("lora.r", self.r, low=1)
        check_number("lora.alpha", self.alpha, low=0.0, low_open=True)
        check_number("lora.dropout", self.dropout, low=0.0, high=1.0)
        if not isinstance(self.target_modules, str):  # a string is peft's own spec ("all-linear", a regex)
            object.__setattr__(self, "target_modules", tuple(self.target_modules))

    def apply(self, model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
        """Wrap `model` with fresh adapters (B = 0, so the wrapped model computes exactly what `model` did).

        A is initialised from `seed`, so every algorithm of a comparison starts from the same adapters.
        """
        import peft

        targets = self.target_modules if isinstance(self.target_modules, str) else list(self.target_modules)
        config = peft.LoraConfig(
            r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout, target_modules=targets, task_type="CAUSAL_LM"
        )
        with quiet_peft(), torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            return peft.get_peft_model(model, config)


@dataclass(frozen=True)
class RunSpec:
    """Everything one comparison needs. `train` holds TrainConfig fields shared by every algorithm;
    `algorithms` maps a name to its own TrainConfig overrides; `phase2` overrides for the second task."""

    profile: str = "ci"
    seed: int = 0
    model: str | None = None  # local checkpoint path; None builds a random `profile` model
    task: TaskSpec = field(default_factory=TaskSpec)
    phase2_task: TaskSpec | None = field(default_factory=lambda: TaskSpec(name="SumToShifted"))
    warm_start: WarmStartSpec | None = field(default_factory=WarmStartSpec)
    lora: LoraSpec | None = None
    train: dict[str, Any] = field(default_factory=dict)
    phase2: dict[str, Any] = field(default_factory=dict)
    algorithms: dict[str, dict[str, Any]] = field(default_factory=lambda: {"grpo": {}})
    eval_samples: int = 32
    eval_ks: tuple[int, ...] = (1, 8)

    def __post_init__(self) -> None:
        check_choice("profile", self.profile, PROFILES)
        check_int("seed", self.seed, low=0)
        check_int("eval_samples", self.eval_samples, low=1)
        for k in self.eval_ks:
            check_int("eval_ks", k, low=1)
            if k > self.eval_samples:
                raise ValueError(f"eval_ks {list(self.eval_ks)} has k={k} > eval_samples={self.eval_samples}")
        for name in ("train", "phase2", "algorithms"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a mapping of settings, got {getattr(self, name)!r}")
        for algo, overrides in self.algorithms.items():
            if not isinstance(overrides, dict):
                raise ValueError(
                    f"algorithms.{algo} must be a mapping of TrainConfig fields ({{}} for none), got {overrides!r}"
                )
        if not self.algorithms:
            raise ValueError("algorithms must name at least one algorithm")
        for name in self.algorithms:  # build every config now: a typo fails before hours of training
            self.train_config(name)
            if self.phase2_task is not None:
                self.train_config(name, phase=2)

    def train_config(self, algorithm: str, phase: int = 1) -> TrainConfig:
        """TrainConfig of one algorithm in one phase: defaults < train < algorithms[name] < phase2 (phase 2)."""
        if algorithm not in self.algorithms:
            raise ValueError(f"unknown algorithm {algorithm!r}; this spec defines {sorted(self.algorithms)}")
        merged = {"profile": self.profile, "seed": self.seed, **self.train, **self.algorithms[algorithm]}
        if phase == 2:
            merged.update(self.phase2)
        try:
            return TrainConfig().replace(**merged)
        except (ValueError, TypeError) as e:
            raise type(e)(f"algorithm {algorithm!r}, phase {phase}: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if self.lora is not None and not isinstance(self.lora.target_modules, str):
            d["lora"]["target_modules"] = list(self.lora.target_modules)
        d["eval_ks"] = list(self.eval_ks)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunSpec":
        """Build from plain data (a parsed YAML file); unknown keys raise, naming their path."""
        d = dict(d)
        _reject_unknown("", d, {f.name for f in dataclasses.fields(cls)})
        for section in ("train", "phase2"):  # an empty YAML section parses as None
            if section in d and d[section] is None:
                d[section] = {}
        if isinstance(d.get("algorithms"), dict):
            d["algorithms"] = {k: ({} if v is None else v) for k, v in d["algorithms"].items()}
        nested = {"task": TaskSpec, "phase2_task": TaskSpec, "warm_start": WarmStartSpec, "lora": LoraSpec}
        for key, sub in nested.items():
            if isinstance(d.get(key), dict):
                _reject_unknown(f"{key}.", d[key], {f.name for f in dataclasses.fields(sub)})
                d[key] = sub(**d[key])
        if "eval_ks" in d:
            d["eval_ks"] = tuple(d["eval_ks"])
        return cls(**d)


def _reject_unknown(prefix: str, d: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(
            f"unknown spec key(s) {[prefix + k for k in unknown]}; known: {sorted(prefix + k for k in known)}"
        )


def set_path(d: dict[str, Any], dotted: str, value: Any) -> None:
    """d["a"]["b"] = value for dotted = "a.b", creating dicts on the way (for --set overrides)."""
    keys = dotted.split(".")
    for k in keys[:-1]:
        if d.get(k) is None:
            d[k] = {}
        if not isinstance(d[k], dict):
            raise ValueError(f"cannot set {dotted!r}: {k!r} is not a section")
        d = d[k]
    d[keys[-1]] = value


def load_spec(profile: str = "ci", path: str | Path | None = None, overrides: list[str] = ()) -> RunSpec:
    """A RunSpec from `path` (default: the profile's file in configs/) with `key.sub=value` overrides."""
    import yaml

    path = Path(path) if path is not None else CONFIG_DIR / f"{check_choice('profile', profile, PROFILES)}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no spec file at {str(path)!r}")
    data = yaml.safe_load(path.read_text()) or {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value, e.g. train.lr=1e-3")
        key, raw = item.split("=", 1)
        set_path(data, key.strip(), yaml.safe_load(raw))
    return RunSpec.from_dict(data)
