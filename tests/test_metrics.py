"""pass@k against brute force, distinct answers, cumulative entropy, clip fractions."""

import itertools

import pytest
import torch

import entropy_rl_lite as erl


@pytest.mark.parametrize("n", range(1, 9))
def test_pass_at_k_matches_enumeration(n):
    """pass@k = fraction of all k-subsets of the n samples that contain at least one correct sample."""
    for c in range(n + 1):
        flags = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(range(n), k))
            brute = sum(any(flags[i] for i in s) for s in subsets) / len(subsets)
            assert erl.pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


def test_pass_at_k_large_n_is_stable():
    assert 0.0 < erl.pass_at_k(10_000, 3, 10) < 0.01
    assert erl.pass_at_k(10_000, 9_995, 10) == 1.0


def test_distinct_correct():
    answers = ["7", "7", "12", "x", "12", "5"]
    assert erl.distinct_correct(answers, correct={"7", "12", "5", "9"}) == 3
    assert erl.distinct_correct(answers, is_correct=[True, True, False, False, False, True]) == 2


def test_expected_distinct_correct_matches_monte_carlo():
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.6, 0.25, 0.1, 0.05], dtype=torch.float64)
    correct = torch.tensor([True, True, True, False])
    draws = torch.multinomial(p.expand(50_000, 4), 4, replacement=True, generator=g)
    mc = torch.stack([(draws == a).any(-1) for a in range(3)]).sum(0).double().mean()
    assert erl.expected_distinct_correct(p, correct, k=4).item() == pytest.approx(mc.item(), abs=0.02)


def test_cumulative_entropy():
    h = torch.tensor([[1.0, 2.0], [0.5, 2.0], [0.0, 2.0]])
    torch.testing.assert_close(erl.cumulative_entropy(h), torch.tensor([1.5, 6.0]))
    torch.testing.assert_close(erl.cumulative_entropy(h, normalize=True), torch.tensor([0.5, 2.0]))


def test_clip_fractions_count_only_active_clips():
    ratio = torch.tensor([[0.7, 0.7, 1.4, 1.4, 1.0]])
    adv = torch.tensor([[-1.0, 1.0, 1.0, -1.0, 1.0]])
    m = erl.clip_fractions(ratio, adv, torch.ones(1, 5), eps_low=0.2, eps_high=0.28)
    assert m["clip_frac_low"].item() == pytest.approx(0.2)  # r < 0.8 with A < 0
    assert m["clip_frac_high"].item() == pytest.approx(0.2)  # r > 1.28 with A > 0


def test_exercise_compare_handles_dict_outputs():
    def make(g):
        ratio = torch.rand(2, 3, dtype=torch.float64, generator=g) + 0.5
        adv = torch.randn(2, 3, dtype=torch.float64, generator=g)
        return (ratio, adv, torch.ones(2, 3, dtype=torch.float64), 0.2, 0.2), {}

    def wrong(*a):
        return {**erl.clip_fractions(*a), "clip_frac": torch.zeros(2, dtype=torch.float64)}

    assert erl.exercises.compare(erl.clip_fractions, erl.clip_fractions, make, verbose=False)
    assert not erl.exercises.compare(wrong, erl.clip_fractions, make, verbose=False)


def test_a_jsonl_log_replots_with_the_core_alone(tmp_path):
    """Reading and re-plotting a trainer's JSONL log needs no transformers (the LLM extra): run where it cannot load."""
    import subprocess
    import sys

    log = tmp_path / "run.jsonl"
    log.write_text("".join(f'{{"step": {t}, "entropy": {2.0 - 0.1 * t}, "reward": {0.1 * t}}}\n' for t in range(5)))
    script = (
        "import sys; sys.modules['transformers'] = None\n"  # any import of it now raises ImportError
        "import matplotlib; matplotlib.use('Agg')\n"
        "import entropy_rl_lite as erl\n"
        f"rows = erl.logs.read_metrics({str(log)!r})\n"
        f"axes = erl.plot.metrics({{'run': {str(log)!r}}}, fields=('entropy', 'reward'))\n"
        "print(len(rows), len(axes), 'transformers' in sys.modules and sys.modules['transformers'] is not None)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["5", "2", "False"]


def test_clip_fractions_count_the_entropy_raising_clipped_tokens():
    """L < 0 tokens clipped from above and L > 0 tokens clipped from below, as shares of all tokens."""
    from entropy_rl_lite.metrics import clip_fractions_unchecked

    ratio = torch.tensor([[1.5, 1.5, 0.5, 0.5, 1.0]])
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 1.0]])
    L = torch.tensor([[-1.0, 1.0, 1.0, -1.0, -1.0]])
    out = clip_fractions_unchecked(ratio, adv, torch.ones(1, 5), 0.2, 0.28, L)
    assert out["clip_frac_high"].item() == pytest.approx(0.4) and out["clip_frac_high_neg_L"].item() == pytest.approx(
        0.2
    )
    assert out["clip_frac_low"].item() == pytest.approx(0.4) and out["clip_frac_low_pos_L"].item() == pytest.approx(0.2)
    assert "clip_frac_high_neg_L" not in clip_fractions_unchecked(ratio, adv, torch.ones(1, 5), 0.2, 0.28)
