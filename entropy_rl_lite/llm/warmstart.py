"""Supervised warm-start: a short imitation phase so RL starts from a calibrated but imperfect policy.

RL from a random transformer would spend its budget learning the answer format. Instead we first fit
the policy to uniformly drawn correct answers for a few hundred steps [ours]. Stopping early leaves it
imperfect (reward well below 1, so there is something to learn) and spread over many correct answers
(so there is diversity for RL to collapse), with its likely answers mostly the rewarded ones: the
"calibrated" start under which Theorem 1 predicts falling entropy.
"""

from __future__ import annotations

import torch
from tqdm import tqdm  # plain tqdm: tqdm.auto warns in Jupyter without ipywidgets
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from .._checks import check_int, check_number
from .rollout import completion_logprobs, rollout_from_text
from .task import TextTask


def warm_start(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    task: TextTask,
    steps: int = 200,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
    progress: bool = False,
    chunk_size: int | None = None,
) -> list[float]:
    """Fit `model` to (prompt, uniformly random correct answer) pairs; returns the loss of every step.

    Loss: mean negative log-likelihood per completion token (end token included), computed by the
    library's fp32 path. Prompts and answers are drawn from a generator seeded with `seed`.
    """
    check_int("steps", steps, low=0)
    check_int("batch_size", batch_size, low=1)
    check_number("lr", lr, low=0.0)
    gen = torch.Generator().manual_seed(check_int("seed", seed, low=0))
    answers = {p: task.correct_answers(p) for p in task.prompts}
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    device = next(model.parameters()).device
    model.train()
    losses = []
    for _ in tqdm(range(steps), disable=not progress, desc="warm start"):
        idx = torch.randint(len(task.prompts), (batch_size,), generator=gen).tolist()
        prompts = [task.prompts[i] for i in idx]
        picks = [answers[p][int(torch.randint(len(answers[p]), (1,), generator=gen))] for p in prompts]
        batch = rollout_from_text(tokenizer, prompts, picks, task.max_len + 1).to(device)
        logp, _ = completion_logprobs(model, batch, chunk_size)
        mask = batch.completion_mask
        loss = -(logp * mask).sum() / mask.sum()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses
