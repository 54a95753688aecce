"""erl-train answers a mistake in one line, before it writes or trains anything; it writes only under --out,
never mixes two runs there, and finishes an interrupted run with --resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from entropy_rl_lite.llm import CharTokenizer, build_model
from entropy_rl_lite.llm.spec import load_spec
from entropy_rl_lite.llm.train import _parser, main

TINY = ["--set", "train.steps=1", "--set", "phase2_task=null", "--set", "warm_start.steps=2"]
TINY += ["--set", "eval_samples=2", "--set", "eval_ks=[1, 2]", "--set", "train.pass_k=2", "--no-progress"]


def _one_line_error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting a refusal; return its message, which must be a single line."""
    capsys.readouterr()  # drop what came before (a test's own setup may print)
    rc = main(argv)
    err = capsys.readouterr().err.strip()
    assert rc == 2, err
    assert err.startswith("erl-train: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    "override,expected",
    [
        ("train.lr=1e-4", 1e-4),  # the README's example: YAML 1.1 would read 1e-4 as a string
        ("train.lr=2E-3", 2e-3),
        ("train.lr='3e-4'", 3e-4),  # a number in quotes takes the field's type
        ("train.lr=1", 1.0),
        ("train.steps='7'", 7),
    ],
)
def test_set_values_take_the_fields_type(override, expected):
    cfg = load_spec("ci", None, [override]).train_config("grpo")
    key = override.split("=")[0].split(".")[1]
    assert getattr(cfg, key) == expected and type(getattr(cfg, key)) is type(expected)


@pytest.mark.parametrize(
    "override,match",
    [
        ("train.adapo='false'", "adapo must be True or False, got 'false'"),  # the string is truthy: never a switch
        ("algorithms.grpo.amp='no'", "amp must be True or False, got 'no'"),
        ("train.fuse_logp_old=1", "fuse_logp_old must be True or False"),
        ("train.steps=ten", "train.steps: steps must be an int, got the string 'ten'"),
        ("train.lr=fast", "train.lr: lr must be a float, got the string 'fast'"),
        ("train.lr=[1", "is not valid YAML (line 1, column 3)"),
        ("train.lerning_rate=1e-4", "did you mean 'lr'?"),
        ("train.learning_rate=1e-4", "did you mean 'lr'?"),
        ("algorithms.dapo.eps_hgh=0.3", "algorithms.dapo: unknown TrainConfig field(s) ['eps_hgh'] (did you mean"),
        ("algorithms={grpo: {}, ../../escaped: {}}", "algorithm name '../../escaped' is not a valid name"),
        ("algorithms={.hidden: {}}", "algorithm name '.hidden' is not a valid name"),
        ("algorithms={a/b: {}}", "algorithm name 'a/b' is not a valid name"),
        ("train.log_path=/tmp/elsewhere.jsonl", "['log_path'] cannot be set in a spec"),
        ("algorithms.grpo.checkpoint_dir=../ckpt", "['checkpoint_dir'] cannot be set in a spec"),
        ("eval_ks=3", "eval_ks must be a list of ints"),
    ],
)
def test_bad_settings_fail_in_one_line_and_write_nothing(override, match, tmp_path, capsys):
    out = tmp_path / "out"
    err = _one_line_error(capsys, ["compare", "--profile", "ci", "--out", str(out), "--set", override])
    assert match in err, err
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing written, inside --out or outside it


def test_malformed_spec_file_names_the_file_and_line(tmp_path, capsys):
    spec = tmp_path / "mine.yaml"
    spec.write_text("profile: ci\ntrain: {steps: 2\n")
    err = _one_line_error(capsys, ["compare", "--config", str(spec), "--out", str(tmp_path / "out")])
    assert f"{spec} is not valid YAML (line 3" in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_device_this_machine_lacks_fails_before_anything_is_written(tmp_path, capsys):
    out = tmp_path / "out"
    err = _one_line_error(capsys, ["compare", "--profile", "gpu", "--device", "cuda", "--out", str(out)])
    assert "--device 'cuda': this torch build has no CUDA" in err or "no CUDA GPU is visible" in err
    assert not out.exists()  # no spec.yaml left behind
    assert "not a device name" in _one_line_error(capsys, ["compare", "--device", "gpu0", "--out", str(out)])


def test_model_paths_fail_in_one_line(tmp_path, capsys):
    missing = tmp_path / "nothing"
    err = _one_line_error(capsys, ["train", "--model", str(missing), "--out", str(tmp_path / "out")])
    assert "no such directory" in err and "hub ids are not downloaded" in err
    tok = CharTokenizer()
    model_dir = tmp_path / "model"
    build_model(tok, "ci").save_pretrained(model_dir)
    err = _one_line_error(capsys, ["train", "--model", str(model_dir), "--out", str(tmp_path / "out")])
    assert "lacks ['tokenizer_config.json']" in err
    tok.save_pretrained(model_dir)
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    (model_dir / "tokenizer_config.json").write_text(
        json.dumps({**config, "auto_map": {"AutoTokenizer": ["x.T", None]}})
    )
    err = _one_line_error(capsys, ["train", "--model", str(model_dir), "--out", str(tmp_path / "out")])
    assert "auto_map" in err and "never does" in err
    assert not (tmp_path / "out").exists()


def test_out_must_be_a_new_or_empty_directory(tmp_path, capsys):
    assert "got an empty string" in _one_line_error(capsys, ["compare", "--out", ""])
    (tmp_path / "file").write_text("x")
    assert "is a file, not a directory" in _one_line_error(capsys, ["compare", "--out", str(tmp_path / "file")])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    for flag in ([], ["--overwrite"], ["--resume"]):
        err = _one_line_error(capsys, ["compare", "--out", str(mine), *flag])
        assert "is not empty" in err, err
    assert (mine / "notes.txt").read_text() == "keep me"  # not an erl-train run: never deleted
    assert "holds no run to resume" in _one_line_error(capsys, ["compare", "--out", str(tmp_path / "new"), "--resume"])


def test_gpu_profile_on_a_cpu_says_what_it_will_do_and_how_long(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "x").write_text("")  # a non-empty --out is refused after the warning: nothing trains
    rc = main(["compare", "--profile", "gpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "warning: the gpu profile is sized for a GPU" in err
    assert "75.5M-parameter model" in err and "at least" in err and "hours" in err and "--profile cpu" in err


def test_help_lists_fields_and_algorithms_and_hides_the_worker(capsys):
    top = _parser().format_help()
    assert "SUPPRESS" not in top and "{compare,train}" in top and "\n    one" not in top
    assert "compare --help` lists every spec key" in top
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = capsys.readouterr().out
    assert "train.lr: float = 0.001" in text and "η" in text  # the field's doc, from its source comment
    assert "train.log_path" not in text  # placed under --out by the pipeline, not settable
    flat = " ".join(text.split())  # argparse wraps its own help to the terminal width
    assert (
        "train.adapo: bool = False" in flat and "repo_r_llm_bounds" in flat and "(default: ci, on any machine)" in flat
    )


def test_resume_finishes_a_run_and_overwrite_replaces_it(tmp_path, capsys):
    """A run interrupted after its first algorithm: --resume keeps the warm start and that algorithm, reruns the
    other; the progress bars name the algorithm and phase; --overwrite starts again from nothing."""
    out = tmp_path / "run"
    argv = ["compare", "--profile", "ci", "--out", str(out), "--algos", "grpo", "dapo", *TINY]
    assert main(argv) == 0
    kept = (out / "grpo.summary.json").read_bytes(), (out / "warm_start.summary.json").read_bytes()
    (out / "dapo.summary.json").unlink()  # as if killed while dapo ran: its log and checkpoint are partial
    (out / "phase1" / "dapo.jsonl").write_text('{"step": 0, "cut')
    assert "is not empty (it holds a previous run)" in _one_line_error(capsys, argv)
    changed = [*argv, "--set", "train.lr=0.5", "--resume"]
    assert "the spec differs" in _one_line_error(capsys, changed)
    assert main([a for a in argv if a != "--no-progress"] + ["--resume"]) == 0
    err = capsys.readouterr().err
    assert "dapo · phase 1" in err and "grpo · phase 1" not in err and "warm start" not in err
    assert ((out / "grpo.summary.json").read_bytes(), (out / "warm_start.summary.json").read_bytes()) == kept
    assert len((out / "phase1" / "dapo.jsonl").read_text().splitlines()) == 1  # rerun from scratch: one step
    meta = json.loads((out / "run.meta.json").read_text())
    assert meta["resumed"] == ["grpo"] and set(json.loads((out / "summary.json").read_text())) == {
        "warm_start",
        "grpo",
        "dapo",
    }
    (out / "stale.txt").write_text("from the old run")
    assert main([*argv, "--overwrite"]) == 0
    assert not (out / "stale.txt").exists() and (out / "grpo.summary.json").read_bytes() != kept[0]


def test_nothing_is_written_outside_out(tmp_path):
    """Every path a compare run writes lies under --out (and --out's own parent gets nothing else)."""
    out = tmp_path / "a" / "out"
    assert main(["compare", "--profile", "ci", "--out", str(out), "--algos", "grpo", *TINY]) == 0
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["out"] and list(tmp_path.iterdir()) == [tmp_path / "a"]
    assert all(Path(p).resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
