"""Group advantages: RLOO, GRPO, Dr.GRPO, none; the π-weighted limit; batch scaling."""

import pytest
import torch

import entropy_rl_lite as erl

f64 = torch.float64


def test_rloo_is_reward_minus_mean_of_the_others():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 1.0], dtype=f64)
    adv = erl.group_advantages(r, group_size=3, kind="rloo")
    expected = []
    for grp in r.reshape(2, 3):
        for i in range(3):
            others = torch.cat([grp[:i], grp[i + 1 :]])
            expected.append(grp[i] - others.mean())
    torch.testing.assert_close(adv, torch.stack(expected))


def test_grpo_uses_bessel_std_and_explicit_eps():
    r = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=f64)
    adv = erl.group_advantages(r, group_size=4, kind="grpo", eps=0.1)
    std = r.std(unbiased=True)
    torch.testing.assert_close(adv, (r - r.mean()) / (std + 0.1))


def test_dr_grpo_and_none():
    r = torch.tensor([2.0, 0.0, 1.0, 1.0], dtype=f64)
    torch.testing.assert_close(erl.group_advantages(r, 2, "dr_grpo"), torch.tensor([1.0, -1.0, 0.0, 0.0], dtype=f64))
    torch.testing.assert_close(erl.group_advantages(r, 2, "none"), r)


def test_groups_along_last_dim_with_leading_batch():
    r = torch.rand(5, 12, dtype=f64)
    batched = erl.group_advantages(r, 4, "grpo")
    for i in range(5):
        torch.testing.assert_close(batched[i], erl.group_advantages(r[i], 4, "grpo"))


@pytest.mark.parametrize("kind", ["grpo", "rloo", "dr_grpo"])
def test_equal_rewards_give_zero_not_nan(kind):
    adv = erl.group_advantages(torch.full((8,), 0.7), 4, kind, eps=0.0)
    assert torch.equal(adv, torch.zeros(8))


def test_fp32_contract():
    assert erl.group_advantages(torch.rand(4, dtype=torch.bfloat16), 2).dtype == torch.float32
    assert erl.group_advantages(torch.rand(4, dtype=f64), 2).dtype == f64


def test_expected_advantages_are_the_large_group_limit():
    """Sampled GRPO/RLOO advantages, averaged per arm over a huge group, approach the π-weighted ones."""
    g = torch.Generator().manual_seed(0)
    R = torch.tensor([1.0, 1.0, 0.0, 0.0, 0.5], dtype=f64)
    p = torch.softmax(torch.randn(5, dtype=f64, generator=g), -1)
    a = torch.multinomial(p, 400_000, replacement=True, generator=g)
    for kind in ("grpo", "rloo", "dr_grpo"):
        sampled = erl.group_advantages(R[a], 400_000, kind)
        per_arm = torch.stack([sampled[a == k].mean() for k in range(5)])
        torch.testing.assert_close(per_arm, erl.expected_group_advantages(R, p, kind), atol=3e-3, rtol=0)


def test_scale_advantages():
    adv = torch.tensor([[1.0, 3.0], [5.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    out = erl.scale_advantages(adv, mask, center=True, eps=0.0)
    vals = torch.tensor([1.0, 3.0, 5.0])
    torch.testing.assert_close(out[mask.bool()], (vals - vals.mean()) / vals.std(unbiased=False))
