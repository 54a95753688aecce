"""What a run will cost before it starts: its FLOPs, and a lower bound on its time on this CPU.

Training a token costs ≈ 6·N FLOPs (forward and backward, flops.py); scoring it without gradients (logp_old) and
generating it ≈ 2·N each. Divided by the fastest fp32 matmul rate measured here, that is a lower bound on the
wall time: generation and small matrices run below the matmul peak, and attention is not counted.
"""

from __future__ import annotations

import time

import torch

from .profiles import PROFILES


def matmul_params(profile: str, vocab: int = 14) -> int:
    """N of a profile's model (every matmul weight, the untied output layer included; CharTokenizer's vocab)."""
    s = PROFILES[profile]
    kv = s.hidden_size * s.num_key_value_heads // s.num_attention_heads
    per_layer = 2 * s.hidden_size**2 + 2 * s.hidden_size * kv + 3 * s.hidden_size * s.intermediate_size
    return s.num_hidden_layers * per_layer + vocab * s.hidden_size


def run_flops(spec, names: list[str]) -> float:
    """FLOPs of the warm start plus phase 1 (and phase 2) of each named algorithm."""
    n = matmul_params(spec.profile)
    seq = spec.task.max_len + 2 + spec.train_config(names[0]).max_new_tokens  # prompt "12=" + completion
    total = 0.0
    if spec.warm_start is not None:
        total += 6 * n * spec.warm_start.steps * spec.warm_start.batch_size * seq
    for name in names:
        for phase in (1, 2) if spec.phase2_task is not None else (1,):
            cfg = spec.train_config(name, phase)
            tokens = cfg.steps * cfg.prompts_per_step * cfg.group_size * seq
            total += tokens * n * (2 + 2 + 6 * cfg.epochs)  # generate, logp_old, the updates
    return total


def cpu_matmul_flops(n: int = 1024, reps: int = 5) -> float:
    """This CPU's fp32 matmul rate in FLOP/s: the fastest of a few n×n products (well under a second)."""
    a = torch.randn(n, n)
    a @ a  # warm-up
    best = float("inf")
    for _ in range(reps):  # the fastest rep: other load on a shared machine only slows a rep down
        t0 = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def describe_cpu_run(spec, names: list[str] | None) -> str:
    """One paragraph: what a run of `spec` on this CPU will do, and at least how long it takes."""
    names = list(spec.algorithms) if names is None else names
    flops, rate = run_flops(spec, names), cpu_matmul_flops()
    hours = flops / rate / 3600
    return (
        f"the {spec.profile} profile is sized for a GPU and this run uses the CPU: a warm start and "
        f"{len(names)} algorithm(s) ({', '.join(names)}) on a {matmul_params(spec.profile) / 1e6:.1f}M-parameter "
        f"model, about {flops:.1e} FLOPs; at this CPU's measured {rate / 1e9:.0f} GFLOP/s that is at least "
        f"{hours:.0f} hours. Press Ctrl-C and use --profile cpu for a CPU-sized run (minutes)."
    )
