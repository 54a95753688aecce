"""Peak memory of token log-probs + entropies: the library's chunked fp32 path against the naive one.

Both paths map final hidden states [B, T, D] and an output layer [V, D] to (log π(target) [B, T],
entropy [B, T]) and back-propagate  loss = Σ logp·g1 + Σ entropy·g2  (g1, g2 fixed random) into the
hidden states and the weight.

  naive    logits = hidden @ weight.T (all [B·T, V] at once, fp32), log_softmax, gather, −Σ p·log p;
           autograd keeps several [B·T, V] tensors alive.
  chunked  erl.token_logprobs(hidden, weight, targets, chunk_size): logits of `chunk_size` tokens at a
           time, forward and (recomputed) backward, so only a few [chunk_size, V] blocks exist at once.
  default  erl.token_logprobs(hidden, weight, targets): no chunk_size, so the library picks the rows per
           chunk from its memory budget (erl.logprobs.chunk_rows, block_mib = erl.logprobs.BLOCK_MIB).

Memory is measured in a fresh subprocess per path (this script re-run with `--worker naive`,
`--worker chunked:256`, or `--worker chunked` for the default), so one path's freed pages cannot hide
the other's:
  1. create the inputs (in place, no temporaries) and warm up BLAS/autograd on a tiny problem;
  2. reset the kernel's peak-RSS mark (write "5" to /proc/self/clear_refs) and read the baseline VmRSS;
  3. run forward + backward once;
  4. peak increase = ru_maxrss (getrusage, the kernel's high-water mark, which cannot miss a short
     spike) − baseline. A thread sampling VmRSS every ~1 ms gives a second, independent figure.
Both paths must end up holding the gradients (weight V×D and hidden B·T×D, fp32); subtracting them gives
the second figure, the *workspace* above inputs and required gradients.

Values and gradients of the two paths are compared in one process (at a small token count, with a
float64 reference, and at full size).

    .venv/bin/python benchmarks/logprob_memory.py                       # everything, default sizes
    .venv/bin/python benchmarks/logprob_memory.py --skip-full-compare   # no full-size value comparison
    .venv/bin/python benchmarks/logprob_memory.py --worker chunked:128  # one measurement, JSON out
    .venv/bin/python benchmarks/logprob_memory.py --worker chunked      # the same, at the default chunking
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
from provenance import library_digest  # noqa: E402

import entropy_rl_lite as erl  # noqa: E402
from entropy_rl_lite.logprobs import BLOCK_MIB, chunk_rows  # noqa: E402

MB = 1e6
GOAL_RATIO = 8  # chunked peak ≤ naive peak / 8
VALUE_TOL = 1e-5  # logp and entropy: max absolute difference; gradients: max |Δ| / max |reference|


# ----------------------------------------------------------------------------------------------- the two paths


def make_inputs(
    batch: int, tokens: int, vocab: int, dim: int, logit_scale: float, seed: int = 0, dtype: torch.dtype = torch.float32
) -> dict[str, torch.Tensor]:
    """Hidden [B, T, D] and weight [V, D] (both requiring grad), targets [B, T], upstream grads g1, g2 [B, T].

    Logits have standard deviation ≈ logit_scale. Tensors are filled in place so that creating them leaves
    no freed temporaries behind that could distort the memory baseline.
    """
    t = tokens // batch
    g = torch.Generator().manual_seed(seed)
    hidden = torch.empty(batch, t, dim, dtype=dtype).normal_(generator=g)
    weight = torch.empty(vocab, dim, dtype=dtype).normal_(0.0, logit_scale / dim**0.5, generator=g)
    targets = torch.randint(vocab, (batch, t), generator=g)
    g1 = torch.empty(batch, t, dtype=dtype).normal_(generator=g)
    g2 = torch.empty(batch, t, dtype=dtype).normal_(generator=g)
    return {
        "hidden": hidden.requires_grad_(),
        "weight": weight.requires_grad_(),
        "targets": targets,
        "g1": g1,
        "g2": g2,
    }


def naive_logprobs(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor):
    """The straightforward way: every logit at once. -> (logp [B, T], entropy [B, T])."""
    logits = hidden @ weight.T  # [B, T, V]
    logp_all = torch.log_softmax(logits, dim=-1)  # [B, T, V]
    logp = logp_all.gather(-1, targets[..., None]).squeeze(-1)  # [B, T]
    entropy = -(logp_all.exp() * logp_all).sum(-1)  # [B, T]
    return logp, entropy


def forward_backward(path: str, chunk_size: int | None, x: dict[str, torch.Tensor]):
    """One forward and backward pass; gradients land in x["hidden"].grad and x["weight"].grad.

    chunk_size None calls token_logprobs without one: the library's default, rows from its memory budget.
    """
    if path == "naive":
        logp, entropy = naive_logprobs(x["hidden"], x["weight"], x["targets"])
    elif chunk_size is None:
        logp, entropy = erl.token_logprobs(x["hidden"], x["weight"], x["targets"])
    else:
        logp, entropy = erl.token_logprobs(x["hidden"], x["weight"], x["targets"], chunk_size=chunk_size)
    ((logp * x["g1"]).sum() + (entropy * x["g2"]).sum()).backward()
    return logp.detach(), entropy.detach()


def parse_path(spec: str) -> tuple[str, int | None]:
    """ "naive" -> ("naive", 0); "chunked" -> ("chunked", None), the default; "chunked:256" -> ("chunked", 256)."""
    name, _, size = spec.partition(":")
    if name not in ("naive", "chunked") or (name == "naive" and size):
        raise ValueError(f"path must be naive, chunked or chunked:N, got {spec!r}")
    return name, int(size) if size else (None if name == "chunked" else 0)


def default_rows(tokens: int, vocab: int) -> int:
    """Rows per chunk that token_logprobs picks without a chunk_size (fp32 inputs), by the library's own rule."""
    return chunk_rows(tokens, vocab, torch.float32)


def label(path: str, chunk: int | None, tokens: int, vocab: int) -> str:
    """Table name of a path: naive, chunked:256, or (chunk None) default:82, with the rows the budget picks."""
    if path == "naive":
        return "naive"
    return f"default:{default_rows(tokens, vocab)}" if chunk is None else f"chunked:{chunk}"


# ------------------------------------------------------------------------------------------- memory (worker)


def proc_status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)


def ru_maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kilobytes on Linux


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM, ru_maxrss) to the current RSS. False if not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class RssSampler(threading.Thread):
    """Reads VmRSS every `period` seconds and keeps the maximum. torch releases the GIL inside its
    kernels, so the thread keeps sampling while a big matmul runs."""

    def __init__(self, period: float = 1e-3) -> None:
        super().__init__(daemon=True)
        self.period, self.peak, self.samples = period, 0, 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            self.peak = max(self.peak, proc_status_bytes("VmRSS"))
            self.samples += 1
            time.sleep(self.period)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def worker(spec: str, args: argparse.Namespace) -> dict:
    """Measure one path in this (fresh) process. Returns a JSON-able dict of bytes and seconds."""
    path, chunk = parse_path(spec)
    x = make_inputs(args.batch, args.tokens, args.vocab, args.dim, args.logit_scale)
    # Warm-up on a tiny problem: BLAS buffers, thread pool and autograd start-up land in the baseline.
    forward_backward(path, chunk, make_inputs(1, 16, 4096, args.dim, args.logit_scale))
    gc.collect()

    reset_ok = reset_peak_rss()
    baseline = proc_status_bytes("VmRSS")
    ru_before = ru_maxrss_bytes()
    sampler = RssSampler()
    sampler.start()
    t0 = time.perf_counter()
    forward_backward(path, chunk, x)
    seconds = time.perf_counter() - t0
    sampler.stop()
    ru_after = ru_maxrss_bytes()

    grads = x["weight"].grad.numel() * 4 + x["hidden"].grad.numel() * 4
    default = path == "chunked" and chunk is None
    rows = default_rows(args.tokens, args.vocab) if default else chunk
    return {
        "path": path,
        "chunk": rows,
        "default": default,
        "baseline": baseline,
        "reset_ok": reset_ok,
        "ru_before": ru_before,
        "ru_peak": ru_after,
        "sampled_peak": sampler.peak,
        "samples": sampler.samples,
        "grads": grads,
        "seconds": seconds,
        "peak_increase": ru_after - baseline,
        "sampled_increase": sampler.peak - baseline,
        # If the reset failed and something before the run set a higher mark, ru_maxrss says nothing.
        "ru_valid": ru_after > ru_before or ru_before <= baseline + 8 * 2**20,
    }


def measure_in_subprocess(spec: str, args: argparse.Namespace) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        spec,
        "--batch",
        str(args.batch),
        "--tokens",
        str(args.tokens),
        "--vocab",
        str(args.vocab),
        "--dim",
        str(args.dim),
        "--logit-scale",
        str(args.logit_scale),
    ]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def goal_mark(is_naive: bool, ratio: float) -> str:
    return "-" if is_naive else ("MET" if ratio >= GOAL_RATIO else "not met")


def print_memory_table(results: list[dict], args: argparse.Namespace) -> None:
    naive = next(r for r in results if r["path"] == "naive")
    grads = naive["grads"]
    print(
        f"\nPeak RSS above the baseline (inputs already allocated), one fresh process per row. "
        f"'workspace' = peak increase − the gradients both paths must hold "
        f"({grads / MB:.0f} MB: weight {args.vocab}×{args.dim} + hidden, fp32)."
    )
    head = (
        f"{'path':<16}{'peak Δ ru_maxrss':>18}{'peak Δ sampled':>16}{'workspace':>12}{'ws/block':>10}"
        f"{'naive/this (peak)':>19}{'naive/this (ws)':>17}{'≤1/8 peak':>11}{'≤1/8 ws':>9}{'time s':>8}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        ws = r["peak_increase"] - r["grads"]
        naive_ws = naive["peak_increase"] - naive["grads"]
        name = label(r["path"], None if r["default"] else r["chunk"], args.tokens, args.vocab)
        ratio_p, ratio_w = naive["peak_increase"] / r["peak_increase"], naive_ws / ws
        block = (args.tokens if r["path"] == "naive" else min(r["chunk"], args.tokens)) * args.vocab * 4
        print(
            f"{name:<16}{r['peak_increase'] / MB:>15.0f} MB{r['sampled_increase'] / MB:>13.0f} MB"
            f"{ws / MB:>9.0f} MB{ws / block:>10.2f}{ratio_p:>18.2f}×{ratio_w:>16.2f}×"
            f"{goal_mark(r is naive, ratio_p):>11}{goal_mark(r is naive, ratio_w):>9}{r['seconds']:>8.1f}"
        )
    notes = [r for r in results if not (r["reset_ok"] and r["ru_valid"])]
    for r in notes:
        print(f"  note: {r['path']}:{r['chunk']} peak-mark reset ok={r['reset_ok']}, ru_maxrss valid={r['ru_valid']}")
    print(
        "  ws/block = workspace in units of one fp32 logit block: [tokens × vocab] for naive, "
        "[chunk × vocab] for chunked"
    )
    for r in results:
        if r["default"]:
            ratio = naive["peak_increase"] / r["peak_increase"]
            print(
                f"  default (no chunk_size; block_mib = {BLOCK_MIB:g} MiB per [rows × vocab] fp32 block): "
                f"{r['chunk']} rows of {args.tokens} tokens, one block = {r['chunk'] * args.vocab * 4 / MB:.1f} MB; "
                f"peak {r['peak_increase'] / MB:.0f} MB = naive/{ratio:.2f}, goal ≤ naive/{GOAL_RATIO}: "
                f"{goal_mark(False, ratio)}"
            )
    smallest = min(min(r["chunk"] or args.tokens, args.tokens) for r in results) * args.vocab * 4
    if smallest < 64 * 2**20:
        print(
            f"  CAUTION: the smallest logit block is {smallest / MB:.0f} MB. Blocks under glibc's mmap threshold "
            f"(≤ 32 MiB) are recycled inside the heap and RSS no longer tracks live tensors; use larger sizes."
        )
    print(
        f"  baseline RSS ≈ {naive['baseline'] / MB:.0f} MB; sampler took {min(r['samples'] for r in results)}–"
        f"{max(r['samples'] for r in results)} samples per run"
    )


# -------------------------------------------------------------------------------------------- values (parent)


def max_abs(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.double() - b.double()).abs().max().item()


def float64_reference(x: dict[str, torch.Tensor], piece: int = 256) -> dict[str, torch.Tensor]:
    """The naive formula in float64, `piece` tokens at a time (own code, not the library), with the weight
    gradient accumulated over pieces. Its rounding error (~1e-12 or less) is negligible next to fp32's:
    the yardstick for both fp32 paths."""
    dim = x["hidden"].shape[-1]
    h64 = x["hidden"].detach().double().reshape(-1, dim)
    w64 = x["weight"].detach().double().requires_grad_()
    y, g1, g2 = x["targets"].reshape(-1), x["g1"].double().reshape(-1), x["g2"].double().reshape(-1)
    logps, ents, grads_h = [], [], []
    for s in range(0, y.shape[0], piece):
        hc = h64[s : s + piece].clone().requires_grad_()
        logp, entropy = naive_logprobs(hc, w64, y[s : s + piece])
        ((logp * g1[s : s + piece]).sum() + (entropy * g2[s : s + piece]).sum()).backward()
        logps.append(logp.detach())
        ents.append(entropy.detach())
        grads_h.append(hc.grad)
    shape = x["targets"].shape
    return {
        "logp": torch.cat(logps).reshape(shape),
        "entropy": torch.cat(ents).reshape(shape),
        "grad_h": torch.cat(grads_h).reshape(x["hidden"].shape),
        "grad_w": w64.grad,
    }


def compare_values(batch: int, tokens: int, args: argparse.Namespace, chunk_sizes: list[int | None]) -> None:
    """Run the float64 reference, naive fp32 and chunked fp32 on the same inputs; print the largest differences.

    A chunk size None is the library's default (no chunk_size passed)."""
    x = make_inputs(batch, tokens, args.vocab, args.dim, args.logit_scale, seed=1)
    ref64 = float64_reference(x)
    naive = run_for_values("naive", 0, x)
    gc.collect()
    rows = [("naive fp32 vs float64", naive, ref64)]
    for c in chunk_sizes:
        out = run_for_values("chunked", c, x)
        name = label("chunked", c, tokens, args.vocab)
        rows += [(f"{name} vs naive fp32", out, naive), (f"{name} vs float64", out, ref64)]

    print(
        f"\nValues and gradients, {tokens} tokens (B={batch}), vocab {args.vocab}, dim {args.dim}. "
        f"logp/entropy: max |Δ|; gradients: max |Δ| and max |Δ| / max |reference| (relative)."
    )
    head = (
        f"{'comparison':<30}{'logp':>10}{'entropy':>10}{'grad_h abs':>12}{'grad_h rel':>12}"
        f"{'grad_w abs':>12}{'grad_w rel':>12}  all within {VALUE_TOL:g}?"
    )
    print(head)
    print("-" * len(head))
    for name, a, b in rows:
        d = {k: max_abs(a[k], b[k]) for k in a}
        rel_h = d["grad_h"] / b["grad_h"].abs().max().item()
        rel_w = d["grad_w"] / b["grad_w"].abs().max().item()
        ok = max(d["logp"], d["entropy"], rel_h, rel_w) <= VALUE_TOL
        print(
            f"{name:<30}{d['logp']:>10.1e}{d['entropy']:>10.1e}{d['grad_h']:>12.1e}{rel_h:>12.1e}"
            f"{d['grad_w']:>12.1e}{rel_w:>12.1e}  {'yes' if ok else 'NO'}"
        )
    ent = ref64["entropy"]
    print(
        f"  reference magnitudes: |logp| ≤ {ref64['logp'].abs().max():.2f}, "
        f"entropy {ent.min():.2f}–{ent.max():.2f} nats, max |grad_h| {ref64['grad_h'].abs().max():.2e}, "
        f"max |grad_w| {ref64['grad_w'].abs().max():.2e}; "
        f"fp32 spacing at the largest entropy: {fp32_spacing(ent.max().item()):.1e}"
    )


def fp32_spacing(value: float) -> float:
    """Distance between adjacent fp32 numbers near `value` (one unit in the last place)."""
    return torch.finfo(torch.float32).eps * 2.0 ** math.floor(math.log2(abs(value)))


def run_for_values(path: str, chunk: int | None, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    for k in ("hidden", "weight"):
        x[k].grad = None
    logp, entropy = forward_backward(path, chunk, x)
    out = {"logp": logp, "entropy": entropy, "grad_h": x["hidden"].grad, "grad_w": x["weight"].grad}
    for k in ("hidden", "weight"):
        x[k].grad = None
    return out


# ------------------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--vocab", type=int, default=151_936)
    ap.add_argument("--tokens", type=int, default=2048, help="B·T")
    ap.add_argument("--batch", type=int, default=2, help="B (T = tokens / B)")
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--logit-scale", type=float, default=2.0, help="std of the logits")
    ap.add_argument(
        "--chunks",
        type=int,
        nargs="+",
        default=[1024, 256, 128, 64],
        help="explicit chunk sizes to measure, beside the default (no chunk_size)",
    )
    ap.add_argument("--compare-tokens", type=int, default=256, help="token count of the small comparison")
    ap.add_argument("--skip-full-compare", action="store_true", help="skip the full-size value comparison")
    ap.add_argument("--skip-memory", action="store_true", help="skip the subprocess memory measurements")
    ap.add_argument("--skip-compare", action="store_true", help="skip both value comparisons")
    ap.add_argument("--worker", type=str, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tokens % args.batch:
        ap.error(f"--tokens ({args.tokens}) must be a multiple of --batch ({args.batch})")

    if args.worker is not None:
        print(json.dumps(worker(args.worker, args)))
        return

    print(
        f"torch {torch.__version__}, python {platform.python_version()}, "
        f"torch.get_num_threads() = {torch.get_num_threads()}, library sources {library_digest()}"
    )
    print(
        f"sizes: vocab {args.vocab}, {args.tokens} tokens (B={args.batch}, T={args.tokens // args.batch}), "
        f"hidden {args.dim}, fp32; one [tokens × vocab] fp32 block = {args.tokens * args.vocab * 4 / MB:.0f} MB, "
        f"weight = {args.vocab * args.dim * 4 / MB:.0f} MB"
    )

    if not args.skip_memory:
        specs = ["naive", "chunked"] + [f"chunked:{c}" for c in args.chunks]  # "chunked": the default
        results = []
        for spec in specs:
            results.append(measure_in_subprocess(spec, args))
            name = label(*parse_path(spec), args.tokens, args.vocab)
            print(f"  measured {name}: peak Δ {results[-1]['peak_increase'] / MB:.0f} MB", flush=True)
        print_memory_table(results, args)

    if not args.skip_compare:
        # Chunk 100 does not divide the token count: a ragged last chunk.
        compare_values(1, args.compare_tokens, args, [None, *args.chunks, 100])
        if not args.skip_full_compare:
            compare_values(args.batch, args.tokens, args, [None, *args.chunks])
        print(f"\n(this process's own peak RSS, value comparisons: {ru_maxrss_bytes() / MB:.0f} MB)")


if __name__ == "__main__":
    main()
