"""entropy_rl_lite: entropy dynamics, objectives, REPO and ADAPO for policy-gradient RL, small and exact.

    import entropy_rl_lite as erl

Every log-probability, entropy, ratio and advantage it returns is fp32 (float64 in -> float64 out).
"""

from . import aggregation, bandit, exercises, plot
from .adapo import EpsHighController
from .advantages import expected_group_advantages, group_advantages, scale_advantages
from .controllers import EntropyCoefController, EntropyTargetController
from .entropy import (
    centered_logp,
    clip_entropy_bounds,
    entropy,
    entropy_change_exact,
    entropy_change_first_order,
    entropy_from_logp,
    pg_logit_step,
    predicted_entropy_change,
)
from .entropy_control import EntropyControlFields, EntropyControls
from .logprobs import chunk_rows, logprobs_from_logits, token_logprobs
from .losses import (
    aggregate,
    cispo,
    clip_cov_drop,
    entropy_bonus_loss,
    kl_cov_penalty,
    policy_loss,
    ppo_clip,
    reinforce,
    sequence_ratio,
)
from .metrics import clip_fractions, cumulative_entropy, distinct_correct, expected_distinct_correct, pass_at_k
from .precision import effective_clip_bounds, expected_ratio, lowp_token_logprobs, ratio_stats, round_bf16
from .repo import ZetaController, decorrelating_beta, repo_advantage, repo_d_beta, repo_r, shape_advantage
from .seed import seed_everything

__version__ = "0.1.0"


def __getattr__(name: str):  # noqa: ANN202
    """`erl.llm` on first use: the language-model part needs transformers, which the core does not."""
    if name == "llm":
        import importlib

        return importlib.import_module(".llm", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EntropyCoefController",
    "EntropyControlFields",
    "EntropyControls",
    "EntropyTargetController",
    "EpsHighController",
    "ZetaController",
    "aggregate",
    "aggregation",
    "bandit",
    "centered_logp",
    "chunk_rows",
    "cispo",
    "clip_cov_drop",
    "clip_entropy_bounds",
    "clip_fractions",
    "cumulative_entropy",
    "decorrelating_beta",
    "distinct_correct",
    "effective_clip_bounds",
    "entropy",
    "entropy_bonus_loss",
    "entropy_change_exact",
    "entropy_change_first_order",
    "entropy_from_logp",
    "exercises",
    "expected_distinct_correct",
    "expected_group_advantages",
    "expected_ratio",
    "group_advantages",
    "kl_cov_penalty",
    "logprobs_from_logits",
    "lowp_token_logprobs",
    "pass_at_k",
    "pg_logit_step",
    "plot",
    "policy_loss",
    "ppo_clip",
    "predicted_entropy_change",
    "ratio_stats",
    "reinforce",
    "repo_advantage",
    "repo_d_beta",
    "repo_r",
    "round_bf16",
    "scale_advantages",
    "seed_everything",
    "sequence_ratio",
    "shape_advantage",
    "token_logprobs",
]
