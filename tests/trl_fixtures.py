"""Shared setup for the TRL adapter tests: a tiny random model, SumTo prompts, a verifier reward.

Also a script: `accelerate launch --multi_gpu --num_processes 2 tests/trl_fixtures.py OUT` trains through the
adapter on two ranks and writes each rank's per-step (entropy, ζ, ε_high) to OUT/rank<i>.json.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from datasets import Dataset  # noqa: E402
from trl import GRPOConfig  # noqa: E402

from entropy_rl_lite.integrations.trl import EntropyControl, EntropyControlGRPOTrainer  # noqa: E402
from entropy_rl_lite.llm import CharTokenizer, build_model, warm_start  # noqa: E402
from environments.text_tasks import SumToEnv  # noqa: E402

TASK = SumToEnv()
# TRL and transformers 5 call each other's deprecated names; nothing of ours to fix.
warnings.filterwarnings("ignore", message=".*(gradient|activation)_checkpointing.*", category=FutureWarning)


def reward(prompts: list[str], completions: list[str], **_: object) -> list[float]:
    """1 for a correct SumTo answer, else 0 (the environment's verifier)."""
    return [float(TASK.verify(p, c)) for p, c in zip(prompts, completions)]


def make_trainer(
    out: str | Path, control: EntropyControl, max_steps: int = 4, warm_steps: int = 40, **args: object
) -> EntropyControlGRPOTrainer:
    """A warm-started ci model under the adapter: 16 completions per step (4 prompts × 4), 2 iterations per batch."""
    tok = CharTokenizer()
    model = build_model(tok, "ci", seed=0)
    warm_start(model, tok, TASK, steps=warm_steps, batch_size=32)  # rewards vary, so advantages are not all 0
    config = dict(
        output_dir=str(out),
        per_device_train_batch_size=16,
        num_generations=4,
        max_completion_length=4,
        max_steps=max_steps,
        learning_rate=3e-3,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        bf16=False,
        num_iterations=2,
        beta=0.0,
        loss_type="dapo",
        epsilon=0.2,
        epsilon_high=0.28,
        top_k=0,
        temperature=1.0,
        seed=0,
        disable_tqdm=True,
    )
    config.update(args)
    return EntropyControlGRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=GRPOConfig(**config),
        train_dataset=Dataset.from_dict({"prompt": list(TASK.prompts) * 40}),
        processing_class=tok,
        entropy_control=control,
    )


if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    trainer = make_trainer(
        out,
        EntropyControl(repo="repo_r", zeta=0.05, zeta_control=True, zeta_max=1.0, adapo=True),
        max_steps=4,
        per_device_train_batch_size=8,
    )
    trainer.train()
    rank = trainer.accelerator.process_index
    state = trainer.accelerator.state
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
    (out / f"rank{rank}.json").write_text(
        json.dumps(
            {
                "history": trainer.erl_history,
                "world": state.num_processes,
                "distributed_type": str(state.distributed_type),
                "backend": backend,
            }
        )
    )
