"""TrainConfig: every hyperparameter of a Part II run in one validated, JSON-serialisable dataclass.

The RL knobs have the same names and meanings as the bandit engine's `BanditConfig` (objective,
advantage, eps_low/eps_high, repo, zeta, adapo, ...), because both feed the same library functions.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from .._checks import check_bool, check_choice, check_int, check_number
from ..aggregation import AGGREGATIONS
from ..field_docs import document_fields
from ..precision import LOGPROB_DTYPES
from ..rl_fields import RLFields
from .profiles import PROFILES

TORCH_DTYPES = {k: LOGPROB_DTYPES[k] for k in ("float32", "bfloat16")}  # the dtypes model weights may have
DTYPES = tuple(TORCH_DTYPES)
OPTIMIZERS = ("adamw", "sgd")
LOGP_OLD_SOURCES = ("trainer", "sampler")


@document_fields
@dataclass(frozen=True)
class TrainConfig(RLFields):
    """One RL run on a text task. Validated on creation; an error names the field and what is allowed.

    The RL fields (objective, advantage, lr, group_size, epochs, eps_low/eps_high, REPO, ADAPO, entropy
    bonus, loss_kwargs) are `erl.rl_fields.RLFields`', shared with the bandit engine's BanditConfig.
    """

    # model and sampling
    profile: str = "ci"  # model size (profiles.PROFILES); ignored when a model is passed in
    # weights of a model the trainer builds (the CLI loads checkpoints in it); log-probs, entropies, ratios
    # and advantages stay fp32 whatever it is
    dtype: str = "float32"
    seed: int = 0
    steps: int = 50  # RL iterations: one sampled batch each
    prompts_per_step: int = 8  # distinct prompts per batch (each sampled group_size times)
    max_new_tokens: int = 4  # completion budget, end token included
    temperature: float = 1.0  # sampling and scoring temperature
    # What a real stack's sampler may do (docs/science.md §4): truncate (top_k > 0, top_p < 1) and run in low precision.
    top_k: int = 0
    top_p: float = 1.0
    sampler_dtype: str = "float32"  # float32 | bfloat16 | float16: generate under autocast in this dtype
    # the trainer's log-prob dtype: float32 is the library's contract; bfloat16/float16 emulate a stack without
    # the fp32 fix (transformer, logits and log-softmax all in that dtype: precision.lowp_token_logprobs)
    logprob_dtype: str = "float32"
    # logp_old: "trainer" recomputes it with the trainer's own forward pass (the library's way: first ratio 1);
    # "sampler" takes the sampler's log q of each drawn token, as stacks that reuse the inference engine's scores do
    logp_old_source: str = "trainer"
    # keep the sampler's log q even with logp_old_source="trainer", to log the mismatch (implied by "sampler")
    log_mismatch: bool = False
    # optimisation (lr and epochs are RLFields')
    optimizer: str = "adamw"
    weight_decay: float = 0.0
    minibatches: int = 1  # updates per epoch; clipping (and ADAPO) binds from the second update on
    # micro-batches per update: gradients accumulate, memory shrinks; the same update except REPO-D's β and
    # Clip-Cov/KL-Cov's token choice (made per micro-batch)
    grad_accum: int = 1
    # with one update per epoch (minibatches = grad_accum = 1), take logp_old from the first update's forward
    # pass instead of a separate no-grad pass (Trainer._old_logprobs)
    fuse_logp_old: bool = True
    amp: bool = False  # bf16 autocast for the transformer (GPU); log-probs stay fp32 regardless
    max_grad_norm: float | None = 1.0  # None: no clipping
    agg: str = "token-mean"  # how per-token losses become one number (aggregation.AGGREGATIONS)
    # logging and checkpoints
    pass_k: int = 4  # k of the logged pass@k (<= group_size)
    # tokens per fp32 [tokens × V] block in token_logprobs; None: from its memory budget (logprobs.BLOCK_MIB)
    chunk_size: int | None = None
    log_path: str | None = None  # JSONL metrics, one line per step
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0  # 0: only when asked (Trainer.save)

    def __post_init__(self) -> None:
        super().__post_init__()  # the fields shared with the bandit engine's BanditConfig
        check_choice("profile", self.profile, PROFILES)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("agg", self.agg, AGGREGATIONS)
        check_int("seed", self.seed, low=0)
        check_int("steps", self.steps, low=0)
        check_int("prompts_per_step", self.prompts_per_step, low=1)
        check_int("max_new_tokens", self.max_new_tokens, low=1)
        check_number("temperature", self.temperature, low=0.0, low_open=True)
        check_int("top_k", self.top_k, low=0)
        check_number("top_p", self.top_p, low=0.0, high=1.0, low_open=True)
        check_choice("sampler_dtype", self.sampler_dtype, tuple(LOGPROB_DTYPES))
        check_choice("logprob_dtype", self.logprob_dtype, tuple(LOGPROB_DTYPES))
        check_choice("logp_old_source", self.logp_old_source, LOGP_OLD_SOURCES)
        check_bool("log_mismatch", self.log_mismatch)
        check_number("weight_decay", self.weight_decay, low=0.0)
        check_int("minibatches", self.minibatches, low=1)
        check_int("grad_accum", self.grad_accum, low=1)
        if self.minibatches * self.grad_accum > self.prompts_per_step * self.group_size:
            raise ValueError(
                f"minibatches × grad_accum = {self.minibatches * self.grad_accum} exceeds the batch of "
                f"{self.prompts_per_step * self.group_size} sequences"
            )
        if self.max_grad_norm is not None:
            check_number("max_grad_norm", self.max_grad_norm, low=0.0, low_open=True)
        check_int("pass_k", self.pass_k, low=1)
        if self.pass_k > self.group_size:
            raise ValueError(
                f"pass_k must be <= group_size={self.group_size} (pass@k needs k samples), got {self.pass_k}"
            )
        if self.chunk_size is not None:
            check_int("chunk_size", self.chunk_size, low=1)
        check_int("checkpoint_every", self.checkpoint_every, low=0)
        if self.checkpoint_every and self.checkpoint_dir is None:
            raise ValueError("checkpoint_every > 0 needs checkpoint_dir")

    @property
    def torch_dtype(self) -> torch.dtype:
        """`dtype` as a torch dtype."""
        return TORCH_DTYPES[self.dtype]

    @property
    def sampler_logprobs(self) -> bool:
        """Whether rollouts keep the sampler's log q (for logp_old or for the mismatch metrics)."""
        return self.logp_old_source == "sampler" or self.log_mismatch

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated again); unknown field names raise."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(
                f"unknown TrainConfig field(s) {sorted(unknown)}; known: {[f.name for f in dataclasses.fields(self)]}"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-serialisable)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Inverse of `to_dict`; unknown keys raise."""
        return cls().replace(**d)
