"""The fp32 chunked log-prob/entropy path equals the naive full-logits path, in values and gradients."""

import pytest
import torch

import entropy_rl_lite as erl
from entropy_rl_lite import logprobs as lp_module
from entropy_rl_lite.logprobs import BLOCK_MIB, chunk_rows

f64 = torch.float64


def naive(hidden, weight, targets, temperature=1.0):
    logits = (hidden.to(f64) @ weight.to(f64).T) / temperature
    logp_all = torch.log_softmax(logits, -1)
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)
    return logp, -(logp_all.exp() * logp_all).sum(-1)


def inputs(dtype=f64, B=2, T=7, D=16, V=50, seed=0):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(B, T, D, generator=g).to(dtype).requires_grad_(True)
    weight = torch.randn(V, D, generator=g).to(dtype).requires_grad_(True)
    targets = torch.randint(0, V, (B, T), generator=g)
    return hidden, weight, targets


# How the 14 tokens are chunked: explicit sizes; the default (rows from the memory budget: all 14 in one chunk);
# and a budget so small that the rule itself picks 3 rows of float64 V = 50 (a ragged last chunk).
CHUNKINGS = {
    "1": {"chunk_size": 1},
    "3": {"chunk_size": 3},
    "5": {"chunk_size": 5},
    "14": {"chunk_size": 14},
    "1024": {"chunk_size": 1024},
    "default": {},
    "budget-3-rows": {"block_mib": 3 * 50 * 8 / 2**20},
}


@pytest.mark.parametrize("kw", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_values_and_gradients_match_naive_float64(kw, temperature):
    hidden, weight, targets = inputs()
    g = torch.Generator().manual_seed(9)
    g1, g2 = torch.randn(2, 7, dtype=f64, generator=g), torch.randn(2, 7, dtype=f64, generator=g)
    lp, h = erl.token_logprobs(hidden, weight, targets, temperature=temperature, **kw)
    grads = torch.autograd.grad((lp * g1).sum() + (h * g2).sum(), (hidden, weight))
    lp_ref, h_ref = naive(hidden, weight, targets, temperature)
    grads_ref = torch.autograd.grad((lp_ref * g1).sum() + (h_ref * g2).sum(), (hidden, weight))
    torch.testing.assert_close(lp, lp_ref, atol=1e-12, rtol=0)
    torch.testing.assert_close(h, h_ref, atol=1e-12, rtol=0)
    for a, b in zip(grads, grads_ref):
        torch.testing.assert_close(a, b, atol=1e-11, rtol=0)


def test_gradcheck():
    hidden, weight, targets = inputs(B=1, T=3, D=4, V=6)
    torch.autograd.gradcheck(lambda h, w: erl.token_logprobs(h, w, targets, chunk_size=2), (hidden, weight))


def test_bf16_model_gets_fp32_logprobs_equal_to_an_fp32_reference():
    """A bf16 model's hidden states and head are upcast, not computed in bf16."""
    hidden, weight, targets = inputs(torch.bfloat16, T=9, D=32, V=300)
    lp, h = erl.token_logprobs(hidden, weight, targets, chunk_size=4)
    assert lp.dtype == torch.float32 and h.dtype == torch.float32
    lp_ref, h_ref = naive(hidden.float(), weight.float(), targets)
    torch.testing.assert_close(lp, lp_ref.float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(h, h_ref.float(), atol=1e-5, rtol=0)
    (gh, gw) = torch.autograd.grad(lp.sum(), (hidden, weight))
    assert gh.dtype == torch.bfloat16 and gw.dtype == torch.bfloat16  # grads come back in the params' dtype
    # Under autocast the contract still holds (autocast is switched off inside).
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lp2, _ = erl.token_logprobs(hidden.float(), weight.float(), targets)
    assert lp2.dtype == torch.float32
    torch.testing.assert_close(lp2, lp_ref.float(), atol=1e-5, rtol=0)


def test_frozen_head_skips_weight_gradient():
    hidden, weight, targets = inputs()
    lp, _ = erl.token_logprobs(hidden, weight.detach(), targets, chunk_size=4)
    (gh,) = torch.autograd.grad(lp.sum(), hidden)
    assert gh.shape == hidden.shape


# Gradient tolerances: float64 to rounding; fp32 to a few ulps of O(1) entries; bf16 gradients come back
# in bf16 (the input's dtype), so two bf16 ulps (2 · 2^-8 relative).
GRAD_TOL = {
    f64: dict(atol=1e-12, rtol=0),
    torch.float32: dict(atol=1e-5, rtol=0),
    torch.bfloat16: dict(atol=1e-6, rtol=2 * 2**-8),
}


@pytest.mark.parametrize("temperature", [1.0, 0.6])
@pytest.mark.parametrize("dtype", [f64, torch.float32, torch.bfloat16])
def test_logprobs_from_logits(dtype, temperature):
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(3, 5, 40, generator=g) * 4).to(dtype).requires_grad_(True)
    targets = torch.randint(0, 40, (3, 5), generator=g)
    lp, h = erl.logprobs_from_logits(logits, targets, chunk_size=4, temperature=temperature)
    ref_all = torch.log_softmax(logits.detach().to(f64).requires_grad_(True) / temperature, -1)
    assert lp.dtype == (f64 if dtype == f64 else torch.float32)
    lp_ref = ref_all.gather(-1, targets[..., None]).squeeze(-1)
    tol = 1e-12 if dtype == f64 else 1e-5
    torch.testing.assert_close(lp.to(f64), lp_ref.detach(), atol=tol, rtol=0)
    torch.testing.assert_close(h.to(f64), -(ref_all.exp() * ref_all).sum(-1).detach(), atol=tol, rtol=0)
    (g_chunked,) = torch.autograd.grad((lp + h).sum(), logits)
    ref_logits = logits.detach().to(f64).requires_grad_(True)
    ref = torch.log_softmax(ref_logits / temperature, -1)
    (g_ref,) = torch.autograd.grad(
        (ref.gather(-1, targets[..., None]).squeeze(-1) - (ref.exp() * ref).sum(-1)).sum(), ref_logits
    )
    assert g_chunked.dtype == dtype
    torch.testing.assert_close(g_chunked.to(f64), g_ref.to(dtype).to(f64), **GRAD_TOL[dtype])


def test_masked_logits_get_zero_probability_and_zero_gradient():
    logits = torch.tensor([[0.5, -torch.inf, 1.0, -torch.inf]], dtype=f64, requires_grad=True)
    lp, h = erl.logprobs_from_logits(logits, torch.tensor([2]))
    ref = torch.log_softmax(torch.tensor([0.5, 1.0], dtype=f64), -1)
    torch.testing.assert_close(lp, ref[1:2])
    torch.testing.assert_close(h, -(ref.exp() * ref).sum()[None])
    (g,) = torch.autograd.grad((lp + h).sum(), logits)
    assert torch.isfinite(g).all() and g[0, 1] == 0 and g[0, 3] == 0
    with pytest.raises(ValueError, match="entirely -inf"):
        erl.logprobs_from_logits(torch.full((1, 3), -torch.inf), torch.tensor([0]))


def test_fp32_accuracy_at_large_vocab_is_no_worse_than_the_naive_fp32_path():
    """Chunking must not cost precision: against a float64 reference, the chunked fp32 entropy and
    log-probs are at most as far off as fp32 log_softmax over the full logits (with 2x slack)."""
    g = torch.Generator().manual_seed(3)
    hidden = torch.randn(1, 8, 64, generator=g)
    weight = torch.randn(50_000, 64, generator=g) * 0.3
    targets = torch.randint(0, 50_000, (1, 8), generator=g)
    lp_ref, h_ref = naive(hidden, weight, targets)
    logits32 = hidden @ weight.T
    lsm32 = torch.log_softmax(logits32, -1)
    h_naive = -(lsm32.exp() * lsm32).sum(-1)
    lp, h = erl.token_logprobs(hidden, weight, targets, chunk_size=3)
    fp32_err_h = (h_naive.double() - h_ref).abs().max().item()
    assert (h.double() - h_ref).abs().max().item() <= 2 * fp32_err_h + 1e-6
    fp32_err_lp = (lsm32.gather(-1, targets[..., None]).squeeze(-1).double() - lp_ref).abs().max().item()
    assert (lp.double() - lp_ref).abs().max().item() <= 2 * fp32_err_lp + 1e-6


def test_input_checks_add_nothing_to_the_autograd_graph():
    """check_tensor reduces its input to find NaN/inf; that must not save tensors for the caller's backward."""
    from entropy_rl_lite._checks import check_tensor

    x = torch.randn(5, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        check_tensor("x", x)
    assert saved == []


# --- chunk rows from the memory budget ------------------------------------------------------------


def test_chunk_rows_follows_the_budget_rule():
    """rows = floor(budget / (V · bytes per element)), at least 1, at most the tokens (integer arithmetic only)."""
    budget = int(BLOCK_MIB * 2**20)
    for vocab in (14, 1000, 32_000, 151_936, 262_144):
        for dtype in (torch.float32, torch.float64):
            expected = max(1, min(10**9, budget // (vocab * dtype.itemsize)))
            assert chunk_rows(10**9, vocab, dtype) == expected
    assert chunk_rows(10**9, 151_936, torch.float32) * 151_936 * 4 <= budget  # one block fits the budget
    assert chunk_rows(10**9, 151_936, torch.float32, block_mib=1.0) == 2**20 // (151_936 * 4)


def test_chunk_rows_shrink_as_the_vocabulary_grows_and_stay_between_one_and_the_tokens():
    rows = [chunk_rows(10**9, v, torch.float32) for v in (1_000, 32_000, 151_936, 262_144, 10**9)]
    assert rows == sorted(rows, reverse=True) and len(set(rows)) == len(rows)
    assert rows[-1] == 1  # a vocabulary too large for the budget still gets one row
    assert chunk_rows(10**9, 32_000, torch.float64) < chunk_rows(10**9, 32_000, torch.float32)  # 8-byte elements
    assert chunk_rows(300, 14, torch.float32) == 300  # the book's vocabulary: every token in one chunk
    assert chunk_rows(0, 14, torch.float32) == 1 and chunk_rows(0, 0, torch.float32) == 1  # empty input


def _spy_on_chunk_size(monkeypatch) -> list[int]:
    """Record the chunk size each chunk loop is given."""
    sizes, chunks = [], lp_module._chunks
    monkeypatch.setattr(lp_module, "_chunks", lambda n, size: sizes.append(size) or chunks(n, size))
    return sizes


def test_default_chunk_comes_from_the_budget_and_an_explicit_chunk_size_wins(monkeypatch):
    hidden, weight, targets = inputs(torch.float32, T=9, V=300)  # 18 tokens
    sizes = _spy_on_chunk_size(monkeypatch)
    tiny = 4 * 300 * 4 / 2**20  # four fp32 rows of V = 300
    erl.token_logprobs(hidden, weight, targets)[0].sum().backward()
    erl.token_logprobs(hidden, weight, targets, block_mib=tiny)[0].sum().backward()
    erl.token_logprobs(hidden, weight, targets, chunk_size=5, block_mib=tiny)[0].sum().backward()
    logits = (hidden @ weight.T).detach().requires_grad_(True)
    erl.logprobs_from_logits(logits, targets, block_mib=tiny)[0].sum().backward()
    erl.logprobs_from_logits(logits, targets, 7, block_mib=tiny)[0].sum().backward()
    assert sizes == [18, 18, 4, 4, 5, 5, 4, 4, 7, 7]  # forward and backward of each call


def test_default_is_bit_identical_to_the_old_chunk_size_1024_for_the_books_vocabulary():
    """V = 14 and a few hundred tokens: the budget covers every token, as chunk_size=1024 did."""
    hidden, weight, targets = inputs(torch.float32, B=2, T=150, D=32, V=14)
    results = []
    for kw in ({}, {"chunk_size": 1024}):
        lp, h = erl.token_logprobs(hidden, weight, targets, **kw)
        results.append((lp, h, *torch.autograd.grad((lp + h).sum(), (hidden, weight))))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_budget_chunks_are_bit_identical_to_the_same_explicit_chunk_size():
    hidden, weight, targets = inputs(torch.float32, T=9, V=300)
    rows = chunk_rows(targets.numel(), 300, torch.float32, block_mib=4 * 300 * 4 / 2**20)
    assert rows == 4
    results = []
    for kw in ({"block_mib": 4 * 300 * 4 / 2**20}, {"chunk_size": rows}):
        lp, h = erl.token_logprobs(hidden, weight, targets, temperature=0.8, **kw)
        results.append((lp, h, *torch.autograd.grad((lp + h).sum(), (hidden, weight))))
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize(
    "bad, error",
    [
        (0.0, ValueError),
        (-1.0, ValueError),
        (float("nan"), ValueError),
        (float("inf"), ValueError),
        ("48", TypeError),
        (None, TypeError),
    ],
)
@pytest.mark.parametrize("chunk_size", [None, 4])
def test_bad_block_mib_raises_and_names_it(bad, error, chunk_size):
    hidden, weight, targets = inputs(torch.float32)
    with pytest.raises(error, match=r"\bblock_mib\b"):
        erl.token_logprobs(hidden, weight, targets, chunk_size, block_mib=bad)
    with pytest.raises(error, match=r"\bblock_mib\b"):
        erl.logprobs_from_logits(hidden @ weight.T, targets, chunk_size, block_mib=bad)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_bad_chunk_size_still_raises_and_names_it(bad, error):
    hidden, weight, targets = inputs(torch.float32)
    with pytest.raises(error, match=r"\bchunk_size\b"):
        erl.token_logprobs(hidden, weight, targets, chunk_size=bad)
    with pytest.raises(error, match=r"\bchunk_size\b"):
        erl.logprobs_from_logits(hidden @ weight.T, targets, chunk_size=bad)
