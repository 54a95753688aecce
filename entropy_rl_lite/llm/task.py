"""What the trainer, the evaluator and the warm start need from a text task."""

from __future__ import annotations

from typing import Protocol


class TextTask(Protocol):
    """A verifiable text task (environments.text_tasks.SumToEnv has it): prompts, a length and a verifier."""

    prompts: tuple[str, ...]  # the prompt pool RL draws from
    max_len: int  # the longest correct answer, in characters

    def verify(self, prompt: str, completion: str) -> bool: ...  # the reward: correct or not
    def correct_answers(self, prompt: str) -> list[str]: ...  # every correct answer (for diversity)
