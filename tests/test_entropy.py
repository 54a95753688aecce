"""Entropy, centred log-probs, the Lemma, Theorem 1 (vanilla PG), natural PG, Theorem 2's bound."""

import math

import pytest
import torch

import entropy_rl_lite as erl

f64 = torch.float64


def test_entropy_matches_definition_and_extremes():
    z = torch.tensor([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]], dtype=f64)
    p = torch.softmax(z, -1)
    torch.testing.assert_close(erl.entropy(z), -(p * p.log()).sum(-1))
    assert erl.entropy(z)[1].item() == pytest.approx(math.log(4), abs=1e-15)
    # A masked arm (-inf logit) has π = 0 and contributes 0, not NaN.
    masked = torch.tensor([0.0, 0.0, -torch.inf], dtype=f64)
    assert erl.entropy(masked).item() == pytest.approx(math.log(2), abs=1e-15)
    # A near-deterministic policy: entropy ≈ 0 and finite even with huge logits.
    assert 0 <= erl.entropy(torch.tensor([1e4, 0.0])).item() < 1e-30


def test_dtype_contract():
    z = torch.randn(3, 5)
    assert erl.entropy(z.to(torch.bfloat16)).dtype == torch.float32
    assert erl.entropy(z.to(torch.float16)).dtype == torch.float32
    assert erl.entropy(z.to(f64)).dtype == f64
    assert erl.centered_logp(z.to(torch.bfloat16)).dtype == torch.float32


def test_centered_logp_has_mean_zero_under_pi():
    z = torch.randn(7, 11, dtype=f64) * 3
    L = erl.centered_logp(z)
    p = torch.softmax(z, -1)
    torch.testing.assert_close((p * L).sum(-1), torch.zeros(7, dtype=f64), atol=1e-13, rtol=0)
    torch.testing.assert_close(L, torch.log_softmax(z, -1) + erl.entropy(z)[:, None])


def test_lemma_is_first_order():
    """The Lemma's error is second order: halving Δz cuts it by ~4."""
    g = torch.Generator().manual_seed(0)
    z = torch.randn(64, 10, dtype=f64, generator=g)
    dz = torch.randn(64, 10, dtype=f64, generator=g)
    errs = [
        (erl.entropy_change_first_order(z, s * dz) - erl.entropy_change_exact(z, s * dz)).abs().mean().item()
        for s in (1e-2, 5e-3)
    ]
    assert errs[0] / errs[1] == pytest.approx(4.0, rel=0.05)


def test_theorem1_matches_its_closed_form():
    """ΔH ≈ -η Σ π² A L with A centred under π: the library's prediction is exactly this sum."""
    g = torch.Generator().manual_seed(1)
    z = torch.randn(32, 6, dtype=f64, generator=g)
    adv = torch.randn(32, 6, dtype=f64, generator=g)
    p = torch.softmax(z, -1)
    a = adv - (p * adv).sum(-1, keepdim=True)
    closed = -0.1 * (p.square() * a * erl.centered_logp(z)).sum(-1)
    torch.testing.assert_close(erl.predicted_entropy_change(z, adv, lr=0.1), closed, atol=1e-15, rtol=1e-12)
    # The vanilla step is the exact gradient of E_π[A] with respect to the logits.
    zz = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((torch.softmax(zz, -1) * adv).sum(), zz)
    torch.testing.assert_close(erl.pg_logit_step(z, adv, lr=1.0), grad)


def test_theorem1_error_shrinks_4x_when_lr_halves():
    g = torch.Generator().manual_seed(2)
    z = torch.randn(128, 10, dtype=f64, generator=g) * 1.5
    adv = (torch.rand(128, 10, generator=g) < 0.3).to(f64)

    def err(lr: float) -> float:
        pred = erl.predicted_entropy_change(z, adv, lr)
        actual = erl.entropy_change_exact(z, erl.pg_logit_step(z, adv, lr))
        return (pred - actual).abs().mean().item()

    ratios = [err(lr) / err(lr / 2) for lr in (0.02, 0.01)]
    for r in ratios:
        assert r == pytest.approx(4.0, rel=0.1)


def test_natural_pg_prediction_is_covariance_with_advantage():
    g = torch.Generator().manual_seed(3)
    z = torch.randn(16, 8, dtype=f64, generator=g)
    adv = torch.randn(16, 8, dtype=f64, generator=g)
    p = torch.softmax(z, -1)
    logp = torch.log_softmax(z, -1)
    cov = (p * logp * adv).sum(-1) - (p * logp).sum(-1) * (p * adv).sum(-1)
    torch.testing.assert_close(erl.predicted_entropy_change(z, adv, 0.3, gradient="natural"), -0.3 * cov)


def test_calibrated_start_loses_entropy_anti_calibrated_gains():
    z = torch.tensor([2.0, 1.0, 0.0, -1.0, -2.0], dtype=f64)
    likeliest = torch.tensor([1.0, 0, 0, 0, 0], dtype=f64)
    rarest = torch.tensor([0, 0, 0, 0, 1.0], dtype=f64)
    assert erl.predicted_entropy_change(z, likeliest, 0.1).item() < 0
    assert erl.predicted_entropy_change(z, rarest, 0.1).item() > 0


def test_theorem2_bound_on_random_instances():
    """Thousands of (π, π') pairs whose ratios π'/π lie in the clip box: H(π') stays inside the bound."""
    g = torch.Generator().manual_seed(4)
    n_checked = 0
    for eps_low, eps_high in ((0.2, 0.2), (0.2, 0.28), (0.1, 0.5), (0.5, 0.05)):
        K = 2 + int(torch.randint(0, 30, (1,), generator=g))
        z = torch.randn(4000, K, dtype=f64, generator=g) * (0.5 + 3 * torch.rand(4000, 1, dtype=f64, generator=g))
        p = torch.softmax(z, -1)
        # Ratios at random inside the box (pushed to the corners half the time), renormalised.
        m = 1 - eps_low + (eps_low + eps_high) * torch.rand(4000, K, dtype=f64, generator=g)
        corners = torch.where(torch.rand(4000, K, generator=g) < 0.5, 1 - eps_low, 1 + eps_high).to(f64)
        m = torch.where(torch.rand(4000, 1, generator=g) < 0.5, m, corners)
        r = m / (p * m).sum(-1, keepdim=True)
        inside = ((r >= 1 - eps_low) & (r <= 1 + eps_high)).all(-1)
        q = p * r
        h, h_new = erl.entropy(p.log()), -(q * q.log()).sum(-1)
        lo, hi = erl.clip_entropy_bounds(h, eps_low, eps_high)
        ok = (h_new >= lo - 1e-12) & (h_new <= hi + 1e-12)
        assert bool(ok[inside].all()), f"bound violated at eps=({eps_low}, {eps_high})"
        n_checked += int(inside.sum())
    assert n_checked >= 1000
