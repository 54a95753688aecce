"""Checkpoints: a kill anywhere inside `save` leaves one whole checkpoint, a damaged one fails naming the file and
the problem, no checkpoint runs code, and a bf16 run resumes bit for bit."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from entropy_rl_lite.llm import CharTokenizer, CheckpointError, RemoteCodeRefused, TrainConfig, Trainer, load_model
from entropy_rl_lite.llm.atomic import partial_path, previous_path
from environments.text_tasks import SumToEnv

KILLER = Path(__file__).with_name("save_killer.py")
TASK = SumToEnv(min_target=3, max_target=8, max_len=3)


def _run_killer(out: Path, k: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(KILLER), str(out), str(k)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_a_kill_at_any_point_inside_save_leaves_the_old_or_the_new_checkpoint_whole(tmp_path):
    """Save step 2 over step 1's checkpoint and die at each file-system event: the checkpoint then resumes as
    step 1 with step 1's weights, or as step 2 with step 2's, never a mix (and never nothing)."""
    counter = _run_killer(tmp_path / "count", 0)
    out, err = counter.communicate()
    assert counter.returncode == 0, err
    events = int(out.split()[-1])
    # weights, trainer_state.safetensors, trainer_state.json, two renames, the old copy's removal
    assert events == 6, f"save now has {events} file-system events; review save_killer.py's hooks"
    procs = {k: _run_killer(tmp_path / f"kill_{k}", k) for k in range(1, events + 1)}
    for k, proc in procs.items():
        _, err = proc.communicate()
        assert proc.returncode == -9, f"event {k}: expected death by SIGKILL, got {proc.returncode}\n{err}"
    for k in procs:
        ckpt = tmp_path / f"kill_{k}" / "ckpt"
        resumed = Trainer.resume(ckpt, TASK)
        # Events 1-4 come before the new copy is published (writes into the partial copy, the first rename).
        expected = 1 if k <= 4 else 2
        assert resumed.step_count == expected, f"kill at event {k}"
        ref = load_file(tmp_path / f"kill_{k}" / f"ref_{expected}.safetensors")
        for name, w in resumed.model.state_dict().items():
            assert torch.equal(w, ref[name]), f"kill at event {k}: {name} is not step {expected}'s"
        assert not partial_path(ckpt).exists() and not previous_path(ckpt).exists()
        resumed.train(progress=False)  # and it trains on
        assert resumed.step_count == 2


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    tr = Trainer(
        TrainConfig(steps=1, prompts_per_step=2, group_size=2, pass_k=2, repo="repo_r", zeta=1e-3, zeta_control=True),
        TASK,
        tokenizer=CharTokenizer(),
    )
    tr.train(progress=False)
    return tr.save(tmp_path_factory.mktemp("ckpt") / "ckpt")


def _copy(saved: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(saved, tmp_path / "ckpt"))


def _edit_json(path: Path, edit) -> None:
    state = json.loads(path.read_text())
    edit(state)
    path.write_text(json.dumps(state))


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _drop_tensor(path: Path, key: str) -> None:
    tensors = load_file(path)
    del tensors[key]
    save_file(tensors, path)


DAMAGE = {
    "state JSON cut short": (lambda d: _cut(d / "trainer_state.json"), "trainer_state.json: not valid JSON"),
    "state tensors cut short": (
        lambda d: _cut(d / "trainer_state.safetensors"),
        "trainer_state.safetensors: unreadable",
    ),
    "state tensors garbled": (
        lambda d: (d / "trainer_state.safetensors").write_bytes(b"\x00" * 64),
        "trainer_state.safetensors: unreadable",
    ),
    "generator state missing": (
        lambda d: _drop_tensor(d / "trainer_state.safetensors", "rng.generator"),
        "lacks the tensors ['rng.generator']",
    ),
    "weights cut short": (lambda d: _cut(d / "model.safetensors"), "the model weights do not load"),
    "step missing": (lambda d: _edit_json(d / "trainer_state.json", lambda s: s.pop("step")), "'step' must be a int"),
    "step negative": (
        lambda d: _edit_json(d / "trainer_state.json", lambda s: s.update(step=-3)),
        "'step' must be >= 0",
    ),
    "config field invalid": (
        lambda d: _edit_json(d / "trainer_state.json", lambda s: s["config"].update(lr="fast")),
        "its config does not validate: lr must be a real number",
    ),
    "controller target NaN": (
        lambda d: _edit_json(
            d / "trainer_state.json", lambda s: s["controllers"]["zeta"].update(target_entropy=float("nan"))
        ),
        "target_entropy must be finite",
    ),
    "controller value out of bounds": (
        lambda d: _edit_json(d / "trainer_state.json", lambda s: s["controllers"]["zeta"].update(value=7.0)),
        "zeta must be 0 or have |zeta| in",
    ),
    "controller state missing": (
        lambda d: _edit_json(d / "trainer_state.json", lambda s: s["controllers"].pop("zeta")),
        "saved controllers [] differ",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_checkpoint_fails_naming_the_file_and_the_problem(saved, tmp_path, damage):
    ckpt = _copy(saved, tmp_path)
    harm, message = DAMAGE[damage]
    harm(ckpt)
    with pytest.raises(CheckpointError) as e:
        Trainer.resume(ckpt, TASK)
    assert message in str(e.value) and str(ckpt) in str(e.value), str(e.value)


def test_save_refuses_to_replace_a_directory_that_is_not_a_checkpoint(saved, tmp_path):
    tr = Trainer.resume(saved, TASK)
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="is not a checkpoint"):
        tr.save(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize("config_file", ["tokenizer_config.json", "config.json"])
def test_a_checkpoint_that_asks_to_run_its_own_code_is_refused(saved, tmp_path, config_file):
    """transformers would import the checkpoint's Python file (after a y/N prompt for a tokenizer); we never do."""
    ckpt = _copy(saved, tmp_path)
    (ckpt / "evil.py").write_text("raise SystemExit('the checkpoint ran code')\n")
    _edit_json(ckpt / config_file, lambda c: c.update(auto_map={"AutoTokenizer": ["evil.Tok", None]}))
    with pytest.raises(RemoteCodeRefused, match=f"{config_file} has an auto_map.*never does"):
        Trainer.resume(ckpt, TASK)
    if config_file == "config.json":
        with pytest.raises(RemoteCodeRefused):
            load_model(ckpt)


def test_a_bf16_run_resumes_bit_for_bit(tmp_path):
    """The RoPE frequencies a checkpoint does not store stay fp32 in a built bf16 model, as a loaded one has them."""
    cfg = TrainConfig(steps=3, prompts_per_step=2, group_size=4, pass_k=2, dtype="bfloat16", lr=3e-3)
    tok = CharTokenizer()
    full = Trainer(cfg, TASK, tokenizer=tok)
    full.train(progress=False)
    part = Trainer(cfg, TASK, tokenizer=tok)
    part.train(2, progress=False)
    part.save(tmp_path / "ckpt")
    resumed = Trainer.resume(tmp_path / "ckpt", TASK)
    resumed.train(progress=False)
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert a.dtype == torch.bfloat16 and torch.equal(a, b), name
    for name, buf in full.model.named_buffers():
        assert buf.dtype == torch.float32, name
