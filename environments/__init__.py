"""Small gymnasium environments used by the chapters: bandits, a token-level sequence task and text tasks.

Importing this package registers them under the ``erl/`` namespace, e.g.
``gymnasium.make("erl/MultiCorrectBandit-v0", n_arms=5, correct_arms=(0, 1))``.
"""

from __future__ import annotations

import gymnasium as gym

from .contextual_bandit import ContextualBandit
from .multi_correct_bandit import MultiCorrectBandit
from .text_tasks import SumToEnv, SumToShiftedEnv
from .token_sequence import TokenSequenceEnv

ENV_IDS: dict[str, str] = {
    "erl/MultiCorrectBandit-v0": "environments.multi_correct_bandit:MultiCorrectBandit",
    "erl/ContextualBandit-v0": "environments.contextual_bandit:ContextualBandit",
    "erl/TokenSequence-v0": "environments.token_sequence:TokenSequenceEnv",
    "erl/SumTo-v0": "environments.text_tasks:SumToEnv",
    "erl/SumToShifted-v0": "environments.text_tasks:SumToShiftedEnv",
}

for _env_id, _entry_point in ENV_IDS.items():
    # Registering an id twice makes gymnasium warn, so skip ids already present (e.g. on reload).
    if _env_id not in gym.registry:
        gym.register(id=_env_id, entry_point=_entry_point)

__all__ = ["ENV_IDS", "ContextualBandit", "MultiCorrectBandit", "SumToEnv", "SumToShiftedEnv", "TokenSequenceEnv"]
