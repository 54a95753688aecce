"""The run spec of an experiment: model, task, warm start, LoRA and the algorithms to compare.

`configs/<profile>.yaml` holds one spec per profile; `load_spec` reads one, with `--set key.sub=value`
overrides, and every section is validated on creation (errors name the dotted key).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable
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
# An algorithm's name becomes file and directory names under --out: letters, digits, _ and - only.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
# Paths the compare pipeline places under --out itself; a spec that set them would write elsewhere.
PLACED_FIELDS = ("log_path", "checkpoint_dir")


def check_name(what: str, name: object) -> str:
    """An algorithm name that is safe as a file name: no path separators, no leading dot, nothing to escape --out."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(
            f"{what} {name!r} is not a valid name: it becomes a file name under --out, so use letters, digits, "
            "_ and - (starting with a letter or digit)"
        )
    return name


# Other trainers' names for our fields, so that a "did you mean" can bridge them.
SYNONYMS = {
    "learning_rate": "lr",
    "num_generations": "group_size",
    "epsilon": "eps_low",
    "epsilon_high": "eps_high",
    "num_iterations": "epochs",
    "max_completion_length": "max_new_tokens",
    "loss_type": "agg",
}


def suggest(unknown: str, known: Iterable[str]) -> str:
    """' (did you mean 'lr'?)' when a known name (or a synonym of one) is close to `unknown`, else ''."""
    known = list(known)
    candidates = known + [k for k, v in SYNONYMS.items() if v in known]
    close = difflib.get_close_matches(unknown, candidates, n=1, cutoff=0.6)
    return f" (did you mean {SYNONYMS.get(close[0], close[0])!r}?)" if close else ""


def coerce_fields(cls: type, section: str, d: dict[str, Any]) -> dict[str, Any]:
    """Values read from YAML, converted to the type of `cls`'s field where that is unambiguous: an int for a float
    field becomes a float, and a number written as a string ("1e-4", or `--set train.lr='3e-4'`) a float or an
    int. Booleans are never guessed (YAML's true/false are bools already; the string "false" is refused)."""
    types = {f.name: str(f.type).replace(" | None", "") for f in dataclasses.fields(cls)}
    out = dict(d)
    for key, value in d.items():
        kind = types.get(key)
        if kind not in ("float", "int") or isinstance(value, bool):
            continue
        if kind == "float" and isinstance(value, int):
            out[key] = float(value)
        elif isinstance(value, str):
            try:
                out[key] = float(value) if kind == "float" else int(value)
            except ValueError:
                article = "an" if kind == "int" else "a"
                raise TypeError(f"{section}{key} must be {article} {kind}, got the string {value!r}") from None
    return out


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
        for name in self.algorithms:
            check_name("algorithm name", name)
        for section in ("train", "phase2", *(f"algorithms.{a}" for a in self.algorithms)):
            settings = self.algorithms[section.split(".", 1)[1]] if "." in section else getattr(self, section)
            _check_train_keys(section, settings)
        for name in self.algorithms:  # build every config now: a typo fails before hours of training
            self.train_config(name)
            if self.phase2_task is not None:
                self.train_config(name, phase=2)

    def train_config(self, algorithm: str, phase: int = 1, out: str | Path = ".") -> TrainConfig:
        """TrainConfig of one algorithm in one phase: defaults < train < algorithms[name] < phase2 (phase 2).

        Its log and step checkpoints go under `out`: out/phase<N>/<algorithm>.jsonl, out/phase<N>/<algorithm>.steps/.
        """
        if algorithm not in self.algorithms:
            raise ValueError(
                f"unknown algorithm {algorithm!r}{suggest(str(algorithm), self.algorithms)}; "
                f"this spec defines {sorted(self.algorithms)}"
            )
        merged = {"profile": self.profile, "seed": self.seed, **self.train, **self.algorithms[algorithm]}
        if phase == 2:
            merged.update(self.phase2)
        log_dir = Path(out) / f"phase{phase}"
        merged.update(log_path=str(log_dir / f"{algorithm}.jsonl"), checkpoint_dir=str(log_dir / f"{algorithm}.steps"))
        try:
            return TrainConfig().replace(**coerce_fields(TrainConfig, "", merged))
        except (ValueError, TypeError) as e:
            # Blame the section that set the field the message starts with (the last of train < algorithm < phase2).
            field_name = re.match(r"\w*", str(e)).group()
            sources = [("train", self.train), (f"algorithms.{algorithm}", self.algorithms[algorithm])]
            sources += [("phase2", self.phase2)] if phase == 2 else []
            where = next((f"{sec}.{field_name}" for sec, d in reversed(sources) if field_name in d), None)
            context = f"algorithm {algorithm!r}, phase {phase}"
            raise type(e)(f"{where}: {e} ({context})" if where else f"{context}: {e}") from None

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
                d[key] = sub(**coerce_fields(sub, f"{key}.", d[key]))
        if "eval_ks" in d:
            if not isinstance(d["eval_ks"], (list, tuple)):
                raise TypeError(f"eval_ks must be a list of ints, got {d['eval_ks']!r}")
            d["eval_ks"] = tuple(d["eval_ks"])
        return cls(**coerce_fields(cls, "", d))


def _reject_unknown(prefix: str, d: dict[str, Any], known: set[str]) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(
            f"unknown spec key(s) {[prefix + k for k in unknown]}{suggest(unknown[0], known)}; "
            f"known: {sorted(prefix + k for k in known)}"
        )


def _check_train_keys(section: str, settings: dict[str, Any]) -> None:
    """A section of TrainConfig settings names only TrainConfig fields, and none the pipeline places itself."""
    known = [f.name for f in dataclasses.fields(TrainConfig) if f.name not in PLACED_FIELDS]
    placed = sorted(set(settings) & set(PLACED_FIELDS))
    if placed:
        raise ValueError(
            f"{section}: {placed} cannot be set in a spec: the compare pipeline writes logs and checkpoints "
            "under --out (phase<N>/<algo>.jsonl, phase<N>/<algo>.steps/)"
        )
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(
            f"{section}: unknown TrainConfig field(s) {unknown}{suggest(unknown[0], known)}; known: {sorted(known)}"
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


def read_yaml(text: str, where: str) -> Any:
    """Parse YAML as YAML 1.2 reads numbers (`1e-4` is a float; PyYAML's YAML 1.1 makes it a string);
    a syntax error becomes one line naming `where` and the position."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    # YAML 1.2's floats without a dot: 1e-4, -2E+3 (with a dot they resolve already).
    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+$"), list("-+0123456789")
    )
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ValueError(f"{where} is not valid YAML{at}: {problem}") from None


def load_spec(profile: str = "ci", path: str | Path | None = None, overrides: list[str] = ()) -> RunSpec:
    """A RunSpec from `path` (default: the profile's file in configs/) with `key.sub=value` overrides."""
    path = Path(path) if path is not None else CONFIG_DIR / f"{check_choice('profile', profile, PROFILES)}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"no spec file at {str(path)!r}")
    data = read_yaml(path.read_text(), str(path)) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping of spec keys, got {type(data).__name__}")
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value, e.g. train.lr=1e-3")
        key, raw = item.split("=", 1)
        set_path(data, key.strip(), read_yaml(raw, f"--set {item!r}"))
    return RunSpec.from_dict(data)
