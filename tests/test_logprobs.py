"""The fp32 chunked log-prob/entropy path equals the naive full-logits path, in values and gradients."""
import pytest
import torch

import entropy_rl_lite as erl

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


@pytest.mark.parametrize("chunk_size", [1, 3, 5, 14, 1024])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_values_and_gradients_match_naive_float64(chunk_size, temperature):
    hidden, weight, targets = inputs()
    g = torch.Generator().manual_seed(9)
    g1, g2 = torch.randn(2, 7, dtype=f64, generator=g), torch.randn(2, 7, dtype=f64, generator=g)
    lp, h = erl.token_logprobs(hidden, weight, targets, chunk_size=chunk_size, temperature=temperature)
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
GRAD_TOL = {f64: dict(atol=1e-12, rtol=0), torch.float32: dict(atol=1e-5, rtol=0),
            torch.bfloat16: dict(atol=1e-6, rtol=2 * 2**-8)}


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
    (g_ref,) = torch.autograd.grad((ref.gather(-1, targets[..., None]).squeeze(-1) - (ref.exp() * ref).sum(-1)).sum(),
                                   ref_logits)
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
