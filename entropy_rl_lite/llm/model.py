"""Model factory for Part II: a randomly initialised Llama/Qwen2 causal LM sized by a profile, or a local checkpoint.

Nothing is downloaded: `build_model` uses a transformers config with random weights, and `load_model`
reads only a local directory (a string is never treated as a hub id).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor
from transformers import (
    AutoModelForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    Qwen2ForCausalLM,
)
from transformers.utils import logging as hf_logging

from .profiles import PROFILES, ModelSize, resolve_profile

_ARCH = {"llama": (LlamaConfig, LlamaForCausalLM), "qwen2": (Qwen2Config, Qwen2ForCausalLM)}


def build_model(
    tokenizer: PreTrainedTokenizerBase,
    profile: str | ModelSize | None = "ci",
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
) -> PreTrainedModel:
    """Random-init causal LM with vocab_size = len(tokenizer) and its pad/bos/eos ids (None: resolve_profile())."""
    size = profile if isinstance(profile, ModelSize) else PROFILES[resolve_profile(profile)]
    config_cls, model_cls = _ARCH[size.arch]
    config = config_cls(
        vocab_size=len(tokenizer),
        hidden_size=size.hidden_size,
        intermediate_size=size.intermediate_size,
        num_hidden_layers=size.num_hidden_layers,
        num_attention_heads=size.num_attention_heads,
        num_key_value_heads=size.num_key_value_heads,
        max_position_embeddings=size.max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,  # a separate head keeps lm_head_weight a distinct parameter for every profile
    )
    # fork_rng: seeding must make the weights reproducible without resetting the caller's global RNG stream.
    with torch.random.fork_rng(devices=[]):
        torch.random.default_generator.manual_seed(seed)  # CPU only: torch.manual_seed would reseed every GPU too
        model = model_cls(config)  # initialised in fp32, then cast, so one seed gives the same weights per dtype
    return cast_weights(model, dtype)


def cast_weights(model: PreTrainedModel, dtype: torch.dtype) -> PreTrainedModel:
    """Cast parameters and saved buffers to `dtype`; buffers a checkpoint does not store (RoPE's inv_freq)
    keep their dtype, as `from_pretrained` recomputes them in fp32: a saved bf16 run then resumes bit-exactly."""
    saved = set(model.state_dict())
    kept = {name: buf for name, buf in model.named_buffers() if name not in saved}
    model.to(dtype)
    for name, buf in kept.items():
        owner, _, leaf = name.rpartition(".")
        model.get_submodule(owner)._buffers[leaf] = buf
    return model


@contextmanager
def quiet_progress() -> Iterator[None]:
    """Hide transformers' load/save progress bars (instant for small models, noise in a notebook)."""
    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


@contextmanager
def quiet_peft() -> Iterator[None]:
    """peft 0.21 reads a transformers attribute deprecated in v5 (`is_gradient_checkpointing`); not ours to fix."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


class RemoteCodeRefused(ValueError):
    """A checkpoint asks transformers to import Python code shipped inside it; the library never does."""


def refuse_remote_code(config_file: Path) -> dict:
    """The parsed JSON config; refuses one whose `auto_map` would make transformers run the checkpoint's code."""
    try:
        config = json.loads(config_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{config_file}: not valid JSON ({e})") from None
    if isinstance(config, dict) and config.get("auto_map"):
        raise RemoteCodeRefused(
            f"{config_file} has an auto_map ({sorted(config['auto_map'])}): loading it would run Python code "
            "shipped with the checkpoint, which this library never does; use a model or tokenizer class that "
            "transformers itself provides, or remove auto_map if the class is a built-in one"
        )
    return config


def load_model(path: str | Path, dtype: torch.dtype | None = None) -> PreTrainedModel:
    """Causal LM from a local `save_pretrained` directory; dtype None keeps the checkpoint's own dtype."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"no such directory: {str(path)!r} (a model is a local checkpoint; hub ids are not downloaded)"
        )
    if not path.is_dir() or not (path / "config.json").is_file():
        # Checked here so a typo fails clearly instead of becoming a (blocked) hub download attempt.
        raise FileNotFoundError(
            f"no local model checkpoint at {str(path)!r} (expected a directory with "
            "config.json, as written by save_pretrained); hub ids are not loaded"
        )
    refuse_remote_code(path / "config.json")
    kwargs = {} if dtype is None else {"dtype": dtype}
    with quiet_progress():
        return AutoModelForCausalLM.from_pretrained(path, local_files_only=True, trust_remote_code=False, **kwargs)


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (a tied weight is counted once); works on meta-device models."""
    return sum(p.numel() for p in model.parameters())  # parameters() already de-duplicates shared tensors


def lm_head_weight(model: PreTrainedModel) -> Tensor:
    """Output-layer weight [V, D], to pair with hidden_states[-1] in `token_logprobs`."""
    return model.get_output_embeddings().weight
