"""The batched bandit engine: exact steps equal the closed form, sampled runs average to the exact one."""

import math

import gymnasium as gym
import pytest
import torch

import entropy_rl_lite as erl
import environments  # noqa: F401  (registers erl/ environments)
from entropy_rl_lite.bandit import BanditConfig

f64 = torch.float64
R = torch.tensor([1.0, 1.0, 1.0, 0, 0, 0, 0, 0, 0, 0], dtype=f64)
Z0 = torch.linspace(2, -2, 10, dtype=f64)


def final_logits(h: erl.bandit.History) -> torch.Tensor:
    return h.probs[-1].log()  # softmax is shift-invariant: compare centred log-probs


@pytest.mark.parametrize("gradient", ["vanilla", "natural"])
def test_one_exact_step_is_the_closed_form_pg_step(gradient):
    h = erl.bandit.run(R, init_logits=Z0, steps=1, lr=0.5, advantage="rloo", gradient=gradient)
    adv = erl.expected_group_advantages(R, torch.softmax(Z0, -1), "rloo")
    expected = torch.log_softmax(Z0 + erl.pg_logit_step(Z0, adv, 0.5, gradient), -1)
    torch.testing.assert_close(final_logits(h)[0], expected, atol=1e-12, rtol=0)
    # ... and the recorded entropy change agrees with Theorem 1 to first order.
    pred = erl.predicted_entropy_change(Z0, adv, 0.5, gradient)
    assert (h.entropy[1, 0] - h.entropy[0, 0]).item() == pytest.approx(pred.item(), rel=0.1)


@pytest.mark.parametrize("advantage", ["rloo", "none", "dr_grpo"])
def test_exact_estimator_equals_the_average_of_many_sampled_runs(advantage):
    """RLOO, Dr.GRPO and no-baseline REINFORCE are linear in the rewards, so one SGD step's E[sampled Δz]
    equals the exact Δz (Dr.GRPO's (G-1)/G included). Tolerance: 5 standard errors of the seed mean."""
    S = 20_000
    exact = erl.bandit.run(R, init_logits=Z0, steps=1, lr=0.3, advantage=advantage, group_size=4)
    sampled = erl.bandit.run(
        R,
        init_logits=Z0,
        steps=1,
        lr=0.3,
        advantage=advantage,
        estimator="sampled",
        seeds=S,
        group_size=4,
        generator=torch.Generator().manual_seed(0),
    )
    dz = sampled.probs[-1].log() - torch.log_softmax(Z0, -1)  # [S, K]
    dz_exact = (exact.probs[-1].log() - torch.log_softmax(Z0, -1))[0]
    # Compare Δz with its mean removed (softmax shift), arm by arm.
    dz, dz_exact = dz - dz.mean(-1, keepdim=True), dz_exact - dz_exact.mean()
    se = dz.std(0) / S**0.5
    z_scores = (dz.mean(0) - dz_exact) / se
    assert z_scores.abs().max().item() < 5, z_scores
    assert (dz_exact.abs() > 10 * se).any()  # the test has power: the step is far larger than the noise


def test_exact_runs_are_deterministic_and_sampled_runs_follow_the_generator():
    a = erl.bandit.run(R, init_logits=Z0, steps=20, lr=1.0, advantage="grpo")
    b = erl.bandit.run(R, init_logits=Z0, steps=20, lr=1.0, advantage="grpo")
    assert torch.equal(a.entropy, b.entropy)
    runs = [
        erl.bandit.run(
            R, init_logits=Z0, steps=20, estimator="sampled", seeds=3, generator=torch.Generator().manual_seed(s)
        )
        for s in (1, 1, 2)
    ]
    assert torch.equal(runs[0].probs, runs[1].probs) and not torch.equal(runs[0].probs, runs[2].probs)


def test_history_shapes_and_tidy_rows():
    h = erl.bandit.run(R, steps=5, seeds=2, estimator="sampled", generator=torch.Generator().manual_seed(0))
    assert h.entropy.shape == (6, 2) and h.reward.shape == (6, 2) and h.probs.shape == (6, 2, 10)
    assert h.loss.shape == h.zeta.shape == h.eps_high.shape == h.clip_frac.shape == (5, 2)
    rows = h.to_rows()
    assert len(rows) == 12 and rows[0]["step"] == 0 and "loss" in rows[0] and "loss" not in rows[-1]
    assert erl.bandit.run(R, steps=0).entropy.shape == (1, 1)


def test_contextual_bandit_table_from_environment():
    env = gym.make("erl/ContextualBandit-v0", n_contexts=3, n_arms=6)
    table = erl.bandit.rewards_from_env(env)
    assert table.shape == (3, 6)
    h = erl.bandit.run(table, steps=50, lr=2.0, advantage="grpo", seeds=2)
    assert h.probs.shape == (51, 2, 3, 6)
    assert h.reward[-1, 0] > 0.95  # every context learns its correct arms
    with pytest.raises(TypeError, match="reward_table"):
        erl.bandit.rewards_from_env(gym.make("CartPole-v1"))


def test_clipping_does_nothing_on_policy_and_binds_with_epochs():
    base = dict(init_logits=Z0, steps=30, lr=1.0, advantage="grpo")
    pg = erl.bandit.run(R, objective="reinforce", **base)
    ppo = erl.bandit.run(R, objective="ppo", eps_high=0.28, **base)
    torch.testing.assert_close(pg.entropy, ppo.entropy, atol=1e-12, rtol=0)
    assert ppo.clip_frac.max() == 0
    multi = erl.bandit.run(R, objective="ppo", eps_high=0.28, epochs=4, **base)
    assert multi.clip_frac.max() > 0


def test_on_a_calibrated_start_eps_high_caps_the_entropy_lowering_step():
    """Calibrated start: the step that lowers entropy raises the already-likely correct arm (r > 1, A > 0),
    which ε_high caps. So here a *larger* ε_high collapses faster: clip-higher slows collapse only where
    the clipped updates are the entropy-raising ones (rare rewarded arms), a setting chapter 04 builds."""
    base = dict(init_logits=Z0, steps=3, lr=2.0, advantage="grpo", objective="ppo", epochs=8, eps_low=0.2)
    runs = [erl.bandit.run(R, eps_high=e, **base) for e in (0.1, 0.28, 0.5)]
    assert runs[0].clip_frac_high.sum() > 0
    final = [h.entropy[-1, 0].item() for h in runs]
    assert final[0] > final[1] > final[2], final


def test_decorrelating_repo_holds_entropy_to_second_order():
    base = dict(init_logits=Z0, steps=10, lr=0.1, advantage="rloo")
    plain = erl.bandit.run(R, **base)
    repo = erl.bandit.run(R, repo="decorrelate", **base)
    drift_plain = (plain.entropy[-1] - plain.entropy[0]).abs().item()
    drift_repo = (repo.entropy[-1] - repo.entropy[0]).abs().item()
    assert drift_repo < 0.05 * drift_plain
    # Halving lr (twice the steps, same total) cuts REPO's second-order drift roughly in half.
    half = erl.bandit.run(R, repo="decorrelate", init_logits=Z0, steps=20, lr=0.05, advantage="rloo")
    assert (half.entropy[-1] - half.entropy[0]).abs().item() == pytest.approx(drift_repo / 2, rel=0.25)


def test_zeta_controller_in_the_engine_toy_bounds_hold_entropy_llm_bounds_do_not():
    """Target 0.9 nats, reachable with all reward (below log 3, the entropy of uniform over the 3 correct arms)."""
    base = dict(
        init_logits=Z0,
        steps=300,
        lr=1.0,
        advantage="grpo",
        repo="repo_r",
        zeta=0.01,
        zeta_control=True,
        target_entropy=0.9,
    )
    llm = erl.bandit.run(R, zeta_max=0.05, **base)
    toy = erl.bandit.run(R, zeta_max=5.0, **base)
    assert llm.entropy[-1, 0] < 0.1  # |log π| ~ 1-10 in a bandit: ζ <= 0.05 barely moves the advantages
    tail = toy.entropy[-100:, 0]
    assert (tail - 0.9).abs().max() < 0.05  # the bang-bang controller oscillates within ±0.05 nats of 0.9
    assert toy.reward[-1, 0] > 0.99
    assert (toy.zeta[-100:, 0].abs() < 5.0).float().mean() > 0.5  # it regulates, not pinned at its cap


def test_holding_an_unreachable_target_pins_zeta_at_its_cap():
    """Claim 14's shape: the initial entropy exceeds what the rewarded set supports (log 3), so the controller
    saturates and entropy settles between log 3 and the target, not at the target."""
    h = erl.bandit.run(
        R,
        init_logits=Z0,
        steps=300,
        lr=1.0,
        advantage="grpo",
        repo="repo_r",
        zeta=0.01,
        zeta_control=True,
        zeta_max=5.0,
    )
    assert (h.zeta[-100:, 0] == 5.0).float().mean() > 0.9
    assert math.log(3) < h.entropy[-1, 0] < h.entropy[0, 0] - 0.3


def test_adapo_controller_moves_eps_high_per_seed():
    h = erl.bandit.run(
        R,
        init_logits=torch.stack([Z0, -Z0]),
        seeds=2,
        steps=20,
        lr=1.0,
        advantage="grpo",
        objective="ppo",
        epochs=4,
        eps_high=0.28,
        adapo=True,
    )
    assert h.eps_high.shape == (20, 2)
    assert h.eps_high[0].tolist() == [0.28, 0.28]
    assert h.eps_high[1:].max() > 0.28


def test_natural_gradient_long_runs_stay_finite_and_decorrelation_cancels_there_too():
    h = erl.bandit.run(R, init_logits=Z0, steps=400, lr=5.0, advantage="rloo", gradient="natural")
    assert torch.isfinite(h.probs).all() and torch.isfinite(h.entropy).all()
    assert h.entropy[-1, 0] > 1.0  # NPG keeps the three correct arms in their starting proportions
    base = dict(init_logits=Z0, steps=1, advantage="rloo", gradient="natural")
    drift = {
        lr: (
            erl.bandit.run(R, lr=lr, repo="decorrelate", **base).entropy.diff(dim=0)[0, 0].abs().item(),
            erl.bandit.run(R, lr=lr, **base).entropy.diff(dim=0)[0, 0].abs().item(),
        )
        for lr in (1e-2, 5e-3)
    }
    assert drift[1e-2][0] < 1e-2 * drift[1e-2][1]  # first order cancelled
    assert drift[1e-2][0] / drift[5e-3][0] == pytest.approx(4.0, rel=0.1)  # what is left is second order


def test_clip_cov_runs_are_deterministic_and_differ_from_ppo():
    """Exact estimator, so any difference from PPO comes from the dropped tokens, not from other draws."""
    base = dict(init_logits=Z0, steps=30, lr=1.0, advantage="grpo", epochs=2)
    a = erl.bandit.run(R, objective="clip_cov", loss_kwargs=dict(clip_cov_bounds=(-10.0, 10.0)), **base)
    b = erl.bandit.run(R, objective="clip_cov", loss_kwargs=dict(clip_cov_bounds=(-10.0, 10.0)), **base)
    ppo = erl.bandit.run(R, objective="ppo", **base)
    assert torch.equal(a.entropy, b.entropy)
    assert not torch.equal(a.entropy, ppo.entropy)


def test_entropy_bonus_and_adam_and_other_objectives_run():
    base = dict(init_logits=Z0, steps=30, lr=1.0, advantage="grpo")
    plain = erl.bandit.run(R, **base)
    bonus = erl.bandit.run(R, entropy_coef=0.5, **base)
    assert bonus.entropy[-1, 0] > plain.entropy[-1, 0]
    for kw in (
        dict(optimizer="adam", lr=0.1),
        dict(objective="gspo"),
        dict(objective="cispo", epochs=2),
        dict(objective="clip_cov", estimator="sampled", loss_kwargs=dict(clip_cov_ratio=0.1)),
        dict(objective="kl_cov", epochs=2, loss_kwargs=dict(kl_cov_ratio=0.2)),
        dict(repo="beta", beta=0.1),
        dict(repo="repo_d", zeta=0.5),
    ):
        h = erl.bandit.run(R, **{**base, **kw}, generator=torch.Generator().manual_seed(0))
        assert torch.isfinite(h.entropy).all()


def test_unknown_objective_is_refused_with_the_known_list():
    """An unknown objective fails at config time, and the message lists the known ones."""
    with pytest.raises(ValueError, match="objective 'trpo'; known: 'reinforce', 'ppo'"):
        erl.bandit.BanditConfig(objective="trpo")


def test_adaptive_entropy_bonus_holds_a_reachable_target():
    h = erl.bandit.run(
        R,
        init_logits=Z0,
        steps=300,
        lr=1.0,
        advantage="grpo",
        entropy_coef_control=True,
        entropy_coef_rate=0.5,
        target_entropy=0.9,
    )
    assert (h.entropy[-100:, 0] - 0.9).abs().max() < 0.05  # within ±0.05 nats of the target, like the ζ controller
    assert h.entropy_coef[-1, 0] > 0 and h.reward[-1, 0] > 0.99


def test_bernoulli_rewards_are_drawn_per_sample_and_average_to_the_table():
    """A coin-flip reward (p = 1/2 on every arm) carries no signal in expectation, yet every sampled group
    gets nonzero advantages; the policy random-walks. Same generator seed, same run."""
    coins = torch.full((4, 10), 0.5, dtype=f64)
    kw = dict(estimator="sampled", bernoulli_rewards=True, seeds=8, steps=20, lr=1.0, advantage="rloo")
    a = erl.bandit.run(coins, **kw, generator=torch.Generator().manual_seed(1))
    b = erl.bandit.run(coins, **kw, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a.probs, b.probs)
    assert (a.probs[-1] - a.probs[0]).abs().max() > 1e-3  # the noise moves the policy
    assert torch.allclose(a.reward, torch.full_like(a.reward, 0.5))  # E_π[p] = 1/2 whatever π is
    fixed = erl.bandit.run(coins, **{**kw, "bernoulli_rewards": False})
    assert torch.equal(fixed.probs[-1], fixed.probs[0])  # a fixed 0.5 is the same for all: zero advantage
    with pytest.raises(ValueError, match="estimator='sampled'"):
        erl.bandit.BanditConfig(bernoulli_rewards=True)
    with pytest.raises(ValueError, match="probabilities"):
        erl.bandit.run(coins * 3, **kw)


def test_ratio_bias_is_clipping_with_the_effective_bounds():
    """A loss that sees b·r clipped to [1-ε_low, 1+ε_high] trains exactly like r clipped to the effective
    bounds ((1-ε_low)/b, (1+ε_high)/b) (claim 7's algebra), checked through whole engine runs."""
    b, lo, hi = 1.05, 0.2, 0.28
    base = dict(init_logits=Z0, steps=20, lr=2.0, advantage="grpo", objective="ppo", epochs=4)
    biased = erl.bandit.run(R, eps_low=lo, eps_high=hi, ratio_bias=b, **base)
    lo_eff, hi_eff = erl.effective_clip_bounds(b, lo, hi)
    # PPO's min(b·r·A, clip(b·r)·A) = b · min(r·A, clip_eff(r)·A): the same gradient up to the factor b.
    effective = erl.bandit.run(R, eps_low=lo_eff, eps_high=hi_eff, **{**base, "lr": 2.0 * b})
    torch.testing.assert_close(biased.entropy, effective.entropy, atol=1e-10, rtol=0)
    assert biased.clip_frac.max() > 0


def test_gaussian_reward_noise_is_drawn_per_sample():
    kw = dict(estimator="sampled", seeds=4, steps=10, lr=1.0, advantage="grpo", init_logits=Z0)
    quiet = erl.bandit.run(R, **kw)
    noisy = erl.bandit.run(R, reward_noise=0.5, **kw)
    again = erl.bandit.run(R, reward_noise=0.5, **kw)
    assert torch.equal(noisy.probs, again.probs) and not torch.equal(noisy.probs, quiet.probs)
    with pytest.raises(ValueError, match="reward_noise"):
        erl.bandit.BanditConfig(reward_noise=0.1)


def test_config_fields_are_documented_for_help_and_switches_must_be_bools():
    """help(BanditConfig) shows every field with its default and the comment that explains it; a string where a
    switch goes is refused (the string "false" is truthy), and so is a ζ beyond the library's limit."""
    doc = BanditConfig.__doc__
    for line in ("lr: float = 0.1", "η, step size on the logits", "zeta_max: float = 0.05", "toy-scale ζ_max = 5"):
        assert line in doc, line
    for field, value in (("adapo", "false"), ("record_probs", "yes"), ("zeta_control", 1)):
        with pytest.raises(TypeError, match=f"{field} must be True or False"):
            BanditConfig(**{field: value})
    with pytest.raises(ValueError, match="zeta must be <= 1000000.0"):
        BanditConfig(zeta=1e7)
