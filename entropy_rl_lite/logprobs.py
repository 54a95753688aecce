"""fp32 token log-probabilities and entropies, chunked over tokens so the [tokens × vocab] block never exists whole.

The library's precision contract (docs/science.md §4): whatever the model dtype, logits are formed, normalised and
differentiated in fp32, with autocast off. Forward keeps only (logp, entropy) per token; backward recomputes
each chunk's logits, so peak memory holds two [rows × vocab] fp32 blocks (logits, then probabilities)
instead of several [tokens × vocab] ones. An fp32 weight is used in place; a bf16 one is upcast once per call.

By default a chunk's row count comes from a memory budget per block (`chunk_rows`), not a fixed count: 1,024
rows of fp32 logits are 0.06 MB at the book's V = 14 but 622 MB at V = 151,936.

Gradients, per token with z the fp32 logits and p = softmax(z):
  ∂ log p_y / ∂z = onehot(y) - p          ∂H / ∂z = -p ⊙ (log p + H)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import Tensor

from ._checks import check_int, check_number, check_tensor

# Default budget for one [rows × V] block, in MiB; a chunk holds about two such blocks (~96 MiB of working memory).
# Why 48: the memory goal (benchmarks/README.md §2: V = 151,936, 2,048 tokens, D = 1,024, peak ≤ 1/8 of the
# naive fp32 path's 6.2 GB, i.e. ≤ 779 MB) leaves ~150 MB above the 631 MB of gradients both paths must return;
# the chunked workspace measures ~2.2 blocks, so one block must stay under ~65 MB (62 MiB). 48 MiB leaves margin
# (82 rows there), and a full block stays above glibc's 32 MiB mmap threshold, so on CPU its pages go back to the
# system when it is freed instead of lingering in the heap.
BLOCK_MIB = 48.0


def chunk_rows(tokens: int, vocab: int, dtype: torch.dtype, block_mib: float = BLOCK_MIB) -> int:
    """Rows per chunk: as many [rows × vocab] `dtype` rows as fit block_mib MiB, at least 1, at most tokens."""
    tokens, vocab = check_int("tokens", tokens, low=0), check_int("vocab", vocab, low=0)
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"dtype must be a torch.dtype (e.g. torch.float32), got {dtype!r}")
    block_mib = check_number("block_mib", block_mib, low=0.0, low_open=True)
    return _chunk_rows(tokens, vocab, dtype, block_mib)


def _chunk_rows(tokens: int, vocab: int, dtype: torch.dtype, block_mib: float) -> int:
    fit = int(block_mib * 2**20) // max(1, vocab * dtype.itemsize)  # V = 0 only comes with 0 tokens
    return max(1, min(fit, tokens))


def _chunks(n: int, size: int) -> Iterator[slice]:
    """Slices [0, size), [size, 2·size), … covering rows 0..n-1; the last one may be shorter."""
    return (slice(s, min(s + size, n)) for s in range(0, n, size))


def _compute_dtype(*xs: Tensor) -> torch.dtype:
    """fp32, or float64 when an input is float64 (for exactness checks)."""
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


def _log_softmax_(z: Tensor) -> Tensor:
    """Turn logits [n, V] into log p in place and return p: two [n, V] blocks in all (no logsumexp temporary)."""
    z.sub_(z.amax(-1, keepdim=True))
    p = z.exp()
    total = p.sum(-1, keepdim=True)
    z.sub_(total.log())
    return p.div_(total)


def _chunk_forward(z: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """fp32 logits [n, V] (overwritten) and targets [n] -> (log p_y [n], H [n])."""
    p = _log_softmax_(z)  # z now holds log p
    logp = z.gather(-1, y[:, None]).squeeze(-1)
    z.clamp_min_(torch.finfo(z.dtype).min)  # masked (-inf) entries: 0 · log 0 must be 0, not NaN
    return logp, -p.mul_(z).sum(-1)  # p ⊙ log p in place: no third block


def _chunk_grad(z: Tensor, y: Tensor, g_logp: Tensor, g_entropy: Tensor, entropy: Tensor) -> Tensor:
    """fp32 logits [n, V] (overwritten) -> ∂loss/∂z [n, V], given upstream grads of log p_y and H and H itself [n]."""
    p = _log_softmax_(z)  # z now holds log p
    z.clamp_min_(torch.finfo(z.dtype).min)  # masked (-inf) entries have p = 0 and must get a zero gradient
    grad = z.add_(entropy[:, None]).mul_(p).mul_(-g_entropy[:, None])  # -g_H · p ⊙ (log p + H)
    grad.sub_(p.mul_(g_logp[:, None]))  # - g_lp · p
    return grad.scatter_add_(-1, y[:, None], g_logp[:, None])  # + g_lp · onehot(y)


class _HiddenLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, targets: Tensor, chunk_size: int, temperature: float):
        h = hidden.reshape(-1, hidden.shape[-1])
        y = targets.reshape(-1)
        cdt = _compute_dtype(hidden, weight)
        w32 = weight.to(cdt)
        logp = torch.empty(y.shape[0], dtype=cdt, device=hidden.device)
        ent = torch.empty_like(logp)
        for sl in _chunks(y.shape[0], chunk_size):
            z = h[sl].to(cdt) @ w32.T
            if temperature != 1.0:
                z.div_(temperature)
            logp[sl], ent[sl] = _chunk_forward(z, y[sl])
            del z
        ctx.save_for_backward(hidden, weight, targets, ent)  # H is reused by backward
        ctx.chunk_size, ctx.temperature = chunk_size, temperature
        return logp.reshape(targets.shape), ent.reshape(targets.shape)

    @staticmethod
    def backward(ctx, g_logp: Tensor, g_ent: Tensor):
        hidden, weight, targets, ent = ctx.saved_tensors
        ent = ent.reshape(-1)
        h = hidden.reshape(-1, hidden.shape[-1])
        y = targets.reshape(-1)
        cdt = _compute_dtype(hidden, weight)
        g_logp, g_ent = g_logp.reshape(-1).to(cdt), g_ent.reshape(-1).to(cdt)
        w32 = weight.to(cdt)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_h = torch.empty(h.shape, dtype=cdt, device=h.device) if need_h else None
        grad_w = torch.zeros(w32.shape, dtype=cdt, device=h.device) if need_w else None
        t = ctx.temperature
        for sl in _chunks(y.shape[0], ctx.chunk_size):
            hc = h[sl].to(cdt)
            z = hc @ w32.T
            if t != 1.0:
                z.div_(t)
            gz = _chunk_grad(z, y[sl], g_logp[sl], g_ent[sl], ent[sl])
            if t != 1.0:
                gz.div_(t)
            if need_h:
                grad_h[sl] = gz @ w32
            if need_w:
                grad_w.addmm_(gz.T, hc)
            del z, gz  # free this chunk's blocks before the next one allocates
        grad_h = grad_h.reshape(hidden.shape).to(hidden.dtype) if need_h else None
        grad_w = grad_w.to(weight.dtype) if need_w else None
        return grad_h, grad_w, None, None, None


class _LogitLogprobs(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, targets: Tensor, chunk_size: int, temperature: float):
        z_all = logits.reshape(-1, logits.shape[-1])
        y = targets.reshape(-1)
        cdt = _compute_dtype(logits)
        logp = torch.empty(y.shape[0], dtype=cdt, device=logits.device)
        ent = torch.empty_like(logp)
        for sl in _chunks(y.shape[0], chunk_size):
            z = z_all[sl].to(cdt) / temperature  # a fresh fp32 block: the input stays intact
            logp[sl], ent[sl] = _chunk_forward(z, y[sl])
        ctx.save_for_backward(logits, targets, ent)
        ctx.chunk_size, ctx.temperature = chunk_size, temperature
        return logp.reshape(targets.shape), ent.reshape(targets.shape)

    @staticmethod
    def backward(ctx, g_logp: Tensor, g_ent: Tensor):
        logits, targets, ent = ctx.saved_tensors
        ent = ent.reshape(-1)
        z_all = logits.reshape(-1, logits.shape[-1])
        y = targets.reshape(-1)
        cdt = _compute_dtype(logits)
        g_logp, g_ent = g_logp.reshape(-1).to(cdt), g_ent.reshape(-1).to(cdt)
        grad = torch.empty_like(z_all)
        for sl in _chunks(y.shape[0], ctx.chunk_size):
            z = z_all[sl].to(cdt) / ctx.temperature
            gz = _chunk_grad(z, y[sl], g_logp[sl], g_ent[sl], ent[sl])
            grad[sl] = gz.div_(ctx.temperature).to(grad.dtype)
            del z, gz
        return grad.reshape(logits.shape), None, None, None


def _check_targets(targets: object, shape: torch.Size, vocab: int) -> Tensor:
    if not isinstance(targets, Tensor) or targets.dtype not in (torch.int64, torch.int32):
        raise TypeError(
            f"targets must be an int64 tensor of token ids, got {getattr(targets, 'dtype', type(targets).__name__)}"
        )
    if targets.shape != shape:
        raise ValueError(f"targets has shape {tuple(targets.shape)}, expected {tuple(shape)}")
    if targets.numel() and (int(targets.min()) < 0 or int(targets.max()) >= vocab):
        raise ValueError(
            f"targets must be token ids in [0, {vocab}), got range "
            f"[{int(targets.min())}, {int(targets.max())}]; mask padding instead of using -100"
        )
    return targets.long()


def _check_temperature(temperature: object, max_abs_logit: Callable[[], float], dtype: torch.dtype) -> float:
    """temperature > 0, and small enough a divisor that logits / temperature stay finite in `dtype`.

    log_softmax subtracts the row maximum, so |z / temperature| must stay below half the float range;
    a temperature below the smallest normal float is refused outright (its reciprocal overflows).
    max_abs_logit bounds |logit|; it is only evaluated for temperature < 1 (a larger one cannot overflow).
    """
    temperature = check_number("temperature", temperature, low=0.0, low_open=True)
    if temperature >= 1.0:
        return temperature
    info, biggest = torch.finfo(dtype), max_abs_logit()
    need = max(info.tiny, 2.0 * biggest / info.max)
    if temperature < need:
        raise ValueError(
            f"temperature must be >= {need:.3g} here: logits / {temperature:g} would overflow {dtype} "
            f"(the logits reach {biggest:.3g} in magnitude)"
        )
    return temperature


def _rows(chunk_size: int | None, block_mib: float, tokens: int, vocab: int, dtype: torch.dtype) -> int:
    """Validated rows per chunk: an explicit chunk_size, or else the block_mib budget's (`chunk_rows`)."""
    block_mib = check_number("block_mib", block_mib, low=0.0, low_open=True)
    if chunk_size is not None:
        return check_int("chunk_size", chunk_size, low=1)
    return _chunk_rows(tokens, vocab, dtype, block_mib)


def _max_abs_finite(x: Tensor) -> float:
    """max |x| over the finite entries (-inf masks a token out), 0 for an empty tensor."""
    with torch.no_grad():
        return float(x.detach().float().nan_to_num(neginf=0.0).abs().amax()) if x.numel() else 0.0


def _logit_bound(hidden: Tensor, weight: Tensor, dtype: torch.dtype) -> float:
    """A bound on |hidden · weightᵀ| without forming it (Cauchy-Schwarz: largest row norms multiplied)."""
    if hidden.numel() == 0:
        return 0.0
    with torch.no_grad():
        h = torch.linalg.vector_norm(hidden.detach().to(dtype), dim=-1).amax()
        w = torch.linalg.vector_norm(weight.detach().to(dtype), dim=-1).amax()
    return float(h.double() * w.double())


def token_logprobs(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    chunk_size: int | None = None,
    temperature: float = 1.0,
    *,
    block_mib: float = BLOCK_MIB,
) -> tuple[Tensor, Tensor]:
    """fp32 log π(target) and entropy from final hidden states and the output layer, chunked, differentiable.

    hidden [B, T, D] (any float dtype), weight [V, D] (the LM head), targets [B, T] int64
    -> (logp [B, T], entropy [B, T]), fp32 (float64 if an input is float64). Gradients flow to hidden and weight.
    Working memory is about two [rows × V] fp32 blocks. chunk_size=None picks rows so that one block fits
    block_mib MiB (`chunk_rows`: 82 rows at V = 151,936, all tokens at V = 14); an int chunk_size overrides it.
    A temperature so small that the scaled logits could overflow (bounded by the largest row norms) is refused.
    """
    check_tensor("hidden", hidden, min_dim=2)
    check_tensor("weight", weight, min_dim=2)
    if weight.dim() != 2 or weight.shape[1] != hidden.shape[-1] or weight.shape[0] == 0:
        raise ValueError(
            f"weight must be [V, D] with V >= 1 and D = hidden.shape[-1] = {hidden.shape[-1]}, "
            f"got {tuple(weight.shape)}"
        )
    targets = _check_targets(targets, hidden.shape[:-1], weight.shape[0])
    cdt = _compute_dtype(hidden, weight)
    rows = _rows(chunk_size, block_mib, targets.numel(), weight.shape[0], cdt)
    temperature = _check_temperature(temperature, lambda: _logit_bound(hidden, weight, cdt), cdt)
    with torch.autocast(hidden.device.type, enabled=False):
        return _HiddenLogprobs.apply(hidden, weight, targets, rows, temperature)


def logprobs_from_logits(
    logits: Tensor,
    targets: Tensor,
    chunk_size: int | None = None,
    temperature: float = 1.0,
    *,
    block_mib: float = BLOCK_MIB,
) -> tuple[Tensor, Tensor]:
    """fp32 log π(target) and entropy from logits of any dtype, chunked over tokens, differentiable.

    -inf logits mask a token out (π = 0; each row needs a finite one). logits [..., V], targets [...] int64
    -> (logp [...], entropy [...]), fp32 (float64 for float64 logits). Chunks as in `token_logprobs`.
    A temperature so small that logits / temperature would overflow is refused.
    """
    check_tensor("logits", logits, min_dim=1, allow_neg_inf=True)
    if logits.shape[-1] == 0:
        raise ValueError(f"logits must have at least one token in the last dimension, got shape {tuple(logits.shape)}")
    if logits.numel() and not bool(torch.isfinite(logits).any(-1).all()):
        raise ValueError("logits has a row that is entirely -inf: no token has positive probability")
    targets = _check_targets(targets, logits.shape[:-1], logits.shape[-1])
    cdt = _compute_dtype(logits)
    rows = _rows(chunk_size, block_mib, targets.numel(), logits.shape[-1], cdt)
    temperature = _check_temperature(temperature, lambda: _max_abs_finite(logits), cdt)
    with torch.autocast(logits.device.type, enabled=False):
        return _LogitLogprobs.apply(logits, targets, rows, temperature)
