"""Experiments: a run spec (model, task, warm start, LoRA, algorithms) and the compare pipeline.

One spec describes the whole capstone comparison; `configs/<profile>.yaml` holds one per profile:

    warm start (supervised, once)  ->  for each algorithm:  phase 1 RL on `task`  ->  phase 2 RL on `phase2_task`

Every phase logs JSONL (+ sidecar) under one output directory:

    out/spec.yaml                   the resolved spec (what actually ran)
    out/warm_start/                 the warm-started model (HF format: `--model out/warm_start` reloads it)
    out/phase1/<algo>.jsonl         per-step metrics; <algo>.meta.json beside it
    out/phase1/<algo>/              final checkpoint (Trainer.resume continues it); merged/ for LoRA runs
    out/phase2/<algo>.jsonl         the sequential-learning phase
    out/summary.json                evaluations after each phase, entropy change, wall times
    out/run.meta.json               hardware, versions, seed, git commit, wall time

`prune_checkpoints(out)` (CLI: `--logs-only`) removes the model directories afterwards, leaving what to commit.
"""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._checks import check_choice, check_int, check_number
from .config import TrainConfig
from .evaluate import evaluate
from ..logs import run_metadata
from .model import build_model, load_model, quiet_peft, quiet_progress
from .profiles import PROFILES
from .tokenizer import CharTokenizer, load_tokenizer
from .trainer import Trainer
from .warmstart import warm_start

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
        config = peft.LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                                 target_modules=targets, task_type="CAUSAL_LM")
        with quiet_peft(), torch.random.fork_rng(devices=[]):
            torch.random.default_generator.manual_seed(seed)
            return peft.get_peft_model(model, config)


@dataclass(frozen=True)
class RunSpec:
    """Everything one comparison needs. `train` holds TrainConfig fields shared by every algorithm;
    `algorithms` maps a name to its own TrainConfig overrides; `phase2` overrides for the second task."""

    profile: str = "ci"
    seed: int = 0
    model: str | None = None               # local checkpoint path; None builds a random `profile` model
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
                raise ValueError(f"algorithms.{algo} must be a mapping of TrainConfig fields ({{}} for none), "
                                 f"got {overrides!r}")
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
        raise ValueError(f"unknown spec key(s) {[prefix + k for k in unknown]}; known: {sorted(prefix + k for k in known)}")


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


# -- running -----------------------------------------------------------------------------------------

def _evaluate(model: Any, tok: Any, task: Any, spec: RunSpec) -> dict[str, Any]:
    ev = evaluate(model, tok, task, samples_per_prompt=spec.eval_samples, ks=spec.eval_ks, seed=spec.seed)
    return {k: v for k, v in ev.items() if k != "per_prompt"}


def prepare_base(spec: RunSpec, out: Path, device: str | torch.device, progress: bool = True) -> dict[str, Any]:
    """Build or load the model, warm-start it, save it to out/warm_start; returns its evaluation."""
    if spec.model:  # a local checkpoint brings its own tokenizer (a CharTokenizer, or any transformers one)
        tok, model = load_tokenizer(spec.model), load_model(spec.model)
    else:
        tok = CharTokenizer()
        model = build_model(tok, spec.profile, seed=spec.seed)
    model = model.to(device)
    task = spec.task.make()
    t0 = time.perf_counter()
    if spec.warm_start is not None and spec.warm_start.steps:
        warm_start(model, tok, task, spec.warm_start.steps, spec.warm_start.batch_size, spec.warm_start.lr,
                   seed=spec.seed, progress=progress)
    with quiet_progress():
        model.save_pretrained(out / "warm_start")
    tok.save_pretrained(out / "warm_start")
    return {"eval": _evaluate(model, tok, task, spec), "wall_s": time.perf_counter() - t0}


def _phase(spec: RunSpec, name: str, phase: int, base: Path, out: Path, device: str | torch.device,
           progress: bool) -> tuple[dict[str, Any], Path]:
    """Train one algorithm for one phase from the HF model at `base`; returns (summary, merged model dir)."""
    task = spec.task.make() if phase == 1 else spec.phase2_task.make()
    tok = load_tokenizer(base)
    log_dir = out / f"phase{phase}"
    cfg = spec.train_config(name, phase).replace(log_path=str(log_dir / f"{name}.jsonl"))
    model = load_model(base, dtype=cfg.torch_dtype)  # TrainConfig.dtype decides the weights' dtype
    if spec.lora is not None:
        model = spec.lora.apply(model, seed=spec.seed)
    trainer = Trainer(cfg, task, model=model, tokenizer=tok, device=device,
                      base_model_path=str(Path(base).resolve()))  # absolute: resume works from any directory
    t0 = time.perf_counter()
    rows = trainer.train(progress=progress)
    wall = time.perf_counter() - t0
    ckpt = trainer.save(log_dir / name)
    merged = ckpt
    if spec.lora is not None:  # the next phase starts from the adapted weights, folded into a plain model
        merged = ckpt / "merged"
        with quiet_progress():
            trainer.model.merge_and_unload().save_pretrained(merged)
        tok.save_pretrained(merged)
    summary = {"eval": _evaluate(trainer.model, tok, task, spec), "wall_s": wall, "steps": len(rows),
               "entropy_start": rows[0]["entropy"] if rows else None,
               "entropy_end": rows[-1]["entropy"] if rows else None,
               "cumulative_entropy": sum(r["entropy"] for r in rows),
               "tokens_per_s": sum(r["tokens"] for r in rows) / sum(r["step_time_s"] for r in rows) if rows else None,
               "mfu_mean": (sum(r["mfu"] for r in rows) / len(rows)) if rows and rows[0]["mfu"] is not None else None}
    return summary, merged


def run_algorithm(spec: RunSpec, name: str, out: str | Path, device: str | torch.device | None = None,
                  progress: bool = True) -> dict[str, Any]:
    """Phase 1 (and phase 2 if the spec has a second task) for one algorithm, from out/warm_start."""
    out = Path(out)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = {}
    result["phase1"], merged = _phase(spec, name, 1, out / "warm_start", out, device, progress)
    if spec.phase2_task is not None:
        result["phase2"], _ = _phase(spec, name, 2, merged, out, device, progress)
    (out / f"{name}.summary.json").write_text(json.dumps(result, indent=1))
    return result


def prune_checkpoints(out: str | Path) -> list[Path]:
    """Delete the model directories of a compare run (warm_start/, phase*/<algo>/), keeping logs, sidecars,
    summary.json, run.meta.json and spec.yaml: what a committed run needs (chapters/data/). Returns what it removed."""
    import shutil

    out = Path(out)
    removed = [d for d in [out / "warm_start", *sorted(out.glob("phase*/*"))] if d.is_dir()]
    for d in removed:
        shutil.rmtree(d)
    return removed


def run_compare(spec: RunSpec, out: str | Path, algorithms: list[str] | None = None, jobs: int = 1,
                device: str | None = None, progress: bool = True) -> dict[str, Any]:
    """Warm start once, then every algorithm (in `jobs` parallel processes when > 1); write summary + sidecar."""
    import yaml

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(spec.algorithms) if algorithms is None else algorithms
    for n in names:
        spec.train_config(n)  # unknown names fail here
    check_int("jobs", jobs, low=1)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    (out / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    t0 = time.perf_counter()
    summary: dict[str, Any] = {"warm_start": prepare_base(spec, out, device, progress)}
    if jobs == 1:
        for n in names:
            summary[n] = run_algorithm(spec, n, out, device, progress)
    else:  # one process per algorithm, `jobs` at a time: small models leave most of a GPU idle
        pending, running = list(names), []
        try:
            while pending or running:
                while pending and len(running) < jobs:
                    n = pending.pop(0)
                    log = (out / f"{n}.stderr.log").open("w")
                    cmd = [sys.executable, "-m", "entropy_rl_lite.llm.train", "one", "--spec", str(out / "spec.yaml"),
                           "--algo", n, "--out", str(out), "--device", str(device)]
                    running.append((n, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
                time.sleep(0.5)
                for item in list(running):
                    n, proc, log = item
                    if proc.poll() is not None:
                        log.close()
                        running.remove(item)
                        if proc.returncode:
                            raise RuntimeError(f"algorithm {n!r} failed (exit {proc.returncode}); "
                                               f"see {out / (n + '.stderr.log')}")
        finally:  # one failure (or Ctrl-C) stops the other workers instead of leaving them running
            for _, proc, log in running:
                proc.terminate()
                proc.wait()
                log.close()
        for n in names:
            summary[n] = json.loads((out / f"{n}.summary.json").read_text())
    wall = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    meta = {**run_metadata(device), "seed": spec.seed, "profile": spec.profile, "algorithms": names, "jobs": jobs,
            "wall_s": wall, "spec": spec.to_dict()}
    (out / "run.meta.json").write_text(json.dumps(meta, indent=1))
    return summary
