"""Language-model pieces for Part II: tokenizer, model factory, rollout, warm-start, trainer, checkpoints."""

from ..logs import TIMING_KEYS, MetricsLog, read_metrics  # the core's: reading logs needs no transformers
from .checkpoint import CheckpointError
from .config import TrainConfig
from .evaluate import correct_mass, evaluate, group_metrics
from .model import RemoteCodeRefused, build_model, count_parameters, lm_head_weight, load_model, quiet_progress
from .profiles import PROFILES, ModelSize, resolve_profile
from .rollout import Rollout, completion_logprobs, rollout_from_text, sample
from .sweep import RunResult, run_many
from .task import TextTask
from .tokenizer import CharTokenizer, load_tokenizer
from .trainer import Trainer, TrainingDiverged
from .warmstart import warm_start

__all__ = [
    "CharTokenizer",
    "CheckpointError",
    "MetricsLog",
    "ModelSize",
    "PROFILES",
    "RemoteCodeRefused",
    "Rollout",
    "RunResult",
    "TIMING_KEYS",
    "TextTask",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_model",
    "completion_logprobs",
    "correct_mass",
    "count_parameters",
    "evaluate",
    "group_metrics",
    "lm_head_weight",
    "load_model",
    "load_tokenizer",
    "quiet_progress",
    "read_metrics",
    "resolve_profile",
    "rollout_from_text",
    "run_many",
    "sample",
    "warm_start",
]
