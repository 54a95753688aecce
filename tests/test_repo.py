"""REPO: the general form, the decorrelating β, the entropy-bonus identity, REPO-D and REPO-R."""

import pytest
import torch

import entropy_rl_lite as erl

f64 = torch.float64


@pytest.mark.parametrize(("adv", "expected"), [(2.0, 2.6), (-2.0, -1.4), (0.0, 0.0)])
def test_repo_r_unit_cases(adv, expected):
    """ζ = 0.1, log π = -3: A > 0 scales by 1 - ζ log π = 1.3; A < 0 by 1 + ζ log π = 0.7."""
    out = erl.repo_r(torch.tensor([adv], dtype=f64), torch.tensor([-3.0], dtype=f64), zeta=0.1)
    assert out.item() == pytest.approx(expected, abs=1e-12)


def test_repo_r_clamps_instead_of_flipping_sign():
    # ζ < 0 and log π = -3: the positive-advantage factor 1 - ζ log π = 1 - 1.5 < 0 -> clamped to 0.
    out = erl.repo_r(torch.tensor([2.0, -2.0]), torch.tensor([-3.0, -3.0]), zeta=-0.5)
    assert out[0].item() == 0.0
    # ... and the negative-advantage factor 1 + ζ log π = 2.5 > 0 keeps the sign.
    assert out[1].item() == pytest.approx(-5.0)
    # ζ > 0 with a very rare token: the negative factor 1 + ζ log π < 0 -> clamped to 0.
    assert erl.repo_r(torch.tensor([-1.0]), torch.tensor([-15.0]), zeta=0.1).item() == 0.0


def test_repo_r_floors_and_detaches_logp():
    logp = torch.tensor([-100.0, -float("inf")], requires_grad=True)
    out = erl.repo_r(torch.tensor([1.0, 1.0]), logp, zeta=0.1)
    torch.testing.assert_close(out, torch.tensor([3.0, 3.0]))  # log π floored at -20: 1 + 0.1·20
    assert not out.requires_grad  # no gradient flows through log π
    out = erl.repo_r(torch.tensor([1.0]), torch.tensor([-100.0]), zeta=0.1, logp_floor=-5.0)
    assert out.item() == pytest.approx(1.5)


def test_repo_r_per_problem_zeta_tensor():
    adv = torch.tensor([[1.0, -1.0], [1.0, -1.0]])
    logp = torch.full((2, 2), -2.0)
    out = erl.repo_r(adv, logp, torch.tensor([[0.1], [-0.1]]))
    torch.testing.assert_close(out, torch.tensor([[1.2, -0.8], [0.8, -1.2]]))


def _expected_grad(z: torch.Tensor, adv_fn) -> torch.Tensor:
    """∇_z Σ_a π(a)·A(a)·log π(a), with π and A held fixed: the expected score-function gradient."""
    zz = z.clone().requires_grad_(True)
    logp = torch.log_softmax(zz, -1)
    p = logp.detach().exp()
    (g,) = torch.autograd.grad((p * adv_fn(z) * logp).sum(), zz)
    return g


def test_expected_repo_gradient_is_pg_plus_beta_entropy_gradient():
    """E_π[(A - βL) ∇log π] = ∇J + β∇H, because E_π[L ∇log π] = -∇H. Checked to 1e-10 in float64."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(20, 12, dtype=f64, generator=g) * 2
    adv = torch.randn(20, 12, dtype=f64, generator=g)
    beta = 0.37
    L = erl.centered_logp(z)
    g_repo = _expected_grad(z, lambda _: erl.repo_advantage(adv, L, beta))
    g_pg = _expected_grad(z, lambda _: adv)
    zz = z.clone().requires_grad_(True)
    (g_h,) = torch.autograd.grad(erl.entropy(zz).sum(), zz)
    torch.testing.assert_close(g_repo, g_pg + beta * g_h, atol=1e-10, rtol=0)
    assert g_h.abs().max() > 0.1  # the identity is not trivially 0 = 0


def test_decorrelating_beta_cancels_first_order_entropy_change():
    g = torch.Generator().manual_seed(1)
    z = torch.randn(50, 10, dtype=f64, generator=g) * 2
    adv = (torch.rand(50, 10, generator=g) < 0.3).to(f64)
    adv[:, 0], adv[:, 1] = 1.0, 0.0  # every row has a correct and a wrong arm
    p = torch.softmax(z, -1)
    a = adv - (p * adv).sum(-1, keepdim=True)
    L = erl.centered_logp(z)
    beta = erl.decorrelating_beta(a, L, p, weights=p)
    a_repo = erl.repo_advantage(a, L, beta[:, None])
    before = erl.predicted_entropy_change(z, a, lr=0.1)
    after = erl.predicted_entropy_change(z, a_repo, lr=0.1)
    assert bool((before.abs() > 1e-6).all())  # without REPO every row does change entropy
    torch.testing.assert_close(after, torch.zeros_like(after), atol=1e-14, rtol=0)
    # The true change is then second order: ~4x smaller when lr halves.
    ratios = [
        erl.entropy_change_exact(z, erl.pg_logit_step(z, a_repo, lr)).abs().sum()
        / erl.entropy_change_exact(z, erl.pg_logit_step(z, a_repo, lr / 2)).abs().sum()
        for lr in (0.02,)
    ]
    assert ratios[0].item() == pytest.approx(4.0, rel=0.1)


def test_repo_d_scales_the_decorrelating_beta():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(8, 6, dtype=f64, generator=g)
    p, L = torch.softmax(z, -1), erl.centered_logp(z)
    a = torch.randn(8, 6, dtype=f64, generator=g)
    a = a - (p * a).sum(-1, keepdim=True)  # β* assumes advantages centred under π, as PG advantages are
    torch.testing.assert_close(erl.repo_d_beta(a, L, p, p, zeta=2.5), 2.5 * erl.decorrelating_beta(a, L, p, p))
    # ζ = 2 over-corrects: the first-order change flips sign (β > β* raises entropy when β* > 0).
    beta2 = erl.repo_d_beta(a, L, p, p, zeta=2.0)
    d0 = erl.predicted_entropy_change(z, a, 0.1)
    d2 = erl.predicted_entropy_change(z, erl.repo_advantage(a, L, beta2[:, None]), 0.1)
    torch.testing.assert_close(d2, -d0, atol=1e-14, rtol=1e-9)


def test_sampled_repo_d_estimate_converges_to_exact_beta():
    """Over tokens sampled from π (weights 1), the ratio estimator approaches β* as samples grow."""
    g = torch.Generator().manual_seed(3)
    z = torch.randn(10, dtype=f64, generator=g) * 1.5
    adv = torch.randn(10, dtype=f64, generator=g)
    p, L = torch.softmax(z, -1), erl.centered_logp(z)
    exact = erl.decorrelating_beta(adv, L, p, p).item()
    idx = torch.multinomial(p, 200_000, replacement=True, generator=g)
    est = erl.decorrelating_beta(adv[idx], L[idx], p[idx], torch.ones(idx.shape, dtype=f64)).item()
    assert est == pytest.approx(exact, rel=0.03)


def test_uniform_policy_gives_zero_beta_not_nan():
    z = torch.zeros(5, dtype=f64)
    p, L = torch.softmax(z, -1), erl.centered_logp(z)
    assert erl.decorrelating_beta(torch.randn(5, dtype=f64), L, p, p).item() == 0.0


def test_positive_beta_raises_entropy_negative_lowers():
    z = torch.tensor([2.0, 1.0, 0.0, -1.0], dtype=f64)
    L = erl.centered_logp(z)
    zero = torch.zeros(4, dtype=f64)
    assert erl.predicted_entropy_change(z, erl.repo_advantage(zero, L, 0.5), 0.1) > 0
    assert erl.predicted_entropy_change(z, erl.repo_advantage(zero, L, -0.5), 0.1) < 0


# -- shape_advantage: the one REPO entry point shared by the bandit engine and the LLM trainer --------------


def test_shape_advantage_dispatches_to_each_variant():
    g = torch.Generator().manual_seed(0)
    adv = torch.randn(3, 5, generator=g, dtype=torch.float64)
    logp = -torch.rand(3, 5, generator=g, dtype=torch.float64) * 3
    ent = torch.rand(3, 5, generator=g, dtype=torch.float64)
    w = torch.ones(3, 5, dtype=torch.float64)
    assert erl.shape_advantage(adv, logp, ent, w, None) is adv
    torch.testing.assert_close(erl.shape_advantage(adv, logp, ent, w, "repo_r", zeta=0.1), erl.repo_r(adv, logp, 0.1))
    torch.testing.assert_close(
        erl.shape_advantage(adv, logp, ent, w, "beta", beta=0.5), erl.repo_advantage(adv, logp + ent, 0.5)
    )
    # REPO-D over every entry of a [B, T] batch: one β for the batch, ζ times the decorrelating β*.
    beta = erl.decorrelating_beta(adv, logp + ent, logp.exp(), w, dim=(-2, -1))
    torch.testing.assert_close(
        erl.shape_advantage(adv, logp, ent, w, "repo_d", zeta=0.3, dim=(-2, -1)), adv - 0.3 * beta * (logp + ent)
    )
    # ... and one β per row when reduced over the last dim only.
    beta_rows = erl.decorrelating_beta(adv, logp + ent, logp.exp(), w, dim=-1)
    torch.testing.assert_close(
        erl.shape_advantage(adv, logp, ent, w, "decorrelate"), adv - beta_rows[:, None] * (logp + ent)
    )
    with pytest.raises(ValueError, match="variant"):
        erl.shape_advantage(adv, logp, ent, w, "repo_x")


def test_shape_advantage_decorrelate_cancels_the_sampled_entropy_change():
    """With β* estimated over a batch, Σ w·π·A_REPO·L = 0: the first-order entropy change cancels on it."""
    g = torch.Generator().manual_seed(1)
    adv = torch.randn(4, 6, generator=g, dtype=torch.float64)
    logp = -torch.rand(4, 6, generator=g, dtype=torch.float64) * 4
    ent = torch.rand(4, 6, generator=g, dtype=torch.float64) + 0.5
    w = (torch.rand(4, 6, generator=g) > 0.3).double()
    a = erl.shape_advantage(adv, logp, ent, w, "decorrelate", dim=(-2, -1))
    assert abs(float((w * logp.exp() * a * (logp + ent)).sum())) < 1e-12
    assert abs(float((w * logp.exp() * adv * (logp + ent)).sum())) > 1e-2  # it was not zero to begin with
