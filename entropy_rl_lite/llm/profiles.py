"""Model sizes per run profile (docs/design.md, "Profiles"): ci (seconds), cpu (minutes), gpu (the real run).

Only sizes differ between profiles; every profile builds the same architecture through the same code, so
a ci run exercises exactly the code a gpu run does. Parameter counts below are measured with the default
14-token `CharTokenizer` and untied embeddings (tests/test_llm_model.py checks the ranges).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

ARCHS = ("llama", "qwen2")


@dataclass(frozen=True)
class ModelSize:
    """Shape of a decoder-only transformer; vocab and special ids come from the tokenizer, not from here."""

    arch: str  # "llama" (no attention biases) or "qwen2" (q/k/v biases); otherwise identical blocks
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int  # < num_attention_heads: grouped-query attention, as in current small LMs
    max_position_embeddings: int  # RoPE has no position parameters, so this bounds length at no size cost

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"arch must be one of {ARCHS}, got {self.arch!r}")
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("hidden_size must divide by num_attention_heads, and heads by num_key_value_heads")


PROFILES: dict[str, ModelSize] = {
    # 19,488 params; forward+backward on 16×12 tokens takes a few ms on one CPU core.
    "ci": ModelSize(
        "llama",
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
    ),
    # 1,971,840 params: learns the text tasks on a laptop in minutes.
    "cpu": ModelSize(
        "llama",
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=8,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    ),
    # 75,538,176 params (~0.3 GB in fp32): a real run on one GPU.
    "gpu": ModelSize(
        "llama",
        hidden_size=768,
        intermediate_size=2048,
        num_hidden_layers=12,
        num_attention_heads=12,
        num_key_value_heads=4,
        max_position_embeddings=1024,
    ),
}


def resolve_profile(name: str | None = None) -> str:
    """Profile name: `name` if given, else $ERL_PROFILE, else "gpu" when CUDA is available, else "ci"."""
    if name is None:
        name = os.environ.get("ERL_PROFILE") or ("gpu" if torch.cuda.is_available() else "ci")
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; known profiles: {sorted(PROFILES)}")
    return name
