"""A token-level environment: emit `horizon` tokens, one per step, and get a verifier's verdict.

The reward is 0 until the last token, then 1.0 if the verifier accepts the whole sequence, else 0.0;
this is the outcome-reward setting of RL on language models, shrunk to a tiny vocabulary. The
observation is the prefix so far, padded with the id `vocab_size`, so it identifies the state exactly.
"""

from __future__ import annotations

import itertools
from typing import Any, Iterable, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ._checks import as_int, check_render_mode

VERIFIERS = ("set", "sum_mod")
MAX_ENUMERATION = 1_000_000


class TokenSequenceEnv(gym.Env[np.ndarray, int]):
    """Sequences of `horizon` tokens from `range(vocab_size)`, judged by a verifier.

    verifier="sum_mod" accepts a sequence when sum(tokens) % modulus == target; many sequences pass,
    so a policy can be right in many different ways. verifier="set" accepts exactly the tuples listed
    in `correct_sequences`.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        vocab_size: int = 4,
        horizon: int = 4,
        verifier: str = "sum_mod",
        modulus: int = 3,
        target: int = 0,
        correct_sequences: Iterable[Sequence[int]] | None = None,
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self.vocab_size = as_int("vocab_size", vocab_size, minimum=2)
        self.horizon = as_int("horizon", horizon, minimum=1)
        if verifier not in VERIFIERS:
            raise ValueError(f"verifier must be one of {list(VERIFIERS)}, got {verifier!r}")
        self.verifier = verifier
        self.pad_id = self.vocab_size  # one past the last real token

        if verifier == "sum_mod":
            if correct_sequences is not None:
                raise ValueError(
                    "correct_sequences is only used with verifier='set', "
                    f"got correct_sequences={correct_sequences!r} with verifier='sum_mod'"
                )
            self.modulus = as_int("modulus", modulus, minimum=1)
            self.target = as_int("target", target)
            if not 0 <= self.target < self.modulus:
                raise ValueError(f"target must lie in [0, modulus={self.modulus}), got {self.target}")
            # Sums run over every integer from 0 to horizon*(vocab_size-1), so some sequence is
            # accepted exactly when target is within that range.
            max_sum = self.horizon * (self.vocab_size - 1)
            if self.target > max_sum:
                raise ValueError(
                    f"target={self.target} is unreachable: token sums only reach {max_sum}, "
                    "so no sequence would be accepted (empty correct set)"
                )
            self._correct_set: frozenset[tuple[int, ...]] | None = None
        else:
            self.modulus = None
            self.target = None
            self._correct_set = self._check_correct_sequences(correct_sequences)

        self.observation_space = spaces.MultiDiscrete([self.vocab_size + 1] * self.horizon)
        self.action_space = spaces.Discrete(self.vocab_size)
        self._tokens: list[int] = []
        self._done = True  # no episode has started yet

    def _check_correct_sequences(self, correct_sequences: Iterable[Sequence[int]] | None) -> frozenset[tuple[int, ...]]:
        if correct_sequences is None:
            raise ValueError("correct_sequences must be given (non-empty) when verifier='set', got None")
        try:
            sequences = [tuple(as_int("correct_sequences", t) for t in seq) for seq in correct_sequences]
        except TypeError:
            raise ValueError(
                f"correct_sequences must be an iterable of token sequences, got {correct_sequences!r}"
            ) from None
        if not sequences:
            raise ValueError("correct_sequences must contain at least one sequence, got an empty collection")
        for seq in sequences:
            if len(seq) != self.horizon or not all(0 <= t < self.vocab_size for t in seq):
                raise ValueError(
                    f"correct_sequences entries must be {self.horizon} tokens from "
                    f"[0, vocab_size={self.vocab_size}), got {seq}"
                )
        return frozenset(sequences)

    def verify(self, tokens: Sequence[int]) -> bool:
        """Return whether the verifier accepts a complete sequence of `horizon` tokens."""
        seq = tuple(int(t) for t in tokens)
        if len(seq) != self.horizon or not all(0 <= t < self.vocab_size for t in seq):
            raise ValueError(f"tokens must be {self.horizon} tokens from [0, vocab_size={self.vocab_size}), got {seq}")
        if self._correct_set is not None:
            return seq in self._correct_set
        return sum(seq) % self.modulus == self.target

    def correct_sequences_all(self) -> list[tuple[int, ...]]:
        """Return every accepted sequence, sorted; raise ValueError if there are too many to list."""
        if self._correct_set is not None:
            return sorted(self._correct_set)
        total = self.vocab_size**self.horizon
        if total > MAX_ENUMERATION:
            raise ValueError(f"vocab_size**horizon = {total} sequences exceeds the enumeration limit {MAX_ENUMERATION}")
        # product() yields tuples in lexicographic order, so the result is already sorted.
        return [s for s in itertools.product(range(self.vocab_size), repeat=self.horizon) if self.verify(s)]

    def _observation(self) -> np.ndarray:
        # A fresh array each call: callers keep observations, so they must never share a buffer.
        obs = np.full(self.horizon, self.pad_id, dtype=np.int64)
        obs[: len(self._tokens)] = self._tokens
        return obs

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)  # the dynamics are deterministic; this just keeps seeding uniform
        self._tokens = []
        self._done = False
        return self._observation(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._done:
            raise RuntimeError("TokenSequenceEnv: the episode has terminated; call reset() before step()")
        if not self.action_space.contains(action):
            raise ValueError(f"action must be a token in [0, {self.vocab_size}), got {action!r}")
        self._tokens.append(int(action))
        if len(self._tokens) < self.horizon:
            return self._observation(), 0.0, False, False, {}
        self._done = True
        sequence = tuple(self._tokens)
        correct = self.verify(sequence)
        return self._observation(), float(correct), True, False, {"sequence": sequence, "correct": correct}

    def render(self) -> None:
        return None
