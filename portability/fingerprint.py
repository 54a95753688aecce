"""Bit-identity of the library's numerics between two checkouts: for refactors that must change nothing.

    .venv/bin/python portability/fingerprint.py record ROOT OUT.pt   # run the probes with ROOT's library
    .venv/bin/python portability/fingerprint.py compare A.pt B.pt    # exits 1 on any difference

The probes: 40 bandit runs (every objective, advantage, REPO variant, ADAPO, entropy bonus, optimizer,
gradient, the sampled estimator with noise; one and several states), `policy_loss` for every kind ×
aggregation (value, gradient, metrics), and 6 trainer configurations (3 steps: every logged number except
timings, and the final weights). Same machine and kernels on both sides: this checks code, not portability.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import torch

BANDIT_CASES: list[dict[str, Any]] = [
    {},
    dict(objective="ppo", epochs=3, eps_high=0.28),
    dict(estimator="sampled", advantage="grpo", seeds=4),
    dict(repo="repo_r", zeta=0.5),
    dict(repo="repo_d", zeta=1.5, zeta_control=True, zeta_max=5.0, zeta_min=1e-3, seeds=3, estimator="sampled"),
    dict(repo="decorrelate"),
    dict(repo="beta", beta=0.3),
    dict(adapo=True, eps_high=0.28, epochs=3, objective="ppo", estimator="sampled", seeds=2),
    dict(entropy_coef=0.05),
    dict(entropy_coef_control=True, entropy_coef=0.01, estimator="sampled", seeds=2),
    dict(objective="gspo", epochs=2),
    dict(objective="cispo", epochs=2),
    dict(objective="clip_cov", epochs=2, estimator="sampled", seeds=2,
         loss_kwargs={"clip_cov_ratio": 0.2, "clip_cov_bounds": (-5.0, 5.0)}),
    dict(objective="kl_cov", epochs=2, estimator="sampled", loss_kwargs={"kl_cov_ratio": 0.2}),
    dict(optimizer="adam", lr=0.05),
    dict(gradient="natural", repo="decorrelate"),
    dict(ratio_bias=0.9, objective="ppo", epochs=2),
    dict(advantage="dr_grpo"),
    dict(advantage="none", estimator="sampled", group_size=1),
    dict(estimator="sampled", bernoulli_rewards=True, reward_noise=0.1, seeds=3),
]  # fmt: skip
TRAINER_CASES: list[dict[str, Any]] = [
    {},
    dict(epochs=2, minibatches=2, eps_high=0.28),
    dict(repo="repo_r", zeta=0.01, zeta_control=True, adapo=True, epochs=2, minibatches=2),
    dict(repo="repo_d", zeta=1.0, grad_accum=2, entropy_coef=0.01),
    dict(entropy_coef_control=True, entropy_coef=0.01, objective="gspo", agg="seq-mean-token-mean"),
    dict(objective="clip_cov", minibatches=2, loss_kwargs={"clip_cov_ratio": 0.2, "clip_cov_bounds": (-5.0, 5.0)}),
]  # fmt: skip
TIMING = ("tokens_per_s", "train_tflops", "mfu")


def record(root: str) -> dict[str, Any]:
    """Run every probe with the library found at `root` (put first on sys.path)."""
    sys.path.insert(0, root)
    import entropy_rl_lite as erl
    from entropy_rl_lite.llm import CharTokenizer, TrainConfig, Trainer
    from environments.text_tasks import SumToEnv

    out: dict[str, Any] = {}
    one = torch.tensor([1.0, 1.0, 1.0, 0, 0, 0, 0, 0, 0, 0], dtype=torch.float64)
    many = torch.rand(3, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for i, case in enumerate(BANDIT_CASES):
        for table in (one, many):
            h = erl.bandit.run(table, steps=30, **case)
            out[f"bandit{i}/{table.dim()}d"] = [
                getattr(h, k)
                for k in (
                    "entropy",
                    "reward",
                    "probs",
                    "loss",
                    "zeta",
                    "eps_high",
                    "entropy_coef",
                    "clip_frac_low",
                    "clip_frac_high",
                )
            ]
    g = torch.Generator().manual_seed(3)
    logp = -torch.rand(4, 6, generator=g) * 3
    logp_old = logp + 0.3 * torch.randn(4, 6, generator=g)
    adv, mask = torch.randn(4, generator=g), torch.rand(4, 6, generator=g) > 0.2
    options = dict(clip_cov_ratio=0.3, clip_cov_bounds=(-9.0, 9.0), kl_cov_ratio=0.3)
    for kind in ("reinforce", "ppo", "gspo", "cispo", "clip_cov", "kl_cov"):
        for agg in ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
            lp = logp.clone().requires_grad_(True)
            loss, m = erl.policy_loss(
                lp, logp_old, adv, mask, kind, 0.2, 0.28, agg, **options, generator=torch.Generator().manual_seed(0)
            )
            loss.backward()
            out[f"loss/{kind}/{agg}"] = [loss.detach(), lp.grad, dict(m)]
    tok, task = CharTokenizer(), SumToEnv(min_target=3, max_target=8, max_len=3)
    for i, case in enumerate(TRAINER_CASES):
        tr = Trainer(TrainConfig(steps=3, prompts_per_step=3, group_size=4, **case), task, tokenizer=tok)
        rows = [
            {k: v for k, v in r.items() if not k.endswith("_s") and k not in TIMING} for r in tr.train(progress=False)
        ]
        out[f"trainer{i}"] = [rows, {k: v.clone() for k, v in tr.model.state_dict().items()}]
    return out


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Every place where a and b differ (tensors bit for bit, NaN equal to NaN)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        same = (
            isinstance(a, torch.Tensor)
            and isinstance(b, torch.Tensor)
            and a.shape == b.shape
            and a.dtype == b.dtype
            and torch.equal(a.nan_to_num(123.0), b.nan_to_num(123.0))
        )
        return [] if same else [path]
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}: keys {sorted(set(a) ^ set(b))}"] if set(a) != set(b) else []
        return out + [d for k in a if k in b for d in differences(a[k], b[k], f"{path}.{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        out = [f"{path}: lengths {len(a)} != {len(b)}"] if len(a) != len(b) else []
        return out + [d for i, (u, v) in enumerate(zip(a, b)) for d in differences(u, v, f"{path}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return []
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[0] == "record":
        torch.save(record(argv[1]), argv[2])
        print(f"recorded the probes of {argv[1]} into {argv[2]}")
        return 0
    if len(argv) == 3 and argv[0] == "compare":
        a, b = (torch.load(p, weights_only=False) for p in argv[1:])
        diffs = differences(a, b)
        print("\n".join(diffs[:50]) + f"\n{len(diffs)} difference(s) over {len(a)} probes")
        return 1 if diffs else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
