"""The training CLI and run specs: profiles load, bad input fails before training, compare writes its
directory, a local checkpoint trains with LoRA and resumes. CUDA parity runs only where CUDA exists."""

from __future__ import annotations

import json

import pytest
import torch

import entropy_rl_lite as erl
from entropy_rl_lite.llm import (
    CharTokenizer,
    Trainer,
    build_model,
    completion_logprobs,
    load_model,
    read_metrics,
    rollout_from_text,
)
from entropy_rl_lite.llm.experiment import CONFIG_DIR, RunSpec, TaskSpec, load_spec
from entropy_rl_lite.llm.train import main

TINY = [
    "--set",
    "train.steps=2",
    "--set",
    "phase2.steps=1",
    "--set",
    "warm_start.steps=5",
    "--set",
    "eval_samples=4",
    "--set",
    "eval_ks=[1, 2]",
    "--no-progress",
]


@pytest.mark.parametrize("profile", ["ci", "cpu", "gpu"])
def test_every_profile_spec_loads_and_validates(profile):
    spec = load_spec(profile)
    assert spec.profile == profile and (CONFIG_DIR / f"{profile}.yaml").is_file()
    assert {"grpo", "dapo", "repo_r", "adapo"} <= set(spec.algorithms)
    assert spec.train_config("adapo").adapo and spec.train_config("repo_r").repo == "repo_r"
    assert spec.train_config("grpo", phase=2).steps == spec.phase2["steps"]
    spec.task.make(), spec.phase2_task.make()  # the environments accept the task arguments


@pytest.mark.parametrize(
    "override,match",
    [
        ("train.lr=-1", "lr"),
        ("algorithms.dapo.eps_hgh=0.3", "eps_hgh"),
        ("learning_rate=1", "learning_rate"),
        ("task.name=Sudoku", "task.name"),
        ("lora.r=0", "lora.r"),
        ("warm_start.steps=-5", "warm_start.steps"),
        ("train.lr", "key=value"),
    ],
)
def test_cli_rejects_bad_settings_naming_the_field(override, match, tmp_path, capsys):
    rc = main(["compare", "--profile", "ci", "--out", str(tmp_path), "--set", override, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 2 and match in err, err
    assert not (tmp_path / "warm_start").exists()  # nothing trained


def test_cli_compare_writes_logs_sidecars_and_resumable_checkpoints(tmp_path, capsys):
    rc = main(["compare", "--profile", "ci", "--out", str(tmp_path), "--algos", "grpo", "repo_r", *TINY])
    assert rc == 0, capsys.readouterr().err
    assert "repo_r" in capsys.readouterr().out
    for phase, steps in (("phase1", 2), ("phase2", 1)):
        for algo in ("grpo", "repo_r"):
            assert len(read_metrics(tmp_path / phase / f"{algo}.jsonl")) == steps
            meta = json.loads((tmp_path / phase / f"{algo}.meta.json").read_text())
            assert meta["config"]["steps"] == steps and "git_commit" in meta
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary) == {"warm_start", "grpo", "repo_r"}
    assert 0 <= summary["repo_r"]["phase2"]["eval"]["reward"] <= 1
    run_meta = json.loads((tmp_path / "run.meta.json").read_text())
    assert run_meta["seed"] == 0 and run_meta["spec"]["profile"] == "ci" and run_meta["wall_s"] > 0
    resumed = Trainer.resume(tmp_path / "phase1" / "repo_r", load_spec("ci").task.make())
    assert resumed.step_count == 2 and "zeta" in resumed.controls.controllers


def test_cli_trains_a_local_checkpoint_with_lora(tmp_path):
    """--model loads a local directory; with LoRA only adapters train; the run resumes from base + adapters."""
    tok = CharTokenizer()
    base = build_model(tok, "ci", seed=7)
    base.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--model",
            str(tmp_path / "base"),
            "--out",
            str(out),
            "--algo",
            "grpo",
            *TINY,
            "--set",
            "warm_start=null",
            "--set",
            "phase2_task=null",
            "--set",
            "lora={r: 4, alpha: 8}",
            "--set",
            "train.entropy_coef=0.05",
        ]
    )  # a random model earns no reward: the bonus moves it
    assert rc == 0
    ckpt = out / "phase1" / "grpo"
    assert (ckpt / "adapter_config.json").is_file() and not (ckpt / "config.json").is_file()
    after = load_model(ckpt / "merged").state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(any(m in k for m in ("q_proj", "k_proj", "v_proj", "o_proj")) for k in changed), changed
    resumed = Trainer.resume(ckpt, TaskSpec().make())
    n_trainable = sum(p.numel() for p in resumed.model.parameters() if p.requires_grad)
    assert 0 < n_trainable < sum(p.numel() for p in resumed.model.parameters()) / 5
    resumed.train(1, progress=False)


def test_cli_compare_in_parallel_processes(tmp_path):
    rc = main(
        [
            "compare",
            "--profile",
            "ci",
            "--out",
            str(tmp_path),
            "--algos",
            "dapo",
            "adapo",
            "--jobs",
            "2",
            *TINY,
            "--set",
            "phase2_task=null",
            "--logs-only",
        ]
    )
    assert rc == 0
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert "phase1/dapo.jsonl" in left and "run.meta.json" in left and "summary.json" in left
    assert not (tmp_path / "warm_start").exists() and not (tmp_path / "phase1" / "dapo").exists()  # --logs-only
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["adapo"]["phase1"]["steps"] == 2 and "phase2" not in summary["dapo"]


def test_spec_round_trips():
    spec = load_spec("gpu")
    assert RunSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_and_gpu_give_the_same_fp32_loss():
    """Same weights, same fixed batch, fp32: the policy loss and its log-probs agree across devices."""
    tok = CharTokenizer()
    model = build_model(tok, "ci", seed=3)
    results = []
    for device in ("cpu", "cuda"):
        m = model.to(device)
        b = rollout_from_text(tok, ["7=", "12=", "5="], ["25", "93", "0"], max_new_tokens=4).to(device)
        logp, _ = completion_logprobs(m, b)
        adv = torch.tensor([1.0, -0.5, 0.25], device=device)[:, None].expand_as(logp)
        loss, _ = erl.policy_loss(logp, logp.detach() - 0.01, adv, b.completion_mask, "ppo", 0.2, 0.28)
        results.append((logp.cpu(), loss.item()))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    assert results[0][1] == pytest.approx(results[1][1], abs=1e-5)


def test_lora_flops_count_no_weight_gradients_for_frozen_weights():
    from entropy_rl_lite.llm.experiment import LoraSpec
    from entropy_rl_lite.llm.flops import matmul_params, train_flops

    model = build_model(CharTokenizer(), "ci", seed=0)
    N, attn = matmul_params(model), 12 * 2 * 8 * 32
    assert train_flops(model, 1, 8) == 6 * N + attn
    lora = LoraSpec(r=4).apply(model)
    n_lora = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert train_flops(lora, 1, 8) == 4 * (N + n_lora) + 2 * n_lora + attn  # adapters are matmuls too


def test_cli_trains_a_local_checkpoint_that_has_its_own_transformers_tokenizer(tmp_path):
    """--model with a non-character tokenizer (BPE, where "12" is one token): loaded from the directory, used."""
    from tokenizers import Tokenizer, models
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, **{c: i + 3 for i, c in enumerate("0123456789=")}}
    vocab["12"] = len(vocab)
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[("1", "2")]))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>")
    assert tok("12=")["input_ids"] == [vocab["12"], vocab["="]]
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=2,
            pad_token_id=0,
            bos_token_id=1,
            eos_token_id=2,
        )
    )
    model.save_pretrained(tmp_path / "bpe_model")
    tok.save_pretrained(tmp_path / "bpe_model")
    out = tmp_path / "run"
    rc = main(["train", "--model", str(tmp_path / "bpe_model"), "--out", str(out), *TINY, "--set", "phase2_task=null"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grpo"]["phase1"]["steps"] == 2
    from entropy_rl_lite.llm import load_tokenizer

    reloaded = load_tokenizer(out / "warm_start")
    assert reloaded.eos_token == "</s>" and reloaded.padding_side == "left" and len(reloaded) == len(vocab)


def test_spec_sections_validate_early_and_lora_init_is_seeded():
    from entropy_rl_lite.llm.experiment import LoraSpec

    with pytest.raises(ValueError, match="eval_ks"):
        load_spec("ci", overrides=["eval_ks=[1, 64]"])
    spec = load_spec("ci", overrides=["train=null", "algorithms={grpo: null}"])  # empty YAML sections are {}
    assert spec.train == {} and spec.algorithms == {"grpo": {}}
    a = LoraSpec(r=4).apply(build_model(CharTokenizer(), "ci", seed=0), seed=3)
    b = LoraSpec(r=4).apply(build_model(CharTokenizer(), "ci", seed=0), seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert LoraSpec(target_modules="all-linear").target_modules == "all-linear"  # peft's own spec, kept whole
