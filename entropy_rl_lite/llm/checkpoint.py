"""Checkpoints: weights and tensor state in safetensors, everything else in JSON.

A checkpoint directory holds
    config.json, model.safetensors, ...  the model, as `save_pretrained` writes it (so `load_model` reads it);
                                          for a LoRA run, adapter_config.json + adapter weights instead
    tokenizer_config.json                 the tokenizer
    trainer_state.safetensors             optimizer moments and step counts, RNG states (as uint8 tensors)
    trainer_state.json                    TrainConfig, step, controller states, optimizer hyperparameters,
                                          task description, library and torch versions
Every float is stored bit-exactly (safetensors for tensors; JSON floats round-trip through repr), which
is what lets a resumed run reproduce an uninterrupted one.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor

from .atomic import recover, write_atomically
from .config import TrainConfig
from .model import RemoteCodeRefused, load_model, quiet_peft, quiet_progress
from .tokenizer import load_tokenizer

# Fields a resumed run cannot change: the optimizer's kind, the model, the random streams, which controllers exist.
FIXED_ON_RESUME = (
    "profile",
    "dtype",
    "seed",
    "optimizer",
    "adapo",
    "zeta_control",
    "entropy_coef_control",
    "target_entropy",
)

STATE_JSON = "trainer_state.json"
STATE_TENSORS = "trainer_state.safetensors"


def optimizer_state(opt: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Split `opt.state_dict()` into (tensors keyed "state.<param>.<name>", JSON-able rest)."""
    sd = opt.state_dict()
    tensors, plain = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        for name, v in st.items():
            if isinstance(v, Tensor):
                tensors[f"state.{idx}.{name}"] = v.detach().cpu().contiguous()
            else:
                plain["state"].setdefault(str(idx), {})[name] = v
    return tensors, plain


def load_optimizer_state(opt: torch.optim.Optimizer, tensors: dict[str, Tensor], plain: dict[str, Any]) -> None:
    """Inverse of `optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        if key.startswith("state."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = v
    for idx, st in plain["state"].items():
        state.setdefault(int(idx), {}).update(st)
    opt.load_state_dict({"state": state, "param_groups": plain["param_groups"]})


class CheckpointError(ValueError):
    """A checkpoint that cannot be resumed: the message names the file and what is wrong with it."""


def save_state(directory: str | Path, tensors: dict[str, Tensor], state: dict[str, Any]) -> None:
    """Write the trainer's tensor and JSON state into `directory` (created if needed)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / STATE_TENSORS))
    (directory / STATE_JSON).write_text(json.dumps(state, indent=1))


# What `resume_trainer` reads from trainer_state.json, and the types it needs.
STATE_KEYS = {"step": int, "config": dict, "task": dict, "optimizer": dict, "controllers": dict}


def load_state(directory: str | Path) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Read what `save_state` wrote. A missing checkpoint raises FileNotFoundError; a damaged one
    CheckpointError naming the file and the problem."""
    directory = recover(directory)
    missing = [n for n in (STATE_JSON, STATE_TENSORS) if not (directory / n).is_file()]
    if not (directory / "config.json").is_file() and not (directory / "adapter_config.json").is_file():
        missing.append("config.json (model) or adapter_config.json (LoRA adapters)")
    if missing:
        raise FileNotFoundError(f"{str(directory)!r} is not a complete checkpoint: missing {missing}")
    json_file, tensor_file = directory / STATE_JSON, directory / STATE_TENSORS
    try:
        state = json.loads(json_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{json_file}: not valid JSON ({e}); the checkpoint is damaged") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{json_file}: expected a JSON object, got {type(state).__name__}")
    for key, kind in STATE_KEYS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            got = "nothing" if key not in state else type(state[key]).__name__
            raise CheckpointError(f"{json_file}: {key!r} must be a {kind.__name__}, found {got}")
    if state["step"] < 0:
        raise CheckpointError(f"{json_file}: 'step' must be >= 0, found {state['step']}")
    try:
        tensors = load_file(str(tensor_file))
    except Exception as e:  # safetensors raises its own SafetensorError (and OSError) for a cut or garbled file
        problem = f"unreadable ({type(e).__name__}: {e})"
        raise CheckpointError(f"{tensor_file}: {problem}; the checkpoint is damaged") from None
    needed = ["rng.generator"] + ([] if any(k.startswith("rng.sample.") for k in tensors) else ["rng.sample.cpu"])
    absent = [k for k in needed if k not in tensors]
    if absent:
        raise CheckpointError(f"{tensor_file}: lacks the tensors {absent}; the checkpoint is damaged")
    return tensors, state


def task_info(task: Any) -> dict[str, Any]:
    """What identifies a task, saved with a checkpoint so resuming on a different task fails loudly."""
    return {
        "class": type(task).__name__,
        "prompts": list(task.prompts),
        "max_len": task.max_len,
        "shift": getattr(task, "shift", None),
    }


def is_peft(model: Any) -> bool:
    """Whether `model` is a peft wrapper (peft is optional: without it nothing can be one)."""
    try:
        import peft
    except ImportError:
        return False
    return isinstance(model, peft.PeftModel)


def resume_config(saved: TrainConfig, overrides: dict[str, Any]) -> TrainConfig:
    """The saved TrainConfig with `overrides` applied; refuses to change the FIXED_ON_RESUME fields."""
    fixed = [k for k, v in overrides.items() if k in FIXED_ON_RESUME and v != getattr(saved, k)]
    if fixed:
        raise ValueError(
            f"cannot change {fixed} when resuming: they fix the optimizer, the model, the random "
            f"streams or which controllers exist; start a new run instead. Changeable: everything "
            f"else (steps, lr, weight_decay, eps_*, zeta_max, log_path, ...)"
        )
    return saved.replace(**overrides)


def load_checkpoint_model(directory: str | Path, base_model_path: str | None) -> torch.nn.Module:
    """The model of a checkpoint: its weights, or for a LoRA run the frozen base with the saved adapters."""
    try:
        if base_model_path is None:
            return load_model(directory)
        import peft

        with quiet_peft():
            return peft.PeftModel.from_pretrained(load_model(base_model_path), directory, is_trainable=True)
    except (FileNotFoundError, RemoteCodeRefused):
        raise
    except Exception as e:  # transformers/safetensors/peft raise OSError, SafetensorError, RuntimeError, ...
        raise CheckpointError(
            f"{str(directory)!r}: the model weights do not load ({type(e).__name__}: {e}); the checkpoint is damaged"
        ) from None


def save_trainer(trainer: Any, directory: str | Path) -> Path:
    """Write `trainer`'s checkpoint (model and tokenizer as save_pretrained writes them, then the trainer
    state) into a sibling directory and swap it in: a kill at any instant leaves the old or the new one whole."""
    directory = Path(directory)
    lora = is_peft(trainer.model)
    if lora and trainer.base_model_path is None:
        raise ValueError(
            "saving a LoRA run needs base_model_path (the local directory of the base weights) "
            "so that Trainer.resume can rebuild the model"
        )
    recover(directory)
    if directory.exists() and (not directory.is_dir() or (any(directory.iterdir()) and not is_checkpoint(directory))):
        raise ValueError(
            f"refusing to save over {str(directory)!r}: it exists and is not a checkpoint "
            f"(a checkpoint holds {STATE_JSON}); saving replaces the whole directory"
        )
    tensors, opt_plain = optimizer_state(trainer.optimizer)
    tensors.update({f"rng.sample.{k}": v for k, v in trainer.sample_rng.items()})
    tensors["rng.generator"] = trainer.generator.get_state()
    state = {
        "step": trainer.step_count,
        "config": trainer.config.to_dict(),
        "task": task_info(trainer.task),
        "base_model_path": trainer.base_model_path if lora else None,
        "optimizer": opt_plain,
        "controllers": trainer.controls.state_dict(),
        "versions": {"entropy_rl_lite": importlib.metadata.version("entropy_rl_lite"), "torch": torch.__version__},
    }

    def write(tmp: Path) -> None:
        with quiet_progress():
            trainer.model.save_pretrained(tmp)  # a peft model writes only its adapters
        trainer.tokenizer.save_pretrained(tmp)
        save_state(tmp, tensors, state)

    return write_atomically(directory, write)


def is_checkpoint(directory: str | Path) -> bool:
    """Whether `directory` holds a trainer checkpoint (whole or damaged: it has the trainer's state file)."""
    return (Path(directory) / STATE_JSON).is_file()


def resume_trainer(trainer_cls: type, directory: str | Path, task: Any, device: Any, overrides: dict[str, Any]) -> Any:
    """A `trainer_cls` (Trainer) continuing exactly where `save_trainer` left it, with `overrides` applied."""
    tensors, state = load_state(directory)
    where = Path(directory) / STATE_JSON
    if state["task"] != task_info(task):
        raise ValueError(f"checkpoint was written for task {state['task']}, not {task_info(task)}")
    try:
        saved = TrainConfig.from_dict(state["config"])
    except (ValueError, TypeError) as e:
        raise CheckpointError(f"{where}: its config does not validate: {e}") from None
    config = resume_config(saved, overrides)
    base = state.get("base_model_path")
    model, tokenizer = load_checkpoint_model(directory, base), load_tokenizer(directory)
    trainer = trainer_cls(config, task, model=model, tokenizer=tokenizer, device=device, base_model_path=base)
    moments = {k: v for k, v in tensors.items() if k.startswith("state.")}
    try:
        load_optimizer_state(trainer.optimizer, moments, state["optimizer"])
        trainer.generator.set_state(tensors["rng.generator"])
        trainer.controls.load_state_dict(state["controllers"])
    except (ValueError, TypeError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"{directory}: the trainer state does not load ({type(e).__name__}: {e})") from None
    for group in trainer.optimizer.param_groups:  # the saved groups carry the old values; the config wins
        group["lr"], group["weight_decay"] = config.lr, config.weight_decay
    trainer.sample_rng = {k.removeprefix("rng.sample."): v for k, v in tensors.items() if k.startswith("rng.sample.")}
    trainer.step_count = state["step"]
    trainer.resumed_from = str(directory)
    if trainer.log:
        trainer.log.truncate_from(trainer.step_count)  # the interrupted run may have logged past the checkpoint
    return trainer
