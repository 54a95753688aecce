"""Our trainer against TRL's GRPOTrainer on the same work, on this CPU: seconds per generation batch.

Same model (the ci profile, warm-started once, identical weights for both), same task (SumTo), same
batch (P prompts × G completions), same generation length (4 tokens), same PPO-clip loss with GRPO
advantages and (ε_low, ε_high) = (0.2, 0.28), same number of updates per batch (E), same optimizer
(AdamW, lr 1e-3), fp32, one process, 2 threads. One unit of work = one generation batch plus its E updates:

  ours  `Trainer.step()` with epochs=E, minibatches=1
  TRL   E optimizer steps of GRPOTrainer with num_iterations=E, per_device_train_batch_size=P·G,
        num_generations=G, gradient_accumulation_steps=1 (one generation batch per E optimizer steps)

Where the time goes, per unit: generation (ours: `sample`; TRL: `_generate`), log-probs (ours: the no-grad
fp32 scoring pass; TRL: its old-log-prob pass), and the updates (forward + backward + optimizer). Ours are
the trainer's own timers; TRL's are wall-clock wrappers around its methods. Medians over the timed units.

    .venv/bin/python benchmarks/trl_vs_ours.py                # P=8, G=8, E=2, 20 timed units, 3 rounds
    .venv/bin/python benchmarks/trl_vs_ours.py --prompts 16 --group 8 --epochs 4
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore", category=FutureWarning)  # TRL/transformers renamed-API notices

from entropy_rl_lite.llm import CharTokenizer, TrainConfig, Trainer, build_model, warm_start  # noqa: E402
from environments.text_tasks import SumToEnv  # noqa: E402


def time_ours(model, tok, task, P: int, G: int, E: int, units: int, warmup: int) -> dict[str, float]:
    cfg = TrainConfig(
        steps=units + warmup,
        prompts_per_step=P,
        group_size=G,
        max_new_tokens=4,
        epochs=E,
        minibatches=1,
        lr=1e-3,
        objective="ppo",
        advantage="grpo",
        eps_low=0.2,
        eps_high=0.28,
        max_grad_norm=1.0,
        pass_k=1,
    )
    rows = Trainer(cfg, task, model=model, tokenizer=tok).train(progress=False)[warmup:]
    med = lambda k: statistics.median(r[k] for r in rows)  # noqa: E731
    return {
        "unit_s": med("step_time_s"),
        "generate_s": med("rollout_time_s"),
        "update_s": med("update_time_s"),
        "logprob_s": statistics.median(r["step_time_s"] - r["rollout_time_s"] - r["update_time_s"] for r in rows),
    }


def time_trl(model, tok, task, P: int, G: int, E: int, units: int, warmup: int, out: str) -> dict[str, float]:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def reward(prompts, completions, **_):
        return [float(task.verify(p, c)) for p, c in zip(prompts, completions)]

    args = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=P * G,
        num_generations=G,
        max_completion_length=4,
        num_iterations=E,
        gradient_accumulation_steps=1,
        max_steps=E * (units + warmup),
        learning_rate=1e-3,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        max_grad_norm=1.0,
        beta=0.0,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=0.28,
        top_k=0,
        top_p=1.0,
        temperature=1.0,
        use_cpu=True,
        bf16=False,
        report_to=[],
        logging_steps=10**6,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        processing_class=tok,
        train_dataset=Dataset.from_dict({"prompt": list(task.prompts) * (P * (units + warmup))}),
    )
    timers = {"generate": 0.0, "logprob": 0.0}
    marks: list[tuple[float, float, float]] = []

    def wrap(name: str, fn):
        def timed(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                timers[name] += time.perf_counter() - t0

        return timed

    trainer._generate = wrap("generate", trainer._generate)
    real_logps = trainer._get_per_token_logps_and_entropies

    def logps(*a, **k):  # only the no-grad old-log-prob pass counts here; the loss pass is part of the update
        if torch.is_grad_enabled():
            return real_logps(*a, **k)
        return wrap("logprob", real_logps)(*a, **k)

    trainer._get_per_token_logps_and_entropies = logps
    real_step = trainer.training_step
    n = {"steps": 0}

    def step(*a, **k):
        out_ = real_step(*a, **k)
        n["steps"] += 1
        if n["steps"] % E == 0:  # a unit ends after its E-th optimizer step
            marks.append((time.perf_counter(), timers["generate"], timers["logprob"]))
        return out_

    trainer.training_step = step
    t_start = time.perf_counter()
    marks.append((t_start, 0.0, 0.0))
    trainer.train()
    units_ = [(b[0] - a[0], b[1] - a[1], b[2] - a[2]) for a, b in zip(marks, marks[1:])][warmup:]
    # unit wall time includes the optimizer steps between training_step calls; close enough at E steps per unit
    return {
        "unit_s": statistics.median(u[0] for u in units_),
        "generate_s": statistics.median(u[1] for u in units_),
        "logprob_s": statistics.median(u[2] for u in units_),
        "update_s": statistics.median(u[0] - u[1] - u[2] for u in units_),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--group", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=2, help="updates per generation batch (TRL: num_iterations)")
    ap.add_argument("--units", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="alternate ours/TRL this many times (the machine is noisy)")
    ap.add_argument("--out", default="/tmp/erl_trl_bench")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import transformers
    import trl

    load = os.getloadavg()[0]
    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}, python "
        f"{platform.python_version()}, threads {torch.get_num_threads()}, load average at start: {load:.2f}"
    )
    tok, task = CharTokenizer(), SumToEnv()
    base = build_model(tok, "ci", seed=0)
    warm_start(base, tok, task, steps=300, batch_size=64)
    P, G, E = args.prompts, args.group, args.epochs
    print(
        f"work per unit: {P} prompts × {G} completions, ≤ 4 new tokens, {E} PPO-clip updates; "
        f"{args.units} timed units after {args.warmup}"
    )
    ratios = []
    print(f"{'round':6s} {'':5s} {'s/unit':>8s} {'generate':>9s} {'log-probs':>10s} {'updates':>8s}")
    for r in range(args.rounds):  # alternate, so slow spells of the shared machine hit both sides
        ours = time_ours(copy.deepcopy(base), tok, task, P, G, E, args.units, args.warmup)
        theirs = time_trl(copy.deepcopy(base), tok, task, P, G, E, args.units, args.warmup, args.out)
        for name, t in (("ours", ours), ("TRL", theirs)):
            print(
                f"{r:<6d} {name:5s} {t['unit_s']:8.4f} {t['generate_s']:9.4f} {t['logprob_s']:10.4f} "
                f"{t['update_s']:8.4f}"
            )
        ratios.append(ours["unit_s"] / theirs["unit_s"])
    print(
        "ratio ours / TRL per round: "
        + ", ".join(f"{x:.2f}" for x in ratios)
        + f"; median {statistics.median(ratios):.2f} (goal <= 0.5)"
    )


if __name__ == "__main__":
    main()
