"""Bad input fails fast, and says which argument was wrong (docs/design.md, "Contracts").

Every case below calls a public function with one bad argument and expects a ValueError or TypeError
whose message names that argument (as a whole word: `c` must appear as `c`, not inside `correct`).
A call that returns instead of raising fails the test and shows what came back, NaN included, because
the contract's other half is that nothing returns NaN silently.

The last tests check the one "bad-looking" input that is legal: a group whose rewards are all equal
carries no signal and must get advantages of exactly zero (not NaN, not a rounding residue), whatever
the kind and eps, eps = 0 included.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import pytest
import torch

import entropy_rl_lite as erl
from entropy_rl_lite.bandit import BanditConfig

NAN, INF = float("nan"), float("inf")


def _t(*values: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.tensor(values, dtype=dtype)


def _has_nan(x: Any) -> bool:
    """Whether a returned value (tensor, number, tuple, dict, history...) holds a NaN anywhere."""
    if isinstance(x, torch.Tensor):
        return bool(torch.isnan(x).any()) if x.is_floating_point() else False
    if isinstance(x, float):
        return math.isnan(x)
    if isinstance(x, (tuple, list)):
        return any(_has_nan(v) for v in x)
    if isinstance(x, dict):
        return any(_has_nan(v) for v in x.values())
    return False


def _names(message: str, name: str) -> bool:
    """`name` occurs in `message` as a whole identifier (letters, digits and _ count as part of a word)."""
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


# Small valid inputs the cases perturb one argument at a time.
LOGITS = _t(0.5, -1.0, 2.0)  # [K=3]
LOGP = torch.log_softmax(torch.tensor([[0.1, 0.2, 0.3], [1.0, -1.0, 0.0]]), -1)  # [B=2, T=3], <= 0
MASK = torch.ones(2, 3, dtype=torch.bool)
HIDDEN = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))  # [B, T, D=4]
WEIGHT = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))  # [V=5, D]
TARGETS = torch.tensor([[0, 1, 2], [3, 4, 0]])  # [B, T] int64
REWARDS = _t(1.0, 0.0, 0.0, 1.0)  # [arms]
ENT = -LOGP  # a positive per-token entropy [B, T]
W = MASK.float()  # float per-token weights [B, T]
PROBS = torch.softmax(LOGITS, -1)  # [K=3]
LOGP3 = LOGP[None].expand(2, 2, 3)  # two problems [P=2, B, T]
MASK3 = MASK[None].expand(2, 2, 3)
LOGIT_BATCH = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(2))  # [B, T, V=5]


def _bandit_run(rewards: torch.Tensor = REWARDS, **kw: Any) -> Any:
    return erl.bandit.run(rewards, steps=kw.pop("steps", 2), **kw)


# (id, call, argument names the message must contain, other words it must contain)
Case = tuple[str, Callable[[], Any], tuple[str, ...], tuple[str, ...]]
CASES: list[Case] = [
    # --- entropy / centered_logp --------------------------------------------------------------
    ("entropy-nan-logits", lambda: erl.entropy(_t(0.0, NAN, 1.0)), ("logits",), ()),
    ("entropy-posinf-logits", lambda: erl.entropy(_t(0.0, INF, 1.0)), ("logits",), ()),
    ("entropy-list-logits", lambda: erl.entropy([0.0, 1.0]), ("logits",), ()),
    ("entropy-int-logits", lambda: erl.entropy(torch.tensor([0, 1, 2])), ("logits",), ()),
    ("entropy-0d-logits", lambda: erl.entropy(torch.tensor(1.0)), ("logits",), ()),
    # A row whose every logit is -inf is no distribution at all: it must not get an entropy.
    ("entropy-all-neginf-row", lambda: erl.entropy(_t(-INF, -INF)), ("logits",), ()),
    # A distribution over zero actions is undefined, too.
    ("entropy-zero-actions", lambda: erl.entropy(torch.zeros(3, 0)), ("logits",), ()),
    ("centered_logp-nan-logits", lambda: erl.centered_logp(_t(0.0, NAN)), ("logits",), ()),
    ("centered_logp-posinf-logits", lambda: erl.centered_logp(_t(INF, 0.0)), ("logits",), ()),
    ("centered_logp-list-logits", lambda: erl.centered_logp((0.0, 1.0)), ("logits",), ()),
    ("centered_logp-int-logits", lambda: erl.centered_logp(torch.tensor([[1, 2]])), ("logits",), ()),
    ("centered_logp-0d-logits", lambda: erl.centered_logp(torch.tensor(0.0)), ("logits",), ()),
    ("centered_logp-all-neginf-row", lambda: erl.centered_logp(_t(-INF, -INF)), ("logits",), ()),
    # --- predicted_entropy_change --------------------------------------------------------------
    ("pec-negative-lr", lambda: erl.predicted_entropy_change(LOGITS, LOGITS, -0.1), ("lr",), ()),
    ("pec-nan-lr", lambda: erl.predicted_entropy_change(LOGITS, LOGITS, NAN), ("lr",), ()),
    ("pec-inf-lr", lambda: erl.predicted_entropy_change(LOGITS, LOGITS, INF), ("lr",), ()),
    ("pec-string-lr", lambda: erl.predicted_entropy_change(LOGITS, LOGITS, "0.1"), ("lr",), ()),
    (
        "pec-unknown-gradient",
        lambda: erl.predicted_entropy_change(LOGITS, LOGITS, 0.1, gradient="newton"),
        ("gradient",),
        ("newton", "vanilla", "natural"),
    ),
    ("pec-shape-mismatch", lambda: erl.predicted_entropy_change(LOGITS, _t(1.0, 0.0), 0.1), ("adv",), ()),
    ("pec-nan-adv", lambda: erl.predicted_entropy_change(LOGITS, _t(1.0, NAN, 0.0), 0.1), ("adv",), ()),
    # --- group_advantages ---------------------------------------------------------------------
    ("ga-grpo-group-size-1", lambda: erl.group_advantages(REWARDS, 1, "grpo"), ("group_size",), ()),
    ("ga-rloo-group-size-1", lambda: erl.group_advantages(REWARDS, 1, "rloo"), ("group_size",), ()),
    ("ga-group-size-0", lambda: erl.group_advantages(REWARDS, 0, "dr_grpo"), ("group_size",), ()),
    ("ga-dr-grpo-group-size-1", lambda: erl.group_advantages(REWARDS, 1, "dr_grpo"), ("group_size",), ()),
    ("scale-nan-mask", lambda: erl.scale_advantages(REWARDS, _t(1.0, NAN, 1.0, 1.0)), ("mask",), ()),
    ("scale-mask-shape", lambda: erl.scale_advantages(REWARDS, _t(1.0, 1.0)), ("mask",), ()),
    (
        "pl-eps-low-tensor-above-1",
        lambda: erl.policy_loss(
            LOGP[None].expand(2, 2, 3),
            LOGP[None].expand(2, 2, 3),
            torch.ones(2, 2, 3),
            torch.ones(2, 2, 3),
            eps_low=torch.tensor([0.2, 1.5]),
        ),
        ("eps_low",),
        (),
    ),
    ("ga-float-group-size", lambda: erl.group_advantages(REWARDS, 2.0), ("group_size",), ()),
    ("ga-not-divisible", lambda: erl.group_advantages(_t(1, 0, 0, 1, 1), 2), ("group_size",), ()),
    ("ga-nan-rewards", lambda: erl.group_advantages(_t(1.0, NAN, 0.0, 1.0), 2), ("rewards",), ()),
    ("ga-inf-rewards", lambda: erl.group_advantages(_t(1.0, INF, 0.0, 1.0), 2), ("rewards",), ()),
    ("ga-neginf-rewards", lambda: erl.group_advantages(_t(1.0, -INF, 0.0, 1.0), 2, "rloo"), ("rewards",), ()),
    ("ga-negative-eps", lambda: erl.group_advantages(REWARDS, 2, eps=-1e-6), ("eps",), ()),
    ("ga-nan-eps", lambda: erl.group_advantages(REWARDS, 2, eps=NAN), ("eps",), ()),
    ("ga-unknown-kind", lambda: erl.group_advantages(REWARDS, 2, kind="ppo"), ("kind",), ("grpo", "rloo", "dr_grpo")),
    # --- repo_r --------------------------------------------------------------------------------
    ("repo_r-nan-zeta", lambda: erl.repo_r(_t(1.0, -1.0), _t(-1.0, -2.0), NAN), ("zeta",), ()),
    ("repo_r-inf-zeta", lambda: erl.repo_r(_t(1.0, -1.0), _t(-1.0, -2.0), INF), ("zeta",), ()),
    ("repo_r-neginf-zeta", lambda: erl.repo_r(_t(1.0, -1.0), _t(-1.0, -2.0), -INF), ("zeta",), ()),
    ("repo_r-nan-zeta-tensor", lambda: erl.repo_r(_t(1.0, -1.0), _t(-1.0, -2.0), _t(NAN)), ("zeta",), ()),
    ("repo_r-nan-adv", lambda: erl.repo_r(_t(NAN, -1.0), _t(-1.0, -2.0), 0.01), ("adv",), ()),
    ("repo_r-inf-adv", lambda: erl.repo_r(_t(INF, -1.0), _t(-1.0, -2.0), 0.01), ("adv",), ()),
    ("repo_r-nan-logp", lambda: erl.repo_r(_t(1.0, -1.0), _t(NAN, -2.0), 0.01), ("logp",), ()),
    ("repo_r-posinf-logp", lambda: erl.repo_r(_t(1.0, -1.0), _t(INF, -2.0), 0.01), ("logp",), ()),
    ("repo_r-shape-mismatch", lambda: erl.repo_r(_t(1.0, -1.0, 0.5), _t(-1.0, -2.0), 0.01), ("logp",), ()),
    ("repo_r-positive-floor", lambda: erl.repo_r(_t(1.0), _t(-1.0), 0.01, logp_floor=1.0), ("logp_floor",), ()),
    # --- ZetaController ------------------------------------------------------------------------
    ("zeta-min-zero", lambda: erl.ZetaController(zeta_min=0.0), ("zeta_min",), ()),
    ("zeta-min-negative", lambda: erl.ZetaController(zeta_min=-1e-4), ("zeta_min",), ()),
    ("zeta-max-below-min", lambda: erl.ZetaController(zeta=1e-3, zeta_min=1e-2, zeta_max=1e-3), ("zeta_max",), ()),
    ("zeta-above-max", lambda: erl.ZetaController(zeta=0.1, zeta_max=0.05), ("zeta",), ()),
    ("zeta-below-minus-max", lambda: erl.ZetaController(zeta=-0.1, zeta_max=0.05), ("zeta",), ()),
    ("zeta-tensor-above-max", lambda: erl.ZetaController(zeta=_t(0.01, 0.1), zeta_max=0.05), ("zeta",), ()),
    ("zeta-nan", lambda: erl.ZetaController(zeta=NAN), ("zeta",), ()),
    ("zeta-update-nan-entropy", lambda: erl.ZetaController(target_entropy=1.0).update(NAN), ("entropy",), ()),
    # --- EpsHighController ---------------------------------------------------------------------
    ("epsc-factor-one", lambda: erl.EpsHighController(adapo_factor=1.0), ("adapo_factor",), ()),
    ("epsc-factor-below-one", lambda: erl.EpsHighController(adapo_factor=0.5), ("adapo_factor",), ()),
    ("epsc-eps-high-below-min", lambda: erl.EpsHighController(eps_high=0.1, eps_high_min=0.2), ("eps_high",), ()),
    ("epsc-eps-high-above-max", lambda: erl.EpsHighController(eps_high=1.5, eps_high_max=1.0), ("eps_high",), ()),
    # One value per seed is allowed; it must obey the same bounds as a single value.
    (
        "epsc-eps-high-tensor-outside",
        lambda: erl.EpsHighController(eps_high=_t(0.3, 5.0), eps_high_min=0.2, eps_high_max=1.0),
        ("eps_high",),
        (),
    ),
    (
        "epsc-eps-high-max-below-min",
        lambda: erl.EpsHighController(eps_high=0.3, eps_high_min=0.3, eps_high_max=0.2),
        ("eps_high_max",),
        (),
    ),
    (
        "epsc-eps-high-min-negative",
        lambda: erl.EpsHighController(eps_high=0.3, eps_high_min=-0.1),
        ("eps_high_min",),
        (),
    ),
    # --- pass_at_k -----------------------------------------------------------------------------
    ("pass-c-above-n", lambda: erl.pass_at_k(5, 6, 1), ("c",), ()),
    ("pass-k-above-n", lambda: erl.pass_at_k(5, 2, 6), ("k",), ()),
    ("pass-k-zero", lambda: erl.pass_at_k(5, 2, 0), ("k",), ()),
    ("pass-n-negative", lambda: erl.pass_at_k(-1, 0, 1), ("n",), ()),
    ("pass-c-negative", lambda: erl.pass_at_k(5, -1, 1), ("c",), ()),
    ("pass-float-n", lambda: erl.pass_at_k(5.0, 2, 1), ("n",), ()),
    # --- sequence_ratio and the loss options a config carries ----------------------------------
    ("sr-mask-shape", lambda: erl.sequence_ratio(LOGP, LOGP, MASK[:, :2]), ("mask",), ()),
    ("sr-empty-mask", lambda: erl.sequence_ratio(LOGP, LOGP, torch.zeros_like(MASK)), ("mask",), ()),
    ("sr-nan-logp", lambda: erl.sequence_ratio(LOGP * NAN, LOGP, MASK), ("logp",), ()),
    (
        "cfg-loss-kwargs-bad-ratio",
        lambda: erl.bandit.BanditConfig(loss_kwargs={"clip_cov_ratio": 2.0}),
        ("clip_cov_ratio",),
        (),
    ),
    (
        "cfg-loss-kwargs-bad-bounds",
        lambda: erl.bandit.BanditConfig(loss_kwargs={"clip_cov_bounds": 1.0}),
        ("clip_cov_bounds",),
        (),
    ),
    # --- policy_loss ---------------------------------------------------------------------------
    (
        "pl-unknown-kind",
        lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK, kind="trpo"),
        ("kind",),
        ("trpo", "reinforce", "ppo", "gspo", "cispo"),
    ),
    (
        "pl-unknown-agg",
        lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK, agg="sum"),
        ("agg",),
        ("token-mean", "seq-mean-token-mean"),
    ),
    ("pl-negative-eps-low", lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK, eps_low=-0.1), ("eps_low",), ()),
    ("pl-negative-eps-high", lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK, eps_high=-0.1), ("eps_high",), ()),
    ("pl-nan-eps-high", lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK, eps_high=NAN), ("eps_high",), ()),
    ("pl-eps-low-above-one", lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK, eps_low=1.5), ("eps_low",), ()),
    (
        "pl-negative-eps-high-tensor",
        lambda: erl.policy_loss(
            LOGP[None].expand(2, 2, 3),
            LOGP[None].expand(2, 2, 3),
            LOGP[None].expand(2, 2, 3),
            MASK[None].expand(2, 2, 3),
            eps_high=_t(0.2, -0.1),
        ),
        ("eps_high",),
        (),
    ),
    ("pl-nan-logp", lambda: erl.policy_loss(LOGP.masked_fill(MASK.triu(), NAN), LOGP, LOGP, MASK), ("logp",), ()),
    (
        "pl-nan-logp-old",
        lambda: erl.policy_loss(LOGP, LOGP.masked_fill(MASK.triu(), NAN), LOGP, MASK),
        ("logp_old",),
        (),
    ),
    ("pl-shape-mismatch", lambda: erl.policy_loss(LOGP, LOGP[:, :2], LOGP, MASK), ("logp_old",), ()),
    ("pl-adv-wrong-shape", lambda: erl.policy_loss(LOGP, LOGP, _t(1.0, -1.0, 0.5), MASK), ("adv",), ()),
    ("pl-nan-adv", lambda: erl.policy_loss(LOGP, LOGP, _t(1.0, NAN), MASK), ("adv",), ()),
    (
        "pl-empty-bool-mask",
        lambda: erl.policy_loss(LOGP, LOGP, LOGP, torch.zeros(2, 3, dtype=torch.bool)),
        ("mask",),
        (),
    ),
    ("pl-empty-float-mask", lambda: erl.policy_loss(LOGP, LOGP, LOGP, torch.zeros(2, 3)), ("mask",), ()),
    (
        "pl-negative-mask",
        lambda: erl.policy_loss(LOGP, LOGP, LOGP, torch.tensor([[1.0, -0.5, 1.0], [1.0, 1.0, 1.0]])),
        ("mask",),
        (),
    ),
    (
        "pl-nan-mask",
        lambda: erl.policy_loss(LOGP, LOGP, LOGP, torch.tensor([[1.0, NAN, 1.0], [1.0, 1.0, 1.0]])),
        ("mask",),
        (),
    ),
    ("pl-mask-wrong-shape", lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK[:, :2]), ("mask",), ()),
    ("pl-list-mask", lambda: erl.policy_loss(LOGP, LOGP, LOGP, [[1, 1, 1], [1, 1, 1]]), ("mask",), ()),
    # --- token_logprobs ------------------------------------------------------------------------
    ("tl-weight-wrong-hidden-size", lambda: erl.token_logprobs(HIDDEN, WEIGHT[:, :3], TARGETS), ("weight",), ()),
    ("tl-weight-3d", lambda: erl.token_logprobs(HIDDEN, WEIGHT[None], TARGETS), ("weight",), ()),
    ("tl-targets-too-large", lambda: erl.token_logprobs(HIDDEN, WEIGHT, TARGETS.clamp(max=4) + 1), ("targets",), ()),
    (
        "tl-targets-ignore-index",
        lambda: erl.token_logprobs(HIDDEN, WEIGHT, TARGETS.masked_fill(MASK.triu(), -100)),
        ("targets",),
        (),
    ),
    ("tl-float-targets", lambda: erl.token_logprobs(HIDDEN, WEIGHT, TARGETS.float()), ("targets",), ()),
    ("tl-targets-wrong-shape", lambda: erl.token_logprobs(HIDDEN, WEIGHT, TARGETS[:, :2]), ("targets",), ()),
    ("tl-chunk-size-0", lambda: erl.token_logprobs(HIDDEN, WEIGHT, TARGETS, chunk_size=0), ("chunk_size",), ()),
    ("tl-temperature-0", lambda: erl.token_logprobs(HIDDEN, WEIGHT, TARGETS, temperature=0.0), ("temperature",), ()),
    (
        "tl-temperature-negative",
        lambda: erl.token_logprobs(HIDDEN, WEIGHT, TARGETS, temperature=-1.0),
        ("temperature",),
        (),
    ),
    (
        "tl-nan-hidden",
        lambda: erl.token_logprobs(HIDDEN.masked_fill(HIDDEN > 1, NAN), WEIGHT, TARGETS),
        ("hidden",),
        (),
    ),
    (
        "tl-inf-weight",
        lambda: erl.token_logprobs(HIDDEN, WEIGHT.masked_fill(WEIGHT > 1, INF), TARGETS),
        ("weight",),
        (),
    ),
    # --- BanditConfig ------------------------------------------------------------------------------
    ("bc-unknown-objective", lambda: BanditConfig(objective="sac"), ("objective",), ("sac", "reinforce", "ppo")),
    ("bc-unknown-advantage", lambda: BanditConfig(advantage="gae"), ("advantage",), ("gae", "grpo", "rloo")),
    ("bc-unknown-estimator", lambda: BanditConfig(estimator="mc"), ("estimator",), ("exact", "sampled")),
    ("bc-negative-lr", lambda: BanditConfig(lr=-0.1), ("lr",), ()),
    ("bc-nan-lr", lambda: BanditConfig(lr=NAN), ("lr",), ()),
    ("bc-seeds-0", lambda: BanditConfig(seeds=0), ("seeds",), ()),
    ("bc-grpo-group-size-1", lambda: BanditConfig(advantage="grpo", group_size=1), ("group_size",), ()),
    ("bc-zeta-control-without-repo", lambda: BanditConfig(zeta_control=True), ("zeta_control",), ()),
    ("bc-eps-low-above-one", lambda: BanditConfig(eps_low=1.5), ("eps_low",), ()),
    ("bc-unknown-loss-kwarg", lambda: BanditConfig(loss_kwargs={"temperature": 1.0}), ("loss_kwargs",), ()),
    # --- bandit.run ---------------------------------------------------------------------------------
    ("run-rewards-3d", lambda: _bandit_run(torch.zeros(2, 2, 3)), ("rewards",), ()),
    ("run-rewards-one-arm", lambda: _bandit_run(_t(1.0)), ("rewards",), ()),
    ("run-rewards-one-arm-2d", lambda: _bandit_run(torch.ones(3, 1)), ("rewards",), ()),
    ("run-nan-rewards", lambda: _bandit_run(_t(1.0, NAN, 0.0)), ("rewards",), ()),
    ("run-init-logits-wrong-shape", lambda: _bandit_run(init_logits=torch.zeros(3)), ("init_logits",), ()),
    ("run-init-logits-nan", lambda: _bandit_run(init_logits=_t(0.0, NAN, 0.0, 0.0)), ("init_logits",), ()),
    ("run-unknown-override", lambda: _bandit_run(learning_rate=0.1), ("learning_rate",), ()),
    (
        "run-zeta-control-zeta-above-max",
        lambda: _bandit_run(repo="repo_r", zeta_control=True, zeta=0.1, zeta_max=0.05),
        ("zeta",),
        (),
    ),
    # The controllers' parameters are config fields too; the error must name the field the user set,
    # and an eps_high outside the ADAPO bounds must not be accepted silently.
    ("run-adapo-factor-one", lambda: _bandit_run(adapo=True, adapo_factor=1.0), ("adapo_factor",), ()),
    (
        "run-adapo-eps-high-below-min",
        lambda: _bandit_run(adapo=True, eps_high=0.1, eps_high_min=0.2),
        ("eps_high",),
        (),
    ),
    # --- precision, seeding ----------------------------------------------------------------------
    ("ecb-bias-zero", lambda: erl.effective_clip_bounds(0.0, 0.2, 0.28), ("bias",), ()),
    ("ecb-bias-negative", lambda: erl.effective_clip_bounds(-1.05, 0.2, 0.28), ("bias",), ()),
    ("ecb-nan-bias", lambda: erl.effective_clip_bounds(NAN, 0.2, 0.28), ("bias",), ()),
    ("ecb-negative-eps-high", lambda: erl.effective_clip_bounds(1.05, 0.2, -0.28), ("eps_high",), ()),
    ("seed-negative", lambda: erl.seed_everything(-1), ("seed",), ()),
    ("seed-float", lambda: erl.seed_everything(1.5), ("seed",), ()),
    # ===== added for issue 15 part 5: every public function, every kind of bad argument =====
    # --- entropy_change_exact / _first_order, pg_logit_step: the message names the caller's argument ------
    ("ece-nan-delta", lambda: erl.entropy_change_exact(LOGITS, _t(1.0, NAN, 0.0)), ("delta_logits",), ()),
    ("ece-inf-delta", lambda: erl.entropy_change_exact(LOGITS, _t(1.0, INF, 0.0)), ("delta_logits",), ()),
    ("ece-list-delta", lambda: erl.entropy_change_exact(LOGITS, [1.0, 0.0, 0.0]), ("delta_logits",), ()),
    ("ece-list-logits", lambda: erl.entropy_change_exact([0.0, 1.0, 2.0], LOGITS), ("logits",), ()),
    # lr · A overflows fp32: the step is inf, and the error must name lr, not pg_logit_step's delta_logits.
    ("pec-overflowing-step", lambda: erl.predicted_entropy_change(LOGITS, _t(1e30, 0, -1e30), 1e30), ("lr", "adv"), ()),
    ("pgs-overflowing-step", lambda: erl.pg_logit_step(LOGITS, _t(1e30, 0, -1e30), 1e30), ("lr", "adv"), ()),
    # --- aggregate / entropy_bonus_loss ---------------------------------------------------------------
    ("agg-nan-values", lambda: erl.aggregate(LOGP.masked_fill(MASK.triu(), NAN), MASK), ("values",), ()),
    ("agg-inf-values", lambda: erl.aggregate(LOGP.masked_fill(MASK.triu(), -INF), MASK), ("values",), ()),
    ("agg-list-values", lambda: erl.aggregate(LOGP.tolist(), MASK), ("values",), ()),
    ("agg-int-values", lambda: erl.aggregate(MASK.long(), MASK), ("values",), ()),
    # --- sequence_ratio ---------------------------------------------------------------------------------
    ("sr-shape-mismatch", lambda: erl.sequence_ratio(LOGP, LOGP[:, :2], MASK), ("logp_old",), ()),
    # --- policy_loss: per-problem eps and the generator -------------------------------------------------
    (
        "pl-eps-high-per-problem-shape",
        lambda: erl.policy_loss(LOGP3, LOGP3, LOGP3, MASK3, eps_high=_t(0.2, 0.3, 0.4)),
        ("eps_high",),
        (),
    ),
    # On [B, T] input there is one problem: an eps per sequence [B] used to broadcast over B silently.
    (
        "pl-eps-low-per-sequence",
        lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK, eps_low=_t(0.1, 0.2)),
        ("eps_low",),
        (),
    ),
    (
        "pl-bad-generator",
        lambda: erl.policy_loss(LOGP, LOGP, LOGP, MASK, kind="clip_cov", generator=0),
        ("generator",),
        (),
    ),
    # --- the surrogates: public functions too --------------------------------------------------------
    ("ppo_clip-list-ratio", lambda: erl.ppo_clip([1.0, 1.0], _t(1.0, -1.0), 0.8, 1.2), ("ratio",), ()),
    ("ppo_clip-nan-ratio", lambda: erl.ppo_clip(_t(1.0, NAN), _t(1.0, -1.0), 0.8, 1.2), ("ratio",), ()),
    ("ppo_clip-shape", lambda: erl.ppo_clip(_t(1.0, 1.0), _t(1.0, -1.0, 0.5), 0.8, 1.2), ("ratio", "adv"), ()),
    ("ppo_clip-lo-above-one", lambda: erl.ppo_clip(_t(1.0, 1.0), _t(1.0, -1.0), 1.5, 2.0), ("lo",), ()),
    ("ppo_clip-hi-below-one", lambda: erl.ppo_clip(_t(1.0, 1.0), _t(1.0, -1.0), 0.8, 0.9), ("hi",), ()),
    ("ppo_clip-string-hi", lambda: erl.ppo_clip(_t(1.0, 1.0), _t(1.0, -1.0), 0.8, "1.2"), ("hi",), ()),
    ("reinforce-list-logp", lambda: erl.reinforce([-1.0], _t(1.0)), ("logp",), ()),
    ("reinforce-nan-adv", lambda: erl.reinforce(_t(-1.0, -2.0), _t(NAN, 1.0)), ("adv",), ()),
    ("cispo-shape", lambda: erl.cispo(_t(1.0, 1.0), _t(1.0, 1.0), _t(-1.0, -1.0, -1.0), 0.8, 1.2), ("logp",), ()),
    ("cispo-inf-ratio", lambda: erl.cispo(_t(INF, 1.0), _t(1.0, 1.0), _t(-1.0, -1.0), 0.8, 1.2), ("ratio",), ()),
    ("kcp-list-logp", lambda: erl.kl_cov_penalty(LOGP.tolist(), LOGP, LOGP, W, 0.1, 1.0), ("logp",), ()),
    ("kcp-adv-shape", lambda: erl.kl_cov_penalty(LOGP, LOGP, LOGP[:, :2], W, 0.1, 1.0), ("adv",), ()),
    ("kcp-frac-above-one", lambda: erl.kl_cov_penalty(LOGP, LOGP, LOGP, W, 1.5, 1.0), ("frac",), ()),
    ("kcp-negative-coef", lambda: erl.kl_cov_penalty(LOGP, LOGP, LOGP, W, 0.1, -1.0), ("coef",), ()),
    ("kcp-negative-w", lambda: erl.kl_cov_penalty(LOGP, LOGP, LOGP, -W, 0.1, 1.0), ("w",), ()),
    ("ccd-list-ratio", lambda: erl.clip_cov_drop(W.tolist(), LOGP, LOGP, W, 0.8, 1.2, 0.1, (1.0, 5.0)), ("ratio",), ()),
    ("ccd-w-shape", lambda: erl.clip_cov_drop(W, LOGP, LOGP, W[:, :2], 0.8, 1.2, 0.1, (1.0, 5.0)), ("w",), ()),
    ("ccd-bounds-reversed", lambda: erl.clip_cov_drop(W, LOGP, LOGP, W, 0.8, 1.2, 0.1, (5.0, 1.0)), ("bounds",), ()),
    ("ccd-frac-negative", lambda: erl.clip_cov_drop(W, LOGP, LOGP, W, 0.8, 1.2, -0.1, (1.0, 5.0)), ("frac",), ()),
    (
        "ccd-bad-generator",
        lambda: erl.clip_cov_drop(W, LOGP, LOGP, W, 0.8, 1.2, 0.1, (1.0, 5.0), generator="seed"),
        ("generator",),
        (),
    ),
    # --- clip_fractions -------------------------------------------------------------------------------
    ("cf-list-ratio", lambda: erl.clip_fractions(W.tolist(), LOGP, W, 0.2, 0.2), ("ratio",), ()),
    ("cf-list-weights", lambda: erl.clip_fractions(W, LOGP, W.tolist(), 0.2, 0.2), ("weights",), ()),
    ("cf-shape-mismatch", lambda: erl.clip_fractions(W, LOGP[:, :2], W, 0.2, 0.2), ("adv",), ()),
    ("cf-1d", lambda: erl.clip_fractions(_t(1.0, 2.0), _t(1.0, -1.0), _t(1.0, 1.0), 0.2, 0.2), ("ratio",), ()),
    ("cf-zero-weights", lambda: erl.clip_fractions(W, LOGP, torch.zeros(2, 3), 0.2, 0.2), ("weights",), ()),
    ("cf-negative-eps-low", lambda: erl.clip_fractions(W, LOGP, W, -0.2, 0.2), ("eps_low",), ()),
    (
        "cf-eps-high-per-problem-shape",
        lambda: erl.clip_fractions(MASK3.float(), LOGP3, MASK3.float(), 0.2, _t(0.1, 0.2, 0.3)),
        ("eps_high",),
        (),
    ),
    # --- repo_advantage / decorrelating_beta / repo_d_beta / repo_r / shape_advantage --------------------
    ("ra-beta-not-broadcastable", lambda: erl.repo_advantage(LOGP, LOGP, _t(0.1, 0.2, 0.3, 0.4)), ("beta",), ()),
    ("db-dim-out-of-range", lambda: erl.decorrelating_beta(LOGITS, LOGITS, PROBS, PROBS, dim=3), ("dim",), ()),
    ("db-dim-repeated", lambda: erl.decorrelating_beta(LOGP, LOGP, LOGP.exp(), W, dim=(0, -2)), ("dim",), ()),
    ("db-negative-probs", lambda: erl.decorrelating_beta(LOGITS, LOGITS, -PROBS, PROBS), ("probs",), ()),
    ("db-negative-weights", lambda: erl.decorrelating_beta(LOGITS, LOGITS, PROBS, -PROBS), ("weights",), ()),
    (
        "rdb-zeta-not-broadcastable",
        lambda: erl.repo_d_beta(LOGP, LOGP, LOGP.exp(), W, _t(0.1, 0.2, 0.3)),
        ("zeta",),
        (),
    ),
    ("rdb-zeta-overflows", lambda: erl.repo_d_beta(LOGITS, LOGITS, PROBS, PROBS, 1e40), ("zeta",), ()),
    ("rdb-nan-zeta-tensor", lambda: erl.repo_d_beta(LOGITS, LOGITS, PROBS, PROBS, _t(NAN)), ("zeta",), ()),
    ("rdb-dim-out-of-range", lambda: erl.repo_d_beta(LOGITS, LOGITS, PROBS, PROBS, 0.5, dim=-2), ("dim",), ()),
    (
        "repo_r-zeta-not-broadcastable",
        lambda: erl.repo_r(_t(1.0, -1.0), _t(-1.0, -2.0), _t(0.1, 0.2, 0.3)),
        ("zeta",),
        (),
    ),
    (
        "sa-repo_r-zeta-not-broadcastable",
        lambda: erl.shape_advantage(LOGP, LOGP, ENT, W, "repo_r", zeta=_t(0.1, 0.2, 0.3, 0.4)),
        ("zeta",),
        (),
    ),
    (
        "sa-repo_d-zeta-not-broadcastable",
        lambda: erl.shape_advantage(LOGP, LOGP, ENT, W, "repo_d", zeta=_t(0.1, 0.2, 0.3, 0.4)),
        ("zeta",),
        (),
    ),
    (
        "sa-beta-not-broadcastable",
        lambda: erl.shape_advantage(LOGP, LOGP, ENT, W, "beta", beta=_t(0.1, 0.2, 0.3, 0.4)),
        ("beta",),
        (),
    ),
    ("sa-dim-out-of-range", lambda: erl.shape_advantage(LOGP, LOGP, ENT, W, "decorrelate", dim=5), ("dim",), ()),
    ("sa-negative-weights", lambda: erl.shape_advantage(LOGP, LOGP, ENT, -W, "decorrelate"), ("weights",), ()),
    ("sa-string-natural", lambda: erl.shape_advantage(LOGP, LOGP, ENT, W, "repo_d", natural="no"), ("natural",), ()),
    # variant=None passes A through, but a NaN in it must still be refused (it would reach the loss).
    ("sa-none-nan-adv", lambda: erl.shape_advantage(LOGP * NAN, LOGP, ENT, W, None), ("adv",), ()),
    # --- controllers ------------------------------------------------------------------------------------
    ("zeta-int-tensor", lambda: erl.ZetaController(zeta=torch.tensor([0])), ("zeta",), ()),
    ("zeta-nan-tensor", lambda: erl.ZetaController(zeta=_t(NAN, 0.01)), ("zeta",), ()),
    ("zeta-max-above-limit", lambda: erl.ZetaController(zeta_max=1e7), ("zeta_max",), ()),
    # --- advantages ---------------------------------------------------------------------------------------
    ("ega-shape-mismatch", lambda: erl.expected_group_advantages(_t(1, 0, 1), _t(0.5, 0.5)), ("rewards", "probs"), ()),
    ("ega-negative-probs", lambda: erl.expected_group_advantages(_t(1.0, 0.0), _t(-0.5, 1.5)), ("probs",), ()),
    ("scale-string-center", lambda: erl.scale_advantages(_t(1.0, 2.0), center="yes"), ("center",), ()),
    # --- metrics ------------------------------------------------------------------------------------------
    ("pass-c-tensor-above-n", lambda: erl.pass_at_k(torch.tensor(5), torch.tensor(6), 1), ("c",), ()),
    ("pass-float-tensor-n", lambda: erl.pass_at_k(torch.tensor(16.0), 3, 4), ("n",), ()),
    ("pass-1d-tensor-k", lambda: erl.pass_at_k(16, 3, torch.tensor([4])), ("k",), ()),
    ("dc-int-answers", lambda: erl.distinct_correct(5, correct={1}), ("answers",), ()),
    ("dc-int-correct", lambda: erl.distinct_correct([1, 2], correct=5), ("correct",), ()),
    ("dc-int-is-correct", lambda: erl.distinct_correct([1, 2], is_correct=1), ("is_correct",), ()),
    ("edc-list-correct", lambda: erl.expected_distinct_correct(PROBS, [True, False, True], 2), ("correct",), ()),
    ("edc-float-correct", lambda: erl.expected_distinct_correct(PROBS, _t(0.3, 2.0, 0.0), 2), ("correct",), ()),
    (
        "edc-correct-shape",
        lambda: erl.expected_distinct_correct(PROBS, torch.tensor([True, False]), 2),
        ("correct",),
        (),
    ),
    (
        "edc-probs-outside-0-1",
        lambda: erl.expected_distinct_correct(_t(-0.5, 1.5), torch.tensor([1, 0]) > 0, 2),
        ("probs",),
        (),
    ),
    # The mean entropy of a run with no steps is 0/0: refuse it rather than return NaN.
    ("ce-empty-normalize", lambda: erl.cumulative_entropy(torch.zeros(0), normalize=True), ("entropy",), ()),
    ("ce-empty-normalize-2d", lambda: erl.cumulative_entropy(torch.zeros(0, 3), normalize=True), ("entropy",), ()),
    ("ce-dim-out-of-range", lambda: erl.cumulative_entropy(torch.zeros(3), dim=2), ("dim",), ()),
    ("ce-string-normalize", lambda: erl.cumulative_entropy(torch.ones(3), normalize="False"), ("normalize",), ()),
    # --- precision ------------------------------------------------------------------------------------
    ("ecb-eps-low-above-one", lambda: erl.effective_clip_bounds(1.05, 1.5, 0.28), ("eps_low",), ()),
    ("ecb-eps-low-tensor-above-one", lambda: erl.effective_clip_bounds(1.05, _t(0.2, 1.5), 0.28), ("eps_low",), ()),
    ("rs-list-mask", lambda: erl.ratio_stats(_t(0.0, -1.0), _t(0.0, -1.0), [True, True]), ("mask",), ()),
    # exp(1000) is inf even in float64: mean, max and mean_log came back inf.
    ("rs-ratio-overflows", lambda: erl.ratio_stats(_t(-1e-3, -1.0), _t(-1000.0, -1.0)), ("logp", "logp_old"), ()),
    ("er-shape-mismatch", lambda: erl.expected_ratio(_t(-1.0, -2.0), _t(-1.0, -2.0, -3.0)), ("logp_old",), ()),
    ("er-list-sampler", lambda: erl.expected_ratio(_t(-1.0), _t(-1.0), [0.0]), ("logp_sampler",), ()),
    ("er-nan-sampler", lambda: erl.expected_ratio(_t(-1.0), _t(-1.0), _t(NAN)), ("logp_sampler",), ()),
    ("er-sampler-shape", lambda: erl.expected_ratio(_t(-1.0, -2.0), _t(-1.0, -2.0), _t(0.0)), ("logp_sampler",), ()),
    # The sampler puts mass where logp exceeds logp_old by 1000: the expectation is e^1000, not a number.
    (
        "er-overflows",
        lambda: erl.expected_ratio(_t(0.0, -1.0), _t(-1000.0, -1.0), _t(-0.5, -1.0)),
        ("logp", "logp_old", "logp_sampler"),
        (),
    ),
    # --- logprobs / chunk_rows ----------------------------------------------------------------------------
    # 1e-40 is below fp32's smallest normal number and logits / 1e-40 overflow: every output was NaN.
    (
        "tl-temperature-tiny",
        lambda: erl.token_logprobs(HIDDEN, WEIGHT, TARGETS, temperature=1e-40),
        ("temperature",),
        (),
    ),
    (
        "lfl-temperature-tiny",
        lambda: erl.logprobs_from_logits(LOGIT_BATCH, TARGETS.clamp(max=4), temperature=1e-40),
        ("temperature",),
        (),
    ),
    # Normal as a float, but logits of 1e10 divided by it still overflow fp32.
    (
        "lfl-temperature-overflows-logits",
        lambda: erl.logprobs_from_logits(LOGIT_BATCH * 1e10, TARGETS.clamp(max=4), temperature=1e-30),
        ("temperature",),
        (),
    ),
    (
        "lfl-zero-vocab",
        lambda: erl.logprobs_from_logits(torch.zeros(2, 0), torch.zeros(2, dtype=torch.long)),
        ("logits",),
        (),
    ),
    ("tl-weight-no-rows", lambda: erl.token_logprobs(HIDDEN, WEIGHT[:0], TARGETS * 0), ("weight",), ()),
    ("cr-negative-tokens", lambda: erl.logprobs.chunk_rows(-1, 5, torch.float32), ("tokens",), ()),
    ("cr-float-vocab", lambda: erl.logprobs.chunk_rows(10, 5.5, torch.float32), ("vocab",), ()),
    ("cr-string-dtype", lambda: erl.logprobs.chunk_rows(10, 5, "float32"), ("dtype",), ()),
    ("cr-block-mib-0", lambda: erl.chunk_rows(10, 5, torch.float32, 0.0), ("block_mib",), ()),
    # --- plot ---------------------------------------------------------------------------------------------
    (
        "plot-unknown-field",
        lambda: erl.plot.curves({"a": _bandit_run()}, field="entopy"),
        ("field",),
        ("entopy", "entropy", "reward", "eps_high"),
    ),
    ("plot-runs-not-mapping", lambda: erl.plot.curves([_t(1.0, 2.0)]), ("runs",), ()),
    ("plot-string-run", lambda: erl.plot.curves({"a": "abc"}), ("run",), ()),
    ("arm-seed-out-of-range", lambda: erl.plot.arm_probs(_bandit_run(record_probs=True), seed=5), ("seed",), ()),
    ("arm-not-history", lambda: erl.plot.arm_probs({"probs": None}), ("history",), ()),
    (
        "pm-string-fields",
        lambda: erl.plot.metrics({"a": [{"step": 0, "entropy": 1.0}]}, fields="entropy"),
        ("fields",),
        (),
    ),
]


@pytest.mark.parametrize(("call", "names", "words"), [pytest.param(c, n, w, id=i) for i, c, n, w in CASES])
def test_bad_input_raises_and_names_argument(
    call: Callable[[], Any], names: tuple[str, ...], words: tuple[str, ...]
) -> None:
    try:
        out = call()
    except (ValueError, TypeError) as exc:
        message = str(exc)
        for name in names:
            assert _names(message, name), f"{type(exc).__name__} does not name {name!r}: {message!r}"
        for word in words:
            assert word in message, f"{type(exc).__name__} does not mention {word!r}: {message!r}"
        return
    except Exception as exc:  # noqa: BLE001 (any other type breaks the contract; show it)
        pytest.fail(f"raised {type(exc).__name__} instead of ValueError/TypeError: {exc}")
    pytest.fail(f"no error for a bad {names[0]!r}; returned {out!r}" + (" (contains NaN)" if _has_nan(out) else ""))


def test_cases_are_distinct_and_many() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 200


# --- All-equal groups: zero advantages, exactly ------------------------------------------------
# The grpo formula divides by std + eps. A group of equal rewards has std 0 in exact arithmetic, but
# the float mean of G copies of 0.1 is not 0.1, so a naive R - mean leaves a residue of ~1e-17 and the
# std of the residues is ~1e-17 too; with eps = 0 (or eps well below the residue's scale in fp32) the
# ratio is O(1): a group with no signal would get a full-size advantage. These tests pin that down.

EQUAL_VALUES = [0.0, 1.0, -1.0, 0.1, 0.3, 1 / 3, 0.7, -2.3, 123.456]


@pytest.mark.parametrize("kind", ["grpo", "rloo", "dr_grpo"])
def test_equal_group_gets_zero_advantages(kind: str) -> None:
    failures = []
    for dtype in (torch.float32, torch.float64):
        for eps in (0.0, 1e-6, 1e-2):
            for g in range(2, 9):
                for v in EQUAL_VALUES:
                    adv = erl.group_advantages(torch.full((g,), v, dtype=dtype), g, kind, eps)
                    assert adv.dtype == dtype
                    assert not torch.isnan(adv).any(), f"NaN for {g} copies of {v} ({dtype}, eps={eps})"
                    if bool((adv != 0).any()):
                        failures.append(
                            f"group_advantages(torch.full(({g},), {v!r}, dtype={dtype}), {g}, {kind!r}, "
                            f"eps={eps}) = {adv[0].item():.3g}"
                        )
    assert not failures, f"{len(failures)} all-equal groups get nonzero advantages, e.g.:\n" + "\n".join(failures[:8])


@pytest.mark.parametrize("kind", ["grpo", "rloo", "dr_grpo"])
def test_equal_group_beside_informative_groups(kind: str) -> None:
    # Groups: all 0.7 (no signal) | mixed | all 0 | all 1 (binary rewards, the common case).
    rewards = torch.tensor([0.7, 0.7, 0.7, 0.7, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    for eps in (0.0, 1e-6):
        adv = erl.group_advantages(rewards, 4, kind, eps).reshape(4, 4)
        assert not torch.isnan(adv).any()
        assert (adv[[0, 2, 3]] == 0).all(), f"kind={kind!r} eps={eps}: {adv.tolist()}"
        assert (adv[1] != 0).all()
        assert adv[1].sum().abs() < 1e-6


def test_equal_group_batched_leading_dims() -> None:
    rewards = torch.full((3, 2, 6), 0.5)  # leading dims are independent problems
    for kind in ("grpo", "rloo", "dr_grpo"):
        assert (erl.group_advantages(rewards, 3, kind, eps=0.0) == 0).all()


@pytest.mark.parametrize("kind", ["grpo", "rloo", "dr_grpo"])
def test_expected_group_advantages_equal_rewards_zero(kind: str) -> None:
    """The exact bandit estimator's advantages (statistics under π) obey the same rule."""
    failures = []
    for dtype in (torch.float32, torch.float64):
        probs = torch.softmax(torch.linspace(-2.0, 1.5, 7, dtype=dtype), 0)
        for eps in (0.0, 1e-6):
            for v in EQUAL_VALUES:
                adv = erl.expected_group_advantages(torch.full((7,), v, dtype=dtype), probs, kind, eps)
                assert not torch.isnan(adv).any()
                if bool((adv != 0).any()):
                    failures.append(
                        f"expected_group_advantages(torch.full((7,), {v!r}, dtype={dtype}), "
                        f"softmax(linspace(-2, 1.5, 7)), {kind!r}, eps={eps}) = {adv[0].item():.3g}"
                    )
    assert not failures, f"{len(failures)} all-equal reward tables get nonzero advantages, e.g.:\n" + "\n".join(
        failures[:8]
    )


# --- counts made with tensor ops are counts -------------------------------------------------------------
def test_pass_at_k_takes_0d_integer_tensors():
    """A student counts correct answers with (answers == truth).sum(): a 0-d int64 tensor, not an int."""
    answers, truth = torch.tensor([3] * 3 + [1] * 13), 3
    c = (answers == truth).sum()
    assert erl.pass_at_k(torch.tensor(16), c, 4) == erl.pass_at_k(16, 3, 4)
    assert erl.pass_at_k(torch.tensor(16, dtype=torch.int32), torch.tensor(3), torch.tensor(4)) == erl.pass_at_k(
        16, 3, 4
    )


def test_cumulative_entropy_of_an_empty_run_without_normalize_is_zero():
    """The area under no curve is 0 (defined); only its mean is refused (see ce-empty-normalize)."""
    assert erl.cumulative_entropy(torch.zeros(0, 3)).tolist() == [0.0, 0.0, 0.0]
