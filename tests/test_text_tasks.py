"""Tests for the text tasks in `environments.text_tasks`: verifiers, answer lists, API and arguments."""

from __future__ import annotations

import itertools

import gymnasium as gym
import pytest

import environments  # noqa: F401  (registers the ids)
from environments import SumToEnv, SumToShiftedEnv
from environments.text_tasks import (
    DIGITS,
    END,
    SEPARATOR,
    VOCAB,
    correct_answers,
    cut_at_end,
    make_prompts,
    n_correct_answers,
    parse_prompt,
    verify,
)

IDS = ["erl/SumTo-v0", "erl/SumToShifted-v0"]


def brute_force(prompt: str, max_len: int, shift: int) -> list[str]:
    """Every string over all of VOCAB up to max_len characters that verify() accepts."""
    return [
        "".join(chars)
        for length in range(0, max_len + 1)
        for chars in itertools.product(VOCAB, repeat=length)
        if verify(prompt, "".join(chars), max_len=max_len, shift=shift)
    ]


# --- API conformance ---------------------------------------------------------------------------


def test_ids_registered() -> None:
    for env_id in IDS:
        assert env_id in gym.registry
        assert env_id in environments.ENV_IDS


# check_env for these environments runs in tests/test_environments.py with every other erl/ environment.


def test_spaces() -> None:
    env = SumToEnv(min_target=3, max_target=12, max_len=3)
    assert isinstance(env.observation_space, gym.spaces.Text)
    assert isinstance(env.action_space, gym.spaces.Text)
    for prompt in env.prompts:
        assert prompt in env.observation_space
    assert env.observation_space.max_length == 3  # "12="
    assert "" in env.action_space and "999" in env.action_space
    assert "1234" not in env.action_space and "1=" not in env.action_space
    assert set(env.observation_space.character_set) == set(DIGITS + SEPARATOR)
    assert set(env.action_space.character_set) == set(DIGITS)
    assert VOCAB == DIGITS + SEPARATOR + END and len(set(VOCAB)) == len(VOCAB)


@pytest.mark.parametrize("cls", [SumToEnv, SumToShiftedEnv])
def test_episode(cls: type[SumToEnv]) -> None:
    env = cls()
    prompt, info = env.reset(seed=0)
    assert info == {"prompt": prompt, "n_correct_answers": env.n_correct_answers(prompt)}
    answer = env.correct_answers(prompt)[0]
    obs, reward, terminated, truncated, info = env.step(answer)
    assert (obs, reward, terminated, truncated) == (prompt, 1.0, True, False)
    assert info == {
        "prompt": prompt,
        "completion": answer,
        "correct": True,
        "n_correct_answers": len(env.correct_answers(prompt)),
    }
    with pytest.raises(RuntimeError, match="reset"):
        env.step(answer)
    env.reset(options={"prompt": prompt})
    # Malformed completions are wrong answers, not errors.
    for bad in ["", "0000", "1=", "7.", "x"]:
        env.reset(options={"prompt": prompt})
        _, reward, terminated, _, info = env.step(bad)
        assert reward == 0.0 and terminated and info["correct"] is False


def test_step_before_reset_raises() -> None:
    with pytest.raises(gym.error.ResetNeeded):
        gym.make("erl/SumTo-v0").step("7")
    with pytest.raises(RuntimeError, match="reset"):
        SumToEnv().step("7")


@pytest.mark.parametrize("action", [7, None, b"7", ["7"]])
def test_non_string_action_raises(action: object) -> None:
    env = SumToEnv()
    env.reset(seed=0)
    with pytest.raises(ValueError, match="action"):
        env.step(action)


def test_reset_determinism_and_coverage() -> None:
    env = SumToEnv()

    def prompts(seed: int, n: int = 40) -> list[str]:
        out = [env.reset(seed=seed)[0]]
        out += [env.reset()[0] for _ in range(n - 1)]
        return out

    first = prompts(3)
    assert first == prompts(3)
    assert first != prompts(4)
    assert first == [SumToEnv().reset(seed=3)[0]] + prompts(3)[1:]
    seen = set(prompts(0, n=400))
    assert seen == set(env.prompts) == set(make_prompts(3, 12))


def test_reset_with_prompt_option() -> None:
    env = SumToShiftedEnv()
    prompt, info = env.reset(seed=0, options={"prompt": "7="})
    assert prompt == "7=" and info["n_correct_answers"] == 55  # digit sum 8, up to 3 digits
    with pytest.raises(ValueError, match="prompt"):
        env.reset(options={"prompt": "99="})


def test_targets_split_the_prompts() -> None:
    held = SumToShiftedEnv(targets=(11, 5, 8))
    train = SumToEnv(targets=[n for n in range(3, 13) if n not in (5, 8, 11)])
    assert held.prompts == ("5=", "8=", "11=")  # in order, whatever order they were given in
    assert set(train.prompts) | {"5=", "8=", "11="} == set(SumToEnv().prompts) and len(train.prompts) == 7
    assert held.n_correct_answers("5=") == SumToShiftedEnv().n_correct_answers("5=")  # the rules are unchanged
    assert {held.reset(seed=s)[0] for s in range(60)} == set(held.prompts)
    with pytest.raises(ValueError, match="prompt"):
        held.reset(options={"prompt": "7="})  # not in this split


# --- verifiers ---------------------------------------------------------------------------------

SUM_TO_CASES = [
    ("7=", "7", True),
    ("7=", "25", True),
    ("7=", "52", True),
    ("7=", "115", True),
    ("7=", "07", True),  # leading zeros are allowed
    ("7=", "007", True),
    ("7=", "061", True),
    ("7=", "0007", False),  # too long for max_len=3
    ("7=", "1111111", False),
    ("7=", "", False),  # empty
    ("7=", "8", False),
    ("7=", "24", False),
    ("7=", "7.", False),  # the end marker is not part of a completion
    ("7=", "7=", False),
    ("7=", " 7", False),
    ("7=", "-7", False),
    ("7=", "٧", False),  # a non-ASCII digit (Arabic-Indic seven)
    ("7=", 7, False),  # not a string
    ("7=", None, False),
    ("0=", "0", True),
    ("0=", "000", True),
    ("0=", "", False),
    ("27=", "999", True),
    ("27=", "99", False),
    ("12=", "93", True),
    ("12=", "12", False),  # the digits of N itself rarely sum to N
]


@pytest.mark.parametrize(("prompt", "completion", "expected"), SUM_TO_CASES)
def test_sum_to_verifier(prompt: str, completion: str, expected: bool) -> None:
    assert verify(prompt, completion) is expected
    assert SumToEnv(min_target=0, max_target=27).verify(prompt, completion) is expected


SHIFTED_CASES = [
    ("7=", "8", True),
    ("7=", "26", True),
    ("7=", "008", True),
    ("7=", "7", False),  # correct for SumTo, wrong here
    ("7=", "25", False),
    ("7=", "9", False),
    ("7=", "", False),
    ("7=", "0008", False),
    ("7=", "8.", False),
    ("26=", "999", True),
    ("0=", "1", True),
    ("0=", "0", False),
]


@pytest.mark.parametrize(("prompt", "completion", "expected"), SHIFTED_CASES)
def test_shifted_verifier(prompt: str, completion: str, expected: bool) -> None:
    assert verify(prompt, completion, shift=1) is expected
    assert SumToShiftedEnv(min_target=0, max_target=26).verify(prompt, completion) is expected


def test_max_len_changes_what_fits() -> None:
    assert verify("7=", "1111111", max_len=6) is False
    assert verify("7=", "111112", max_len=6) is True
    assert verify("7=", "0007", max_len=4) is True
    assert verify("10=", "55", max_len=1) is False


@pytest.mark.parametrize("prompt", ["7", "=", "07=", "+7=", "-1=", " 7=", "7 =", "7==", "a=", "", 7, None])
def test_malformed_prompt_raises(prompt: object) -> None:
    with pytest.raises(ValueError, match="prompt"):
        verify(prompt, "7")
    with pytest.raises(ValueError, match="prompt"):
        correct_answers(prompt)


def test_parse_prompt_and_make_prompts() -> None:
    assert make_prompts(0, 3) == ["0=", "1=", "2=", "3="]
    assert make_prompts(9, 9) == ["9="]
    assert [parse_prompt(p) for p in make_prompts(0, 30)] == list(range(31))


def test_cut_at_end() -> None:
    assert cut_at_end("25.") == "25"
    assert cut_at_end("25.3.") == "25"
    assert cut_at_end("253") == "253"
    assert cut_at_end(".") == ""
    assert verify("7=", cut_at_end("16." + "99"))


# --- answer lists ------------------------------------------------------------------------------


@pytest.mark.parametrize("max_len", [1, 2, 3])
@pytest.mark.parametrize("shift", [0, 1, -2])
def test_correct_answers_match_brute_force(max_len: int, shift: int) -> None:
    for target in range(0, 9 * max_len + 1):
        prompt = f"{target}="
        listed = correct_answers(prompt, max_len=max_len, shift=shift)
        # Independent of verify(): every digit string of length 1..max_len with the right digit sum.
        by_sum = [
            "".join(d)
            for length in range(1, max_len + 1)
            for d in itertools.product(DIGITS, repeat=length)
            if sum(map(int, d)) == target + shift
        ]
        assert sorted(listed) == sorted(by_sum)
        # And verify() accepts nothing else among all strings over VOCAB of length 0..max_len.
        assert sorted(listed) == sorted(brute_force(prompt, max_len, shift))
        assert len(set(listed)) == len(listed)
        assert listed == sorted(listed, key=lambda s: (len(s), s))  # shortest first, then lexicographic
        assert all(verify(prompt, a, max_len=max_len, shift=shift) for a in listed)
        assert n_correct_answers(prompt, max_len=max_len, shift=shift) == len(listed)


def test_brute_force_over_full_vocab_small() -> None:
    # Over every string of VOCAB (digits, "=", ".") the verifier accepts only the listed answers.
    assert brute_force("3=", 2, 0) == ["3", "03", "12", "21", "30"]
    assert brute_force("3=", 2, 1) == ["4", "04", "13", "22", "31", "40"]


def test_documented_counts() -> None:
    counts = [n_correct_answers(f"{n}=") for n in range(28)]
    assert counts[1:14] == [6, 10, 15, 21, 28, 36, 45, 55, 66, 72, 77, 80, 81]
    assert counts[13:] == [81, 80, 77, 72, 65, 56, 45, 36, 28, 21, 15, 10, 6, 3, 1]
    assert counts[27] == 1 and counts[0] == 3
    env = SumToEnv()
    assert [env.n_correct_answers(p) for p in env.prompts] == counts[3:13]
    assert min(counts[3:13]) >= 15  # "many correct answers" for every default prompt


@pytest.mark.parametrize("max_len", [1, 2, 3, 4])
def test_tasks_have_disjoint_correct_sets(max_len: int) -> None:
    phase1 = SumToEnv(min_target=0, max_target=9 * max_len - 1, max_len=max_len)
    phase2 = SumToShiftedEnv(min_target=0, max_target=9 * max_len - 1, max_len=max_len)
    assert phase1.prompts == phase2.prompts
    for prompt in phase1.prompts:
        a = set(phase1.correct_answers(prompt))
        b = set(phase2.correct_answers(prompt))
        assert a and b
        assert a.isdisjoint(b)
        # Phase 2's answers to "N=" are phase 1's answers to "(N+1)=": the skill transfers, the mapping moves.
        assert b == set(correct_answers(f"{parse_prompt(prompt) + 1}=", max_len=max_len))


# --- argument checks ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "kwargs", "name"),
    [
        (SumToEnv, {"min_target": -1}, "min_target"),
        (SumToEnv, {"min_target": 2.0}, "min_target"),
        (SumToEnv, {"min_target": True}, "min_target"),
        (SumToEnv, {"max_target": "9"}, "max_target"),
        (SumToEnv, {"min_target": 5, "max_target": 4}, "max_target"),
        (SumToEnv, {"max_target": 28}, "max_target"),  # 3 digits sum to at most 27
        (SumToEnv, {"max_len": 0}, "max_len"),
        (SumToEnv, {"max_len": 7}, "max_len"),
        (SumToEnv, {"max_len": 2.5}, "max_len"),
        (SumToEnv, {"max_len": 1}, "max_target"),  # default targets up to 12 > 9
        (SumToEnv, {"shift": 0.5}, "shift"),
        (SumToEnv, {"shift": -4}, "shift"),  # target 3 would need digit sum -1
        (SumToEnv, {"render_mode": "human"}, "render_mode"),
        (SumToShiftedEnv, {"shift": 0}, "shift"),
        (SumToShiftedEnv, {"max_target": 27}, "max_target"),  # 27 + 1 is out of reach
        (SumToShiftedEnv, {"shift": "1"}, "shift"),
        (SumToEnv, {"targets": (5, 13)}, "targets"),  # 13 is outside 3..12
        (SumToEnv, {"targets": (5, 5)}, "targets"),
        (SumToEnv, {"targets": ()}, "targets"),
        (SumToEnv, {"targets": "58"}, "targets"),
        (SumToEnv, {"targets": (5.5,)}, "targets"),
    ],
)
def test_bad_arguments_raise_value_error(cls: type[SumToEnv], kwargs: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        cls(**kwargs)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: verify("7=", "7", max_len=0), "max_len"),
        (lambda: verify("7=", "7", shift=1.0), "shift"),
        (lambda: correct_answers("7=", max_len=99), "max_len"),
        (lambda: n_correct_answers("7=", shift=None), "shift"),
        (lambda: make_prompts(-3, 4), "min_target"),
        (lambda: make_prompts(4, 3), "max_target"),
        (lambda: cut_at_end(None), "text"),
    ],
)
def test_bad_helper_arguments_raise_value_error(call, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        call()
