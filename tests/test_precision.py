"""bf16 helpers: rounding, ratio bias, and the algebra of a biased ratio as asymmetric clipping."""

import pytest
import torch

import entropy_rl_lite as erl


def test_round_bf16_keeps_8_bits_of_mantissa():
    x = torch.tensor([1.0 + 2**-9, 1.0 + 2**-7, 300.7])
    out = erl.round_bf16(x)
    assert out.dtype == torch.float32
    assert out.tolist() == [1.0, 1.0 + 2**-7, 300.0]


def test_effective_clip_bounds_of_a_biased_ratio():
    lo, hi = erl.effective_clip_bounds(1.05, 0.2, 0.28)
    assert lo == pytest.approx(0.2381, abs=1e-4) and hi == pytest.approx(0.2190, abs=1e-4)
    assert erl.effective_clip_bounds(1.0, 0.2, 0.28) == pytest.approx((0.2, 0.28))


def test_clipping_a_biased_ratio_is_clipping_the_true_ratio_with_effective_bounds():
    g = torch.Generator().manual_seed(0)
    r = 0.5 + torch.rand(100_000, generator=g, dtype=torch.float64)
    b, eps_low, eps_high = 1.05, 0.2, 0.28
    lo, hi = erl.effective_clip_bounds(b, eps_low, eps_high)
    clipped_biased = (b * r).clamp(1 - eps_low, 1 + eps_high)
    torch.testing.assert_close(clipped_biased, b * r.clamp(1 - lo, 1 + hi))


def test_ratio_stats_and_expected_ratio():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(64, 1000, generator=g) * 3
    lp = torch.log_softmax(logits.double(), -1)
    s = erl.ratio_stats(lp, lp)
    assert s["mean"] == 1.0 and s["frac_above"] == 0.0 and s["frac_below"] == 0.0
    # Exact, normalised log-probs: E_{π_old}[π/π_old] = Σ π = 1 to rounding.
    torch.testing.assert_close(erl.expected_ratio(lp, lp), torch.ones(64, dtype=torch.float64))
    # bf16-rounded log-probs on one side move the exact vocabulary-sum away from 1, measurably.
    bias = erl.expected_ratio(erl.round_bf16(lp.float()), lp.float())
    assert (bias - 1).abs().max() > 1e-4


def test_round_bf16_float64_rounds_once_to_nearest_even():
    x = torch.tensor([27.1874998827005, 1.0 + 2**-8, 1.0 + 3 * 2**-8, -300.7, 1e-45, 3.5e38], dtype=torch.float64)
    out = erl.round_bf16(x)
    assert out[0].item() == 27.125  # the fp32 detour would give 27.25
    assert out[1].item() == 1.0  # a tie goes to the even neighbour
    assert out[2].item() == 1.0 + 4 * 2**-8
    assert out[3].item() == -300.0
    g = torch.Generator().manual_seed(0)
    v = torch.randn(100_000, dtype=torch.float64, generator=g) * 30
    r = erl.round_bf16(v)
    # nearest: no other bf16 value (the neighbours one bf16 ulp away) is closer
    ulp = torch.ldexp(torch.ones_like(r), torch.frexp(r)[1] - 8)
    assert ((v - r).abs() <= ulp / 2 + 1e-300).all()
