"""Part II trainer: rollout layout and scoring, config validation, metrics log, warm start, exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

import entropy_rl_lite as erl
from entropy_rl_lite.llm import (
    TIMING_KEYS,
    CharTokenizer,
    TrainConfig,
    Trainer,
    build_model,
    completion_logprobs,
    evaluate,
    read_metrics,
    rollout_from_text,
    sample,
    warm_start,
)
from entropy_rl_lite.llm.rollout import position_ids
from environments.text_tasks import SumToEnv, SumToShiftedEnv


@pytest.fixture(scope="module")
def tok() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture(scope="module")
def task() -> SumToEnv:
    return SumToEnv(min_target=3, max_target=8, max_len=3)


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


# -- rollout ---------------------------------------------------------------------------------------------


def test_sample_layout_and_masks(tok):
    model = build_model(tok, "ci", seed=0)
    torch.manual_seed(0)
    batch = sample(model, tok, ["7=", "12="], group_size=5, max_new_tokens=4)
    N, T = 10, 4
    assert batch.input_ids.shape == (N, batch.prompt_len + T) and batch.completion_mask.shape == (N, T)
    eos = tok.eos_token_id
    for ids, m, ended, text in zip(
        batch.completion_ids.tolist(), batch.completion_mask.tolist(), batch.ended.tolist(), batch.completions
    ):
        first_eos = ids.index(eos) if eos in ids else None
        assert ended == (first_eos is not None)
        n_real = first_eos + 1 if ended else T
        assert m == [1.0] * n_real + [0.0] * (T - n_real)  # the end token counts, padding after it does not
        assert "." not in text and len(tok(text, add_special_tokens=False)["input_ids"]) <= n_real
    # rows g*G .. g*G+G-1 answer prompt g
    assert batch.prompts == ["7=", "12="] and batch.group_size == 5


def test_recomputed_logprobs_match_generate(tok):
    """The fp32 full-forward recompute scores exactly the distribution `generate` sampled from."""
    model = build_model(tok, "ci", seed=1)
    enc = tok(["3=", "11=", "7="], return_tensors="pt", padding=True)
    torch.manual_seed(3)
    out = model.generate(
        **enc,
        do_sample=True,
        top_k=0,
        top_p=1.0,
        max_new_tokens=4,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
    )
    torch.manual_seed(3)
    batch = sample(model, tok, ["3=", "11=", "7="], group_size=1, max_new_tokens=4)
    assert torch.equal(batch.input_ids[:, : out.sequences.shape[1]], out.sequences)  # same draws, same RNG
    with torch.no_grad():
        logp, ent = completion_logprobs(model, batch)
    gen_logits = torch.stack(out.logits, 1).float()  # [N, T', V], computed with the KV cache
    gen_logp = torch.log_softmax(gen_logits, -1).gather(-1, batch.completion_ids[:, : gen_logits.shape[1], None])[
        ..., 0
    ]
    gen_ent = erl.entropy(gen_logits)
    m = batch.completion_mask[:, : gen_logits.shape[1]].bool()
    assert logp.dtype == torch.float32 and ent.dtype == torch.float32
    torch.testing.assert_close(logp[:, : m.shape[1]][m], gen_logp[m], atol=1e-5, rtol=0)
    torch.testing.assert_close(ent[:, : m.shape[1]][m], gen_ent[m], atol=1e-5, rtol=0)


def test_rollout_from_text_and_bf16_model_gives_fp32(tok):
    batch = rollout_from_text(tok, ["7=", "12="], ["25", "1"], max_new_tokens=4)
    assert batch.completion_mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert tok.decode(batch.completion_ids[0, :3]) == "25."
    assert position_ids(batch.attention_mask)[0].tolist()[batch.prompt_len - 2 : batch.prompt_len] == [1, 2]
    model = build_model(tok, "ci", seed=0, dtype=torch.bfloat16)
    logp, ent = completion_logprobs(model, batch)
    assert logp.dtype == ent.dtype == torch.float32 and bool(torch.isfinite(logp).all())
    with pytest.raises(ValueError, match="max_new_tokens"):
        rollout_from_text(tok, ["7="], ["1234"], max_new_tokens=3)


def test_evaluate_counts_distinct_correct_answers(tok, task):
    model = build_model(tok, "ci", seed=0)
    before = torch.get_rng_state()
    ev = evaluate(model, tok, task, samples_per_prompt=8, ks=(1, 4))
    assert torch.equal(torch.get_rng_state(), before)  # evaluation has its own RNG stream
    assert 0 <= ev["pass@1"] <= ev["pass@4"] <= 1
    assert ev["pass@1"] == pytest.approx(ev["reward"])  # pass@1 from G samples is the mean reward
    for row in ev["per_prompt"]:
        assert 0 <= row["distinct_correct"] <= min(8, row["n_correct_answers"])
    assert evaluate(model, tok, task, samples_per_prompt=8, ks=(1, 4)) == ev  # same seed, same numbers


def test_warm_start_learns_the_format(tok, task):
    model = build_model(tok, "ci", seed=0)
    before = evaluate(model, tok, task, samples_per_prompt=16)["reward"]
    losses = warm_start(model, tok, task, steps=150, batch_size=32, lr=3e-3)
    after = evaluate(model, tok, task, samples_per_prompt=16)["reward"]
    # A random policy over 14 tokens is almost never right; 150 supervised steps reach a clear majority.
    assert before < 0.05 and after > 0.3, (before, after)
    assert sum(losses[-10:]) / 10 < 0.6 * sum(losses[:10]) / 10


# -- config --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("objective", "trpo", "objective"),
        ("advantage", "gae", "advantage"),
        ("repo", "repo_x", "repo"),
        ("lr", -1.0, "lr"),
        ("lr", float("nan"), "lr"),
        ("group_size", 1, "group_size"),
        ("pass_k", 16, "pass_k"),
        ("eps_high", -0.1, "eps_high"),
        ("minibatches", 1000, "minibatches"),
        ("profile", "tpu", "profile"),
        ("max_grad_norm", 0.0, "max_grad_norm"),
        ("checkpoint_every", 5, "checkpoint_dir"),
        ("zeta_control", True, "zeta_control"),
        ("dtype", "float16", "dtype"),
        ("top_k", -1, "top_k"),
        ("top_p", 0.0, "top_p"),
        ("top_p", 1.5, "top_p"),
        ("sampler_dtype", "int8", "sampler_dtype"),
        ("logprob_dtype", "float64", "logprob_dtype"),
        ("logp_old_source", "vllm", "logp_old_source"),
    ],
)
def test_config_rejects_bad_values(field, value, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{field: value})


def test_config_round_trips_and_rejects_unknown_fields():
    cfg = TrainConfig(repo="repo_r", zeta=0.01, zeta_control=True, adapo=True, eps_high=0.28)
    assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        cfg.replace(learning_rate=1.0)
    with pytest.raises(TypeError, match="TrainConfig"):
        Trainer({"lr": 1.0}, SumToEnv())


# -- trainer -------------------------------------------------------------------------------------------


def test_on_policy_ratio_is_exactly_one(tok, task):
    """One update per batch: logp_old and logp come from the same fp32 path, so r ≡ 1 and nothing clips."""
    tr = Trainer(TrainConfig(steps=2, prompts_per_step=3, group_size=4, eps_high=0.28), task, tokenizer=tok)
    for row in tr.train(progress=False):
        assert row["ratio_mean"] == 1.0 and row["ratio_max"] == 1.0 and row["clip_frac"] == 0.0


def test_trainer_logs_jsonl_and_leaves_global_rng_alone(tmp_path, tok, task):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    log = tmp_path / "m.jsonl"
    # A random model is never rewarded (all advantages 0): the entropy bonus is what moves it here.
    tr = Trainer(
        TrainConfig(
            steps=3, prompts_per_step=3, group_size=4, epochs=2, minibatches=2, entropy_coef=0.05, log_path=str(log)
        ),
        task,
        tokenizer=tok,
    )
    rows = tr.train(progress=False)
    assert torch.equal(torch.rand(3), expected)  # the trainer drew nothing from the caller's stream
    assert read_metrics(log) == rows and [r["step"] for r in rows] == [0, 1, 2]
    meta = json.loads(log.with_suffix(".meta.json").read_text())
    assert meta["config"]["entropy_coef"] == 0.05 and meta["versions"]["torch"] == torch.__version__
    Trainer(TrainConfig(steps=1, prompts_per_step=3, group_size=4, log_path=str(log)), task, tokenizer=tok).train(
        progress=False
    )
    assert len(read_metrics(log)) == 1  # a new run replaces the old log rather than appending to it
    for key in (
        "entropy",
        "reward",
        "pass@1",
        "pass@4",
        "distinct_correct",
        "clip_frac_low",
        "clip_frac_high",
        "zeta",
        "eps_high",
        "tokens_per_s",
        "step_time_s",
        "grad_norm",
        "approx_kl",
    ):
        assert key in rows[0] and rows[0][key] is not None, key
    assert rows[-1]["ratio_mean"] != 1.0  # later minibatches see a moved policy
    axes = erl.plot.metrics({"run": str(log), "same, from memory": rows}, fields=("entropy", "reward"), smooth=2)
    assert len(axes) == 2 and len(axes[0].lines) == 2
    import matplotlib.pyplot as plt

    plt.close("all")
    with pytest.raises(ValueError, match="no field 'nope'"):
        erl.plot.metrics({"run": rows}, fields=("nope",))


def test_resume_reproduces_the_uninterrupted_run_exactly(tmp_path, tok, task):
    """Stop after 2 of 5 steps, resume from the checkpoint: metrics, log file and weights equal bit for bit."""
    cfg = TrainConfig(
        steps=5,
        prompts_per_step=3,
        group_size=4,
        epochs=2,
        minibatches=2,
        lr=3e-3,
        repo="repo_r",
        zeta=1e-3,
        zeta_control=True,
        adapo=True,
        eps_high=0.28,
        entropy_coef=1e-3,
        entropy_coef_control=True,
    )
    full = Trainer(cfg.replace(log_path=str(tmp_path / "full.jsonl")), task, tokenizer=tok)
    full_rows = full.train(progress=False)

    part = Trainer(cfg.replace(log_path=str(tmp_path / "part.jsonl")), task, tokenizer=tok)
    part.train(2, progress=False)
    part.save(tmp_path / "ckpt")
    part.train(1, progress=False)  # the "crash" comes after one more logged step that the checkpoint lacks
    del part
    resumed = Trainer.resume(tmp_path / "ckpt", task)
    assert resumed.step_count == 2 and resumed.controls.controllers["zeta"].target_entropy is not None
    resumed.train(progress=False)

    assert _without_timing(read_metrics(tmp_path / "part.jsonl")) == _without_timing(full_rows)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert full.controls.state_dict() == resumed.controls.state_dict()
    assert set(resumed.controls.state_dict()) == {"zeta", "eps_high", "entropy_coef"}


def test_resume_refuses_another_task_or_a_partial_checkpoint(tmp_path, tok, task):
    tr = Trainer(TrainConfig(steps=1, prompts_per_step=2, group_size=2, pass_k=2), task, tokenizer=tok)
    tr.train(progress=False)
    tr.save(tmp_path / "ckpt")
    with pytest.raises(ValueError, match="checkpoint was written for task"):
        Trainer.resume(tmp_path / "ckpt", SumToShiftedEnv(min_target=3, max_target=8))
    (tmp_path / "ckpt" / "trainer_state.json").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        Trainer.resume(tmp_path / "ckpt", task)


def test_repo_r_in_the_trainer_calls_the_shared_function(tok, task, monkeypatch):
    """The trainer shapes advantages through the kernel of erl.shape_advantage that the bandit engine calls."""
    import entropy_rl_lite.llm.trainer as trainer_mod

    calls = []
    real = trainer_mod.shape_advantage_unchecked

    def spy(*args, **kwargs):
        calls.append(args[4])
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer_mod, "shape_advantage_unchecked", spy)
    Trainer(
        TrainConfig(steps=1, prompts_per_step=2, group_size=4, repo="repo_r", zeta=0.01), task, tokenizer=tok
    ).train(progress=False)
    assert calls == ["repo_r"]
    assert trainer_mod.shape_advantage_unchecked is spy and erl.bandit.shape_advantage_unchecked is real
    assert real is erl.repo.shape_advantage_unchecked


@pytest.mark.parametrize("agg", ["token-mean", "seq-mean-token-mean"])
def test_gradient_accumulation_gives_the_same_update(tok, task, agg):
    """grad_accum splits a minibatch into micro-batches whose share-weighted gradients add up to the full one."""
    model = build_model(tok, "ci", seed=0)
    warm_start(model, tok, task, steps=40, batch_size=32)  # so rewards (and gradients) are not all zero
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(steps=1, prompts_per_step=3, group_size=4, agg=agg, lr=1e-2, optimizer="sgd", max_grad_norm=None)
    runs = []
    for accum in (1, 3):
        model.load_state_dict(state)
        tr = Trainer(cfg.replace(grad_accum=accum), task, model=model, tokenizer=tok)
        row = tr.train(progress=False)[0]
        runs.append(({k: v.clone() for k, v in model.state_dict().items()}, row))
    (w1, r1), (w3, r3) = runs
    assert r1["grad_norm"] > 0
    assert r1["grad_norm"] == pytest.approx(r3["grad_norm"], rel=1e-5)
    for k in w1:
        torch.testing.assert_close(w1[k], w3[k], atol=1e-7, rtol=1e-5)


def test_amp_keeps_logprobs_fp32_and_close(tok):
    model = build_model(tok, "ci", seed=0)
    batch = rollout_from_text(tok, ["7=", "12="], ["25", "1"], max_new_tokens=4)
    with torch.no_grad():
        lp32, _ = completion_logprobs(model, batch)
        lp16, ent16 = completion_logprobs(model, batch, amp=True)
    assert lp16.dtype == ent16.dtype == torch.float32
    m = batch.completion_mask.bool()
    # bf16 activations change the numbers a little (8 mantissa bits), never the dtype of what we return.
    assert 0 < float((lp16 - lp32)[m].abs().max()) < 0.1


def test_flop_formula_and_no_mfu_on_cpu(tok, task):
    from entropy_rl_lite.llm.flops import matmul_params, peak_flops, train_flops

    model = build_model(tok, "ci", seed=0)
    N = erl.llm.count_parameters(model) - len(tok) * 32  # minus the input embedding [V, d_model]
    assert matmul_params(model) == N
    assert train_flops(model, tokens=10, seq_len=8) == (6 * N + 12 * 2 * 8 * 32) * 10  # 2 layers, d_model 32
    assert peak_flops("cpu") is None
    row = Trainer(TrainConfig(steps=1, prompts_per_step=2, group_size=4), task, tokenizer=tok).train(progress=False)[0]
    assert row["mfu"] is None and row["train_tflops"] > 0


def test_correct_mass_is_what_the_sampled_reward_estimates(tok, task):
    model = build_model(tok, "ci", seed=0)
    warm_start(model, tok, task, steps=60, batch_size=32)
    exact = erl.llm.correct_mass(model, tok, task)
    torch.testing.assert_close(exact, erl.llm.correct_mass(model, tok, task, batch_size=7), rtol=1e-6, atol=1e-9)
    assert bool(((exact > 0) & (exact < 1)).all())
    G = 64
    sampled = evaluate(model, tok, task, samples_per_prompt=G, ks=(1,))
    se = float((G * exact * (1 - exact)).sum().sqrt()) / (G * len(exact))  # sd of the mean of G·prompts Bernoulli draws
    assert abs(sampled["reward"] - exact.mean().item()) < 4 * se, (sampled["reward"], exact.mean().item(), se)


def test_reusing_the_first_forward_pass_for_logp_old_changes_nothing(tok, task):
    """minibatches = 1: logp_old comes from the first update's forward instead of a separate no-grad pass.

    One iteration with three epochs: both runs sample the same batch from the same weights, then update on it.
    The two paths build different autograd graphs (the fused one indexes the full-batch pass by the epoch's row
    order), so gradients, weights and log-probs agree to fp32 rounding, not bitwise, and by how much depends on the
    CPU's kernels. DELTA bounds the log-prob disagreement that rounding can cause here: |log π| < 6 nats on this
    model, fp32's unit roundoff is 6e-8, and a few dozen roundings along the 2-layer forward pass give ~1e-5.
    """
    DELTA = 1e-5
    model = build_model(tok, "ci", seed=0)
    warm_start(model, tok, task, steps=40, batch_size=32)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(steps=1, prompts_per_step=3, group_size=4, epochs=3, eps_high=0.28, lr=3e-3)
    runs = []
    for fuse in (True, False):
        model.load_state_dict(state)
        tr = Trainer(cfg.replace(fuse_logp_old=fuse), task, model=model, tokenizer=tok)
        runs.append(
            (_without_timing(tr.train(progress=False))[0], {k: v.clone() for k, v in model.state_dict().items()})
        )
    (fused, w_fused), (separate, w_separate) = runs
    for k in ("reward", "distinct_correct", "completion_len", "tokens"):  # the same draws: exactly equal
        assert fused[k] == separate[k], k
    assert fused["entropy"] == pytest.approx(separate["entropy"], abs=DELTA)  # a mean of per-token entropies
    # Weights: compared as a whole. Adam divides each gradient by its own running scale, so a coordinate whose
    # gradient is itself at the rounding level can move by a visible fraction of lr in one run and not the other;
    # a real difference (logp_old from the wrong rows, say) moves every coordinate by O(lr), ~1e-2 of the norm.
    diff = torch.cat([(w_fused[k] - w_separate[k]).flatten() for k in w_fused]).norm()
    assert diff <= 1e-5 * torch.cat([w.flatten() for w in w_separate.values()]).norm()
    # The log-probs of the two updated policies on one batch: the quantity every ratio is made of.
    with torch.random.fork_rng():
        torch.manual_seed(0)
        batch = sample(model, tok, list(task.prompts), group_size=4, max_new_tokens=4)
    scored = []
    for w in (w_fused, w_separate):
        model.load_state_dict(w)
        with torch.no_grad():
            scored.append(completion_logprobs(model, batch)[0][batch.completion_mask.bool()])
    assert (scored[0] - scored[1]).abs().max() <= DELTA
    # Derived metrics carry DELTA through their own arithmetic. ratio_mean: dr = r d(log r), |d log r| <= 2 DELTA.
    assert fused["ratio_mean"] == pytest.approx(separate["ratio_mean"], abs=2 * DELTA * fused["ratio_max"])
    # approx_kl = mean(r - 1 - log r) ~ mean(d^2)/2 with d = log r: a small difference of order-one terms. Its change
    # is mean(|r - 1| |Δd|) <= sqrt(mean d^2) * 2 DELTA = sqrt(2 kl) * 2 DELTA (Cauchy-Schwarz), far below kl itself.
    kl = separate["approx_kl"]
    assert fused["approx_kl"] == pytest.approx(kl, abs=2 * DELTA * (2 * kl) ** 0.5)
    for k in ("loss", "grad_norm"):  # order-one sums of per-token terms, each off by O(DELTA)
        assert fused[k] == pytest.approx(separate[k], rel=1e-4, abs=10 * DELTA), k
    assert fused["ratio_mean"] != 1.0 and kl > 1e-3  # the later epochs did move the policy: the check has teeth


# -- review fixes: each of these was a silent wrong answer or a late, unnamed failure ----------------------


def test_sampling_ignores_a_checkpoints_own_generation_settings(tok):
    """A shipped repetition_penalty would sample from something other than the softmax the trainer scores."""
    plain, penalised = build_model(tok, "ci", seed=2), build_model(tok, "ci", seed=2)
    penalised.generation_config.repetition_penalty = 1.3
    draws = []
    for m in (plain, penalised):
        torch.manual_seed(5)
        draws.append(sample(m, tok, ["7=", "11="], group_size=8, max_new_tokens=4).completions)
    assert draws[0] == draws[1]


def test_models_the_fp32_path_cannot_score_are_refused(tok, task):
    model = build_model(tok, "ci", seed=0)
    model.config.final_logit_softcapping = 30.0  # Gemma-style: logits are not hidden·Wᵀ
    with pytest.raises(ValueError, match="final_logit_softcapping"):
        Trainer(TrainConfig(), task, model=model, tokenizer=tok)
    right = CharTokenizer(padding_side="right")
    with pytest.raises(ValueError, match="padding_side must be 'left'"):
        rollout_from_text(right, ["7="], ["25"])


def test_resume_applies_a_new_lr_and_refuses_fields_it_cannot_change(tmp_path, tok, task):
    tr = Trainer(TrainConfig(steps=1, prompts_per_step=2, group_size=4, lr=1e-3), task, tokenizer=tok)
    tr.train(progress=False)
    tr.save(tmp_path / "ckpt")
    resumed = Trainer.resume(tmp_path / "ckpt", task, lr=5e-4, steps=3)
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [5e-4] and resumed.config.steps == 3
    with pytest.raises(ValueError, match=r"cannot change \['optimizer', 'adapo'\]"):
        Trainer.resume(tmp_path / "ckpt", task, optimizer="sgd", adapo=True)


def test_a_log_cut_mid_line_does_not_block_resume(tmp_path, tok, task):
    log = tmp_path / "m.jsonl"
    tr = Trainer(TrainConfig(steps=2, prompts_per_step=2, group_size=4, log_path=str(log)), task, tokenizer=tok)
    tr.train(1, progress=False)
    tr.save(tmp_path / "ckpt")
    tr.train(1, progress=False)
    log.write_text(log.read_text() + '{"step": 2, "entr')  # the crash came mid-write
    Trainer.resume(tmp_path / "ckpt", task).train(progress=False)
    assert [r["step"] for r in read_metrics(log)] == [0, 1]
    meta = json.loads(log.with_suffix(".meta.json").read_text())
    assert meta["start_step"] == 0 and meta["resumes"][0]["start_step"] == 1  # the sidecar records the resume


def test_config_catches_loss_option_typos_and_zeta_outside_its_bounds():
    with pytest.raises(ValueError, match="clip_cov_ratoi"):
        TrainConfig(loss_kwargs={"clip_cov_ratoi": 1e-3})
    with pytest.raises(ValueError, match="zeta_min, zeta_max"):
        TrainConfig(repo="repo_r", zeta=0.5, zeta_control=True)
    assert TrainConfig(objective="clip_cov", loss_kwargs={"clip_cov_ratio": 1e-3}).loss_kwargs


def test_replot_uses_logged_steps_and_skips_nulls_when_smoothing():
    import matplotlib.pyplot as plt

    rows = [{"step": 5 + i, "entropy": v} for i, v in enumerate([1.0, None, 3.0, 5.0])]
    (ax,) = erl.plot.metrics({"resumed run": rows}, fields=("entropy",), smooth=2)
    xs, ys = ax.lines[0].get_data()
    assert list(xs) == [5, 6, 7, 8]  # the log's own step numbers, not 0..3
    assert list(ys) == [1.0, 1.0, 3.0, 4.0]  # a null is left out of its windows instead of blanking them
    plt.close("all")
    with pytest.raises(ValueError, match="no rows"):
        erl.plot.metrics({"empty": []}, fields=("entropy",))


def test_a_diverging_run_says_so_and_where(tok, task, monkeypatch):
    """A non-finite loss stops the run before the optimizer step (weights stay finite), naming the step;
    non-finite weights stop it at sampling instead of deep inside torch.multinomial."""
    import entropy_rl_lite.llm.trainer as trainer_mod

    tr = Trainer(TrainConfig(steps=3, prompts_per_step=2, group_size=2, pass_k=2), task, tokenizer=tok)
    tr.train(1, progress=False)
    real = trainer_mod.policy_loss_unchecked
    monkeypatch.setattr(
        trainer_mod, "policy_loss_unchecked", lambda *a, **k: (real(*a, **k)[0] * math.inf, real(*a, **k)[1])
    )
    before = [p.detach().clone() for p in tr.model.parameters()]
    with pytest.raises(erl.llm.TrainingDiverged, match=r"at step 1: non-finite loss and grad_norm"):
        tr.train(1, progress=False)
    assert all(torch.equal(a, b) for a, b in zip(before, tr.model.parameters()))
    monkeypatch.undo()
    with torch.no_grad():
        tr.model.get_output_embeddings().weight.fill_(math.nan)
    with pytest.raises(erl.llm.TrainingDiverged, match="at step 1: sampling met non-finite probabilities"):
        tr.train(1, progress=False)


# -- what a real stack's sampler does: truncation, low precision, logp_old from the sampler -----------------


def test_sampler_logprobs_are_the_truncated_distribution(tok):
    """top-k/top-p: log q = log π − log(kept mass) on every drawn token, and q = π without truncation."""
    model = build_model(tok, "ci", seed=2)
    prompts = ["3=", "11=", "7="]
    for kw in (dict(top_k=3), dict(top_p=0.8), {}):
        torch.manual_seed(5)
        batch = sample(model, tok, prompts, group_size=4, max_new_tokens=4, sampler_logprobs=True, **kw)
        with torch.no_grad():
            logp, _ = completion_logprobs(model, batch)
            hidden = model(
                input_ids=batch.input_ids,
                attention_mask=batch.attention_mask,
                position_ids=position_ids(batch.attention_mask),
            ).logits
        pi = torch.softmax(hidden[:, batch.prompt_len - 1 : -1].float(), -1)  # [N, T, V], untruncated
        drawn = pi.gather(-1, batch.completion_ids[..., None])[..., 0]
        if "top_k" in kw:  # kept: the 3 likeliest tokens
            kept = pi.topk(3, -1).values.sum(-1)
        elif "top_p" in kw:  # kept: the likeliest tokens until their mass reaches top_p (the one crossing it too)
            srt = pi.sort(-1, descending=True).values
            before = srt.cumsum(-1) - srt
            kept = (srt * (before < 0.8)).sum(-1)
        else:
            kept = torch.ones_like(drawn)
        m = batch.completion_mask.bool()
        assert batch.sampler_logp.dtype == torch.float32 and (batch.sampler_logp[~m] == 0).all()
        torch.testing.assert_close(batch.sampler_logp[m], logp[m] - kept[m].log(), atol=1e-5, rtol=0)
        if kw:
            assert (kept[m] < 1 - 1e-3).any()  # truncation removed mass somewhere, so b < 1 is visible
            assert (drawn[m] > 0).all()


def test_low_precision_logprobs_emulate_a_stack_without_the_fp32_fix(tok):
    """lowp_token_logprobs: fp32 agrees with the chunked path; bf16/fp16 differ by their rounding, no more."""
    g = torch.Generator().manual_seed(0)
    h, w = torch.randn(3, 5, 16, generator=g), torch.randn(14, 16, generator=g)
    y = torch.randint(14, (3, 5), generator=g)
    ref_lp, ref_h = erl.token_logprobs(h, w, y)
    lp32, h32 = erl.lowp_token_logprobs(h, w, y, torch.float32)
    torch.testing.assert_close(lp32, ref_lp, atol=1e-5, rtol=0)
    torch.testing.assert_close(h32, ref_h, atol=1e-5, rtol=0)
    for dtype, unit in ((torch.bfloat16, 2.0**-8), (torch.float16, 2.0**-11)):
        lp, ent = erl.lowp_token_logprobs(h, w, y, dtype)
        assert lp.dtype == torch.float32 and ent.dtype == torch.float32
        err = (lp - ref_lp).abs().max().item()
        # the logits reach |z| ~ 15: their rounding (unit · |z|) bounds the error of log-softmax to a few units
        scale = (h @ w.T).abs().max().item()
        assert 0 < err < 4 * unit * scale
    with pytest.raises(ValueError, match="dtype"):
        erl.lowp_token_logprobs(h, w, y, torch.float64)


def test_trainer_logs_the_sampler_trainer_mismatch(tok, task):
    """logp_old from the sampler: fp32 gives r = 1 at the first update; top-k gives r = π_old/q = kept mass < 1."""
    cfg = TrainConfig(
        steps=2, prompts_per_step=3, group_size=4, eps_high=0.28, objective="ppo", logp_old_source="sampler"
    )
    for row in Trainer(cfg, task, tokenizer=tok).train(progress=False):
        assert abs(row["first_ratio_mean"] - 1) < 1e-5 and row["first_ratio_std"] < 1e-5
        assert abs(row["mismatch"]) < 1e-5 and row["first_clip_frac_high"] == row["first_clip_frac_low"] == 0
    for row in Trainer(cfg.replace(top_k=3), task, tokenizer=tok).train(progress=False):
        assert row["first_ratio_mean"] < 1 and row["mismatch"] > 0  # E_q[log q − log π] = KL(q‖π) > 0
        assert abs(row["first_ratio_mean"] - row["mismatch_ratio_mean"]) < 1e-5  # the same tokens, one pass
        assert (
            row["clip_frac_high_neg_L"] <= row["clip_frac_high"] and row["clip_frac_low_pos_L"] <= row["clip_frac_low"]
        )
    # with logp_old from the trainer the mismatch is logged on request and the first ratio stays exactly 1
    for row in Trainer(cfg.replace(top_k=3, logp_old_source="trainer", log_mismatch=True), task, tokenizer=tok).train(
        progress=False
    ):
        assert row["first_ratio_mean"] == 1.0 and row["mismatch"] > 0
    assert "mismatch" not in Trainer(cfg.replace(logp_old_source="trainer"), task, tokenizer=tok).step()
    rows = Trainer(cfg.replace(sampler_dtype="bfloat16", logprob_dtype="bfloat16"), task, tokenizer=tok).train(
        progress=False
    )
    assert all(math.isfinite(r["mismatch"]) and r["first_ratio_std"] > 0 for r in rows)  # bf16 paths disagree
