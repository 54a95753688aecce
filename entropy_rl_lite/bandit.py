"""The batched softmax-bandit engine: Part I's laboratory, where every quantity can be computed exactly.

Logits z are [seeds, states, arms]; a bandit is a one-token episode, so each step builds a [seeds, B, 1]
token batch and calls the same advantage, loss, REPO and ADAPO code the LLM trainer calls.
- exact: the infinite-sample expectation. Every arm is in the batch, weighted by π_old(a|s) / states;
  group statistics are taken under π_old. Deterministic: this is how theorems are checked.
- sampled: `group_size` arms drawn per (seed, state) per step, as in practice.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from ._checks import check_choice, check_int, check_number, check_tensor
from .advantages import expected_group_advantages_unchecked, group_advantages_unchecked
from .bandit_history import History, Observation, StepRecord, stack_history
from .entropy import GRADIENTS, entropy_from_logp
from .entropy_control import EntropyControls
from .field_docs import document_fields
from .losses import policy_loss_unchecked
from .repo import shape_advantage_unchecked
from .rl_fields import RLFields

ESTIMATORS = ("exact", "sampled")
OPTIMIZERS = ("sgd", "adam")


@document_fields
@dataclass(frozen=True)
class BanditConfig(RLFields):
    """Everything that defines a bandit run. Validated on creation; errors name the field.

    The RL fields (objective, advantage, lr, group_size, epochs, clip bounds, REPO, ADAPO, entropy bonus)
    are `RLFields`', shared with the LLM trainer's TrainConfig; these defaults suit a bandit.
    """

    objective: str = "reinforce"  # a policy_loss kind: reinforce, ppo, gspo, cispo, clip_cov, kl_cov
    advantage: str = "rloo"  # a group_advantages kind: grpo, rloo, dr_grpo, none
    lr: float = 0.1  # η, step size on the logits
    estimator: str = "exact"  # "exact" (expectation over all arms) or "sampled" (group_size draws)
    steps: int = 100  # training iterations (one batch each)
    seeds: int = 1  # independent runs, batched
    bernoulli_rewards: bool = False  # read the table as success probabilities: R ~ Bernoulli(p) (sampled only)
    reward_noise: float = 0.0  # std of Gaussian noise added to each sampled reward (sampled only)
    ratio_bias: float = 1.0  # b: the loss sees b·r instead of r, as a biased log-prob path would (ch. 05)
    gradient: str = "vanilla"  # "vanilla", or "natural" (divide the logit gradient by π: inverse Fisher)
    optimizer: str = "sgd"  # "sgd" (what the theorems assume) or "adam"
    record_probs: bool = True  # keep π at every step (memory: steps·seeds·states·arms floats)

    def __post_init__(self) -> None:
        super().__post_init__()  # the fields shared with the LLM trainer's TrainConfig
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_choice("gradient", self.gradient, GRADIENTS)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_int("steps", self.steps, low=0)
        check_int("seeds", self.seeds, low=1)
        check_number("ratio_bias", self.ratio_bias, low=0.0, low_open=True)
        check_number("reward_noise", self.reward_noise, low=0.0)
        if self.reward_noise > 0 and self.estimator != "sampled":
            raise ValueError("reward_noise > 0 needs estimator='sampled' (the exact estimator takes expectations)")
        if self.bernoulli_rewards and self.estimator != "sampled":
            raise ValueError(
                "bernoulli_rewards=True needs estimator='sampled' (the exact estimator reads the table "
                "as deterministic rewards)"
            )

    def replace(self, **changes: Any) -> "BanditConfig":
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def rewards_from_env(env: Any) -> Tensor:
    """The reward table of an `erl/` bandit environment, as float64 [arms] or [states, arms]."""
    table = getattr(getattr(env, "unwrapped", env), "reward_table", None)
    if table is None:
        raise TypeError(f"{type(env).__name__} has no reward_table; use an erl/ bandit environment")
    return torch.tensor(np.array(table, dtype=np.float64))  # a copy: env tables are read-only arrays


def _initial_logits(table: Tensor, init_logits: Tensor | None, seeds: int) -> Tensor:
    """[states, arms] table -> [seeds, states, arms] float64 logits, from None (uniform), shared or per-seed logits."""
    states, arms = table.shape
    if init_logits is None:
        return torch.zeros(seeds, states, arms, dtype=torch.float64)
    check_tensor("init_logits", init_logits, min_dim=1)
    z = init_logits.to(torch.float64)
    if states == 1 and z.dim() == 1:
        z = z[None]
    elif states == 1 and z.dim() == 2 and z.shape == (seeds, arms):
        z = z[:, None]
    if z.dim() == 2 and z.shape == (states, arms):
        z = z.expand(seeds, states, arms)
    if z.shape != (seeds, states, arms):
        raise ValueError(
            f"init_logits has shape {tuple(init_logits.shape)}; expected [{arms}] or [{seeds}, {arms}] "
            f"for one state, [{states}, {arms}] or [{seeds}, {states}, {arms}] in general"
        )
    return z.clone()


def run(
    rewards: Tensor,
    config: BanditConfig | None = None,
    init_logits: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
    **overrides: Any,
) -> History:
    """Train softmax policies on a reward table and record what happens to their entropy.

    rewards: [arms] (one state) or [states, arms], the reward of each arm (e.g. 1 = correct); with
        bernoulli_rewards=True, each arm's probability of reward 1 (History.reward is then E_π[p]).
    config: a BanditConfig; keyword overrides replace its fields (`run(R, lr=0.5, steps=200)`).
    generator: the source of every random draw; None means a fresh one seeded with 0.
    init_logits: None (uniform), [arms] / [states, arms] shared by every seed, or one row per seed.
    Computes in float64, so exact runs are reproducible to the last bit.
    """
    cfg = (config or BanditConfig()).replace(**overrides) if overrides else (config or BanditConfig())
    # Every random draw (sampled arms, Clip-Cov's token choice) comes from this generator: a run repeats.
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    check_tensor("rewards", rewards, min_dim=1)
    if rewards.dim() > 2 or rewards.shape[-1] < 2:
        raise ValueError(f"rewards must be [arms] or [states, arms] with arms >= 2, got {tuple(rewards.shape)}")
    if cfg.bernoulli_rewards and bool(((rewards < 0) | (rewards > 1)).any()):
        raise ValueError("rewards must be probabilities in [0, 1] when bernoulli_rewards=True")
    table = rewards.to(torch.float64).reshape(-1, rewards.shape[-1])  # [C, K]
    z = _initial_logits(table, init_logits, cfg.seeds).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=cfg.lr) if cfg.optimizer == "adam" else None
    controls = EntropyControls.from_config(cfg, seeds=cfg.seeds)

    # Inputs are validated above: each step calls the shared functions' unchecked kernels.
    steps = [
        _step(cfg, z, opt, table, generator, controls)
        for _ in tqdm(range(cfg.steps), disable=not progress, desc=f"bandit {cfg.objective}/{cfg.advantage}")
    ]
    with torch.no_grad():
        logp = torch.log_softmax(z, -1)
        final, _ = _observe(logp, logp.exp(), table, cfg.record_probs)
    return stack_history(steps, final, cfg, one_state=rewards.dim() == 1)


def _observe(logp: Tensor, probs: Tensor, table: Tensor, keep_probs: bool) -> tuple[Observation, Tensor]:
    """Entropy, expected reward and (optionally) π of a detached policy [S, C, K] under a [C, K] reward table.

    -> (the observation, the entropy of every state [S, C]).
    """
    h = entropy_from_logp(logp, probs)
    obs = Observation(
        entropy=h.mean(-1), reward=(probs * table).sum(-1).mean(-1), probs=probs.clone() if keep_probs else None
    )
    return obs, h


def _batch(
    cfg: BanditConfig, table: Tensor, probs_old: Tensor, generator: torch.Generator
) -> tuple[Tensor | None, Tensor, Tensor]:
    """Which arm each one-token episode played [S, C, n], its weight in the loss and its advantage (same shape).

    The exact estimator plays every arm once (actions None: all K arms, in order), weighted by π_old / C.
    """
    S, C, K = probs_old.shape
    if cfg.estimator == "exact":
        adv = expected_group_advantages_unchecked(
            table, probs_old, cfg.advantage, cfg.adv_eps, group_size=cfg.group_size
        )
        return None, probs_old / C if C > 1 else probs_old, adv
    actions = torch.multinomial(
        probs_old.reshape(S * C, K), cfg.group_size, replacement=True, generator=generator
    ).reshape(S, C, cfg.group_size)
    r = table.expand(S, C, K).gather(-1, actions)
    if cfg.bernoulli_rewards:  # after the arm draws, so arms are drawn as without noise
        r = torch.bernoulli(r, generator=generator)
    if cfg.reward_noise > 0:
        r = r + cfg.reward_noise * torch.randn(r.shape, generator=generator, dtype=r.dtype)
    adv = group_advantages_unchecked(r.reshape(S, -1), cfg.group_size, cfg.advantage, cfg.adv_eps).reshape(r.shape)
    return actions, torch.ones(actions.shape, dtype=torch.float64), adv


def _played(x: Tensor, actions: Tensor | None) -> Tensor:
    """The entries of x [S, C, K] for the arms played [S, C, n] (all of them when actions is None)."""
    return x if actions is None else x.gather(-1, actions)


def _step(
    cfg: BanditConfig,
    z: Tensor,
    opt: torch.optim.Optimizer | None,
    table: Tensor,
    generator: torch.Generator,
    controls: EntropyControls,
) -> StepRecord:
    """One iteration: observe the policy, step the controllers, build a batch, run `epochs` updates on it."""
    S = z.shape[0]
    logp_full = torch.log_softmax(z, -1)  # reused by the first epoch
    logp_old_full = logp_full.detach()
    probs_old = logp_old_full.exp()
    before, h_old = _observe(logp_old_full, probs_old, table, cfg.record_probs)
    zeta, eps_high, coef = controls.update(before.entropy)

    actions, weights, adv = _batch(cfg, table, probs_old, generator)
    logp_old = _played(logp_old_full, actions)
    if cfg.ratio_bias != 1.0:  # exp(logp - (logp_old - log b)) = b · r
        logp_old = logp_old - math.log(cfg.ratio_bias)

    flat = (S, -1, 1)  # the loss sees one-token episodes: [seeds, B = C·n, T = 1]
    clip_low = clip_high = 0.0
    for epoch in range(cfg.epochs):
        if epoch:
            logp_full = torch.log_softmax(z, -1)
        logp = _played(logp_full, actions)  # [S, C, n]
        a = adv
        if cfg.repo is not None:
            with torch.no_grad():  # H of each action's state: REPO's L = log π + H
                h = (h_old if not epoch else entropy_from_logp(logp_full))[..., None].expand_as(logp)
            a = shape_advantage_unchecked(
                adv,
                logp,
                h,
                weights,
                cfg.repo,
                zeta=zeta[:, None, None],
                beta=cfg.beta,
                natural=cfg.gradient == "natural",
            )  # β* per (seed, state), over its arms
        loss, m = policy_loss_unchecked(
            logp.reshape(flat),
            logp_old.reshape(flat),
            a.reshape(flat),
            weights.reshape(flat),
            cfg.objective,
            cfg.eps_low,
            eps_high,
            generator=generator,
            ratio_metrics=False,
            **cfg.loss_kwargs,
        )
        if cfg.entropy_coef or cfg.entropy_coef_control:
            loss = loss - coef * entropy_from_logp(logp_full).mean(-1)
        _descend(cfg, z, opt, torch.autograd.grad(loss.sum(), z)[0], logp_full)
        clip_low = clip_low + m["clip_frac_low"] / cfg.epochs  # means over the epochs
        clip_high = clip_high + m["clip_frac_high"] / cfg.epochs
    return StepRecord(before, loss.detach(), zeta, eps_high, coef, clip_low, clip_high)


def _descend(cfg: BanditConfig, z: Tensor, opt: torch.optim.Optimizer | None, grad: Tensor, logp: Tensor) -> None:
    """One optimizer step on the logits z [S, C, K] from ∂loss/∂z; refuses to continue from non-finite logits."""
    if cfg.gradient == "natural":
        # Inverse Fisher of the softmax: divide by π. An arm whose π underflowed to 0 has a zero
        # gradient and is dead; it keeps a zero step instead of 0/0.
        probs = logp.detach().exp()
        grad = torch.where(probs > 0, grad / probs.clamp_min(torch.finfo(probs.dtype).tiny), torch.zeros_like(grad))
    with torch.no_grad():
        if opt is None:
            z -= cfg.lr * grad
        else:
            z.grad = grad
            opt.step()
    if not math.isfinite(z.detach().sum().item()):  # one reduction: a sum is finite iff every logit is
        raise FloatingPointError(
            f"logits became non-finite ({cfg.objective}, {cfg.gradient} gradient, "
            f"lr={cfg.lr}); lower lr or check the configuration"
        )
