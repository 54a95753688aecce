"""Language-model pieces for Part II: tokenizer (model factory, rollout and trainer to follow)."""
from .tokenizer import CharTokenizer

__all__ = ["CharTokenizer"]
