"""Language-model pieces for Part II: tokenizer, profiles and model factory (rollout and trainer to follow)."""
from .model import build_model, count_parameters, lm_head_weight, load_model
from .profiles import PROFILES, ModelSize, resolve_profile
from .tokenizer import CharTokenizer

__all__ = ["CharTokenizer", "ModelSize", "PROFILES", "build_model", "count_parameters", "lm_head_weight",
           "load_model", "resolve_profile"]
