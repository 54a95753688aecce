"""FLOP accounting for the MFU estimate of the training forward/backward.

Per token of a sequence of length S fed through a decoder-only transformer (Kaplan et al. 2020,
PaLM appendix B):

    forward  ≈ 2·N + 4·n_layer·S·d_model      (N: parameters in matmuls, i.e. all but the input embedding;
                                                the second term is QKᵀ and attention·V over S positions)
    backward ≈ 2·N (gradients of activations) + 2·N_train (gradients of trainable weights) + 8·n_layer·S·d_model
    training = 4·N + 2·N_train + 12·n_layer·S·d_model,   which is 6·N + 12·n_layer·S·d_model when every weight
               trains, and about 4·N + ... for LoRA, whose frozen weights need no weight gradients

MFU = achieved training FLOP/s ÷ the device's peak dense bf16 FLOP/s. The no-grad log-prob pass and
`generate` are not counted (they are inference work; tokens/s covers them).
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel

# Dense bf16 tensor-core peaks (FLOP/s) from the vendors' datasheets, matched against the device name.
PEAK_BF16_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 70e12, "L4": 121e12}


def _lookup_only(model: PreTrainedModel) -> torch.Tensor | None:
    """The input embedding table, unless it is tied to the output layer (then it is a matmul too)."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    return None if head is not None and head.weight is emb else emb


def matmul_params(model: PreTrainedModel) -> int:
    """N: parameters that take part in matmuls (everything except an untied input embedding table)."""
    emb = _lookup_only(model)
    return sum(p.numel() for p in model.parameters() if p is not emb)


def train_flops(model: PreTrainedModel, tokens: int, seq_len: int) -> float:
    """Forward + backward FLOPs for `tokens` tokens in sequences of `seq_len`: (4N + 2N_train + 12·L·S·d)·tokens."""
    cfg = model.config
    emb = _lookup_only(model)
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad and p is not emb)
    return (4 * matmul_params(model) + 2 * n_train + 12 * cfg.num_hidden_layers * seq_len * cfg.hidden_size) * tokens


def peak_flops(device: torch.device | str) -> float | None:
    """Peak dense bf16 FLOP/s of a CUDA device we know; None for CPUs and unknown GPUs (no MFU then)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    import re

    name = torch.cuda.get_device_name(device)
    # Whole-word match, so "L4" does not claim an "L40S".
    return next((v for k, v in PEAK_BF16_FLOPS.items() if re.search(rf"\b{k}\b", name)), None)


def throughput(
    model: PreTrainedModel,
    rollout: Any,
    epochs: int,
    device: torch.device,
    t_rollout: float,
    t_update: float,
    elapsed: float,
) -> dict[str, Any]:
    """A step's speed: completion tokens per second, wall times, achieved training TFLOP/s and MFU (None on CPU)."""
    tokens = int(rollout.completion_mask.sum().item())
    # Every update feeds its rows' real tokens (prompt + completion) forward and backward.
    flops = epochs * train_flops(model, int(rollout.attention_mask.sum().item()), rollout.input_ids.shape[1])
    peak = peak_flops(device)
    return {
        "tokens": tokens,
        "tokens_per_s": tokens / elapsed,
        "rollout_time_s": t_rollout,
        "update_time_s": t_update,
        "step_time_s": elapsed,
        "train_tflops": flops / t_update / 1e12,
        "mfu": flops / t_update / peak if peak else None,
    }
