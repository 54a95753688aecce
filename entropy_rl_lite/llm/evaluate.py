"""Evaluation of a text-task policy: accuracy, pass@k and the diversity of its correct answers."""

from __future__ import annotations

from typing import Any, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._checks import check_int
from ..aggregation import masked_mean
from ..metrics import distinct_correct, pass_at_k
from .rollout import Rollout, completion_logprobs, rng_devices, rollout_from_text, sample, seed_rng
from .task import TextTask


def group_metrics(rollout: Rollout, rewards: torch.Tensor, ks: Sequence[int]) -> dict[str, float]:
    """Per-prompt statistics of a grouped batch, averaged over prompts.

    rewards [N] (1 = correct). pass@k is the unbiased estimator from the G samples of each prompt;
    distinct_correct counts the different correct strings among them (its ceiling is G).
    """
    G = rollout.group_size
    correct = (rewards > 0).reshape(-1, G)
    out: dict[str, float] = {}
    for k in ks:
        out[f"pass@{k}"] = sum(pass_at_k(G, int(c), k) for c in correct.sum(1).tolist()) / correct.shape[0]
    counts = []
    for g in range(correct.shape[0]):
        texts = rollout.completions[g * G : (g + 1) * G]
        counts.append(distinct_correct(texts, is_correct=correct[g].tolist()))
    out["distinct_correct"] = sum(counts) / len(counts)
    return out


@torch.no_grad()
def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: TextTask,
    samples_per_prompt: int = 32,
    ks: Sequence[int] = (1, 8),
    temperature: float = 1.0,
    seed: int = 0,
    prompts: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Sample every prompt `samples_per_prompt` times; report means over prompts and a per-prompt table.

    Returns {"reward", "pass@k" for k in ks, "distinct_correct", "entropy" (token-mean, nats),
    "per_prompt": [{"prompt", "accuracy", "distinct_correct", "n_correct_answers"}]}. Sampling uses its
    own RNG seeded with `seed`, so evaluating does not move the caller's random stream.
    """
    G = check_int("samples_per_prompt", samples_per_prompt, low=1)
    if any(k > G for k in ks):
        raise ValueError(f"every k in ks must be <= samples_per_prompt={G}, got {list(ks)}")
    prompts = list(task.prompts if prompts is None else prompts)
    device = next(model.parameters()).device
    with torch.random.fork_rng(devices=rng_devices(device)):
        seed_rng(check_int("seed", seed, low=0), device)
        batch = sample(model, tokenizer, prompts, G, task.max_len + 1, temperature)
    _, ent = completion_logprobs(model, batch, temperature=temperature)
    mask = batch.completion_mask
    rewards = torch.tensor([float(task.verify(prompts[i // G], c)) for i, c in enumerate(batch.completions)])
    out: dict[str, Any] = {
        "reward": rewards.mean().item(),
        **group_metrics(batch, rewards, ks),
        "entropy": masked_mean(ent, mask).item(),
    }
    per_prompt = []
    for g, p in enumerate(prompts):
        ok = rewards[g * G : (g + 1) * G] > 0
        texts = batch.completions[g * G : (g + 1) * G]
        n_correct = getattr(task, "n_correct_answers", None)
        per_prompt.append(
            {
                "prompt": p,
                "accuracy": ok.float().mean().item(),
                "distinct_correct": distinct_correct(texts, is_correct=ok.tolist()),
                "n_correct_answers": n_correct(p) if n_correct else len(task.correct_answers(p)),
            }
        )
    out["per_prompt"] = per_prompt
    return out


@torch.no_grad()
def correct_mass(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: TextTask,
    prompts: Sequence[str] | None = None,
    batch_size: int = 4096,
) -> torch.Tensor:
    """Exact probability of answering each prompt correctly, by scoring every correct answer: [prompts] float64.

    π(correct | x) = Σ_{a correct} π(a, then the end token | x), each term a sum of fp32 token log-probs.
    No sampling, so no noise: this is what the sampled reward estimates. Needs `task.correct_answers`.
    """
    prompts = list(task.prompts if prompts is None else prompts)
    pairs = [(i, a) for i, p in enumerate(prompts) for a in task.correct_answers(p)]
    device = next(model.parameters()).device
    mass = torch.zeros(len(prompts), dtype=torch.float64)
    for start in range(0, len(pairs), check_int("batch_size", batch_size, low=1)):
        part = pairs[start : start + batch_size]
        scored = rollout_from_text(tokenizer, [prompts[i] for i, _ in part], [a for _, a in part], task.max_len + 1).to(
            device
        )
        logp, _ = completion_logprobs(model, scored)  # [answers, T] fp32
        answer_p = (logp * scored.completion_mask).sum(1).exp().double().cpu()  # π(answer + end | x)
        mass.index_add_(0, torch.tensor([i for i, _ in part]), answer_p)
    return mass
