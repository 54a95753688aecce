"""Throughput of the Part II trainer per profile: completion tokens per second and seconds per RL step.

For each profile the same run: a model of that size, warm-started on SumTo so completions have their
trained length (a random model babbles to the token budget), then `--steps` RL iterations of chapter 10's
configuration (8 prompts × 8 completions, 2 epochs × 2 minibatches, PPO-clip with GRPO advantages),
after `--warmup` untimed iterations. The trainer measures each step itself (`step_time_s`, `tokens_per_s`:
completion tokens of the batch, end token included, divided by the step's wall time; `rollout_time_s`:
the `generate` share). We report medians over the timed steps.

    .venv/bin/python benchmarks/trainer_throughput.py                 # ci and cpu profiles
    .venv/bin/python benchmarks/trainer_throughput.py --profiles gpu  # the 75M model (on CPU: slow)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `environments` lives at the repo root

from entropy_rl_lite.llm import (
    CharTokenizer,
    TrainConfig,
    Trainer,
    build_model,
    count_parameters,  # noqa: E402
    warm_start,
)
from environments.text_tasks import SumToEnv  # noqa: E402


def measure(profile: str, steps: int, warmup: int, warm_steps: int, device: str) -> dict[str, float]:
    """Warm-start a `profile` model, then time `steps` trainer iterations; returns medians."""
    tok, task = CharTokenizer(), SumToEnv()
    model = build_model(tok, profile, seed=0).to(device)
    t0 = time.perf_counter()
    warm_start(model, tok, task, steps=warm_steps, batch_size=64, lr=3e-3 if profile == "ci" else 1e-3)
    t_warm = time.perf_counter() - t0
    cfg = TrainConfig(
        profile=profile,
        steps=warmup + steps,
        prompts_per_step=8,
        group_size=8,
        epochs=2,
        minibatches=2,
        lr=1e-3 if profile == "ci" else 3e-4,
    )
    trainer = Trainer(cfg, task, model=model, tokenizer=tok, device=device)
    rows = trainer.train(progress=False)[warmup:]
    med = {
        k: statistics.median(r[k] for r in rows) for k in ("step_time_s", "rollout_time_s", "tokens_per_s", "tokens")
    }
    return {
        "params": count_parameters(model),
        "warm_start_s": t_warm,
        "warm_steps": warm_steps,
        **med,
        "reward_last": rows[-1]["reward"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", nargs="+", default=["ci", "cpu"])
    ap.add_argument("--steps", type=int, default=20, help="timed RL steps per profile")
    ap.add_argument("--warmup", type=int, default=2, help="untimed RL steps first")
    ap.add_argument("--warm-steps", type=int, default=300, help="supervised warm-start steps")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"torch {torch.__version__}, python {platform.python_version()}, device {args.device}, "
        f"torch.get_num_threads() = {torch.get_num_threads()}, load average at start: {load:.2f}"
    )
    print(
        f"{'profile':8s} {'params':>11s} {'warm start':>14s} {'s/step':>8s} {'rollout':>8s} {'tokens/step':>12s} "
        f"{'tokens/s':>9s} {'reward':>7s}"
    )
    for profile in args.profiles:
        m = measure(profile, args.steps, args.warmup, args.warm_steps, args.device)
        print(
            f"{profile:8s} {m['params']:>11,d} {m['warm_start_s']:>6.1f} s/{m['warm_steps']:<4d}st "
            f"{m['step_time_s']:>8.3f} {m['rollout_time_s']:>8.3f} {m['tokens']:>12.0f} {m['tokens_per_s']:>9.0f} "
            f"{m['reward_last']:>7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
