"""A character-level tokenizer for transformers: works with `generate`, `save_pretrained`, `from_pretrained`.

Vocabulary layout (ids are stable: they depend only on the alphabet, never on insertion order)::

    0: <pad>   1: <bos>   2..: one id per alphabet character, in alphabet order

Decisions:

* **eos is the end marker ``"."``**, not a separate token. The text tasks stop a completion at ``"."``
  (`cut_at_end`), so making it the model's eos means `generate` stops exactly where the environment
  cuts, and there is a single "stop" action whose probability (and entropy) we measure. It is a
  special token, so ``decode(..., skip_special_tokens=True)`` drops it; keep it with the default
  ``skip_special_tokens=False``.
* **Every encoded sequence starts with <bos>**, giving the model a fixed first position, so a
  one-character prompt still has a context token. Decoding with ``skip_special_tokens=True`` drops it.
* **Left padding by default**: decoder-only `generate` appends new tokens at the right end of each row,
  so padding must sit on the left or new tokens would follow pad tokens for shorter prompts.
* **No unk token**: a character outside the alphabet raises ValueError naming it. The tasks have closed
  alphabets, so an unknown character is a bug upstream, and mapping it to unk would hide it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import PreTrainedTokenizer, PreTrainedTokenizerBase

# Matches environments.text_tasks.VOCAB (digits, separator "=", end marker "."); the library does
# not import `environments`, so it is restated here and the tests check the two agree.
DEFAULT_ALPHABET = "0123456789=."
PAD, BOS = "<pad>", "<bos>"


class CharTokenizer(PreTrainedTokenizer):
    """One token per character of `alphabet`, plus <pad> and <bos>; eos is the end-marker character."""

    vocab_files_names: dict[str, str] = {}  # no vocab file: `alphabet` is saved in tokenizer_config.json
    model_input_names = ["input_ids", "attention_mask"]  # no token_type_ids: a causal LM takes none

    def __init__(
        self, alphabet: str = DEFAULT_ALPHABET, eos_token: str | Any = ".", padding_side: str = "left", **kwargs: Any
    ) -> None:
        """Build the vocabulary from `alphabet` (distinct single characters, containing `eos_token`)."""
        if not isinstance(alphabet, str) or not alphabet:
            raise ValueError(f"alphabet must be a non-empty string, got {alphabet!r}")
        if len(set(alphabet)) != len(alphabet):
            raise ValueError(f"alphabet has repeated characters: {alphabet!r}")
        eos_token = str(eos_token)  # from_pretrained passes an AddedToken
        if eos_token not in alphabet:
            raise ValueError(f"eos_token {eos_token!r} must be a character of the alphabet {alphabet!r}")
        for key in ("pad_token", "bos_token", "unk_token"):  # fixed by design; saved configs repeat them
            kwargs.pop(key, None)
        kwargs.pop("special_tokens_pattern", None)
        kwargs.pop("token_type_ids_pattern", None)
        self.alphabet = alphabet
        # The vocab must exist before the base __init__, which looks special tokens up in it.
        self._vocab: dict[str, int] = {PAD: 0, BOS: 1, **{c: i + 2 for i, c in enumerate(alphabet)}}
        self._inv_vocab: dict[int, str] = {i: t for t, i in self._vocab.items()}
        super().__init__(
            alphabet=alphabet,
            pad_token=PAD,
            bos_token=BOS,
            eos_token=eos_token,
            padding_side=padding_side,
            special_tokens_pattern="bos",
            token_type_ids_pattern="all_zeros",
            **kwargs,
        )

    @property
    def vocab_size(self) -> int:
        """Number of ids: <pad>, <bos> and the alphabet."""
        return len(self._vocab)

    def get_vocab(self) -> dict[str, int]:
        """Token-to-id mapping (a copy)."""
        return dict(self._vocab)

    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """Split into characters, rejecting any outside the alphabet."""
        for ch in text:
            if ch not in self._vocab:
                raise ValueError(f"character {ch!r} is not in the tokenizer alphabet {self.alphabet!r}")
        return list(text)

    def _convert_token_to_id(self, token: str) -> int:
        """Id of a token; unknown tokens raise (there is no unk)."""
        if token not in self._vocab:
            raise ValueError(f"token {token!r} is not in the tokenizer vocabulary")
        return self._vocab[token]

    def _convert_id_to_token(self, index: int) -> str:
        """Token of an id; out-of-range ids raise."""
        if index not in self._inv_vocab:
            raise ValueError(f"id {index} is out of range for a vocabulary of {self.vocab_size}")
        return self._inv_vocab[index]

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Concatenate characters (the base class would join with spaces)."""
        return "".join(tokens)

    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        """Nothing to write: `alphabet` is saved in tokenizer_config.json by `save_pretrained`."""
        return ()


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The tokenizer saved beside a local checkpoint: a `CharTokenizer` if it is one, else transformers'
    AutoTokenizer (local files only), set up for generation (left padding; pad = eos when it has no pad)."""
    from .model import refuse_remote_code

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such directory: {str(path)!r} (a tokenizer is loaded from a local checkpoint)")
    config = path / "tokenizer_config.json"
    if not config.is_file():
        raise FileNotFoundError(
            f"no tokenizer at {str(path)!r} (expected tokenizer_config.json, as save_pretrained writes it)"
        )
    if refuse_remote_code(config).get("tokenizer_class") == "CharTokenizer":
        return CharTokenizer.from_pretrained(str(path))
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
    tok.padding_side = "left"  # decoder-only generation appends at the right
    if tok.pad_token is None:
        if tok.eos_token is None:
            raise ValueError(
                f"the tokenizer at {str(path)!r} has neither a pad nor an eos token; a completion could never end"
            )
        tok.pad_token = tok.eos_token
    return tok
