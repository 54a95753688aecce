"""The token-level RL trainer: sample a grouped batch, score it, update the policy several times on it.

One iteration (`Trainer.step`), with the library functions it calls:

    prompts      `prompts_per_step` prompts drawn without replacement (its own generator)
    rollout      `sample`: G completions per prompt with `generate`, from the trainer's own RNG stream
    reward       task.verify(prompt, completion) -> 1.0 / 0.0
    advantage    `group_advantages(rewards, G, kind)`: one number per sequence, shared by its tokens
    logp_old, H  `completion_logprobs` under no_grad: fp32, chunked, full-vocabulary entropy per token
    controls     `EntropyControls.update`: ζ, ε_high and the entropy coefficient, one controller step each
                 from the measured token-mean entropy of the batch
    updates      epochs × minibatches of: logp -> `shape_advantage` (REPO) -> `policy_loss` (+ entropy
                 bonus) -> backward -> clip grad norm -> optimizer step

These are the functions the bandit engine calls; a bandit is the special case of one-token episodes.
"""

from __future__ import annotations

import importlib.metadata
import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from tqdm import tqdm  # plain tqdm: tqdm.auto warns in Jupyter without ipywidgets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ..advantages import group_advantages_unchecked
from ..entropy_control import EntropyControls
from ..logs import MetricsLog, run_metadata
from ..losses import aggregate_unchecked, masked_mean, policy_loss_unchecked
from ..repo import shape_advantage_unchecked
from .checkpoint import (
    is_peft,
    load_checkpoint_model,
    load_optimizer_state,
    load_state,
    optimizer_state,
    resume_config,
    save_state,
    task_info,
)
from .config import TrainConfig
from .evaluate import group_metrics
from .flops import peak_flops, train_flops
from .model import build_model, quiet_progress
from .rollout import (
    Rollout,
    check_scorable,
    completion_logprobs,
    get_rng_state,
    rng_devices,
    sample,
    seed_rng,
    set_rng_state,
)
from .task import TextTask
from .tokenizer import CharTokenizer, load_tokenizer


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
            self._sample_rng = get_rng_state(self.device)
        self.step_count = 0
        self.log = MetricsLog(cfg.log_path) if cfg.log_path else None
        self.history: list[dict[str, Any]] = []
        self._resumed_from: str | None = None
        self._log_started = False

    # -- one iteration --------------------------------------------------------------------------------
    def _pick_prompts(self) -> list[str]:
        n, pool = self.config.prompts_per_step, self.task.prompts
        if n <= len(pool):
            idx = torch.randperm(len(pool), generator=self.generator)[:n]
        else:
            idx = torch.randint(len(pool), (n,), generator=self.generator)
        return [pool[i] for i in idx.tolist()]

    def _rollout(self) -> Rollout:
        with torch.random.fork_rng(devices=rng_devices(self.device)):
            set_rng_state(self._sample_rng, self.device)
            batch = sample(
                self.model,
                self.tokenizer,
                self._pick_prompts(),
                self.config.group_size,
                self.config.max_new_tokens,
                self.config.temperature,
            )
            self._sample_rng = get_rng_state(self.device)
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
        zeta, eps_high, coef = self.controls.update(entropy)
        updates = []
        for _ in range(cfg.epochs):
            order = torch.randperm(len(batch), generator=self.generator)
            for rows in order.tensor_split(cfg.minibatches):
                dev_rows = rows.to(self.device)
                pre = None if first is None else (first[0][dev_rows], first[1][dev_rows])
                first = None  # only the very first update may reuse it: later ones see a moved policy
                updates.append(
                    self._update(batch.select(rows), logp_old[dev_rows], adv[dev_rows], zeta, eps_high, coef, pre)
                )
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # kernels run asynchronously: wait before reading the clock
        t_update = time.perf_counter() - t_update
        row = self._metrics_row(batch, rewards, ent_old, entropy, updates, t0, t_rollout, t_update)
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
            first = completion_logprobs(self.model, batch, cfg.chunk_size, cfg.temperature, cfg.amp)
            return first[0].detach(), first[1].detach(), first
        with torch.no_grad():
            logp_old, ent_old = completion_logprobs(self.model, batch, cfg.chunk_size, cfg.temperature, cfg.amp)
        return logp_old, ent_old, None

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
        elapsed = time.perf_counter() - t0
        tokens = int(mask.sum().item())
        # Every update feeds its rows' real tokens (prompt + completion) forward and backward.
        flops = cfg.epochs * train_flops(self.model, int(batch.attention_mask.sum().item()), batch.input_ids.shape[1])
        peak = peak_flops(self.device)
        return {
            "step": self.step_count,
            "entropy": entropy,
            "entropy_seq": (ent_old * mask).sum(1).mean().item(),  # Σ_t H_t per completion (chain rule)
            "reward": rewards.mean().item(),
            **group_metrics(batch, rewards, sorted({1, cfg.pass_k})),
            "ended": batch.ended.float().mean().item(),
            "completion_len": mask.sum(1).mean().item(),
            **{k: sum(u[k] for u in updates) / len(updates) for k in updates[0]},  # mean over the updates
            "zeta": float(self.controls.zeta),
            "eps_high": float(self.controls.eps_high),
            "entropy_coef": float(self.controls.entropy_coef),
            "tokens": tokens,
            "tokens_per_s": tokens / elapsed,
            "rollout_time_s": t_rollout,
            "update_time_s": t_update,
            "step_time_s": elapsed,
            "train_tflops": flops / t_update / 1e12,  # achieved, training forward/backward only (flops.py)
            "mfu": flops / t_update / peak if peak else None,
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
                        "resumed_from": self._resumed_from,
                        "start_step": row["step"],
                        **run_metadata(self.device),
                    },
                )
                self._log_started = True
            self.log.append(row)
        if cfg.checkpoint_every and self.step_count % cfg.checkpoint_every == 0:
            self.save(Path(cfg.checkpoint_dir) / f"step_{self.step_count:06d}")

    def _update(
        self,
        mb: Rollout,
        logp_old: Tensor,
        adv: Tensor,
        zeta: float,
        eps_high: float,
        coef: float,
        pre: tuple[Tensor, Tensor] | None = None,
    ) -> dict[str, float]:
        """One optimizer step on a minibatch, accumulated over `grad_accum` micro-batches; returns its metrics.

        pre: (logp, entropy) of the minibatch already computed with gradients (grad_accum = 1 only).
        Every tensor here was made by this trainer from a validated config: the shared kernels run unchecked.
        """
        cfg = self.config
        self.optimizer.zero_grad(set_to_none=True)
        n_tokens = mb.completion_mask.sum()
        out: dict[str, float] = {}
        for rows in torch.arange(len(mb)).tensor_split(cfg.grad_accum):
            part, dev_rows = mb.select(rows), rows.to(self.device)
            mask = part.completion_mask
            # Each micro-batch's loss is a mean over its own tokens (or sequences); weighting it by its share
            # of the minibatch makes the accumulated gradient equal the full minibatch's.
            share = (mask.sum() / n_tokens).item() if cfg.agg == "token-mean" else len(rows) / len(mb)
            logp, ent = (
                pre
                if pre is not None
                else completion_logprobs(self.model, part, cfg.chunk_size, cfg.temperature, cfg.amp)
            )  # [n, T]
            w = mask.to(logp.dtype)
            adv_tok = adv[dev_rows][:, None].expand_as(logp)  # outcome reward: a sequence's tokens share its A
            # β* of REPO-D is estimated over the sampled tokens of the (micro-)batch: dim = all its tokens.
            a = shape_advantage_unchecked(
                adv_tok, logp, ent.detach(), w, cfg.repo, zeta=zeta, beta=cfg.beta, dim=(-2, -1)
            )
            loss, m = policy_loss_unchecked(
                logp,
                logp_old[dev_rows],
                a,
                w,
                cfg.objective,
                cfg.eps_low,
                eps_high,
                cfg.agg,
                generator=self.generator,
                **cfg.loss_kwargs,
            )
            if coef:
                loss = loss - coef * aggregate_unchecked(ent, w, cfg.agg)  # the explicit entropy bonus
            (loss * share).backward()
            part_metrics = {"loss": loss.item(), "adv_abs": masked_mean(a.detach().abs(), mask).item()}
            part_metrics.update(
                {
                    k: float(v)
                    for k, v in m.items()
                    if k in ("clip_frac", "clip_frac_low", "clip_frac_high", "approx_kl", "ratio_mean", "cov_frac")
                }
            )
            for k, v in part_metrics.items():
                out[k] = out.get(k, 0.0) + share * v
            out["ratio_max"] = max(out.get("ratio_max", -math.inf), float(m["ratio_max"]))
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm if cfg.max_grad_norm else math.inf)
        self.optimizer.step()
        out["grad_norm"] = grad_norm.item()
        return out

    def train(self, steps: int | None = None, progress: bool = True) -> list[dict[str, Any]]:
        """Run `steps` iterations (default: until config.steps in total); returns their metrics rows."""
        steps = self.config.steps - self.step_count if steps is None else steps
        rows = []
        bar = tqdm(range(steps), disable=not progress, desc=f"{self.config.objective}/{self.config.repo or 'no-repo'}")
        for _ in bar:
            rows.append(self.step())
            bar.set_postfix(
                H=f"{rows[-1]['entropy']:.3f}", R=f"{rows[-1]['reward']:.2f}", tok_s=f"{rows[-1]['tokens_per_s']:.0f}"
            )
        return rows

    # -- checkpoints ----------------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        """Write a checkpoint (model, tokenizer, optimizer, RNG, controllers) that `Trainer.resume` continues."""
        directory = Path(directory)
        lora = is_peft(self.model)
        if lora and self.base_model_path is None:
            raise ValueError(
                "saving a LoRA run needs base_model_path (the local directory of the base weights) "
                "so that Trainer.resume can rebuild the model"
            )
        with quiet_progress():
            self.model.save_pretrained(directory)  # a peft model writes only its adapters
        self.tokenizer.save_pretrained(directory)
        tensors, opt_plain = optimizer_state(self.optimizer)
        tensors.update({f"rng.sample.{k}": v for k, v in self._sample_rng.items()})
        tensors["rng.generator"] = self.generator.get_state()
        state = {
            "step": self.step_count,
            "config": self.config.to_dict(),
            "task": task_info(self.task),
            "base_model_path": self.base_model_path if lora else None,
            "optimizer": opt_plain,
            "controllers": self.controls.state_dict(),
            "versions": {"entropy_rl_lite": importlib.metadata.version("entropy_rl_lite"), "torch": torch.__version__},
        }
        save_state(directory, tensors, state)
        return directory

    @classmethod
    def resume(
        cls, directory: str | Path, task: TextTask, device: str | torch.device | None = None, **overrides: Any
    ) -> "Trainer":
        """A trainer continuing exactly where `save` left it; `overrides` change config fields (e.g. steps)."""
        tensors, state = load_state(directory)
        if state["task"] != task_info(task):
            raise ValueError(f"checkpoint was written for task {state['task']}, not {task_info(task)}")
        config = resume_config(state["config"], overrides)
        base = state.get("base_model_path")
        model = load_checkpoint_model(directory, base)
        tokenizer = load_tokenizer(directory)
        trainer = cls(config, task, model=model, tokenizer=tokenizer, device=device, base_model_path=base)
        load_optimizer_state(
            trainer.optimizer, {k: v for k, v in tensors.items() if k.startswith("state.")}, state["optimizer"]
        )
        for group in trainer.optimizer.param_groups:  # the saved groups carry the old values; the config wins
            group["lr"], group["weight_decay"] = config.lr, config.weight_decay
        trainer._sample_rng = {
            k.removeprefix("rng.sample."): v for k, v in tensors.items() if k.startswith("rng.sample.")
        }
        trainer.generator.set_state(tensors["rng.generator"])
        trainer.controls.load_state_dict(state["controllers"])
        trainer.step_count = state["step"]
        trainer._resumed_from = str(directory)
        if trainer.log:
            trainer.log.truncate_from(trainer.step_count)  # the interrupted run may have logged past the checkpoint
        return trainer
