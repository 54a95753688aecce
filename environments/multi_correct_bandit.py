"""A K-armed bandit in which several arms are "correct".

Each episode is a single pull: the agent sees a dummy observation 0, picks an arm and receives that
arm's entry of a fixed reward table (plus optional Gaussian noise). With more than one correct arm the
reward cannot tell the arms apart, which is what lets entropy collapse onto a single one of them.
"""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ._checks import as_int, as_table, check_render_mode


class MultiCorrectBandit(gym.Env[int, int]):
    """One-step bandit with `n_arms` arms; arms in `correct_arms` are the rewarded ones.

    By default the reward is 1.0 on a correct arm and 0.0 elsewhere. An explicit `reward_table` may
    grade the arms, but every correct arm must still pay strictly more than every other arm, so that
    `info["correct"]` and the reward never disagree.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        n_arms: int = 10,
        correct_arms: Sequence[int] = (0, 1, 2),
        reward_table: Sequence[float] | np.ndarray | None = None,
        reward_noise: float = 0.0,
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self.n_arms = as_int("n_arms", n_arms, minimum=2)
        self.correct_arms = self._check_correct_arms(correct_arms)

        if reward_table is None:
            table = np.zeros(self.n_arms)
            table[list(self.correct_arms)] = 1.0
            table.flags.writeable = False
        else:
            table = as_table("reward_table", reward_table, (self.n_arms,))
            others = [a for a in range(self.n_arms) if a not in self.correct_arms]
            if others and table[list(self.correct_arms)].min() <= table[others].max():
                raise ValueError(
                    f"reward_table must pay every arm in correct_arms={self.correct_arms} strictly more "
                    f"than every other arm, got reward_table={table.tolist()}"
                )
        self.reward_table: np.ndarray = table

        noise = float(reward_noise)
        if not np.isfinite(noise) or noise < 0.0:
            raise ValueError(f"reward_noise must be a finite number >= 0, got {reward_noise!r}")
        self.reward_noise = noise

        self.observation_space = spaces.Discrete(1)
        self.action_space = spaces.Discrete(self.n_arms)
        self._done = True  # no episode has started yet

    def _check_correct_arms(self, correct_arms: Sequence[int]) -> tuple[int, ...]:
        try:
            arms = [as_int("correct_arms", a) for a in correct_arms]
        except TypeError:
            raise ValueError(f"correct_arms must be a sequence of arm indices, got {correct_arms!r}") from None
        if not arms:
            raise ValueError("correct_arms must name at least one arm, got an empty sequence")
        bad = [a for a in arms if not 0 <= a < self.n_arms]
        if bad:
            raise ValueError(
                f"correct_arms must lie in [0, n_arms={self.n_arms}), got {tuple(arms)} (out of range: {bad})"
            )
        if len(set(arms)) != len(arms):
            raise ValueError(f"correct_arms must not repeat an arm, got {tuple(arms)}")
        return tuple(sorted(arms))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        super().reset(seed=seed)  # (re)seeds self.np_random, which drives the reward noise
        self._done = False
        return 0, {}

    def step(self, action: int) -> tuple[int, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("MultiCorrectBandit: the episode has terminated; call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be an integer arm in [0, {self.n_arms}), got {action!r}")
        arm = int(action)
        reward = float(self.reward_table[arm])
        if self.reward_noise > 0.0:
            # Only draw when noise is on, so a noiseless run leaves the generator untouched.
            reward += float(self.np_random.normal(0.0, self.reward_noise))
        self._done = True
        return 0, reward, True, False, {"correct": arm in self.correct_arms, "arm": arm}

    def render(self) -> None:
        return None
