"""Tests for the `environments` package: API conformance, determinism, tables and argument checks."""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import environments
from environments import ContextualBandit, MultiCorrectBandit, TokenSequenceEnv

ENV_KWARGS = {
    "erl/MultiCorrectBandit-v0": [{}, {"n_arms": 4, "correct_arms": (3,), "reward_noise": 0.1}],
    "erl/ContextualBandit-v0": [{}, {"n_contexts": 3, "n_arms": 5, "correct_per_context": 5}],
    "erl/TokenSequence-v0": [
        {},
        {"vocab_size": 3, "horizon": 2, "verifier": "set", "correct_sequences": [(0, 1), (2, 2)]},
    ],
}
CASES = [(env_id, kw) for env_id, kws in ENV_KWARGS.items() for kw in kws]
# check_env runs over every erl/ environment, the text tasks (tests/test_text_tasks.py) included.
CHECK_ENV_CASES = CASES + [
    ("erl/SumTo-v0", {}),
    ("erl/SumTo-v0", {"min_target": 0, "max_target": 18, "max_len": 2}),
    ("erl/SumToShifted-v0", {}),
    ("erl/SumToShifted-v0", {"min_target": 5, "max_target": 9, "max_len": 4, "shift": -5}),
]


# --- API conformance ---------------------------------------------------------------------------


def test_all_ids_registered() -> None:
    for env_id in ENV_KWARGS:
        assert env_id in gym.registry


def test_reimport_does_not_error_or_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        importlib.reload(environments)
    assert set(ENV_KWARGS) <= set(gym.registry)


def test_import_does_not_pull_in_torch() -> None:
    code = "import sys, environments; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize(("env_id", "kwargs"), CHECK_ENV_CASES)
def test_check_env_unwrapped_without_warnings(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)


@pytest.mark.parametrize(("env_id", "kwargs"), CHECK_ENV_CASES)
def test_check_env_wrapped(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # check_env always warns that a made env is wrapped; nothing else may warn.
        warnings.filterwarnings("ignore", message=".*different from the unwrapped")
        check_env(env)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_step_after_termination_raises(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    terminated = False
    while not terminated:
        _, _, terminated, truncated, _ = env.step(0)
        assert not truncated
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset()
    env.step(0)  # a new episode works again


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_step_before_reset_raises(env_id: str, kwargs: dict) -> None:
    with pytest.raises(gym.error.ResetNeeded):
        gym.make(env_id, **kwargs).step(0)


@pytest.mark.parametrize(("env_id", "kwargs"), CASES)
def test_invalid_action_raises(env_id: str, kwargs: dict) -> None:
    env = gym.make(env_id, **kwargs).unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(env.action_space.n)


# --- MultiCorrectBandit --------------------------------------------------------------------------


def test_multi_correct_default_table() -> None:
    env = MultiCorrectBandit()
    assert env.n_arms == 10
    assert env.correct_arms == (0, 1, 2)
    assert env.reward_table.dtype == np.float64
    np.testing.assert_array_equal(env.reward_table, [1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        env.reward_table[0] = 5.0  # read-only


def test_multi_correct_step_values() -> None:
    env = MultiCorrectBandit(n_arms=5, correct_arms=(4, 1))
    assert env.correct_arms == (1, 4)
    for arm in range(5):
        obs, info = env.reset(seed=arm)
        assert obs == 0 and obs in env.observation_space
        obs, reward, terminated, truncated, info = env.step(arm)
        assert (obs, terminated, truncated) == (0, True, False)
        assert reward == (1.0 if arm in (1, 4) else 0.0)
        assert info == {"correct": arm in (1, 4), "arm": arm}


def test_multi_correct_custom_table_is_copied() -> None:
    table = np.array([0.2, 1.0, 0.9, 0.0])
    env = MultiCorrectBandit(n_arms=4, correct_arms=(1, 2), reward_table=table)
    table[1] = -7.0
    assert env.reward_table[1] == 1.0
    env.reset(seed=0)
    assert env.step(2)[1] == pytest.approx(0.9)


def test_multi_correct_noise_is_seeded() -> None:
    env = MultiCorrectBandit(reward_noise=0.5)

    def rewards(seed: int) -> list[float]:
        env.reset(seed=seed)
        out = [env.step(0)[1]]
        for _ in range(9):
            env.reset()
            out.append(env.step(0)[1])
        return out

    first = rewards(7)
    assert first == rewards(7)
    assert first != rewards(8)
    assert len(set(first)) == len(first)  # noise actually varies from episode to episode


# --- ContextualBandit ----------------------------------------------------------------------------


def test_contextual_default_table() -> None:
    env = ContextualBandit(n_contexts=6, n_arms=7, correct_per_context=3, seed_table=11)
    assert env.reward_table.shape == (6, 7)
    assert env.reward_table.dtype == np.float64
    assert set(np.unique(env.reward_table)) <= {0.0, 1.0}
    np.testing.assert_array_equal(env.reward_table.sum(axis=1), 3)
    assert len(env.correct_arms) == 6
    for row, arms in zip(env.reward_table, env.correct_arms):
        assert len(arms) == 3 and arms == tuple(sorted(arms))
        assert tuple(np.flatnonzero(row == 1.0)) == arms


def test_contextual_table_depends_only_on_seed_table() -> None:
    a = ContextualBandit(seed_table=3)
    b = ContextualBandit(seed_table=3)
    a.reset(seed=1)
    b.reset(seed=999)
    np.testing.assert_array_equal(a.reward_table, b.reward_table)
    # Different table seeds give a different task (checked over a few seeds, not just one).
    tables = {ContextualBandit(seed_table=s).reward_table.tobytes() for s in range(5)}
    assert len(tables) > 1


def test_contextual_custom_table_and_rewards() -> None:
    table = [[0.0, 1.0, 0.5], [2.0, 2.0, -1.0]]
    env = ContextualBandit(n_contexts=2, n_arms=3, reward_table=table)
    assert env.correct_arms == ((1,), (0, 1))
    seen = set()
    for seed in range(40):
        context, info = env.reset(seed=seed)
        assert info["context"] == context
        for arm in range(3):
            env.reset(seed=seed)
            _, reward, terminated, truncated, step_info = env.step(arm)
            assert reward == table[context][arm]
            assert terminated and not truncated
            assert step_info == {"context": context, "correct": arm in env.correct_arms[context]}
        seen.add(context)
    assert seen == {0, 1}


def _contexts(env: ContextualBandit, seed: int, n: int = 30) -> list[int]:
    out = [env.reset(seed=seed)[0]]
    for _ in range(n - 1):
        out.append(env.reset()[0])
    return out


def test_contextual_determinism() -> None:
    env = ContextualBandit()
    first = _contexts(env, seed=5)
    assert first == _contexts(env, seed=5)
    assert first == _contexts(ContextualBandit(), seed=5)  # a fresh instance agrees too
    assert first != _contexts(env, seed=6)
    assert set(first) == set(range(env.n_contexts))  # contexts are drawn, not fixed


# --- TokenSequenceEnv ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tokens", "accepted"),
    [((0, 0, 0), True), ((1, 1, 1), True), ((1, 0, 0), False), ((3, 3, 3), True), ((2, 2, 3), False)],
)
def test_sum_mod_verifier_cases(tokens: tuple, accepted: bool) -> None:
    env = TokenSequenceEnv(vocab_size=4, horizon=3, verifier="sum_mod", modulus=3, target=0)
    assert env.verify(tokens) is accepted


@pytest.mark.parametrize(("vocab_size", "horizon", "modulus", "target"), [(4, 3, 3, 0), (3, 4, 5, 2), (2, 5, 1, 0)])
def test_sum_mod_correct_set_matches_brute_force(vocab_size, horizon, modulus, target) -> None:
    env = TokenSequenceEnv(vocab_size=vocab_size, horizon=horizon, modulus=modulus, target=target)
    brute = [s for s in itertools.product(range(vocab_size), repeat=horizon) if sum(s) % modulus == target]
    found = env.correct_sequences_all()
    assert found == sorted(brute)
    assert len(found) > 1  # several correct answers, so diversity can be measured


def test_set_verifier() -> None:
    env = TokenSequenceEnv(vocab_size=3, horizon=2, verifier="set", correct_sequences=[(2, 2), (0, 1)])
    assert env.verify((0, 1)) and env.verify([2, 2])
    assert not env.verify((1, 0))
    assert env.correct_sequences_all() == [(0, 1), (2, 2)]


def test_verify_rejects_malformed_sequences() -> None:
    env = TokenSequenceEnv(vocab_size=4, horizon=3)
    with pytest.raises(ValueError, match="tokens"):
        env.verify((0, 0))
    with pytest.raises(ValueError, match="tokens"):
        env.verify((0, 0, 4))


def test_enumeration_limit() -> None:
    env = TokenSequenceEnv(vocab_size=11, horizon=6)  # 11**6 > 1e6
    with pytest.raises(ValueError, match="enumeration limit"):
        env.correct_sequences_all()


def test_token_episode_observations_and_rewards() -> None:
    env = TokenSequenceEnv(vocab_size=4, horizon=3, modulus=3, target=0)
    obs, info = env.reset(seed=0)
    pad = env.pad_id
    assert pad == 4
    np.testing.assert_array_equal(obs, [pad, pad, pad])
    obs, reward, terminated, _, info = env.step(1)
    np.testing.assert_array_equal(obs, [1, pad, pad])
    assert (reward, terminated) == (0.0, False)
    obs, reward, terminated, _, info = env.step(2)
    np.testing.assert_array_equal(obs, [1, 2, pad])
    assert (reward, terminated) == (0.0, False)
    obs, reward, terminated, truncated, info = env.step(3)
    np.testing.assert_array_equal(obs, [1, 2, 3])
    assert obs in env.observation_space
    assert (reward, terminated, truncated) == (1.0, True, False)
    assert info == {"sequence": (1, 2, 3), "correct": True}

    env.reset()
    steps = [env.step(a) for a in (1, 0, 0)]
    assert [s[1] for s in steps] == [0.0, 0.0, 0.0]
    assert steps[-1][4] == {"sequence": (1, 0, 0), "correct": False}


# --- argument validation -------------------------------------------------------------------------

BAD_ARGS = [
    # (constructor, kwargs, text the message must contain)
    (MultiCorrectBandit, {"n_arms": 1}, "n_arms"),
    (MultiCorrectBandit, {"n_arms": 2.5}, "n_arms"),
    (MultiCorrectBandit, {"n_arms": 3, "correct_arms": (0, 3)}, "correct_arms"),
    (MultiCorrectBandit, {"correct_arms": (-1,)}, "correct_arms"),
    (MultiCorrectBandit, {"correct_arms": ()}, "correct_arms"),
    (MultiCorrectBandit, {"correct_arms": (1, 1)}, "correct_arms"),
    (MultiCorrectBandit, {"n_arms": 3, "reward_table": [1.0, 0.0]}, "reward_table"),
    (MultiCorrectBandit, {"n_arms": 3, "correct_arms": (0,), "reward_table": [1, np.nan, 0]}, "reward_table"),
    # a correct arm must pay more than every other arm
    (MultiCorrectBandit, {"n_arms": 3, "correct_arms": (0,), "reward_table": [1, 1, 0]}, "reward_table"),
    (MultiCorrectBandit, {"reward_noise": -0.1}, "reward_noise"),
    (MultiCorrectBandit, {"render_mode": "human"}, "render_mode"),
    (ContextualBandit, {"n_arms": 1}, "n_arms"),
    (ContextualBandit, {"n_contexts": 0}, "n_contexts"),
    (ContextualBandit, {"n_arms": 3, "correct_per_context": 4}, "correct_per_context"),
    (ContextualBandit, {"correct_per_context": 0}, "correct_per_context"),
    (ContextualBandit, {"seed_table": -1}, "seed_table"),
    (ContextualBandit, {"n_contexts": 2, "n_arms": 3, "reward_table": np.zeros((3, 2))}, "reward_table"),
    (ContextualBandit, {"n_contexts": 1, "n_arms": 2, "reward_table": [[np.inf, 0.0]]}, "reward_table"),
    (TokenSequenceEnv, {"vocab_size": 1}, "vocab_size"),
    (TokenSequenceEnv, {"horizon": 0}, "horizon"),
    (TokenSequenceEnv, {"verifier": "regex"}, r"verifier.*'set'.*'sum_mod'"),
    (TokenSequenceEnv, {"modulus": 0}, "modulus"),
    (TokenSequenceEnv, {"modulus": 3, "target": 3}, "target"),
    (TokenSequenceEnv, {"modulus": 3, "target": -1}, "target"),
    # sums of one binary token never reach 3, so nothing would be accepted
    (TokenSequenceEnv, {"vocab_size": 2, "horizon": 1, "modulus": 5, "target": 3}, "target"),
    (TokenSequenceEnv, {"verifier": "set"}, "correct_sequences"),
    (TokenSequenceEnv, {"verifier": "set", "correct_sequences": []}, "correct_sequences"),
    (TokenSequenceEnv, {"horizon": 2, "verifier": "set", "correct_sequences": [(0, 1, 2)]}, "correct_seq"),
    (TokenSequenceEnv, {"horizon": 2, "verifier": "set", "correct_sequences": [(0, 9)]}, "correct_seq"),
    (TokenSequenceEnv, {"correct_sequences": [(0, 0, 0, 0)]}, "correct_sequences"),
]


@pytest.mark.parametrize(
    ("cls", "kwargs", "pattern"), BAD_ARGS, ids=[f"{c.__name__}-{p.split('.')[0]}" for c, _, p in BAD_ARGS]
)
def test_bad_arguments_raise_value_error(cls, kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        cls(**kwargs)


def test_error_message_shows_value_and_allowed_range() -> None:
    with pytest.raises(ValueError, match=r"n_arms must be an integer >= 2, got 1"):
        MultiCorrectBandit(n_arms=1)
    with pytest.raises(ValueError, match=r"target must lie in \[0, modulus=3\), got 5"):
        TokenSequenceEnv(modulus=3, target=5)
