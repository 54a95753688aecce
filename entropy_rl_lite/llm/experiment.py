"""Experiments: the compare pipeline that runs a spec (`spec.RunSpec`: model, task, warm start, LoRA, algorithms).

One spec describes the whole capstone comparison; `configs/<profile>.yaml` holds one per profile:

    warm start (supervised, once)  ->  for each algorithm:  phase 1 RL on `task`  ->  phase 2 RL on `phase2_task`

Every phase logs JSONL (+ sidecar) under one output directory:

    out/spec.yaml                   the resolved spec (what actually ran)
    out/warm_start/                 the warm-started model (HF format: `--model out/warm_start` reloads it)
    out/phase1/<algo>.jsonl         per-step metrics; <algo>.meta.json beside it
    out/phase1/<algo>/              final checkpoint (Trainer.resume continues it); merged/ for LoRA runs
    out/phase2/<algo>.jsonl         the sequential-learning phase
    out/warm_start.summary.json     its evaluation; out/<algo>.summary.json: each algorithm's (written when it finishes)
    out/summary.json                evaluations after each phase, entropy change, wall times
    out/run.meta.json               hardware, versions, seed, git commit, wall time

`prune_checkpoints(out)` (CLI: `--logs-only`) removes the model directories afterwards, leaving what to commit.
A non-empty `out` is refused unless the run overwrites or resumes it (`outdir.prepare_out`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .._checks import check_int
from ..logs import run_metadata
from .atomic import write_atomically
from .evaluate import evaluate
from .model import build_model, load_model, quiet_progress
from .outdir import prepare_out, write_json
from .spec import CONFIG_DIR, TASKS, LoraSpec, RunSpec, TaskSpec, WarmStartSpec, load_spec, set_path
from .tokenizer import CharTokenizer, load_tokenizer
from .trainer import Trainer
from .warmstart import warm_start

__all__ = [
    "CONFIG_DIR",
    "TASKS",
    "LoraSpec",
    "RunSpec",
    "TaskSpec",
    "WarmStartSpec",
    "load_spec",
    "prepare_base",
    "prune_checkpoints",
    "run_algorithm",
    "run_compare",
    "set_path",
]  # the specs live in spec.py

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
        warm_start(
            model,
            tok,
            task,
            spec.warm_start.steps,
            spec.warm_start.batch_size,
            spec.warm_start.lr,
            seed=spec.seed,
            progress=progress,
        )

    def write(tmp: Path) -> None:
        with quiet_progress():
            model.save_pretrained(tmp)
        tok.save_pretrained(tmp)

    write_atomically(out / "warm_start", write)
    result = {"eval": _evaluate(model, tok, task, spec), "wall_s": time.perf_counter() - t0}
    write_json(out / "warm_start.summary.json", result)
    return result


def _phase(
    spec: RunSpec, name: str, phase: int, base: Path, out: Path, device: str | torch.device, progress: bool
) -> tuple[dict[str, Any], Path]:
    """Train one algorithm for one phase from the HF model at `base`; returns (summary, merged model dir)."""
    task = spec.task.make() if phase == 1 else spec.phase2_task.make()
    tok = load_tokenizer(base)
    log_dir = out / f"phase{phase}"
    cfg = spec.train_config(name, phase, out)
    model = load_model(base, dtype=cfg.torch_dtype)  # TrainConfig.dtype decides the weights' dtype
    if spec.lora is not None:
        model = spec.lora.apply(model, seed=spec.seed)
    trainer = Trainer(
        cfg, task, model=model, tokenizer=tok, device=device, base_model_path=str(Path(base).resolve())
    )  # absolute: resume works from any directory
    t0 = time.perf_counter()
    rows = trainer.train(progress=progress, desc=f"{name} · phase {phase}")
    wall = time.perf_counter() - t0
    ckpt = trainer.save(log_dir / name)
    merged = ckpt
    if spec.lora is not None:  # the next phase starts from the adapted weights, folded into a plain model
        merged = ckpt / "merged"
        with quiet_progress():
            trainer.model.merge_and_unload().save_pretrained(merged)
        tok.save_pretrained(merged)
    summary = {
        "eval": _evaluate(trainer.model, tok, task, spec),
        "wall_s": wall,
        "steps": len(rows),
        "entropy_start": rows[0]["entropy"] if rows else None,
        "entropy_end": rows[-1]["entropy"] if rows else None,
        "cumulative_entropy": sum(r["entropy"] for r in rows),
        "tokens_per_s": sum(r["tokens"] for r in rows) / sum(r["step_time_s"] for r in rows) if rows else None,
        "mfu_mean": (sum(r["mfu"] for r in rows) / len(rows)) if rows and rows[0]["mfu"] is not None else None,
    }
    return summary, merged


def run_algorithm(
    spec: RunSpec, name: str, out: str | Path, device: str | torch.device | None = None, progress: bool = True
) -> dict[str, Any]:
    """Phase 1 (and phase 2 if the spec has a second task) for one algorithm, from out/warm_start."""
    out = Path(out)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    result = {}
    result["phase1"], merged = _phase(spec, name, 1, out / "warm_start", out, device, progress)
    if spec.phase2_task is not None:
        result["phase2"], _ = _phase(spec, name, 2, merged, out, device, progress)
    write_json(out / f"{name}.summary.json", result)  # last: its presence marks the algorithm finished
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


def run_compare(
    spec: RunSpec,
    out: str | Path,
    algorithms: list[str] | None = None,
    jobs: int = 1,
    device: str | None = None,
    progress: bool = True,
    mode: str = "new",
) -> dict[str, Any]:
    """Warm start once, then every algorithm (in `jobs` parallel processes when > 1); write summary + sidecar.

    mode: "new" (out must be empty), "overwrite" (replace a previous run) or "resume" (finish one: see outdir).
    """
    import yaml

    names = list(spec.algorithms) if algorithms is None else algorithms
    for n in names:
        spec.train_config(n)  # unknown names fail here
    check_int("jobs", jobs, low=1)
    device = str(check_device(device))
    if spec.model:
        check_model_dir(spec.model)
    out = Path(out)
    finished = prepare_out(out, spec.to_dict(), mode)  # the last check: from here on, files are written
    (out / "spec.yaml").write_text(yaml.safe_dump(spec.to_dict(), sort_keys=False))
    t0 = time.perf_counter()
    base_done = (out / "warm_start.summary.json").is_file() and (out / "warm_start").is_dir()
    summary: dict[str, Any] = {
        "warm_start": _read_json(out / "warm_start.summary.json")
        if base_done
        else prepare_base(spec, out, device, progress)
    }
    todo = [n for n in names if n not in finished]
    if jobs == 1:
        for n in todo:
            run_algorithm(spec, n, out, device, progress)
    else:  # one process per algorithm, `jobs` at a time: small models leave most of a GPU idle
        _run_in_processes(todo, jobs, out, device)
    for n in names:
        summary[n] = _read_json(out / f"{n}.summary.json")
    wall = time.perf_counter() - t0
    write_json(out / "summary.json", summary)
    meta = {
        **run_metadata(device),
        "seed": spec.seed,
        "profile": spec.profile,
        "algorithms": names,
        "jobs": jobs,
        "wall_s": wall,
        "resumed": finished if mode == "resume" else None,
        "spec": spec.to_dict(),
    }
    write_json(out / "run.meta.json", meta)
    return summary


def _read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def check_device(device: str | torch.device | None) -> torch.device:
    """The device to train on (None: cuda when available, else cpu); one that this machine lacks fails in one line."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device {device!r} is not a device name (cpu, cuda, cuda:1, ...): {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise ValueError(f"--device {device!r}: {why}; use --device cpu (or leave --device out)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type not in ("cpu", "mps"):
        raise ValueError(f"--device {device!r}: only cpu and cuda devices are supported")
    return dev


def check_model_dir(path: str | Path) -> None:
    """A --model directory holds a model and a tokenizer that load without running their own code."""
    from .model import refuse_remote_code

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"--model {str(path)!r}: no such directory (a model is a local save_pretrained directory; "
            "hub ids are not downloaded, by design: download it yourself and pass its path)"
        )
    missing = [n for n in ("config.json", "tokenizer_config.json") if not (path / n).is_file()]
    if missing:
        raise FileNotFoundError(f"--model {str(path)!r} lacks {missing} (as save_pretrained writes them)")
    for name in ("config.json", "tokenizer_config.json"):
        refuse_remote_code(path / name)


def _run_in_processes(names: list[str], jobs: int, out: Path, device: str) -> None:
    """Run `erl-train one` for each algorithm, `jobs` processes at a time; the first failure stops them all."""
    pending, running = list(names), []
    try:
        while pending or running:
            while pending and len(running) < jobs:
                n = pending.pop(0)
                log = (out / f"{n}.stderr.log").open("w")
                cmd = [
                    sys.executable,
                    "-m",
                    "entropy_rl_lite.llm.train",
                    "one",
                    "--spec",
                    str(out / "spec.yaml"),
                    "--algo",
                    n,
                    "--out",
                    str(out),
                    "--device",
                    str(device),
                ]
                running.append((n, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT), log))
            time.sleep(0.5)
            for item in [r for r in running if r[1].poll() is not None]:
                n, proc, log = item
                log.close()
                running.remove(item)
                if proc.returncode:
                    raise RuntimeError(
                        f"algorithm {n!r} failed (exit {proc.returncode}); see {out / (n + '.stderr.log')}"
                    )
    finally:  # one failure (or Ctrl-C) stops the other workers instead of leaving them running
        for _, proc, log in running:
            proc.terminate()
            proc.wait()
            log.close()
