"""Rollouts: sample completions with `generate` (KV cache), then recompute their log-probs in fp32.

Sampling and scoring are separate on purpose. `generate` runs in the model's dtype and returns tokens;
the log-probabilities and entropies the loss sees are recomputed by one full forward pass through the
library's chunked fp32 path (`token_logprobs`), for the old policy and for every update, so that by default
logp_old and logp come from the same code path and the ratio carries no mixed-precision bias (ch. 05).

A real RL stack often does otherwise: its sampler (an inference engine, in bf16, perhaps with top-p) returns
the log-probs q of the tokens it drew, and the trainer uses them as logp_old. `sample(..., sampler_logprobs=True)`
records that q (generate's own scores, so exactly the distribution sampled from), and `completion_logprobs(...,
dtype=torch.bfloat16)` scores like a trainer without the fp32 fix (docs/science.md §4).

Layout of a batch of N = prompts × group_size sequences (prompts left-padded to P tokens):

    input_ids       [N, P + T]   prompt (left pad) | completion (right pad after the end token)
    attention_mask  [N, P + T]   1 on real prompt tokens and on completion tokens up to and incl. eos
    completion_mask [N, T]       float: 1 on completion tokens up to and including the first eos
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase

from .._checks import check_int, check_number
from ..logprobs import token_logprobs
from ..precision import lowp_token_logprobs
from .model import lm_head_weight


@dataclass
class Rollout:
    """A batch of sampled completions, grouped: rows g·G .. g·G+G-1 answer prompts[g]."""

    prompts: list[str]  # [P_n] distinct prompts, in batch order
    group_size: int  # G completions per prompt
    completions: list[str]  # [N] decoded completion text before the end token
    input_ids: Tensor  # [N, P + T]
    attention_mask: Tensor  # [N, P + T]
    completion_mask: Tensor  # [N, T] float32
    ended: Tensor  # [N] bool: the completion produced the end token within the budget
    # [N, T] fp32 log q(token) under the sampler's own (possibly truncated, low-precision) distribution, or None
    sampler_logp: Tensor | None = None

    @property
    def prompt_len(self) -> int:
        """P, the padded prompt length (completion tokens start at this column)."""
        return self.input_ids.shape[1] - self.completion_mask.shape[1]

    @property
    def completion_ids(self) -> Tensor:
        """[N, T] the sampled completion tokens (pad after the end)."""
        return self.input_ids[:, self.prompt_len :]

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> "Rollout":
        """Move the tensors to `device` (in place); returns self."""
        for name in ("input_ids", "attention_mask", "completion_mask", "ended", "sampler_logp"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name).to(device))
        return self

    def select(self, rows: Tensor) -> "Rollout":
        """The rows `rows` ([n] long) as a new Rollout (for minibatches); grouping is not kept (G = 1)."""
        return Rollout(
            [],
            1,
            [self.completions[i] for i in rows.tolist()],
            self.input_ids[rows],
            self.attention_mask[rows],
            self.completion_mask[rows],
            self.ended[rows],
            None if self.sampler_logp is None else self.sampler_logp[rows],
        )


def _completion_mask(completion_ids: Tensor, eos_id: int) -> tuple[Tensor, Tensor]:
    """[N, T] ids -> (mask [N, T] float32: 1 up to and incl. the first eos, ended [N] bool)."""
    is_eos = completion_ids == eos_id
    # Tokens strictly after the first eos are padding: count eos tokens seen before each position.
    eos_before = torch.cumsum(is_eos.long(), dim=1) - is_eos.long()
    return (eos_before == 0).float(), is_eos.any(dim=1)


def decode_completions(tokenizer: PreTrainedTokenizerBase, completion_ids: Tensor, mask: Tensor) -> list[str]:
    """Text of each completion before its end token ([N, T] ids, [N, T] mask -> N strings).

    A special token sampled mid-answer (<pad>, <bos>) decodes to its name, so the verifier rejects it as
    it would any malformed output.
    """
    eos = tokenizer.eos_token_id
    texts = []
    for ids, m in zip(completion_ids.tolist(), mask.tolist()):
        kept = [t for t, keep in zip(ids, m) if keep and t != eos]
        texts.append(tokenizer.decode(kept, skip_special_tokens=False))
    return texts


@torch.no_grad()
def sample(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    group_size: int,
    max_new_tokens: int,
    temperature: float = 1.0,
    *,
    top_k: int = 0,
    top_p: float = 1.0,
    dtype: torch.dtype = torch.float32,
    sampler_logprobs: bool = False,
) -> Rollout:
    """Sample `group_size` completions for each prompt with `generate` (KV cache).

    Randomness comes from torch's global RNG (that is what `generate` uses), so seed it or restore its
    state for a reproducible batch. By default the sampling distribution is exactly softmax(z/temperature),
    the distribution whose log-probs the trainer recomputes. What a real sampler may change (docs/science.md §4):
    top_k > 0 / top_p < 1 truncate it (the kept mass is renormalised); dtype (bfloat16, float16) runs the
    model under autocast in that dtype while sampling. sampler_logprobs=True keeps log q of every drawn token,
    q being the distribution actually sampled from (generate's processed scores), in `Rollout.sampler_logp`.
    """
    check_int("group_size", group_size, low=1)
    check_int("max_new_tokens", max_new_tokens, low=1)
    check_number("temperature", temperature, low=0.0, low_open=True)
    check_int("top_k", top_k, low=0)
    check_number("top_p", top_p, low=0.0, high=1.0, low_open=True)
    if not prompts:
        raise ValueError("prompts must be a non-empty list of strings")
    check_left_padding(tokenizer)
    check_scorable(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    # Tokenize each prompt once and repeat its row G times: a Python tokenizer is a measurable share of a step.
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True)
    enc = {k: v.repeat_interleave(group_size, dim=0).to(device) for k, v in enc.items()}
    # A fresh GenerationConfig, not the checkpoint's: a shipped repetition_penalty, min_p, suppress_tokens...
    # would sample from something other than softmax(z/temperature), the distribution logp_old scores.
    gen_config = GenerationConfig(
        do_sample=True,
        top_k=top_k,
        top_p=top_p,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        return_dict_in_generate=True,
        output_scores=sampler_logprobs,  # the processed scores: temperature and truncation applied, fp32
    )
    low = dtype != torch.float32
    with torch.autocast(device.type, dtype=dtype if low else torch.bfloat16, enabled=low):
        gen = model.generate(**enc, generation_config=gen_config)
    model.train(was_training)
    out = gen.sequences
    P = enc["input_ids"].shape[1]
    completion_ids = out[:, P:]
    width = completion_ids.shape[1]
    if width < max_new_tokens:  # every row ended early: pad to the fixed width T
        pad = completion_ids.new_full((out.shape[0], max_new_tokens - width), tokenizer.pad_token_id)
        completion_ids = torch.cat([completion_ids, pad], dim=1)
    mask, ended = _completion_mask(completion_ids, tokenizer.eos_token_id)
    logq = None
    if sampler_logprobs:  # step t's scores [N, V] sampled column t; columns after the end are masked junk (0)
        logq = torch.zeros(completion_ids.shape, dtype=torch.float32, device=out.device)
        for t, scores in enumerate(gen.scores):
            logq[:, t] = torch.log_softmax(scores.float(), -1).gather(-1, completion_ids[:, t, None]).squeeze(-1)
        logq = torch.where(mask > 0, logq, torch.zeros_like(logq))
    input_ids = torch.cat([enc["input_ids"], completion_ids], dim=1)
    attention_mask = torch.cat([enc["attention_mask"], mask.to(enc["attention_mask"].dtype)], dim=1)
    return Rollout(
        list(prompts),
        group_size,
        decode_completions(tokenizer, completion_ids.cpu(), mask.cpu()),
        input_ids,
        attention_mask,
        mask,
        ended,
        logq,
    )


def check_left_padding(tokenizer: PreTrainedTokenizerBase) -> None:
    """Prompts must be left-padded: right padding puts new tokens after pads and shifts their positions."""
    if getattr(tokenizer, "padding_side", "left") != "left":
        raise ValueError(
            f"tokenizer.padding_side must be 'left' for decoder-only generation, got "
            f"{tokenizer.padding_side!r} (set tokenizer.padding_side = 'left')"
        )


def check_scorable(model: PreTrainedModel) -> None:
    """Refuse models whose logits are not h·Wᵀ, which `completion_logprobs` computes from the output weight."""
    cfg = getattr(model, "config", None)
    for key in ("final_logit_softcapping", "logit_scale", "output_multiplier_scale"):
        value = getattr(cfg, key, None)
        if value not in (None, 1, 1.0):
            raise ValueError(
                f"model config has {key}={value}: its logits are not hidden·Wᵀ, so the fp32 chunked "
                "log-prob path would score a different distribution; this model is not supported"
            )
    head = model.get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise ValueError(
            "the model's output layer has a bias; token_logprobs computes hidden·Wᵀ without one, so "
            "this model is not supported"
        )


def rng_devices(device: torch.device) -> list[int]:
    """The CUDA device indices whose RNG `torch.random.fork_rng` must save for sampling on `device` ([] on CPU)."""
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def seed_rng(seed: int, device: torch.device) -> None:
    """Seed the CPU generator and, on CUDA, only `device`'s (torch.manual_seed would reseed every GPU, and a
    `fork_rng` around it restores just the devices it was given). Call inside `torch.random.fork_rng`."""
    torch.random.default_generator.manual_seed(seed)
    if device.type == "cuda":
        with torch.cuda.device(rng_devices(device)[0]):
            torch.cuda.manual_seed(seed)


def pick_prompts(pool: tuple[str, ...] | list[str], n: int, generator: torch.Generator) -> list[str]:
    """n prompts from the pool: without replacement when it is large enough, with replacement otherwise."""
    if n <= len(pool):
        idx = torch.randperm(len(pool), generator=generator)[:n]
    else:
        idx = torch.randint(len(pool), (n,), generator=generator)
    return [pool[i] for i in idx.tolist()]


def get_rng_state(device: torch.device) -> dict[str, Tensor]:
    """The global CPU RNG state and, on CUDA, `device`'s: what sampling draws from."""
    rng = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def set_rng_state(rng: dict[str, Tensor], device: torch.device) -> None:
    """Restore what `get_rng_state` returned."""
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng:
        torch.cuda.set_rng_state(rng["cuda"], device)


def position_ids(attention_mask: Tensor) -> Tensor:
    """[N, L] -> [N, L]: positions counted over real tokens only, as `generate` does for left padding."""
    pos = attention_mask.long().cumsum(dim=1) - 1
    return pos.clamp_min(0)


def completion_logprobs(
    model: PreTrainedModel,
    rollout: Rollout,
    chunk_size: int | None = None,
    temperature: float = 1.0,
    amp: bool = False,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """fp32 log π(token) and full-vocabulary entropy H at every completion position: ([N, T], [N, T]).

    One forward pass of the decoder (no [N, L, V] logits in the model's dtype), then `token_logprobs`
    on the final hidden states that predict each completion token, in fp32 and chunked. Differentiable;
    wrap in `torch.no_grad()` for logp_old. Positions outside `completion_mask` hold finite junk: mask them.
    amp=True runs the transformer under bf16 autocast; `token_logprobs` turns autocast off and upcasts.
    dtype other than fp32 breaks the contract on purpose, to emulate a stack without the fp32 fix: the
    transformer runs under autocast in `dtype` and logits and log-softmax are computed in it too
    (`precision.lowp_token_logprobs`, unchunked).
    """
    P = rollout.prompt_len
    device = rollout.input_ids.device
    low = dtype != torch.float32
    with torch.autocast(device.type, dtype=dtype if low else torch.bfloat16, enabled=amp or low):
        hidden = model.get_decoder()(
            input_ids=rollout.input_ids,
            attention_mask=rollout.attention_mask,
            position_ids=position_ids(rollout.attention_mask),
            use_cache=False,
        ).last_hidden_state
    # The hidden state at position t predicts token t+1: completion tokens P..P+T-1 come from P-1..P+T-2.
    h = hidden[:, P - 1 : -1]
    if low:
        return lowp_token_logprobs(h, lm_head_weight(model), rollout.completion_ids, dtype, temperature)
    return token_logprobs(
        h, lm_head_weight(model), rollout.completion_ids, chunk_size=chunk_size, temperature=temperature
    )


def rollout_from_text(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], completions: list[str], max_new_tokens: int | None = None
) -> Rollout:
    """Score given text: one row per (prompt, completion), the completion followed by the end token.

    Same layout as `sample` (prompts left-padded, completions right-padded to T = max_new_tokens, or to
    the longest completion + 1), so `completion_logprobs` scores supervised targets and sampled ones alike.
    """
    if len(prompts) != len(completions) or not prompts:
        raise ValueError(
            f"prompts and completions must be non-empty and of equal length, got {len(prompts)} and {len(completions)}"
        )
    check_left_padding(tokenizer)
    enc = tokenizer(list(prompts), return_tensors="pt", padding=True)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = [tokenizer(c, add_special_tokens=False)["input_ids"] + [eos] for c in completions]
    T = max(len(r) for r in rows) if max_new_tokens is None else check_int("max_new_tokens", max_new_tokens, low=1)
    if max(len(r) for r in rows) > T:
        raise ValueError(f"a completion plus its end token is longer than max_new_tokens={T}")
    completion_ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows])
    mask, ended = _completion_mask(completion_ids, eos)
    return Rollout(
        list(prompts),
        1,
        list(completions),
        torch.cat([enc["input_ids"], completion_ids], 1),
        torch.cat([enc["attention_mask"], mask.long()], 1),
        mask,
        ended,
    )
