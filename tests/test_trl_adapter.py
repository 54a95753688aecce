"""REPO and ADAPO inside TRL's GRPOTrainer (entropy_rl_lite.integrations.trl), on CPU with a tiny model."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from trl_fixtures import make_trainer  # noqa: E402  (tests/ is on sys.path under pytest)

import entropy_rl_lite as erl
import entropy_rl_lite.integrations.trl as adapter
from entropy_rl_lite.integrations.trl import EntropyControl


def test_repo_r_advantages_are_exactly_erl_repo_r(tmp_path, monkeypatch):
    """Every loss pass turns TRL's [B] advantages into erl.repo_r(A, log π, ζ) per token, ζ as in force."""
    calls = []
    real = adapter.shape_advantage

    def spy(adv, logp, ent, w, variant, **kw):
        out = real(adv, logp, ent, w, variant, **kw)
        calls.append((adv.clone(), logp.clone(), kw["zeta"], variant, out.clone()))
        return out

    monkeypatch.setattr(adapter, "shape_advantage", spy)
    trainer = make_trainer(tmp_path, EntropyControl(repo="repo_r", zeta=0.05, zeta_control=True, zeta_max=1.0))
    trainer.train()
    assert len(calls) == 4  # one loss pass per optimizer step here (no accumulation)
    for adv, logp, zeta, variant, out in calls:
        assert variant == "repo_r" and logp.dtype == torch.float32
        assert torch.equal(out, erl.repo_r(adv, logp, zeta))
        assert bool((adv[:, :1] == adv).all())  # TRL's advantage, one per sequence, broadcast to its tokens
    assert [c[2] for c in calls] == [h["zeta"] for h in trainer.erl_history]
    assert any(bool((c[4] != c[0]).any()) for c in calls)  # REPO-R did change some advantages


def test_eps_high_and_zeta_follow_the_controllers(tmp_path):
    trainer = make_trainer(
        tmp_path, EntropyControl(repo="repo_r", zeta=0.05, zeta_control=True, zeta_max=1.0, adapo=True), max_steps=6
    )
    trainer.train()
    hist = trainer.erl_history
    assert len(hist) == 6
    zeta_ctrl = erl.ZetaController(0.05, 1e-4, 1.0)
    eps_ctrl = erl.EpsHighController(0.28)
    zetas, epss = [], []
    for h in hist:  # replay the measured entropies through fresh controllers: the same sequence must come out
        zetas.append(zeta_ctrl.value)
        epss.append(eps_ctrl.value)
        zeta_ctrl.update(h["entropy"])
        eps_ctrl.update(h["entropy"])
    assert [h["zeta"] for h in hist] == zetas and [h["eps_high"] for h in hist] == epss
    assert trainer.epsilon_high == eps_ctrl.value and trainer.controls.zeta == zeta_ctrl.value
    assert len(set(epss)) > 1  # the controller moved within the run
    logged = [row["adapo/eps_high"] for row in trainer.state.log_history if "adapo/eps_high" in row]
    assert logged == pytest.approx(epss)  # under TRL's metric names
    # TRL's own entropy metric and ours are the same token-weighted mean
    trl_entropy = [row["entropy"] for row in trainer.state.log_history if "entropy" in row]
    assert trl_entropy == pytest.approx([h["entropy"] for h in hist], rel=1e-6)


def test_controller_state_survives_checkpoint_and_resume(tmp_path):
    control = EntropyControl(repo="repo_r", zeta=0.05, zeta_control=True, zeta_max=1.0, adapo=True)
    full = make_trainer(tmp_path / "full", control, max_steps=6)
    full.train()
    part = make_trainer(tmp_path / "part", control, max_steps=6, save_strategy="steps", save_steps=3)
    part.train()
    ckpt = tmp_path / "part" / "checkpoint-3"
    saved = json.loads((ckpt / adapter.STATE_FILE).read_text())
    assert saved["zeta"] == full.erl_history[3]["zeta"] and saved["epsilon_high"] == full.erl_history[3]["eps_high"]
    resumed = make_trainer(tmp_path / "part", control, max_steps=6)
    resumed.train(resume_from_checkpoint=str(ckpt))
    # the resumed run starts step 4 with the saved values instead of the constructor's
    assert (
        resumed.erl_history[0]["zeta"] == saved["zeta"] and resumed.erl_history[0]["eps_high"] == saved["epsilon_high"]
    )
    assert resumed.controls.controllers["zeta"].target_entropy == full.controls.controllers["zeta"].target_entropy


@pytest.mark.parametrize(
    "control,args,match",
    [
        (EntropyControl(adapo=True), {"loss_type": "cispo"}, "ADAPO steers PPO's upper clip"),
        (EntropyControl(repo="repo_r"), {"loss_type": "sapo"}, "REPO needs a loss"),
    ],
)
def test_refuses_losses_it_cannot_reach(tmp_path, control, args, match):
    with pytest.raises(ValueError, match=match):
        make_trainer(tmp_path, control, warm_steps=0, **args)


def test_bad_settings_and_inert_adapo_are_reported(tmp_path):
    with pytest.raises(ValueError, match="zeta_control"):
        EntropyControl(zeta_control=True)
    with pytest.raises(ValueError, match="repo"):
        EntropyControl(repo="repo_x")
    with pytest.raises(ValueError, match="entropy_coef"):  # the adapter has no explicit entropy bonus
        EntropyControl(entropy_coef=0.01)
    # the same fields, defaults and checks as the trainer's config (they once drifted: zeta was 1e-3 here)
    assert EntropyControl().control_fields() == erl.llm.TrainConfig().control_fields()
    with pytest.warns(UserWarning, match="ADAPO is inert"):
        make_trainer(tmp_path, EntropyControl(adapo=True), warm_steps=0, num_iterations=1)


def test_bad_bounds_fail_at_construction_not_later(tmp_path, monkeypatch):
    """Bounds that only failed once GRPOTrainer had built (or at the first loss pass) now fail up front."""
    with pytest.raises(ValueError, match=r"\bzeta\b"):  # shape_advantage refused it at the first loss pass
        EntropyControl(repo="repo_r", zeta=1e9)
    with pytest.raises(ValueError, match=r"\bzeta_max\b"):  # the controller would grow ζ past ZETA_LIMIT
        EntropyControl(repo="repo_d", zeta=0.01, zeta_control=True, zeta_max=1e7)
    with pytest.raises(TypeError, match=r"\bentropy_control\b"):
        adapter.EntropyControlGRPOTrainer(model=None, entropy_control="repo_r")
    # ADAPO starts at TRL's epsilon_high (0.28 in the fixture): outside [eps_high_min, eps_high_max] it is
    # refused naming epsilon_high, before GRPOTrainer.__init__ builds the model, datasets and generation.
    built = []
    monkeypatch.setattr(adapter.GRPOTrainer, "__init__", lambda self, *a, **k: built.append(1))
    with pytest.raises(ValueError, match=r"epsilon_high = 0.28.*\[eps_high_min, eps_high_max\] = \[0.5, 1\]"):
        make_trainer(tmp_path, EntropyControl(adapo=True, eps_high_min=0.5), warm_steps=0)
    assert not built


def test_unsupported_trl_version_fails_with_the_supported_range(monkeypatch):
    import trl

    monkeypatch.setattr(trl, "__version__", "0.9.0")
    with pytest.raises(ImportError, match=r"supports TRL >= 1.16, < 2.0.*found trl 0.9.0"):
        importlib.reload(adapter)
    monkeypatch.undo()
    importlib.reload(adapter)


@pytest.mark.slow
def test_two_ranks_hold_the_same_zeta_and_eps_high(tmp_path):
    """accelerate launch with 2 CPU processes (gloo): the all-reduced entropy gives both ranks one trajectory."""
    script = Path(__file__).with_name("trl_fixtures.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(script.parents[1])}
    # accelerate's multi-process launcher is torchrun behind `--multi_gpu`; with GRPOConfig(use_cpu=True) the
    # processes form a CPU group over gloo (`--cpu` alone would start a single process).
    import socket

    with socket.socket() as sock:  # a free port, not torchrun's fixed 29500 (another run may hold it)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--main_process_port",
        str(port),
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(script),
        str(tmp_path),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["backend"] == "gloo" and "MULTI_CPU" in r0["distributed_type"]
    same = ("entropy", "zeta", "eps_high")
    assert len(r0["history"]) == 4
    assert [{k: h[k] for k in same} for h in r0["history"]] == [{k: h[k] for k in same} for h in r1["history"]]
    # ... although each rank saw different completions: its own entropy differs, only the all-reduced one agrees
    assert any(a["local_entropy"] != b["local_entropy"] for a, b in zip(r0["history"], r1["history"]))
    assert len({h["eps_high"] for h in r0["history"]}) > 1


def test_repo_d_uses_the_micro_batch_decorrelating_beta(tmp_path, monkeypatch):
    calls = []
    real = adapter.shape_advantage
    monkeypatch.setattr(adapter, "shape_advantage", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    trainer = make_trainer(tmp_path, EntropyControl(repo="repo_d", zeta=0.5), max_steps=2)
    trainer.train()
    assert len(calls) == 2
    for (adv, logp, ent, w, variant), kw in calls:
        assert variant == "repo_d" and kw["dim"] == (-2, -1) and kw["zeta"] == 0.5
        beta = erl.decorrelating_beta(adv, logp + ent, logp.exp(), w, dim=(-2, -1))
        torch.testing.assert_close(
            real(adv, logp, ent, w, "repo_d", zeta=0.5, dim=(-2, -1)), adv - 0.5 * beta * (logp + ent)
        )


def test_refuses_a_fused_loss_that_takes_one_advantage_per_sequence(tmp_path, monkeypatch):
    """Older TRL releases had use_liger_loss (a fused GRPO loss with [B] advantages); refuse it, saying why."""
    from trl import GRPOConfig

    monkeypatch.setattr(GRPOConfig, "use_liger_loss", True, raising=False)
    with pytest.raises(ValueError, match="one advantage per sequence"):
        make_trainer(tmp_path, EntropyControl(repo="repo_r"), warm_steps=0)
