"""Per-token surrogates and aggregation: each checked against its formula and its gradient."""

import pytest
import torch

import entropy_rl_lite as erl

f64 = torch.float64


def batch(seed=0, B=4, T=5):
    g = torch.Generator().manual_seed(seed)
    logp_old = -torch.rand(B, T, dtype=f64, generator=g) * 3
    logp = (logp_old + 0.3 * torch.randn(B, T, dtype=f64, generator=g)).requires_grad_(True)
    adv = torch.randn(B, T, dtype=f64, generator=g)
    mask = torch.rand(B, T, generator=g) < 0.8
    mask[:, 0] = True
    return logp, logp_old, adv, mask


def test_ppo_matches_formula():
    logp, logp_old, adv, mask = batch()
    loss, m = erl.policy_loss(logp, logp_old, adv, mask, "ppo", eps_low=0.2, eps_high=0.28)
    r = (logp - logp_old).exp()
    per = -torch.minimum(r * adv, r.clamp(0.8, 1.28) * adv)
    torch.testing.assert_close(loss, (per * mask).sum() / mask.sum())
    assert 0 < m["clip_frac"].item() < 1


def test_clipped_tokens_get_no_gradient():
    logp_old = torch.zeros(1, 4, dtype=f64)
    logp = torch.log(torch.tensor([[1.5, 1.5, 0.5, 0.5]], dtype=f64)).requires_grad_(True)
    adv = torch.tensor([[1.0, -1.0, 1.0, -1.0]], dtype=f64)
    loss, m = erl.policy_loss(logp, logp_old, adv, torch.ones(1, 4, dtype=torch.bool), "ppo", 0.2, 0.28)
    (g,) = torch.autograd.grad(loss, logp)
    # r = 1.5 > 1.28 with A > 0 and r = 0.5 < 0.8 with A < 0 are clipped; the other two are not.
    assert g[0, 0] == 0 and g[0, 3] == 0 and g[0, 1] != 0 and g[0, 2] != 0
    assert m["clip_frac_high"].item() == 0.25 and m["clip_frac_low"].item() == 0.25


def test_on_policy_ppo_gradient_equals_reinforce():
    """r ≡ 1 on-policy: clipping does nothing and the gradient is the REINFORCE gradient."""
    logp, _, adv, mask = batch(1)
    lp_old = logp.detach().clone()
    g_ppo = torch.autograd.grad(erl.policy_loss(logp, lp_old, adv, mask, "ppo", 0.2, 0.28)[0], logp)[0]
    g_pg = torch.autograd.grad(erl.policy_loss(logp, lp_old, adv, mask, "reinforce")[0], logp)[0]
    torch.testing.assert_close(g_ppo, g_pg)


def test_gspo_uses_the_sequence_ratio():
    logp, logp_old, adv, mask = batch(2)
    seq_adv = adv[:, 0]
    loss, _ = erl.policy_loss(logp, logp_old, seq_adv, mask, "gspo", 3e-4, 4e-4, agg="seq-mean-token-mean")
    w = mask.to(f64)
    s = ((w * (logp - logp_old)).sum(-1) / w.sum(-1)).exp()
    per_seq = -torch.minimum(s * seq_adv, s.clamp(1 - 3e-4, 1 + 4e-4) * seq_adv)
    torch.testing.assert_close(loss, per_seq.mean())


def test_gspo_gradient_is_the_sequence_level_gradient():
    """Per-token s_{i,t} = sg[s_i]·π_t/sg[π_t] gives each token the gradient of the sequence objective."""
    logp, logp_old, adv, mask = batch(3)
    seq_adv = adv[:, 0]
    loss, _ = erl.policy_loss(logp, logp_old, seq_adv, mask, "gspo", 0.05, 0.05, agg="seq-mean-token-mean")
    (g,) = torch.autograd.grad(loss, logp)
    lp = logp.detach().clone().requires_grad_(True)
    w = mask.to(f64)
    s = ((w * (lp - logp_old)).sum(-1) / w.sum(-1)).exp()
    ref = -torch.minimum(s * seq_adv, s.clamp(0.95, 1.05) * seq_adv).mean()
    (g_ref,) = torch.autograd.grad(ref, lp)
    torch.testing.assert_close(g, g_ref)
    assert (g != 0).any()


def test_clip_cov_picks_at_least_one_token_and_skips_tokens_ppo_clips():
    logp_old = torch.zeros(1, 6, dtype=f64)
    logp = torch.log(torch.tensor([[2.0, 1.0, 1.0, 1.0, 1.0, 1.0]], dtype=f64)).requires_grad_(True)
    adv = torch.tensor([[5.0, 5.0, -5.0, 1.0, -1.0, 2.0]], dtype=f64)
    # Token 0 (r = 2 > 1.2, A > 0) is already clipped by PPO and has the largest cov; another one is dropped.
    loss, m = erl.policy_loss(
        logp,
        logp_old,
        adv,
        torch.ones(1, 6),
        "clip_cov",
        0.2,
        0.2,
        clip_cov_bounds=(-100.0, 100.0),
        generator=torch.Generator().manual_seed(0),
    )
    assert m["cov_frac"].item() == pytest.approx(1 / 6)  # default ratio 2e-4 · 6 tokens rounds up to one
    (g,) = torch.autograd.grad(loss, logp)
    assert g[0, 0] == 0 and (g[0, 1:] == 0).sum() == 1  # PPO's own clip, plus one of the five live tokens


def test_cispo_keeps_gradient_through_clipped_weight():
    logp_old = torch.zeros(1, 2, dtype=f64)
    logp = torch.log(torch.tensor([[2.0, 1.0]], dtype=f64)).requires_grad_(True)
    adv = torch.ones(1, 2, dtype=f64)
    loss, _ = erl.policy_loss(logp, logp_old, adv, torch.ones(1, 2), "cispo", 0.2, 0.28)
    (g,) = torch.autograd.grad(loss, logp)
    torch.testing.assert_close(g, torch.tensor([[-1.28 / 2, -1.0 / 2]], dtype=f64))


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"])
def test_aggregation_modes(agg):
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    m = torch.tensor([[1, 1, 1], [1, 0, 0]], dtype=torch.bool)
    expected = {
        "token-mean": 10 / 4,
        "seq-mean-token-mean": (2 + 4) / 2,
        "seq-mean-token-sum": (6 + 4) / 2,
        "seq-mean-token-sum-norm": 10 / (2 * 3),
    }[agg]
    assert erl.aggregate(v, m, agg).item() == pytest.approx(expected)
    assert erl.aggregate(v, m, "seq-mean-token-sum-norm", horizon=5).item() == pytest.approx(1.0)


def test_leading_dims_are_independent_problems():
    parts = [batch(s) for s in range(3)]
    stacked = [torch.stack([p[i].detach() for p in parts]) for i in range(4)]
    eps_high = torch.tensor([0.2, 0.28, 0.5])
    loss, m = erl.policy_loss(*stacked, "ppo", 0.2, eps_high)
    assert loss.shape == (3,) and m["clip_frac"].shape == (3,)
    for i, p in enumerate(parts):
        li, mi = erl.policy_loss(p[0].detach(), p[1], p[2], p[3], "ppo", 0.2, eps_high[i].item())
        torch.testing.assert_close(loss[i], li)
        torch.testing.assert_close(m["clip_frac"][i], mi["clip_frac"])


def test_float_weights_give_expectations():
    """Weights π_old on every arm make token-mean the exact expectation Σ π_old(a) ℓ(a)."""
    z = torch.randn(1, 6, dtype=f64)
    p = torch.softmax(z, -1)
    logp = torch.log_softmax(z, -1).T  # [6 arms, 1 token]
    adv = torch.randn(6, 1, dtype=f64)
    loss, _ = erl.policy_loss(logp, logp, adv, p.T, "reinforce")
    torch.testing.assert_close(loss, -(p.T * adv * logp).sum())


def test_clip_cov_removes_the_chosen_share_of_tokens():
    g = torch.Generator().manual_seed(5)
    logp_old = -torch.rand(8, 50, dtype=f64, generator=g) * 4
    logp = logp_old.clone().requires_grad_(True)
    adv = torch.randn(8, 50, dtype=f64, generator=g) * 3
    mask = torch.ones(8, 50, dtype=torch.bool)
    loss, m = erl.policy_loss(
        logp, logp_old, adv, mask, "clip_cov", clip_cov_ratio=0.05, clip_cov_bounds=(-100.0, 100.0), generator=g
    )
    (grad,) = torch.autograd.grad(loss, logp)
    assert (grad == 0).sum().item() == int(0.05 * 400)
    assert m["cov_frac"].item() == pytest.approx(0.05)


def test_kl_cov_penalises_the_top_covariance_tokens():
    logp_old = torch.tensor([[-1.0, -2.0, -3.0, -0.5]], dtype=f64)
    logp = (logp_old + torch.tensor([[0.1, -0.1, 0.1, -0.1]], dtype=f64)).requires_grad_(True)
    adv = torch.tensor([[2.0, -1.0, -1.0, 0.0]], dtype=f64)
    base, _ = erl.policy_loss(logp, logp_old, adv, torch.ones(1, 4), "kl_cov", kl_cov_ratio=0.0)
    loss, m = erl.policy_loss(logp, logp_old, adv, torch.ones(1, 4), "kl_cov", kl_cov_ratio=0.25, kl_coef=2.0)
    # cov = (logp - mean)(A - mean): token 0 (likely and rewarded) has the largest; it gets 2·|0.1| / 4 tokens.
    assert (loss - base).item() == pytest.approx(2.0 * 0.1 / 4)
    assert m["cov_frac"].item() == 0.25


def test_entropy_bonus_loss():
    h = torch.tensor([[1.0, 2.0]])
    assert erl.entropy_bonus_loss(h, torch.ones(1, 2), coef=0.1).item() == pytest.approx(-0.15)


def test_loss_is_fp32_for_bf16_inputs():
    logp, logp_old, adv, mask = (t.detach() if t.dtype == f64 else t for t in batch())
    loss, _ = erl.policy_loss(logp.bfloat16(), logp_old.bfloat16(), adv.bfloat16(), mask)
    assert loss.dtype == torch.float32


def test_aggregate_and_clip_fractions_return_fp32_for_bf16_input():
    v = torch.rand(2, 3).bfloat16()
    assert erl.aggregate(v, torch.ones(2, 3)).dtype == torch.float32
    m = erl.clip_fractions(v, v, torch.ones(2, 3), 0.2, 0.2)
    assert all(x.dtype == torch.float32 for x in m.values())


# --- the log-ratio clamp: no inf from a ratio that overflows fp32 -------------------------------------------
def _overflow_batch(dtype=torch.float32):
    """Token 0: log-ratio 100 (e^100 overflows fp32, whose max is ~e^88.7), A < 0; token 1: an ordinary token."""
    logp_old = torch.tensor([[-101.0, -1.0]], dtype=dtype)
    logp = torch.tensor([[-1.0, -0.9]], dtype=dtype, requires_grad=True)
    adv = torch.tensor([[-1.0, 0.5]], dtype=dtype)
    return logp, logp_old, adv, torch.ones(1, 2, dtype=torch.bool)


def test_ppo_with_log_ratio_100_and_negative_advantage_is_finite():
    """Unclamped, r = e^100 = inf in fp32 and A < 0 takes PPO's unclipped branch -r·A: loss inf, gradient inf.

    The clamp holds the log-ratio at 20, so token 0 contributes -e^20·A = e^20 to the summed loss (the cap
    dual-clip PPO puts on A < 0 tokens, at 3·|A|, moved out to e^20) and, like a clipped token, no gradient:
    a probability that grew e^100-fold in one update carries no direction worth following. Token 1
    (log-ratio 0.1) is untouched: its value and gradient are exactly those without the clamp.
    """
    logp, logp_old, adv, mask = _overflow_batch()
    loss, m = erl.policy_loss(logp, logp_old, adv, mask, "ppo")
    (g,) = torch.autograd.grad(loss, logp)
    assert torch.isfinite(loss) and torch.isfinite(g).all()
    r1 = torch.exp(torch.tensor(0.1))
    assert loss.item() == pytest.approx((torch.exp(torch.tensor(20.0)) - r1 * 0.5).item() / 2, rel=1e-6)
    assert g[0, 0] == 0  # the clamped token, as a clipped one, carries no gradient
    assert g[0, 1].item() == pytest.approx(-(r1 * 0.5).item() / 2, rel=1e-6)  # d(-r·A/2)/d logp = -r·A/2
    assert all(torch.isfinite(v).all() for v in m.values())


@pytest.mark.parametrize("kind", ["ppo", "gspo", "cispo", "clip_cov", "kl_cov", "reinforce"])
def test_every_kind_stays_finite_at_a_log_ratio_of_100(kind):
    """Every token at log-ratio 100 (so GSPO's sequence mean is 100 too), either sign of A: loss, gradient and
    metrics stay finite. Unclamped, the ratio is inf: an inf loss (ppo, gspo, clip_cov, kl_cov) or inf ratio
    metrics (cispo and reinforce, whose loss does not multiply by r)."""
    logp, _, adv, mask = _overflow_batch()
    logp_old = logp.detach() - 100.0
    for a in (adv, -adv):
        loss, m = erl.policy_loss(logp, logp_old, a, mask, kind)
        (g,) = torch.autograd.grad(loss, logp)
        assert torch.isfinite(loss) and torch.isfinite(g).all(), (kind, a)
        assert all(torch.isfinite(v).all() for v in m.values()), (kind, a, m)


def test_sequence_ratio_is_clamped_like_the_token_ratio():
    logp, logp_old, _, mask = _overflow_batch()
    s = erl.sequence_ratio(logp, logp_old, mask)  # mean log-ratio (100 + 0.1) / 2 > 20
    assert s.item() == pytest.approx(torch.exp(torch.tensor(erl.losses.LOG_RATIO_LIMIT)).item(), rel=1e-6)


def test_the_clamp_changes_nothing_within_its_bound():
    """|log-ratio| <= 20 everywhere: every kind gives bit for bit the loss computed from an unclamped exp."""
    g = torch.Generator().manual_seed(3)
    logp_old = -3 * torch.rand(3, 6, generator=g)
    logp = (logp_old + torch.linspace(-19.9, 19.9, 18).reshape(3, 6)).requires_grad_(True)
    adv = torch.randn(3, 6, generator=g)
    w = torch.ones(3, 6)
    loss, _ = erl.policy_loss(logp, logp_old, adv, w.bool(), "ppo", 0.2, 0.28)
    r = torch.exp(logp - logp_old)
    ref = erl.aggregate(-torch.minimum(r * adv, r.clamp(0.8, 1.28) * adv), w.bool())
    assert torch.equal(loss, ref)
