"""Speed of the batched bandit engine against a plain per-seed Python loop doing the same updates.

Both sides train softmax policies over `arms` arms with the *exact* GRPO policy gradient: every arm is
weighted by π_old, and the group statistics (mean and std) are taken under π_old:

    A(a) = (R(a) - E_π R) / (std_π R + 1e-6)          (population std under π)
    loss = -Σ_a π_old(a) · A(a) · log π(a)            z ← z - lr · ∂loss/∂z   (plain SGD on the logits)

`erl.bandit.run` does this for all seeds at once, on a [seeds, 1, arms] tensor. The loop does it the
way a student would: one seed at a time, one step at a time, autograd on a [arms] logit vector.

The script first checks that the two agree (entropy at every step, final log π) to 1e-10 on every seed
the loop ran, and refuses to report a speed-up if they do not. Then it prints both wall-clock times
and their ratio. Goal: engine ≥ 50× faster than the loop. For context it also times the same update
batched by hand in a dozen lines (no validation, no metrics): what batching alone buys on this machine.

    .venv/bin/python benchmarks/bandit_engine.py                  # 256 seeds × 100 arms × 1000 steps
    .venv/bin/python benchmarks/bandit_engine.py --seeds-loop 32  # time the loop on 32 seeds, scale ×8
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from provenance import library_digest, load_average  # noqa: E402

import entropy_rl_lite as erl  # noqa: E402

ADV_EPS = 1e-6  # the engine's default adv_eps, written out for the loop
MATCH_TOL = 1e-10


def make_problem(seeds: int, arms: int, n_correct: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed 0/1 reward table [arms] with `n_correct` ones, and per-seed initial logits [seeds, arms]."""
    g = torch.Generator().manual_seed(seed)
    rewards = torch.zeros(arms, dtype=torch.float64)
    rewards[torch.randperm(arms, generator=g)[:n_correct]] = 1.0
    init_logits = torch.randn(seeds, arms, generator=g, dtype=torch.float64)
    return rewards, init_logits


def engine_config(seeds: int, steps: int, lr: float) -> erl.bandit.BanditConfig:
    return erl.bandit.BanditConfig(
        estimator="exact",
        objective="reinforce",
        advantage="grpo",
        optimizer="sgd",
        lr=lr,
        steps=steps,
        seeds=seeds,
        adv_eps=ADV_EPS,
        record_probs=False,
    )


def run_engine(rewards: torch.Tensor, init_logits: torch.Tensor, steps: int, lr: float) -> erl.bandit.History:
    """All seeds at once through the library."""
    return erl.bandit.run(rewards, engine_config(init_logits.shape[0], steps, lr), init_logits=init_logits)


def loop_one_seed(
    rewards: torch.Tensor, z0: torch.Tensor, steps: int, lr: float, torch_sgd: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One seed, written from scratch. z0 [arms] float64 -> (entropy before each step and at the end
    [steps+1], final log π [arms])."""
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.SGD([z], lr=lr) if torch_sgd else None
    entropies = []
    for _ in range(steps):
        logp = torch.log_softmax(z, dim=-1)
        p_old = logp.detach().exp()
        entropies.append(-(p_old * logp.detach()).sum())
        mean_r = (p_old * rewards).sum()
        std_r = (p_old * (rewards - mean_r) ** 2).sum().sqrt()
        adv = (rewards - mean_r) / (std_r + ADV_EPS)
        loss = -(p_old * adv * logp).sum()
        if opt is not None:
            opt.zero_grad()
            loss.backward()
            opt.step()
        else:
            z.grad = None
            loss.backward()
            with torch.no_grad():
                z -= lr * z.grad
    with torch.no_grad():
        logp = torch.log_softmax(z, dim=-1)
        entropies.append(-(logp.exp() * logp).sum())
    return torch.stack(entropies), logp


def run_loop(
    rewards: torch.Tensor, init_logits: torch.Tensor, steps: int, lr: float, torch_sgd: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seed after seed. -> (entropy [steps+1, seeds], final log π [seeds, arms])."""
    ents, logps = zip(*(loop_one_seed(rewards, z0, steps, lr, torch_sgd) for z0 in init_logits))
    return torch.stack(ents, dim=1), torch.stack(logps)


def run_hand_batched(rewards: torch.Tensor, init_logits: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """Reference only (not the library): the same update batched by hand over seeds, with no validation,
    metrics or history beyond the entropy. Shows what batching alone buys. -> entropy [steps+1, seeds]."""
    z = init_logits.clone().requires_grad_(True)  # [seeds, arms]
    entropies = []
    for _ in range(steps):
        logp = torch.log_softmax(z, dim=-1)
        p_old = logp.detach().exp()
        entropies.append(-(p_old * logp.detach()).sum(-1))
        centred = rewards - (p_old * rewards).sum(-1, keepdim=True)
        adv = centred / ((p_old * centred**2).sum(-1, keepdim=True).sqrt() + ADV_EPS)
        (grad,) = torch.autograd.grad(-(p_old * adv * logp).sum(), z)
        with torch.no_grad():
            z -= lr * grad
    with torch.no_grad():
        logp = torch.log_softmax(z, dim=-1)
        entropies.append(-(logp.exp() * logp).sum(-1))
    return torch.stack(entropies)


def check_match(
    rewards: torch.Tensor,
    init_logits: torch.Tensor,
    steps: int,
    lr: float,
    engine_entropy: torch.Tensor,
    loop_entropy: torch.Tensor,
    loop_logp: torch.Tensor,
) -> float:
    """Max |engine - loop| over the entropy history and the final log π of the seeds the loop ran.

    The engine's timed run keeps no probabilities (record_probs=False), so its final log π is taken from a
    second, untimed engine run on the same seeds with record_probs=True.
    """
    n = loop_entropy.shape[1]
    hist = erl.bandit.run(rewards, engine_config(n, steps, lr).replace(record_probs=True), init_logits=init_logits[:n])
    diffs = {
        "entropy, every step (timed engine run)": (engine_entropy[:, :n] - loop_entropy).abs().max().item(),
        "entropy, every step (checking run)": (hist.entropy - loop_entropy).abs().max().item(),
        "final log π": (hist.probs[-1].log() - loop_logp).abs().max().item(),
    }
    for name, d in diffs.items():
        print(f"  max |engine - loop| {name:<40s} {d:.2e}")
    worst = max(diffs.values())
    if not worst <= MATCH_TOL:
        raise SystemExit(f"MISMATCH: engine and loop differ by {worst:.2e} > {MATCH_TOL:g}; timings not reported")
    return worst


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def best_of(repeats: int, fn, *args):
    """Run fn `repeats` times. -> (list of wall-clock seconds, output of the last run)."""
    times = []
    for _ in range(repeats):
        t, out = timed(fn, *args)
        times.append(t)
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=256)
    ap.add_argument("--arms", type=int, default=100)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--correct", type=int, default=10, help="number of arms with reward 1")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=0, help="seeds the reward table and the initial logits")
    ap.add_argument(
        "--seeds-loop",
        type=int,
        default=None,
        help="run the loop on only the first N seeds and scale its time linearly to --seeds",
    )
    ap.add_argument(
        "--engine-repeats", type=int, default=3, help="engine (and hand-batched) runs to time; the fastest is used"
    )
    ap.add_argument(
        "--threads", type=int, default=None, help="torch.set_num_threads(N) first (default: leave torch's default)"
    )
    ap.add_argument(
        "--torch-sgd",
        action="store_true",
        help="loop uses torch.optim.SGD instead of a hand-written z -= lr * grad (slower loop)",
    )
    args = ap.parse_args()
    n_loop = args.seeds if args.seeds_loop is None else min(args.seeds_loop, args.seeds)
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    print(
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"torch.get_num_threads() = {torch.get_num_threads()}, load average at start: {load_average()}, "
        f"library sources {library_digest()}"
    )
    print(
        f"problem: {args.seeds} seeds × {args.arms} arms ({args.correct} correct) × {args.steps} steps, "
        f"exact GRPO, REINFORCE surrogate, SGD lr={args.lr}, float64"
    )
    rewards, init_logits = make_problem(args.seeds, args.arms, args.correct, args.seed)

    # Warm-up (first-call costs: lazy imports, allocator, autograd graph machinery), not timed.
    run_engine(rewards, init_logits[:2], 5, args.lr)
    run_loop(rewards, init_logits[:2], 5, args.lr, args.torch_sgd)
    run_hand_batched(rewards, init_logits[:2], 5, args.lr)

    engine_times, hist = best_of(args.engine_repeats, run_engine, rewards, init_logits, args.steps, args.lr)
    t_engine = min(engine_times)
    print(
        f"engine: {', '.join(f'{t:.3f}' for t in engine_times)} s over {args.engine_repeats} runs; "
        f"fastest {t_engine:.3f} s, median {statistics.median(engine_times):.3f} s"
    )

    sgd = "torch.optim.SGD" if args.torch_sgd else "hand-written SGD"
    t_loop_raw, (loop_entropy, loop_logp) = timed(
        run_loop, rewards, init_logits[:n_loop], args.steps, args.lr, args.torch_sgd
    )
    t_loop = t_loop_raw * args.seeds / n_loop
    if n_loop == args.seeds:
        print(f"loop ({sgd}): {t_loop:.2f} s for all {args.seeds} seeds")
    else:
        print(
            f"loop ({sgd}): {t_loop_raw:.2f} s for {n_loop} seeds, SCALED linearly ×{args.seeds / n_loop:g} "
            f"to {t_loop:.2f} s for {args.seeds} seeds"
        )

    print(f"agreement on the {n_loop} seed(s) the loop ran (tolerance {MATCH_TOL:g}):")
    check_match(rewards, init_logits, args.steps, args.lr, hist.entropy, loop_entropy, loop_logp)
    print(
        f"  final entropy: mean {hist.entropy[-1].mean():.4f} nats over seeds "
        f"(start {hist.entropy[0].mean():.4f}); final E_π R mean {hist.reward[-1].mean():.4f}"
    )

    hand_times, hand_entropy = best_of(args.engine_repeats, run_hand_batched, rewards, init_logits, args.steps, args.lr)
    t_hand = min(hand_times)
    d_hand = (hand_entropy - hist.entropy).abs().max().item()
    print(
        f"reference, hand-batched without the library: fastest of {args.engine_repeats} {t_hand:.3f} s ("
        f"max |entropy - engine's| {d_hand:.1e}); loop / hand-batched = {t_loop / t_hand:.1f}×, "
        f"engine / hand-batched = {t_engine / t_hand:.1f}×"
    )

    ratio = t_loop / t_engine
    print(
        f"speed-up: loop / engine = {t_loop:.2f} s / {t_engine:.3f} s = {ratio:.1f}×  "
        f"(per step: loop {1e6 * t_loop / (args.seeds * args.steps):.1f} µs per seed-step, engine "
        f"{1e3 * t_engine / args.steps:.3f} ms per step for all seeds)"
    )
    print(f"goal ≥ 50×: {'MET' if ratio >= 50 else 'NOT MET'}")


if __name__ == "__main__":
    main()
