"""Tests for `entropy_rl_lite.llm` profiles and model factory: sizes, determinism, save/load, generate, log-probs."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import entropy_rl_lite as erl
from entropy_rl_lite.llm import (
    PROFILES,
    CharTokenizer,
    ModelSize,
    build_model,
    count_parameters,
    lm_head_weight,
    load_model,
    resolve_profile,
)

TINY_QWEN = dataclasses.replace(PROFILES["ci"], arch="qwen2")


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer()


@pytest.mark.parametrize("name", ["ci", "cpu", "gpu"])
def test_profile_resolves_explicitly_and_from_env(name, monkeypatch):
    assert resolve_profile(name) == name
    monkeypatch.setenv("ERL_PROFILE", name)
    assert resolve_profile() == name


def test_profile_detected_without_env(monkeypatch):
    monkeypatch.delenv("ERL_PROFILE", raising=False)
    assert resolve_profile() == ("gpu" if torch.cuda.is_available() else "ci")


def test_unknown_profile_raises_listing_known(monkeypatch):
    with pytest.raises(ValueError, match="ci.*cpu.*gpu"):
        resolve_profile("tpu")
    monkeypatch.setenv("ERL_PROFILE", "huge")
    with pytest.raises(ValueError, match="huge"):
        resolve_profile()


def test_model_size_is_frozen_and_validated():
    with pytest.raises(dataclasses.FrozenInstanceError):
        PROFILES["ci"].hidden_size = 64  # type: ignore[misc]
    with pytest.raises(ValueError, match="arch"):
        dataclasses.replace(PROFILES["ci"], arch="gpt2")


@pytest.mark.parametrize("size", ["ci", TINY_QWEN], ids=["llama", "qwen2"])
def test_ci_model_forward_shape_and_special_ids(tok, size):
    model = build_model(tok, size)
    assert model.config.model_type == ("llama" if size == "ci" else "qwen2")
    assert (model.config.vocab_size, model.config.pad_token_id) == (len(tok), tok.pad_token_id)
    assert (model.config.bos_token_id, model.config.eos_token_id) == (tok.bos_token_id, tok.eos_token_id)
    ids = torch.randint(0, len(tok), (3, 7))
    assert model(ids).logits.shape == (3, 7, len(tok))  # [B, T, V]


def test_same_seed_same_weights_different_seed_different(tok):
    a, b, c = (build_model(tok, "ci", seed=s).state_dict() for s in (0, 0, 1))
    assert a.keys() == b.keys() == c.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_seeding_leaves_global_rng_alone(tok):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model(tok, "ci", seed=7)
    assert torch.equal(torch.rand(3), expected)


def test_dtype_casts_the_same_weights(tok):
    w32 = lm_head_weight(build_model(tok, "ci"))
    w16 = lm_head_weight(build_model(tok, "ci", dtype=torch.bfloat16))
    assert w16.dtype == torch.bfloat16 and torch.equal(w16, w32.to(torch.bfloat16))


@pytest.mark.parametrize("size", ["ci", TINY_QWEN], ids=["llama", "qwen2"])
def test_save_load_round_trip_identical_logits(tok, tmp_path, size):
    model = build_model(tok, size, seed=3).eval()
    model.save_pretrained(tmp_path)
    loaded = load_model(tmp_path).eval()
    assert type(loaded) is type(model)
    ids = torch.randint(0, len(tok), (2, 9))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, loaded(ids).logits)
    assert load_model(tmp_path, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_load_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such directory.*hub ids are not downloaded"):
        load_model(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="hub ids are not downloaded"):  # looks like a hub id: not fetched
        load_model("Qwen/Qwen2.5-0.5B")
    with pytest.raises(FileNotFoundError, match="no local model checkpoint"):  # a directory without config.json
        load_model(tmp_path)


def test_generate_with_char_tokenizer_prompts(tok):
    model = build_model(tok, "ci").eval()
    batch = tok(["12=", "7="], return_tensors="pt", padding=True)
    out = model.generate(**batch, max_new_tokens=4, do_sample=True, pad_token_id=tok.pad_token_id)
    assert out.shape[0] == 2 and 1 <= out.shape[1] - batch["input_ids"].shape[1] <= 4
    assert isinstance(tok.decode(out[0]), str)


@pytest.mark.parametrize("size", ["ci", TINY_QWEN], ids=["llama", "qwen2"])
def test_token_logprobs_from_hidden_matches_model_logits(tok, size):
    # transformers applies the final norm before recording hidden_states[-1], so the head maps it to logits
    # directly; applying model.model.norm again would be wrong (this test would catch either mistake).
    model = build_model(tok, size, seed=1).eval()
    ids = torch.randint(0, len(tok), (4, 10))
    targets = torch.randint(0, len(tok), (4, 10))
    with torch.no_grad():
        out = model(ids, output_hidden_states=True)
        logp, ent = erl.token_logprobs(out.hidden_states[-1], lm_head_weight(model), targets)
    ref = torch.log_softmax(out.logits.float(), -1)
    torch.testing.assert_close(logp, ref.gather(-1, targets[..., None])[..., 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(ent, -(ref.exp() * ref).sum(-1), atol=1e-5, rtol=0)


def test_lm_head_weight_shape(tok):
    model = build_model(tok, "ci")
    assert lm_head_weight(model).shape == (len(tok), PROFILES["ci"].hidden_size)  # [V, D]


@pytest.mark.parametrize("name, low, high", [("ci", 1e4, 1e5), ("cpu", 1e6, 3e6), ("gpu", 50e6, 150e6)])
def test_profile_parameter_counts(tok, name, low, high):
    with torch.device("meta"):  # shapes only: the gpu model is never allocated
        model = build_model(tok, name)
    assert low <= count_parameters(model) <= high


def test_count_parameters_matches_formula(tok):
    s: ModelSize = PROFILES["gpu"]
    d, v, kv = s.hidden_size, len(tok), s.num_key_value_heads * (s.hidden_size // s.num_attention_heads)
    per_layer = 2 * d * d + 2 * d * kv + 3 * d * s.intermediate_size + 2 * d  # q,o + k,v + MLP + 2 norms
    expected = 2 * v * d + s.num_hidden_layers * per_layer + d  # embed + untied head + layers + final norm
    with torch.device("meta"):
        assert count_parameters(build_model(tok, s)) == expected
