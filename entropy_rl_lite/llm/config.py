"""TrainConfig: every hyperparameter of a Part II run in one validated, JSON-serialisable dataclass.

The RL knobs have the same names and meanings as the bandit engine's `BanditConfig` (objective,
advantage, eps_low/eps_high, repo, zeta, adapo, ...), because both feed the same library functions.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .._checks import check_choice, check_int, check_number
from .._rl_fields import check_rl_fields
from ..losses import AGGREGATIONS
from .profiles import PROFILES

DTYPES = ("float32", "bfloat16")
OPTIMIZERS = ("adamw", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """One RL run on a text task. Validated on creation; an error names the field and what is allowed."""

    # model and sampling
    profile: str = "ci"              # model size (profiles.PROFILES); ignored when a model is passed in
    dtype: str = "float32"           # weights of a model the trainer builds (the CLI loads checkpoints in it);
                                     # log-probs, entropies, ratios and advantages stay fp32 whatever it is
    seed: int = 0
    steps: int = 50                  # RL iterations: one sampled batch each
    prompts_per_step: int = 8        # distinct prompts per batch
    group_size: int = 8              # G completions per prompt (the advantage baseline's group)
    max_new_tokens: int = 4          # completion budget, end token included
    temperature: float = 1.0         # sampling and scoring temperature
    # optimisation
    optimizer: str = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    epochs: int = 1                  # passes over each batch
    minibatches: int = 1             # updates per epoch; clipping (and ADAPO) binds from the second update on
    grad_accum: int = 1              # micro-batches per update: gradients accumulate, memory shrinks; the same
                                     # update except REPO-D's β and Clip-Cov/KL-Cov's token choice (per micro-batch)
    amp: bool = False                # bf16 autocast for the transformer (GPU); log-probs stay fp32 regardless
    max_grad_norm: float | None = 1.0  # None: no clipping
    # objective (same names as BanditConfig)
    objective: str = "ppo"           # a policy_loss kind: reinforce, ppo (DAPO: eps_high > eps_low), gspo, cispo, ...
    advantage: str = "grpo"          # grpo, rloo, dr_grpo, none
    adv_eps: float = 1e-6
    agg: str = "token-mean"
    eps_low: float = 0.2
    eps_high: float = 0.2
    entropy_coef: float = 0.0        # explicit entropy bonus (needs the full-vocabulary entropy: we have it)
    entropy_coef_control: bool = False
    entropy_coef_rate: float = 0.1
    repo: str | None = None          # None, "beta", "decorrelate", "repo_d", "repo_r"
    beta: float = 0.0
    zeta: float = 0.0
    zeta_control: bool = False
    zeta_min: float = 1e-4
    zeta_max: float = 0.05
    adapo: bool = False
    eps_high_min: float = 0.2
    eps_high_max: float = 1.0
    adapo_factor: float = 1.5
    target_entropy: float | None = None  # controllers' target; None = the entropy measured at step 0
    # logging and checkpoints
    pass_k: int = 4                  # k of the logged pass@k (<= group_size)
    chunk_size: int = 1024           # tokens per fp32 block in token_logprobs
    log_path: str | None = None      # JSONL metrics, one line per step
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0        # 0: only when asked (Trainer.save)
    loss_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_choice("profile", self.profile, PROFILES)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("agg", self.agg, AGGREGATIONS)
        check_rl_fields(self)  # the fields shared with the bandit engine's BanditConfig
        check_int("seed", self.seed, low=0)
        check_int("steps", self.steps, low=0)
        check_int("prompts_per_step", self.prompts_per_step, low=1)
        check_int("group_size", self.group_size, low=1)
        if self.advantage in ("grpo", "rloo") and self.group_size < 2:
            raise ValueError(f"group_size must be >= 2 for advantage={self.advantage!r} (its baseline needs "
                             f"another sample), got {self.group_size}")
        check_int("max_new_tokens", self.max_new_tokens, low=1)
        check_number("temperature", self.temperature, low=0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_int("epochs", self.epochs, low=1)
        check_int("minibatches", self.minibatches, low=1)
        check_int("grad_accum", self.grad_accum, low=1)
        if self.minibatches * self.grad_accum > self.prompts_per_step * self.group_size:
            raise ValueError(f"minibatches × grad_accum = {self.minibatches * self.grad_accum} exceeds the batch of "
                             f"{self.prompts_per_step * self.group_size} sequences")
        if self.max_grad_norm is not None:
            check_number("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        check_int("pass_k", self.pass_k, low=1)
        if self.pass_k > self.group_size:
            raise ValueError(f"pass_k must be <= group_size={self.group_size} (pass@k needs k samples), "
                             f"got {self.pass_k}")
        check_int("chunk_size", self.chunk_size, low=1)
        check_int("checkpoint_every", self.checkpoint_every, low=0)
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every > 0 needs checkpoint_dir")

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated again); unknown field names raise."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) {sorted(unknown)}; known: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of `to_dict`; unknown keys raise."""
        return cls().replace(**d)
