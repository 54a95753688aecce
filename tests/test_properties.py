"""Property-based tests (hypothesis): invariants that must hold for every input, not just the ones we thought of.

Each property is a one-line claim from docs/science.md / docs/design.md:
- REPO-R never flips the sign of an advantage, and A = 0 stays 0 (docs/science.md §5).
- A group whose rewards are all equal gets zero advantages (docs/design.md, "Contracts").
- 0 <= H(softmax(z)) <= log K, for any logits with at least one finite entry (-inf = a masked action).
- The centred log-probability L = log π + H has mean zero under π.
- The ζ controller keeps |ζ| <= ζ_max always, and |ζ| >= ζ_min once it has moved (it never parks at 0).
- The ε_high controller keeps ε_high in [eps_high_min, eps_high_max].
- Unbiased pass@k is a probability, non-decreasing in k and in c, and equals 1 - C(n-c,k)/C(n,k).
- RLOO advantages sum to zero within each group, and each is R_i minus the mean of the others.

Kept fast (a few seconds in all): ~100-200 examples per property, no deadline (torch's first call is slow).
"""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import entropy_rl_lite as erl

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KINDS = ("grpo", "rloo", "dr_grpo")  # "none" (REINFORCE without a baseline) returns R itself by design
DTYPES = st.sampled_from([torch.float32, torch.float64])
NEG_INF = float("-inf")


def finite(dtype: torch.dtype, **kw) -> st.SearchStrategy[float]:
    """Finite floats exactly representable in `dtype` (so building the tensor does not round them to inf)."""
    return st.floats(allow_nan=False, allow_infinity=False, width=32 if dtype == torch.float32 else 64, **kw)


# --- REPO-R: sign preservation ---------------------------------------------------------------------


@st.composite
def repo_r_batch(draw, zeta_bound: float | None):
    dtype = draw(DTYPES)
    n = draw(st.integers(1, 12))
    # Advantages: any finite value, with exact zeros mixed in (A = 0 must stay 0).
    adv = draw(st.lists(st.one_of(st.just(0.0), finite(dtype)), min_size=n, max_size=n))
    # log π: <= 0, including -inf (π = 0), values far below the -20 floor, and exactly 0 (π = 1).
    logp = draw(
        st.lists(st.one_of(st.just(NEG_INF), st.just(0.0), finite(dtype, max_value=0.0)), min_size=n, max_size=n)
    )
    if zeta_bound is None:
        zeta = draw(st.floats(allow_nan=False, allow_infinity=False))
    else:
        zeta = draw(st.floats(-zeta_bound, zeta_bound, allow_nan=False))
    return torch.tensor(adv, dtype=dtype), torch.tensor(logp, dtype=dtype), zeta


def _check_sign_preserved(adv: torch.Tensor, logp: torch.Tensor, zeta: float) -> None:
    out = erl.repo_r(adv, logp, zeta)
    assert out.shape == adv.shape and out.dtype == adv.dtype
    assert not torch.isnan(out).any(), f"NaN from repo_r(adv={adv.tolist()}, logp={logp.tolist()}, zeta={zeta!r})"
    assert (out[adv > 0] >= 0).all(), (adv.tolist(), logp.tolist(), zeta, out.tolist())
    assert (out[adv < 0] <= 0).all(), (adv.tolist(), logp.tolist(), zeta, out.tolist())
    assert (out[adv == 0] == 0).all(), (adv.tolist(), logp.tolist(), zeta, out.tolist())


@FAST
@given(repo_r_batch(zeta_bound=1e6))
def test_repo_r_preserves_sign(batch) -> None:
    """ζ of any practical size (|ζ| <= 1e6; the paper's range is 1e-4..10)."""
    _check_sign_preserved(*batch)


@FAST
@given(repo_r_batch(zeta_bound=None))
def test_repo_r_any_finite_zeta_is_sign_preserving_or_refused(batch) -> None:
    """Any finite Python float ζ, up to 1.8e308: beyond |ζ| = 1e6 repo_r refuses it by name, else no NaN."""
    adv, logp, zeta = batch
    if abs(zeta) > 1e6:
        with pytest.raises(ValueError, match="zeta"):
            erl.repo_r(adv, logp, zeta)
    else:
        _check_sign_preserved(adv, logp, zeta)


@FAST
@given(repo_r_batch(zeta_bound=10.0))
def test_repo_r_zeta_zero_is_identity_and_no_grad_through_logp(batch) -> None:
    adv, logp, _ = batch
    torch.testing.assert_close(erl.repo_r(adv, logp, 0.0), adv, rtol=0, atol=0)
    lp = logp.clone().clamp_min(-50.0).requires_grad_(True)
    assert not erl.repo_r(adv, lp, 0.01).requires_grad  # log π is detached


# --- Group advantages ---------------------------------------------------------------------------


@st.composite
def equal_groups(draw):
    dtype = draw(DTYPES)
    g = draw(st.integers(2, 16))
    values = draw(st.lists(finite(dtype, min_value=-1e6, max_value=1e6), min_size=1, max_size=4))
    return dtype, g, values


@FAST
@given(equal_groups(), st.sampled_from(KINDS), st.sampled_from([0.0, 1e-8, 1e-6, 1e-2]))
def test_equal_rewards_give_zero_advantages(groups, kind: str, eps: float) -> None:
    dtype, g, values = groups
    rewards = torch.tensor(values, dtype=dtype).repeat_interleave(g)  # len(values) groups, each all equal
    adv = erl.group_advantages(rewards, g, kind, eps)
    assert not torch.isnan(adv).any()
    assert (adv == 0).all(), (
        f"group_advantages(torch.tensor({values}, dtype={dtype}).repeat_interleave({g}), "
        f"{g}, {kind!r}, eps={eps}) = {adv.tolist()}"
    )


@st.composite
def reward_groups(draw):
    dtype = draw(DTYPES)
    g = draw(st.integers(2, 12))
    n_groups = draw(st.integers(1, 4))
    r = draw(st.lists(finite(dtype, min_value=-1e3, max_value=1e3), min_size=g * n_groups, max_size=g * n_groups))
    return torch.tensor(r, dtype=dtype), g


@FAST
@given(reward_groups())
def test_rloo_sums_to_zero_within_groups(data) -> None:
    rewards, g = data
    adv = erl.group_advantages(rewards, g, "rloo")
    assert adv.dtype == rewards.dtype and not torch.isnan(adv).any()
    r = rewards.double().reshape(-1, g)
    scale = r.abs().amax(-1).clamp_min(1.0)  # the sums' rounding error grows with the rewards' size
    tol = (1e-5 if rewards.dtype == torch.float32 else 1e-12) * g * scale
    assert (adv.double().reshape(-1, g).sum(-1).abs() <= tol).all()
    # And it is the definition: R_i minus the mean of the other G-1 rewards.
    others = (r.sum(-1, keepdim=True) - r) / (g - 1)
    torch.testing.assert_close(
        adv.double().reshape(-1, g),
        r - others,
        atol=float(tol.max()),
        rtol=1e-5 if rewards.dtype == torch.float32 else 1e-12,
    )


# --- Entropy and the centred log-probability ------------------------------------------------------


@st.composite
def logits_batch(draw):
    dtype = draw(DTYPES)
    k = draw(st.integers(1, 24))
    rows = draw(st.integers(1, 3))
    entry = st.one_of(st.just(NEG_INF), finite(dtype, min_value=-1e4, max_value=1e4), st.sampled_from([-1e4, 1e4, 0.0]))
    z = draw(st.lists(st.lists(entry, min_size=k, max_size=k), min_size=rows, max_size=rows))
    for row in z:  # at least one finite logit per row: -inf marks a masked action, not all of them
        if all(v == NEG_INF for v in row):
            row[draw(st.integers(0, k - 1))] = draw(finite(dtype, min_value=-1e4, max_value=1e4))
    return torch.tensor(z, dtype=dtype)


@FAST
@given(logits_batch())
def test_entropy_between_zero_and_log_k(z: torch.Tensor) -> None:
    h = erl.entropy(z)
    assert h.shape == z.shape[:-1] and h.dtype == z.dtype
    assert torch.isfinite(h).all(), (z.tolist(), h.tolist())
    k = z.shape[-1]
    tol = 1e-5 * max(1.0, math.log(k)) if z.dtype == torch.float32 else 1e-12 * max(1.0, math.log(k))
    assert (h >= -tol).all(), (z.tolist(), h.tolist())
    assert (h <= math.log(k) + tol).all(), (z.tolist(), h.tolist())


@FAST
@given(logits_batch())
def test_centered_logp_has_mean_zero_under_pi(z: torch.Tensor) -> None:
    L = erl.centered_logp(z)
    assert L.shape == z.shape and L.dtype == z.dtype
    pi = torch.softmax(z.double(), -1)
    support = pi > 0  # actions with π = 0 (e.g. -inf logits) have L = -inf and weight 0
    assert not torch.isnan(L).any(), (z.tolist(), L.tolist())
    assert torch.isfinite(L[support]).all()
    weighted = torch.where(support, pi * L.double(), torch.zeros_like(pi))
    size = torch.where(support, pi * L.double().abs(), torch.zeros_like(pi)).sum(-1)
    tol = (1e-5 if z.dtype == torch.float32 else 1e-12) * (1.0 + size)
    assert (weighted.sum(-1).abs() <= tol).all(), (z.tolist(), weighted.sum(-1).tolist())


# --- Controllers ---------------------------------------------------------------------------

ENTROPIES = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0]), st.floats(0.0, 10.0))


@st.composite
def zeta_setup(draw):
    zeta_min = draw(st.floats(1e-6, 1.0))
    zeta_max = zeta_min * draw(st.floats(1.0, 1e4))
    seeds = draw(st.sampled_from([None, 1, 3]))  # None: one run (float value); else one ζ per seed
    start = st.one_of(st.just(0.0), st.floats(zeta_min, zeta_max), st.floats(-zeta_max, -zeta_min))
    zeta = (
        draw(start)
        if seeds is None
        else torch.tensor(draw(st.lists(start, min_size=seeds, max_size=seeds)), dtype=torch.float64)
    )  # fp32 would round past the bounds
    target = draw(st.one_of(st.none(), ENTROPIES))
    steps = draw(st.integers(1, 40))
    if seeds is None:
        hs = draw(st.lists(ENTROPIES, min_size=steps, max_size=steps))
    else:
        hs = [torch.tensor(draw(st.lists(ENTROPIES, min_size=seeds, max_size=seeds))) for _ in range(steps)]
    return zeta, zeta_min, zeta_max, target, hs


@FAST
@given(zeta_setup())
def test_zeta_controller_stays_in_bounds(setup) -> None:
    zeta, zeta_min, zeta_max, target, hs = setup
    ctrl = erl.ZetaController(zeta, zeta_min, zeta_max, target)
    start = torch.as_tensor(ctrl.value, dtype=torch.float64).clone()
    moved = torch.zeros_like(start, dtype=torch.bool)
    for h in hs:
        v = torch.as_tensor(ctrl.update(h), dtype=torch.float64)
        assert not torch.isnan(v).any()
        assert (v.abs() <= zeta_max).all(), (v, zeta_max)
        moved = moved | (v != start)
        assert (v.abs()[moved] >= zeta_min).all(), (v, zeta_min, start)
    assert torch.as_tensor(ctrl.value).shape == torch.as_tensor(hs[-1]).shape


@pytest.mark.parametrize("zeta", [0.05, -0.05])
def test_zeta_controller_accepts_zeta_at_zeta_max(zeta: float) -> None:
    """|ζ| = ζ_max is inside the allowed range (the controller itself clamps to exactly ζ_max)."""
    ctrl = erl.ZetaController(zeta=zeta, zeta_min=1e-4, zeta_max=0.05)
    assert ctrl.value == zeta


@pytest.mark.parametrize("zeta", [1e-5, -1e-5, 5e-5])
def test_zeta_controller_small_start_is_rejected_or_leaves_the_gap(zeta: float) -> None:
    """A start inside (0, ζ_min) must either be refused, or never be found inside the gap after moving.

    docs/science.md §5 bounds |ζ| to [ζ_min, ζ_max] (0 allowed as the neutral start); doubling 1e-5 gives 2e-5.
    """
    try:
        ctrl = erl.ZetaController(zeta=zeta, zeta_min=1e-4, zeta_max=0.05, target_entropy=1.0)
    except ValueError as exc:
        assert "zeta" in str(exc)
        return
    for h in (0.5, 0.5, 1.5, 0.5):  # too low, too low, too high, too low
        v = ctrl.update(h)
        assert abs(v) >= 1e-4, (
            f"ZetaController(zeta={zeta}, zeta_min=1e-4, target_entropy=1.0): |ζ| = {abs(v):.3g} < zeta_min"
        )


@st.composite
def eps_setup(draw):
    eps_min = draw(st.floats(0.0, 1.0))
    eps_max = eps_min + draw(st.floats(0.0, 2.0))
    factor = draw(st.floats(1.0, 10.0, exclude_min=True))
    eps_high = draw(st.floats(eps_min, eps_max))
    target = draw(st.one_of(st.none(), ENTROPIES))
    hs = draw(st.lists(ENTROPIES, min_size=1, max_size=40))
    return eps_high, eps_min, eps_max, factor, target, hs


@FAST
@given(eps_setup())
def test_eps_high_controller_stays_in_bounds(setup) -> None:
    eps_high, eps_min, eps_max, factor, target, hs = setup
    ctrl = erl.EpsHighController(eps_high, eps_min, eps_max, factor, target)
    for h in hs:
        v = ctrl.update(h)
        assert eps_min <= v <= eps_max, (v, eps_min, eps_max)
    # Resuming from the state dict continues identically.
    clone = erl.EpsHighController(eps_high, eps_min, eps_max, factor, target)
    clone.load_state_dict(ctrl.state_dict())
    assert clone.update(1.0) == ctrl.update(1.0)


# --- pass@k ------------------------------------------------------------------------------------


@st.composite
def nck(draw):
    n = draw(st.integers(1, 200))
    c = draw(st.integers(0, n))
    k = draw(st.integers(1, n))
    return n, c, k


@settings(max_examples=200, deadline=None)
@given(nck())
def test_pass_at_k_is_a_monotone_probability(args) -> None:
    n, c, k = args
    p = erl.pass_at_k(n, c, k)
    assert isinstance(p, float) and 0.0 <= p <= 1.0
    if k < n:
        assert erl.pass_at_k(n, c, k + 1) >= p
    if c < n:
        assert erl.pass_at_k(n, c + 1, k) >= p
    exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
    assert abs(p - float(exact)) <= 1e-12
    assert (p == 0.0) == (c == 0) and (p == 1.0) == (n - c < k or float(exact) == 1.0)
