"""Tests for `entropy_rl_lite.llm.CharTokenizer`: round trips, special ids, padding, save/load, generate."""

from __future__ import annotations

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from entropy_rl_lite.llm import CharTokenizer
from entropy_rl_lite.llm.tokenizer import DEFAULT_ALPHABET
from environments.text_tasks import END, VOCAB, correct_answers, cut_at_end, make_prompts, verify


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer()


def test_default_alphabet_matches_text_tasks(tok):
    assert DEFAULT_ALPHABET == VOCAB
    assert tok.eos_token == END


def test_round_trip_every_character(tok):
    for ch in VOCAB:
        ids = tok(ch)["input_ids"]
        assert ids == [tok.bos_token_id, tok.convert_tokens_to_ids(ch)]
        assert tok.decode(ids) == tok.bos_token + ch
        if ch != END:  # eos is special, so skip_special_tokens drops it (documented)
            assert tok.decode(ids, skip_special_tokens=True) == ch
    assert tok.decode(tok(VOCAB, add_special_tokens=False)["input_ids"]) == VOCAB


def test_round_trip_text_task_prompts_and_answers(tok):
    for prompt in make_prompts(0, 27):
        answers = correct_answers(prompt)
        for text in [prompt, *answers, *(prompt + a for a in answers)]:
            assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text
        if not answers:  # "0=" has no correct (non-empty) answer
            continue
        full = prompt + answers[0] + END  # with the end marker kept, decoding is exact and cut_at_end agrees
        ids = tok(full, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == full and ids[-1] == tok.eos_token_id
        assert cut_at_end(tok.decode(ids)[len(prompt) :]) == answers[0]


def test_special_ids_distinct_and_stable(tok):
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2 + VOCAB.index(END))
    assert len({tok.pad_token_id, tok.bos_token_id, tok.eos_token_id}) == 3
    assert len(tok) == tok.vocab_size == len(VOCAB) + 2
    assert tok.unk_token is None
    assert sorted(tok.get_vocab().values()) == list(range(len(tok)))
    assert CharTokenizer().get_vocab() == tok.get_vocab()


def test_left_padding_and_attention_mask(tok):
    assert tok.padding_side == "left"
    batch = tok(["7=", "12="], padding=True, return_tensors="pt")
    p, b = tok.pad_token_id, tok.bos_token_id
    assert batch["input_ids"].tolist() == [
        [p, b, *tok.convert_tokens_to_ids(list("7="))],
        [b, *tok.convert_tokens_to_ids(list("12="))],
    ]
    assert batch["attention_mask"].tolist() == [[0, 1, 1, 1], [1, 1, 1, 1]]
    assert set(batch) == {"input_ids", "attention_mask"}


def test_save_and_load_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    loaded = CharTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.alphabet == tok.alphabet and loaded.padding_side == "left"
    assert loaded.all_special_ids == tok.all_special_ids
    assert (loaded.pad_token_id, loaded.bos_token_id, loaded.eos_token_id) == (
        tok.pad_token_id,
        tok.bos_token_id,
        tok.eos_token_id,
    )
    assert loaded(["7=", "12="], padding=True)["input_ids"] == tok(["7=", "12="], padding=True)["input_ids"]


def test_custom_alphabet_save_and_load(tmp_path):
    tok = CharTokenizer(alphabet="ab;", eos_token=";")
    tok.save_pretrained(tmp_path)
    loaded = CharTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab() and loaded.eos_token_id == tok.convert_tokens_to_ids(";")


def test_generate_with_tiny_llama(tok):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    model = LlamaForCausalLM(config).eval()
    prompts = ["7=", "12=", "3="]
    batch = tok(prompts, padding=True, return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=4, do_sample=True)
    n_in = batch["input_ids"].shape[1]
    assert out.shape[0] == len(prompts) and n_in < out.shape[1] <= n_in + 4
    for prompt, row in zip(prompts, out):
        text = tok.decode(row, skip_special_tokens=True)
        assert text.startswith(prompt) and set(text) <= set(VOCAB)
        verify(prompt, cut_at_end(tok.decode(row[n_in:])))  # a string the verifier takes


@pytest.mark.parametrize("text", ["7x", "1 2", "a=", "7=\n"])
def test_unknown_character_raises(tok, text):
    with pytest.raises(ValueError, match="not in the tokenizer alphabet"):
        tok(text)


@pytest.mark.parametrize(
    "kwargs", [dict(alphabet=""), dict(alphabet="0012."), dict(alphabet="012"), dict(alphabet=["0", "."])]
)
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError):
        CharTokenizer(**kwargs)


def test_out_of_range_id_raises(tok):
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([len(tok)])
