"""The token-level RL trainer: sample a grouped batch, score it, update the policy several times on it.

One iteration (`Trainer.step`), with the library functions it calls:

    prompts      `prompts_per_step` prompts drawn without replacement (its own generator)
    rollout      `sample`: G completions per prompt with `generate`, from the trainer's own RNG stream
    reward       task.verify(prompt, completion) -> 1.0 / 0.0
    advantage    `group_advantages(rewards, G, kind)`: one number per sequence, shared by its tokens
    logp_old, H  `completion_logprobs` under no_grad: fp32, chunked, full-vocabulary entropy per token
                 (logp_old_source="sampler": logp_old is the sampler's own log q; the mismatch is logged)
    controls     `EntropyControls.update`: ζ, ε_high and the entropy coefficient, one controller step each
                 from the measured token-mean entropy of the batch
    updates      epochs × minibatches of: logp -> `shape_advantage` (REPO) -> `policy_loss` (+ entropy
                 bonus) -> backward -> clip grad norm -> optimizer step

These are the functions the bandit engine calls; a bandit is the special case of one-token episodes.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm  # plain tqdm: tqdm.auto warns in Jupyter without ipywidgets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..advantages import group_advantages_unchecked
from ..aggregation import aggregate_unchecked, masked_mean
from ..entropy_control import EntropyControls
from ..logs import MetricsLog, run_metadata
from ..losses import policy_loss_unchecked, ratio_from_log
from ..precision import LOGPROB_DTYPES
from ..repo import shape_advantage_unchecked
from .checkpoint import resume_trainer, save_trainer, task_info
from .config import TrainConfig
from .evaluate import group_metrics
from .flops import throughput
from .model import build_model
from .rollout import (
    Rollout,
    check_scorable,
    completion_logprobs,
    get_rng_state,
    pick_prompts,
    rng_devices,
    sample,
    seed_rng,
    set_rng_state,
)
from .task import TextTask
from .tokenizer import CharTokenizer


# policy_loss's metrics the trainer logs (as means over the step's updates); ratio_max is logged as a maximum.
class TrainingDiverged(RuntimeError):
    """The loss, the gradient or the sampling probabilities became non-finite; the message names the step."""


Controls = tuple[float, float, float]  # ζ, ε_high, entropy coefficient in force
Pass = tuple[Tensor, Tensor] | None  # (logp, entropy) of a forward pass with gradients, to reuse
Olds = tuple[Tensor, Tensor]  # (logp_old, L = log π_old + H_old) [n, T]: what the loss compares the new pass with
LOGGED_LOSS_METRICS = (
    "clip_frac",
    "clip_frac_low",
    "clip_frac_high",
    "clip_frac_high_neg_L",
    "clip_frac_low_pos_L",
    "approx_kl",
    "ratio_mean",
    "ratio_std",
    "cov_frac",
)
# Of the first update of a step (before any optimizer step on its batch, so r measures only how logp_old was
# obtained), logged with a first_ prefix: a precision or truncation mismatch shows here and nowhere else.
FIRST_UPDATE_METRICS = ("ratio_mean", "ratio_std", "clip_frac_low", "clip_frac_high")


class Trainer:
    """RL on a text task with the library's objectives, REPO, ADAPO and entropy bonus.

    model/tokenizer: None builds `CharTokenizer()` and a random model of `config.profile` (seeded with
    config.seed); pass a warm-started model to start RL from it, or a peft LoRA model (only its adapters
    train; `base_model_path`, the local directory of its base weights, lets a checkpoint of it resume).
    The trainer owns its randomness (a generator for prompts and minibatches, a saved RNG state for
    sampling), so its runs repeat exactly and do not disturb the caller's random streams.
    """

    def __init__(
        self,
        config: TrainConfig,
        task: TextTask,
        model: PreTrainedModel | None = None,
        tokenizer: PreTrainedTokenizerBase | None = None,
        device: str | torch.device | None = None,
        base_model_path: str | None = None,
    ) -> None:
        if not isinstance(config, TrainConfig):
            raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
        self.config = cfg = config
        self.task = task
        self.base_model_path = base_model_path
        self.tokenizer = tokenizer if tokenizer is not None else CharTokenizer()
        if model is None:
            model = build_model(self.tokenizer, cfg.profile, seed=cfg.seed, dtype=cfg.torch_dtype)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        check_scorable(model)  # fail now, not after a rollout, for heads the fp32 path cannot score
        self.model = model.to(self.device)
        if self.model.config.vocab_size < len(self.tokenizer):
            raise ValueError(f"model vocab_size {self.model.config.vocab_size} < tokenizer size {len(self.tokenizer)}")
        params = [p for p in self.model.parameters() if p.requires_grad]  # LoRA: only the adapters train
        # foreach: one batched kernel per state tensor instead of a Python loop over parameters (CPU defaults to
        # the loop); the same numbers bit for bit, and for small models a visible share of the step.
        if cfg.optimizer == "adamw":
            self.optimizer: torch.optim.Optimizer = torch.optim.AdamW(
                params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True
            )
        else:
            self.optimizer = torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)
        self.controls = EntropyControls.from_config(cfg)  # ζ, ε_high, entropy coefficient
        self.generator = torch.Generator().manual_seed(cfg.seed)  # prompts, minibatch order, Clip-Cov draws
        with torch.random.fork_rng(devices=rng_devices(self.device)):
            seed_rng(cfg.seed + 1, self.device)  # sampling stream, kept apart from the caller's global RNG
            self.sample_rng = get_rng_state(self.device)
        self.step_count = 0
        self.log = MetricsLog(cfg.log_path) if cfg.log_path else None
        self.history: list[dict[str, Any]] = []
        self.resumed_from: str | None = None  # the checkpoint this run continues, if any
        self._log_started = False

    # -- one iteration --------------------------------------------------------------------------------
    def _rollout(self) -> Rollout:
        with torch.random.fork_rng(devices=rng_devices(self.device)):
            set_rng_state(self.sample_rng, self.device)
            prompts = pick_prompts(self.task.prompts, self.config.prompts_per_step, self.generator)
            try:
                cfg = self.config
                batch = sample(
                    self.model,
                    self.tokenizer,
                    prompts,
                    cfg.group_size,
                    cfg.max_new_tokens,
                    cfg.temperature,
                    top_k=cfg.top_k,
                    top_p=cfg.top_p,
                    dtype=LOGPROB_DTYPES[cfg.sampler_dtype],
                    sampler_logprobs=cfg.sampler_logprobs,
                )
            except RuntimeError as e:  # torch.multinomial's "probability tensor contains inf, nan or < 0"
                if "probability tensor" not in str(e):
                    raise
                raise TrainingDiverged(
                    f"training diverged at step {self.step_count}: sampling met non-finite probabilities "
                    f"(the weights or logits hold inf/NaN; torch: {e})"
                ) from None
            self.sample_rng = get_rng_state(self.device)
        return batch

    def step(self) -> dict[str, Any]:
        """Run one RL iteration; return (and log) its metrics."""
        cfg = self.config
        t0 = time.perf_counter()
        batch = self._rollout().to(self.device)
        t_rollout = time.perf_counter() - t0
        rewards, adv = self._score(batch)  # [N], [N]
        self.model.train()
        t_update = time.perf_counter()
        logp_old, ent_old, first = self._old_logprobs(batch)  # [N, T] each; first: see _old_logprobs
        if first is None:
            t_update = time.perf_counter()  # a separate no-grad pass is not part of the updates
        entropy = masked_mean(ent_old, batch.completion_mask).item()  # the sampling policy's token-mean entropy
        centered = logp_old + ent_old  # L = log π_old + H_old per token, by the trainer's own pass
        mismatch = self._mismatch(batch, logp_old)
        if cfg.logp_old_source == "sampler":
            logp_old = batch.sampler_logp  # what the ratio's denominator now holds: the sampler's log q
        controls = self.controls.update(entropy)  # (ζ, ε_high, entropy coefficient) for this iteration
        updates = []
        for _ in range(cfg.epochs):
            order = torch.randperm(len(batch), generator=self.generator)
            for rows in order.tensor_split(cfg.minibatches):
                dev_rows = rows.to(self.device)
                pre = None if first is None else (first[0][dev_rows], first[1][dev_rows])
                first = None  # only the very first update may reuse it: later ones see a moved policy
                olds = (logp_old[dev_rows], centered[dev_rows])
                updates.append(self._update(batch.select(rows), olds, adv[dev_rows], controls, pre))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # kernels run asynchronously: wait before reading the clock
        t_update = time.perf_counter() - t_update
        row = self._metrics_row(batch, rewards, ent_old, entropy, updates, t0, t_rollout, t_update)
        row.update(mismatch)
        self._after_step(row)
        return row

    def _score(self, batch: Rollout) -> tuple[Tensor, Tensor]:
        """Verify every completion and turn the rewards into group advantages. -> (rewards [N] on CPU, adv [N])."""
        cfg = self.config
        prompts = [p for p in batch.prompts for _ in range(cfg.group_size)]
        rewards = torch.tensor([float(self.task.verify(p, c)) for p, c in zip(prompts, batch.completions)])
        adv = group_advantages_unchecked(rewards, cfg.group_size, cfg.advantage, cfg.adv_eps).to(self.device)
        return rewards, adv

    def _old_logprobs(self, batch: Rollout) -> tuple[Tensor, Tensor, tuple[Tensor, Tensor] | None]:
        """log π_old and the entropy of every completion token [N, T], fp32, and the pass to reuse, if any.

        With one update per epoch on the whole batch (and `fuse_logp_old`), the first update's forward pass sees
        exactly the sampling policy: logp_old is taken from it, detached, and that pass (with its graph) is
        returned for the first update to reuse. One forward pass fewer; logp_old then comes from the very code
        path every update uses, so the first ratio is exactly 1. Otherwise: a separate no-grad pass, and None.
        """
        cfg = self.config
        if cfg.fuse_logp_old and cfg.minibatches == 1 and cfg.grad_accum == 1:
            first = self._logprobs(batch)
            return first[0].detach(), first[1].detach(), first
        with torch.no_grad():
            logp_old, ent_old = self._logprobs(batch)
        return logp_old, ent_old, None

    def _logprobs(self, batch: Rollout) -> tuple[Tensor, Tensor]:
        """The trainer's (logp, entropy) [n, T] of a (micro-)batch: fp32, or `logprob_dtype` when emulating."""
        cfg = self.config
        dtype = LOGPROB_DTYPES[cfg.logprob_dtype]
        return completion_logprobs(self.model, batch, cfg.chunk_size, cfg.temperature, cfg.amp, dtype)

    def _mismatch(self, batch: Rollout, logp_old: Tensor) -> dict[str, float]:
        """Sampler against trainer on the drawn tokens, when the rollout kept the sampler's log q; else {}.

        mismatch: mean of log q − log π_old over the sampled tokens. The tokens come from q, so when both sides
        are normalised distributions this estimates KL(q ‖ π_old) ≥ 0 (with top-p, about −log of the kept mass);
        a low-precision side is not exactly normalised, and the mean can then be negative. mismatch_ratio_mean:
        mean of π_old/q, the importance weight a trainer that takes logp_old from the sampler implicitly applies.
        """
        if batch.sampler_logp is None:
            return {}
        mask = batch.completion_mask
        diff = batch.sampler_logp - logp_old
        return {
            "mismatch": masked_mean(diff, mask).item(),
            "mismatch_abs": masked_mean(diff.abs(), mask).item(),
            "mismatch_ratio_mean": masked_mean(ratio_from_log(-diff), mask).item(),
        }

    def _metrics_row(
        self,
        batch: Rollout,
        rewards: Tensor,
        ent_old: Tensor,
        entropy: float,
        updates: list[dict[str, float]],
        t0: float,
        t_rollout: float,
        t_update: float,
    ) -> dict[str, Any]:
        """The logged row of one iteration: policy, reward and group metrics, update means, controls, timing."""
        cfg, mask = self.config, batch.completion_mask
        return {
            "step": self.step_count,
            "entropy": entropy,
            "entropy_seq": (ent_old * mask).sum(1).mean().item(),  # Σ_t H_t per completion (chain rule)
            "reward": rewards.mean().item(),
            **group_metrics(batch, rewards, sorted({1, cfg.pass_k})),
            "ended": batch.ended.float().mean().item(),
            "completion_len": mask.sum(1).mean().item(),
            **{k: sum(u[k] for u in updates) / len(updates) for k in updates[0]},  # mean over the updates
            **{f"first_{k}": updates[0][k] for k in FIRST_UPDATE_METRICS if k in updates[0]},
            "zeta": float(self.controls.zeta),
            "eps_high": float(self.controls.eps_high),
            "entropy_coef": float(self.controls.entropy_coef),
            **throughput(self.model, batch, cfg.epochs, self.device, t_rollout, t_update, time.perf_counter() - t0),
        }

    def _after_step(self, row: dict[str, Any]) -> None:
        """Count the step, keep its row, log it, and write a checkpoint when one is due."""
        cfg = self.config
        self.step_count += 1
        self.history.append(row)
        if self.log:
            if not self._log_started:
                self.log.start(
                    row["step"],
                    {
                        "config": cfg.to_dict(),
                        "task": task_info(self.task),
                        "resumed_from": self.resumed_from,
                        "start_step": row["step"],
                        **run_metadata(self.device),
                    },
                )
                self._log_started = True
            self.log.append(row)
        if cfg.checkpoint_every and self.step_count % cfg.checkpoint_every == 0:
            self.save(Path(cfg.checkpoint_dir) / f"step_{self.step_count:06d}")

    def _update(self, mb: Rollout, olds: Olds, adv: Tensor, controls: Controls, pre: Pass = None) -> dict:
        """One optimizer step on a minibatch, accumulated over `grad_accum` micro-batches; returns its metrics.

        olds: (logp_old, L under π_old) [n, T]. controls: (ζ, ε_high, entropy coefficient) in force.
        pre: (logp, entropy) of the minibatch already computed with gradients (grad_accum = 1 only).
        """
        logp_old, centered = olds
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        n_tokens = mb.completion_mask.sum()
        out: dict[str, float] = {}
        for rows in torch.arange(len(mb)).tensor_split(cfg.grad_accum):
            part, dev_rows = mb.select(rows), rows.to(self.device)
            # Each micro-batch's loss is a mean over its own tokens (or sequences); weighting it by its share
            # of the minibatch makes the accumulated gradient equal the full minibatch's.
            share = (part.completion_mask.sum() / n_tokens).item() if cfg.agg == "token-mean" else len(rows) / len(mb)
            loss, metrics = self._loss(part, (logp_old[dev_rows], centered[dev_rows]), adv[dev_rows], controls, pre)
            (loss * share).backward()
            for k, v in metrics.items():  # share-weighted means, except the largest ratio
                out[k] = max(out.get(k, -math.inf), v) if k == "ratio_max" else out.get(k, 0.0) + share * v
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm else math.inf)
        out["grad_norm"] = grad_norm.item()
        bad = [k for k in ("loss", "grad_norm") if not math.isfinite(out[k])]
        if bad:  # checked before the step: the weights stay finite, and the run says where it broke
            raise TrainingDiverged(
                f"training diverged at step {self.step_count}: non-finite {' and '.join(bad)} "
                f"(loss {out['loss']}, gradient norm {out['grad_norm']}); the weights were not updated with it. "
                "Lower lr, keep max_grad_norm set, or check the rewards and the model's dtype"
            )
        self.optimizer.step()
        return out

    def _loss(self, part: Rollout, olds: Olds, adv: Tensor, controls: Controls, pre: Pass) -> tuple[Tensor, dict]:
        """A micro-batch's loss: log-probs -> REPO's advantage -> policy_loss (+ entropy bonus); and its metrics.

        olds: (logp_old, L under π_old) [n, T]. Every tensor here was made by this trainer from a validated
        config: the shared kernels run unchecked.
        """
        cfg, mask, (zeta, eps_high, coef) = self.config, part.completion_mask, controls
        logp_old, centered = olds
        if pre is None:
            pre = self._logprobs(part)
        logp, ent = pre  # [n, T]
        w = mask.to(logp.dtype)
        adv_tok = adv[:, None].expand_as(logp)  # outcome reward: a sequence's tokens share its A
        # β* of REPO-D is estimated over the sampled tokens of the (micro-)batch: dim = all its tokens.
        a = shape_advantage_unchecked(adv_tok, logp, ent.detach(), w, cfg.repo, zeta=zeta, beta=cfg.beta, dim=(-2, -1))
        options = {"generator": self.generator, **cfg.loss_kwargs}
        loss, m = policy_loss_unchecked(
            logp, logp_old, a, w, cfg.objective, cfg.eps_low, eps_high, cfg.agg, centered_logp=centered, **options
        )
        if coef:
            loss = loss - coef * aggregate_unchecked(ent, w, cfg.agg)  # the explicit entropy bonus
        metrics = {"loss": loss.item(), "adv_abs": masked_mean(a.detach().abs(), mask).item()}
        metrics.update({k: float(v) for k, v in m.items() if k in LOGGED_LOSS_METRICS})
        metrics["ratio_max"] = float(m["ratio_max"])
        return loss, metrics

    def train(self, steps: int | None = None, progress: bool = True, desc: str | None = None) -> list[dict[str, Any]]:
        """Run `steps` iterations (default: until config.steps in total); returns their metrics rows.

        desc: the progress bar's label (default: objective/repo).
        """
        steps = self.config.steps - self.step_count if steps is None else steps
        rows = []
        desc = desc or f"{self.config.objective}/{self.config.repo or 'no-repo'}"
        bar = tqdm(range(steps), disable=not progress, desc=desc)
        for _ in bar:
            rows.append(self.step())
            bar.set_postfix(
                H=f"{rows[-1]['entropy']:.3f}", R=f"{rows[-1]['reward']:.2f}", tok_s=f"{rows[-1]['tokens_per_s']:.0f}"
            )
        return rows

    # -- checkpoints ----------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write a checkpoint (model, tokenizer, optimizer, RNG, controllers) that `Trainer.resume` continues."""
        return save_trainer(self, directory)

    @classmethod
    def resume(
        cls, directory: str | Path, task: TextTask, device: str | torch.device | None = None, **overrides: Any
    ) -> "Trainer":
        """A trainer continuing exactly where `save` left it; `overrides` change config fields (e.g. steps)."""
        return resume_trainer(cls, directory, task, device, overrides)
