"""REPO and ADAPO inside TRL's `GRPOTrainer`: a thin subclass, the library's functions doing the work.

    from entropy_rl_lite.integrations.trl import EntropyControl, EntropyControlGRPOTrainer
    trainer = EntropyControlGRPOTrainer(model=..., reward_funcs=..., args=GRPOConfig(...), train_dataset=...,
                                        entropy_control=EntropyControl(repo="repo_r", zeta_control=True, adapo=True))

What it changes in TRL, and where (TRL >= 1.16, < 2; checked on import):
- `_compute_loss`: TRL's per-sequence advantages [B] become per-token REPO advantages [B, T] through
  `erl.shape_advantage` (REPO-R: `erl.repo_r`; REPO-D: ζ·β* over the micro-batch's tokens), using the
  current policy's per-token log-probs and entropies that TRL's loss pass computes anyway (intercepted
  in `_get_per_token_logps_and_entropies`, cast to fp32). TRL's loss accepts [B, T] advantages as is.
  The buffered batch is never mutated, so `num_iterations > 1` reuses the original advantages.
- Once per optimizer step (at the micro-batch where accelerate syncs gradients) the token-weighted
  entropy of the whole step is summed over micro-batches and all-reduced over ranks, so every rank feeds
  the same number to `ZetaController` / `EpsHighController` and holds the same ζ and ε_high. The new
  values apply from the next optimizer step (as TRL's own adaptive entropy coefficient does).
- ADAPO writes TRL's `epsilon_high` (the upper clip of its PPO-style losses).
- Controller state is saved next to every TRL checkpoint (`erl_entropy_control.json`) and restored by
  `resume_from_checkpoint`. Metrics: `repo/zeta`, `adapo/eps_high`, `erl/entropy` (TRL logs `entropy` too).

Precision: TRL computes log-probs with its fused LM head; pass `cast_lm_head_to_fp32=True` for a bf16 model
(this adapter warns when a non-fp32 model runs without it), so the ratios and REPO-R's log π are fp32.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import torch

from .._checks import check_choice, check_number
from ..entropy_control import EntropyControlFields, EntropyControls
from ..repo import ZETA_LIMIT, shape_advantage

try:
    import trl
    from packaging.version import Version
    from trl import GRPOTrainer
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError("entropy_rl_lite.integrations.trl needs TRL: pip install 'entropy-rl-lite[trl]'") from e

SUPPORTED_TRL = (Version("1.16"), Version("2.0"))  # [low, high): the extension points read below exist there
if not SUPPORTED_TRL[0] <= Version(trl.__version__) < SUPPORTED_TRL[1]:
    raise ImportError(
        f"entropy_rl_lite.integrations.trl supports TRL >= {SUPPORTED_TRL[0]}, < {SUPPORTED_TRL[1]} "
        f"(it overrides GRPOTrainer._compute_loss and _get_per_token_logps_and_entropies); "
        f"found trl {trl.__version__}"
    )

SUPPORTED_REPO = (None, "repo_r", "repo_d")
REPO_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo")  # losses that multiply a per-token advantage
ADAPO_LOSSES = ("grpo", "bnpo", "dr_grpo", "dapo")  # losses whose epsilon_high is PPO's upper clip
STATE_FILE = "erl_entropy_control.json"


@dataclass(frozen=True)
class EntropyControl(EntropyControlFields):
    """Which entropy control to run inside TRL: `EntropyControlFields`, the same names, defaults and checks as
    `erl.llm.TrainConfig`'s, narrowed to what the adapter runs. ADAPO's start value is TRL's `epsilon_high`.

    repo: None, "repo_r" or "repo_d" [ours: REPO-D's β over the micro-batch]. Not available here: repo="beta" /
    "decorrelate" and the explicit entropy bonus (the adapter adds no term to TRL's loss). The `beta` field is
    REPO's β (unused by these variants), not GRPOConfig's KL coefficient `beta`.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("repo", self.repo, SUPPORTED_REPO)
        if self.entropy_coef != 0 or self.entropy_coef_control:
            raise ValueError(
                "the TRL adapter has no explicit entropy bonus: leave entropy_coef = 0 and "
                "entropy_coef_control = False (REPO is the bonus estimated from sampled tokens)"
            )
        # ζ reaches erl.shape_advantage at every loss pass, which refuses |ζ| > ZETA_LIMIT: refuse it here, and a
        # zeta_max the controller could grow ζ to, instead of failing mid-training.
        if self.repo is not None:
            check_number("zeta", abs(self.zeta), high=ZETA_LIMIT)
            if self.zeta_control:
                check_number("zeta_max", self.zeta_max, high=ZETA_LIMIT)

    def check_epsilon_high(self, epsilon_high: float) -> None:
        """ADAPO starts at TRL's epsilon_high: it must lie in [eps_high_min, eps_high_max]."""
        if self.adapo and not self.eps_high_min <= epsilon_high <= self.eps_high_max:
            raise ValueError(
                f"GRPOConfig's epsilon_high = {epsilon_high:g} (ADAPO's start value) must lie in "
                f"[eps_high_min, eps_high_max] = [{self.eps_high_min:g}, {self.eps_high_max:g}]"
            )


def _is_entropy_control(x: object) -> bool:
    """An EntropyControl, also one made before this module was reloaded (its class is then another object)."""
    return isinstance(x, EntropyControlFields) and type(x).__name__ == EntropyControl.__name__


def _epsilon_high(args: Any) -> float | None:
    """TRL's upper clip from a GRPOConfig as GRPOTrainer reads it (epsilon_high, else epsilon); None without one."""
    if args is None:
        return None
    eps = getattr(args, "epsilon_high", None)
    return getattr(args, "epsilon", None) if eps is None else eps


class EntropyControlGRPOTrainer(GRPOTrainer):
    """TRL's GRPOTrainer with REPO advantages and ADAPO's ε_high controller (see the module docstring)."""

    def __init__(self, *args: Any, entropy_control: EntropyControl | None = None, **kwargs: Any) -> None:
        if entropy_control is not None and not _is_entropy_control(entropy_control):
            raise TypeError(f"entropy_control must be an EntropyControl, got {type(entropy_control).__name__}")
        ec = entropy_control or EntropyControl()
        # Before GRPOTrainer builds (model, datasets, generation): TRL's args are GRPOTrainer's third parameter.
        eps = _epsilon_high(kwargs["args"] if "args" in kwargs else (args[2] if len(args) > 2 else None))
        if eps is not None:
            ec.check_epsilon_high(eps)
        super().__init__(*args, **kwargs)
        self.entropy_control = ec
        if getattr(self.args, "use_liger_loss", False):
            raise ValueError(
                "use_liger_loss=True computes the GRPO loss in a fused kernel that takes one advantage "
                "per sequence; REPO's per-token advantages and ADAPO's epsilon_high cannot reach it. "
                "Turn it off to use entropy control."
            )
        if ec.repo is not None and self.loss_type not in REPO_LOSSES:
            raise ValueError(
                f"REPO needs a loss that multiplies per-token advantages {REPO_LOSSES}, "
                f"got loss_type={self.loss_type!r}"
            )
        if ec.adapo and self.loss_type not in ADAPO_LOSSES:
            raise ValueError(
                f"ADAPO steers PPO's upper clip: loss_type must be one of {ADAPO_LOSSES}, got {self.loss_type!r}"
            )
        if (
            ec.adapo
            and self.args.num_iterations == 1
            and self.args.steps_per_generation <= self.args.gradient_accumulation_steps
        ):
            warnings.warn(
                "ADAPO is inert here: with num_iterations=1 and one generation batch per optimizer step the "
                "ratio is exactly 1, so epsilon_high never binds (set num_iterations > 1)",
                stacklevel=2,
            )
        dtype = next(self.model.parameters()).dtype
        if dtype != torch.float32 and not self.args.cast_lm_head_to_fp32:
            warnings.warn(
                f"the model runs in {dtype} without cast_lm_head_to_fp32=True: log-probs, ratios and REPO's "
                "log π are then not computed in fp32 (chapter 05)",
                stacklevel=2,
            )
        self.controls = EntropyControls(ec, eps_high=self.epsilon_high)  # ζ and ε_high; TRL's epsilon_high starts it
        self._erl_window: torch.Tensor | None = None  # [Σ mask·H, Σ mask] over the micro-batches of one step
        self._erl_pending: Any = None
        self.erl_history: list[dict[str, float]] = []  # per optimizer step: entropy, zeta, eps_high (what ran)

    @property
    def _erl_active(self) -> bool:
        ec = self.entropy_control
        return ec.repo is not None or ec.adapo or ec.zeta_control

    # -- the loss pass ----------------------------------------------------------------------------------
    def _get_per_token_logps_and_entropies(self, *args: Any, **kwargs: Any):  # noqa: ANN202
        logps, entropies, aux = super()._get_per_token_logps_and_entropies(*args, **kwargs)
        hook, self._erl_pending = self._erl_pending, None
        if hook is not None:  # only the current-policy pass inside _compute_loss sets it
            if entropies is None:
                raise RuntimeError(
                    "TRL's loss pass returned no entropies; this TRL version computes the loss "
                    "differently from what the adapter supports"
                )
            hook(logps, entropies)
        return logps, entropies, aux

    def _compute_loss(self, model: Any, inputs: dict[str, Any]) -> torch.Tensor:
        if not self._erl_active:
            return super()._compute_loss(model, inputs)
        inputs = dict(inputs)  # TRL reuses the buffered batch for num_iterations > 1: never mutate it
        mask = (
            inputs["completion_mask"] if "tool_mask" not in inputs else inputs["completion_mask"] * inputs["tool_mask"]
        )
        training = self.model.training
        ec = self.entropy_control

        def hook(logps: torch.Tensor, entropies: torch.Tensor) -> None:
            logp, ent, w = logps.detach().float(), entropies.detach().float(), mask.float()
            if ec.repo is not None:
                adv = inputs["advantages"].float()
                adv = adv[:, None].expand_as(logp) if adv.dim() == 1 else adv
                variant = "repo_r" if ec.repo == "repo_r" else "repo_d"
                inputs["advantages"] = shape_advantage(
                    adv, logp, ent, w, variant, zeta=float(self.controls.zeta), dim=(-2, -1)
                )
            if training:
                stats = torch.stack([(ent * w).sum(), w.sum()])
                self._erl_window = stats if self._erl_window is None else self._erl_window + stats

        self._erl_pending = hook
        try:
            loss = super()._compute_loss(model, inputs)
        finally:
            self._erl_pending = None
        if training and self.accelerator.sync_gradients and self._erl_window is not None:
            self._erl_step_end()
        return loss

    def _erl_step_end(self) -> None:
        """The optimizer-step boundary: one global entropy, one controller update, identical on every rank."""
        local = self._erl_window
        total = self.accelerator.reduce(local, reduction="sum")
        self._erl_window = None
        entropy = (total[0] / total[1].clamp(min=1.0)).item()
        # Logged: the values this step ran with (as erl.llm.Trainer logs them), then the update for the next step.
        zeta, eps_high = float(self.controls.zeta), float(self.controls.eps_high)
        self.erl_history.append(
            {
                "entropy": entropy,
                "local_entropy": (local[0] / local[1].clamp(min=1.0)).item(),
                "zeta": zeta,
                "eps_high": eps_high,
            }
        )
        metrics = self._metrics["train"]
        metrics["erl/entropy"].append(entropy)
        if self.entropy_control.repo is not None:
            metrics["repo/zeta"].append(zeta)
        if self.entropy_control.adapo:
            metrics["adapo/eps_high"].append(eps_high)
        self.controls.update(entropy)
        self.epsilon_high = float(self.controls.eps_high)  # what TRL's clipped loss reads

    # -- checkpoints ------------------------------------------------------------------------------------
    def erl_state_dict(self) -> dict[str, Any]:
        """Controller state and the values in force (JSON-serialisable)."""
        return {
            "zeta": float(self.controls.zeta),
            "epsilon_high": self.epsilon_high,
            "config": asdict(self.entropy_control),
            "controllers": self.controls.state_dict(),
        }

    def erl_load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `erl_state_dict()`: the controllers, and TRL's epsilon_high in force."""
        self.controls.load_state_dict(state["controllers"])
        self.epsilon_high = state["epsilon_high"]

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        super()._save_checkpoint(model, trial)
        if self._erl_active and self.args.should_save:
            from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

            folder = os.path.join(
                self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            )
            with open(os.path.join(folder, STATE_FILE), "w") as f:
                json.dump(self.erl_state_dict(), f)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if self._erl_active and checkpoint is not None:
            path = os.path.join(checkpoint, STATE_FILE)
            if os.path.exists(path):
                with open(path) as f:
                    self.erl_load_state_dict(json.load(f))
