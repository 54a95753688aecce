"""Determinism: one call seeds every random source a chapter or run touches."""

from __future__ import annotations

import random

import numpy as np
import torch

from ._checks import check_int


def seed_everything(seed: int, deterministic: bool = False) -> tuple[torch.Generator, np.random.Generator]:
    """Seed Python, NumPy and torch; return fresh (torch, numpy) generators seeded the same way.

    Library functions that sample take a `generator`; pass the returned torch one so a re-run repeats.
    deterministic=True also asks torch for deterministic kernels (slower on GPU).
    """
    seed = check_int("seed", seed, low=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return torch.Generator().manual_seed(seed), np.random.default_rng(seed)
