"""Text tasks with verifiable rewards: a prompt string in, a completion string out, reward from a verifier.

The tasks are tiny and character-level, so a small transformer can learn them on a CPU, and every
piece of data is generated (nothing is downloaded).

**SumTo** (`erl/SumTo-v0`). The prompt is a target ``N`` written in decimal followed by ``"="``, for
example ``"7="``. A completion is correct when

* it is a non-empty string of at most `max_len` characters, each a digit ``0``-``9`` (the empty
  string, any other character, including the end marker ``"."`` and ``"="``, and anything longer than
  `max_len` are wrong), and
* its digits add up to ``N``.

Leading zeros are allowed and count as different answers: for ``"7="`` the strings ``"7"``, ``"07"``,
``"25"``, ``"52"``, ``"016"`` and ``"115"`` are six distinct correct completions. With ``max_len=3``
the number of correct completions is 6, 10, 15, 21, 28, 36, 45, 55, 66, 72, 77, 80, 81 for
``N = 1 .. 13``, then falling again to 1 (``"999"``) for ``N = 27``, so a policy can be right in many
ways and the diversity of its correct answers is measurable (`correct_answers` lists them all).

**SumToShifted** (`erl/SumToShifted-v0`). Same prompts, same format rules, but the digits must add up
to ``N + shift`` (``shift=1`` by default). For a given prompt the correct sets of the two tasks are
**disjoint**: a string has a single digit sum, so no answer to ``"7="`` under SumTo is correct under
SumToShifted. That makes the pair a clean sequential-learning test. After training on SumTo, every
answer the policy prefers earns 0, so it must explore to find new ones, and a policy whose entropy
collapsed in phase 1 has almost no mass left on the new correct set. Yet the new task is learnable
from what phase 1 taught: its correct set for ``"N="`` is exactly SumTo's correct set for
``"{N+1}="``, so the skill carries over and only the mapping from prompt to answers has to move.

**End of answer.** A trainer that samples characters one at a time from `VOCAB` stops at the end
marker `END` (or after `max_len` characters) and submits the text before it; `cut_at_end` does that
cut. The marker itself is never part of a completion, so `verify` rejects any completion containing it.

**Environment.** One step per episode: `reset` draws a prompt uniformly from the fixed prompt set
(``"{N}="`` for ``N`` in ``[min_target, max_target]``, or only the given `targets`: a train / held-out
split) with ``self.np_random``, or takes
``options={"prompt": ...}``; `step` takes the completion string and returns reward 1.0 if it is
correct, else 0.0, with ``terminated=True``. The action space holds the strings of 0 to `max_len`
digits (so the empty completion is a legal, wrong action), but any string is accepted: one outside
that space (too long, bad characters) is simply wrong, as a language model's malformed output would
be; a non-string raises ValueError.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import gymnasium as gym
from gymnasium import spaces

from ._checks import as_int, check_render_mode

DIGITS = "0123456789"
SEPARATOR = "="
END = "."
VOCAB = DIGITS + SEPARATOR + END  # every character a trainer needs: prompts, completions, end marker
PROMPT_CHARSET = DIGITS + SEPARATOR
COMPLETION_CHARSET = DIGITS

MAX_LEN_LIMIT = 6  # keeps `correct_answers` small enough to list (at most 60,313 strings, for N = 27)


def make_prompts(min_target: int = 3, max_target: int = 12) -> list[str]:
    """Return the prompts ``"{N}="`` for every target ``N`` from `min_target` to `max_target`, in order."""
    low = as_int("min_target", min_target, minimum=0)
    high = as_int("max_target", max_target, minimum=0)
    if high < low:
        raise ValueError(f"max_target must be >= min_target={low}, got {high}")
    return [f"{n}{SEPARATOR}" for n in range(low, high + 1)]


def parse_prompt(prompt: str) -> int:
    """Return the target ``N`` of a prompt ``"{N}="``; raise ValueError if it is not of that form."""
    bad = ValueError(f"prompt must be a target in decimal followed by {SEPARATOR!r}, e.g. '7=', got {prompt!r}")
    if not isinstance(prompt, str) or not prompt.endswith(SEPARATOR):
        raise bad
    digits = prompt[:-1]
    # Exactly the strings make_prompts writes: no sign, no spaces, no leading zeros (except "0" itself).
    if not digits or any(c not in DIGITS for c in digits) or (len(digits) > 1 and digits[0] == "0"):
        raise bad
    return int(digits)


def cut_at_end(text: str) -> str:
    """Return `text` up to (not including) its first end marker `END`; all of it if it has none."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a string, got {text!r}")
    return text.split(END, 1)[0]


def _check_max_len(max_len: Any) -> int:
    value = as_int("max_len", max_len, minimum=1)
    if value > MAX_LEN_LIMIT:
        raise ValueError(f"max_len must be an integer in [1, {MAX_LEN_LIMIT}], got {value}")
    return value


def _subset(prompts: list[str], targets: Any) -> list[str]:
    """The prompts of `targets`, in order; each target must be one of `prompts`' and appear once."""
    if isinstance(targets, (str, bytes)) or not hasattr(targets, "__iter__"):
        raise ValueError(f"targets must be a sequence of integers, got {targets!r}")
    targets = list(targets)  # once, so that a generator is still there for the error message
    wanted = [as_int(f"targets[{i}]", t, minimum=0) for i, t in enumerate(targets)]
    known = {parse_prompt(p) for p in prompts}
    keep = set(wanted)
    if keep - known or not wanted or len(keep) != len(wanted):
        raise ValueError(
            f"targets must be distinct values in {min(known)}..{max(known)} (min_target..max_target), "
            f"at least one, got {list(targets)}"
        )
    return [p for p in prompts if parse_prompt(p) in keep]


def _goal(prompt: str, shift: Any) -> int:
    """The digit sum a correct completion of `prompt` must have."""
    return parse_prompt(prompt) + as_int("shift", shift)


def verify(prompt: str, completion: str, *, max_len: int = 3, shift: int = 0) -> bool:
    """Return whether `completion` is a correct answer to `prompt`.

    Correct means: a string of 1 to `max_len` digits whose digit sum is ``N + shift``, where `prompt`
    is ``"{N}="``. Leading zeros are allowed. ``shift=0`` is SumTo, ``shift=1`` SumToShifted. A
    malformed completion (not a string, empty, too long, any non-digit) is wrong, not an error; a
    malformed prompt raises ValueError.
    """
    max_len = _check_max_len(max_len)
    goal = _goal(prompt, shift)
    if not isinstance(completion, str) or not 1 <= len(completion) <= max_len:
        return False
    if any(c not in DIGITS for c in completion):
        return False
    return sum(int(c) for c in completion) == goal


@lru_cache(maxsize=None)
def _strings_with_digit_sum(length: int, total: int) -> tuple[str, ...]:
    """All digit strings of exactly `length` characters summing to `total`, in lexicographic order."""
    if total < 0 or total > 9 * length:
        return ()
    if length == 0:
        return ("",)
    return tuple(
        first + rest
        for first in DIGITS[: min(total, 9) + 1]
        for rest in _strings_with_digit_sum(length - 1, total - int(first))
    )


@lru_cache(maxsize=None)
def _count_with_digit_sum(length: int, total: int) -> int:
    if total < 0 or total > 9 * length:
        return 0
    if length == 0:
        return 1
    return sum(_count_with_digit_sum(length - 1, total - d) for d in range(min(total, 9) + 1))


def correct_answers(prompt: str, *, max_len: int = 3, shift: int = 0) -> list[str]:
    """Return every correct completion of `prompt`, shortest first, then in lexicographic order."""
    max_len = _check_max_len(max_len)
    goal = _goal(prompt, shift)
    return [s for length in range(1, max_len + 1) for s in _strings_with_digit_sum(length, goal)]


def n_correct_answers(prompt: str, *, max_len: int = 3, shift: int = 0) -> int:
    """Return ``len(correct_answers(prompt, ...))``, computed by counting rather than listing."""
    max_len = _check_max_len(max_len)
    goal = _goal(prompt, shift)
    return sum(_count_with_digit_sum(length, goal) for length in range(1, max_len + 1))


class SumToEnv(gym.Env[str, str]):
    """Prompt ``"{N}="``; a completion is correct when it is 1 to `max_len` digits summing to ``N + shift``.

    With the default ``shift=0`` this is SumTo; `SumToShiftedEnv` is the same task with ``shift=1``.
    `targets` keeps only those N of `min_target`..`max_target` (a train / held-out split of the prompts); the
    attributes `min_target` and `max_target` are then the split's smallest and largest target.
    Every prompt must have at least one correct answer, i.e. ``0 <= N + shift <= 9 * max_len`` for all
    targets; otherwise the constructor raises ValueError.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        min_target: int = 3,
        max_target: int = 12,
        max_len: int = 3,
        shift: int = 0,
        render_mode: str | None = None,
        targets: Sequence[int] | None = None,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"])
        self.render_mode = render_mode
        self.max_len = _check_max_len(max_len)
        self.shift = as_int("shift", shift)
        all_prompts = make_prompts(min_target, max_target)
        self.prompts: tuple[str, ...] = tuple(all_prompts if targets is None else _subset(all_prompts, targets))
        self.min_target = parse_prompt(self.prompts[0])
        self.max_target = parse_prompt(self.prompts[-1])

        largest_sum = 9 * self.max_len
        if self.min_target + self.shift < 0:
            raise ValueError(
                f"shift={self.shift} makes target {self.min_target} need digit sum "
                f"{self.min_target + self.shift} < 0, so that prompt has no correct answer; "
                "raise min_target or shift"
            )
        if self.max_target + self.shift > largest_sum:
            raise ValueError(
                f"max_target={self.max_target} with shift={self.shift} needs digit sum "
                f"{self.max_target + self.shift}, but {self.max_len} digits (max_len) reach at most "
                f"{largest_sum}, so that prompt has no correct answer"
            )
        self._n_correct = {p: n_correct_answers(p, max_len=self.max_len, shift=self.shift) for p in self.prompts}

        self.observation_space = spaces.Text(max_length=len(self.prompts[-1]), min_length=2, charset=PROMPT_CHARSET)
        # min_length=0 so the empty completion is a legal (and wrong) action.
        self.action_space = spaces.Text(max_length=self.max_len, min_length=0, charset=COMPLETION_CHARSET)
        self._prompt: str | None = None  # None until reset() and again after the step

    def verify(self, prompt: str, completion: str) -> bool:
        """`verify` with this environment's `max_len` and `shift`."""
        return verify(prompt, completion, max_len=self.max_len, shift=self.shift)

    def correct_answers(self, prompt: str) -> list[str]:
        """`correct_answers` with this environment's `max_len` and `shift`."""
        return correct_answers(prompt, max_len=self.max_len, shift=self.shift)

    def n_correct_answers(self, prompt: str) -> int:
        """The number of correct completions of `prompt` in this task."""
        if prompt in self._n_correct:
            return self._n_correct[prompt]
        return n_correct_answers(prompt, max_len=self.max_len, shift=self.shift)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        if options is not None and "prompt" in options:
            prompt = options["prompt"]
            if prompt not in self._n_correct:
                raise ValueError(
                    f"options['prompt'] must be one of this environment's prompts {list(self.prompts)}, got {prompt!r}"
                )
        else:
            prompt = self.prompts[int(self.np_random.integers(len(self.prompts)))]
        self._prompt = prompt
        return prompt, {"prompt": prompt, "n_correct_answers": self._n_correct[prompt]}

    def step(self, action: str) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self._prompt is None:
            raise RuntimeError(f"{type(self).__name__}: the episode has terminated; call reset() before step()")
        if not isinstance(action, str):
            raise ValueError(f"action must be a completion string, got {action!r}")
        prompt = self._prompt
        correct = self.verify(prompt, action)
        self._prompt = None
        info = {
            "prompt": prompt,
            "completion": action,
            "correct": correct,
            "n_correct_answers": self._n_correct[prompt],
        }
        # The episode is over after one completion; the prompt is returned as the final observation.
        return prompt, float(correct), True, False, info

    def render(self) -> None:
        return None


class SumToShiftedEnv(SumToEnv):
    """SumTo with the digit sum moved to ``N + shift`` (default 1): same prompts, disjoint correct sets."""

    def __init__(
        self,
        min_target: int = 3,
        max_target: int = 12,
        max_len: int = 3,
        shift: int = 1,
        render_mode: str | None = None,
        targets: Sequence[int] | None = None,
    ) -> None:
        if as_int("shift", shift) == 0:
            raise ValueError("shift must be non-zero for SumToShifted (shift=0 is SumTo), got 0")
        super().__init__(min_target, max_target, max_len, shift, render_mode, targets)


__all__ = [
    "COMPLETION_CHARSET",
    "DIGITS",
    "END",
    "MAX_LEN_LIMIT",
    "PROMPT_CHARSET",
    "SEPARATOR",
    "VOCAB",
    "SumToEnv",
    "SumToShiftedEnv",
    "correct_answers",
    "cut_at_end",
    "make_prompts",
    "n_correct_answers",
    "parse_prompt",
    "verify",
]
