"""A contextual bandit: each episode draws a context, then the agent pulls one arm.

The reward table has one row per context. By default every context has `correct_per_context`
arms paying 1 (the rest pay 0), placed by a generator seeded with `seed_table`, so the task is
fixed by its arguments while the order of contexts is driven by the reset seed.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ._checks import as_int, as_table, check_render_mode


class ContextualBandit(gym.Env[int, int]):
    """One-step bandit with `n_contexts` contexts and `n_arms` arms.

    The correct arms of a context are the arms reaching that row's maximum reward; with the
    default 0/1 table these are exactly the arms paying 1.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        n_contexts: int = 4,
        n_arms: int = 10,
        reward_table: Sequence[Sequence[float]] | np.ndarray | None = None,
        correct_per_context: int = 2,
        seed_table: int = 0,
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self.n_contexts = as_int("n_contexts", n_contexts, minimum=1)
        self.n_arms = as_int("n_arms", n_arms, minimum=2)
        # Validated even when a table is given, so a bad value never goes unnoticed.
        self.correct_per_context = as_int("correct_per_context", correct_per_context, minimum=1)
        if self.correct_per_context > self.n_arms:
            raise ValueError(
                f"correct_per_context must be in [1, n_arms={self.n_arms}], got {self.correct_per_context}"
            )
        self.seed_table = as_int("seed_table", seed_table, minimum=0)

        if reward_table is None:
            # A private generator: the table must not depend on (or disturb) the reset seed.
            table_rng = np.random.default_rng(self.seed_table)
            table = np.zeros((self.n_contexts, self.n_arms))
            for row in table:
                row[table_rng.choice(self.n_arms, size=self.correct_per_context, replace=False)] = 1.0
            table.flags.writeable = False
        else:
            table = as_table("reward_table", reward_table, (self.n_contexts, self.n_arms))
        self.reward_table: np.ndarray = table
        self.correct_arms: tuple[tuple[int, ...], ...] = tuple(
            tuple(int(a) for a in np.flatnonzero(row == row.max())) for row in table
        )

        self.observation_space = spaces.Discrete(self.n_contexts)
        self.action_space = spaces.Discrete(self.n_arms)
        self._context: int | None = None  # None: no episode in progress

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)
        self._context = int(self.np_random.integers(self.n_contexts))
        return self._context, {"context": self._context}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if self._context is None:
            raise RuntimeError("ContextualBandit: the episode has terminated; call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer arm in [0, {self.n_arms}), got {action!r}")
        context, arm = self._context, int(action)
        self._context = None
        reward = float(self.reward_table[context, arm])
        # The observation after the last step carries no information; repeating the context keeps
        # it inside the observation space.
        info = {"context": context, "correct": arm in self.correct_arms[context]}
        return context, reward, True, False, info

    def render(self) -> None:
        return None
