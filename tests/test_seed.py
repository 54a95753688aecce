"""seed_everything makes every random source repeat."""

import random

import numpy as np
import torch

import entropy_rl_lite as erl


def draw(seed: int):
    g_torch, g_np = erl.seed_everything(seed)
    return (
        random.random(),
        np.random.rand(),
        torch.rand(1).item(),
        torch.rand(1, generator=g_torch).item(),
        g_np.random(),
    )


def test_same_seed_same_draws_different_seed_different_draws():
    assert draw(3) == draw(3)
    assert all(a != b for a, b in zip(draw(3), draw(4)))
