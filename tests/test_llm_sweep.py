"""run_many: runs in worker processes are the runs the caller would have made itself."""

import pytest
import torch

import entropy_rl_lite as erl
from entropy_rl_lite.llm import CharTokenizer, TrainConfig, Trainer, build_model, load_model, run_many
from environments.text_tasks import SumToEnv

TASK = SumToEnv(targets=(3, 4, 6, 7))
BASE = TrainConfig(steps=2, prompts_per_step=3, group_size=4, epochs=2, minibatches=2, max_new_tokens=4)


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    tok = CharTokenizer()
    model = build_model(tok, "ci", seed=3)
    erl.llm.warm_start(model, tok, TASK, steps=40, batch_size=32, lr=3e-3, seed=0)  # some rewards, so runs move
    path = tmp_path_factory.mktemp("start")
    with erl.llm.quiet_progress():
        model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def _without_timing(rows):
    return [{k: v for k, v in r.items() if k not in erl.llm.TIMING_KEYS} for r in rows]


def test_workers_reproduce_the_callers_runs(start, tmp_path):
    runs = {
        ("grpo", 0): BASE.replace(seed=0, log_path=str(tmp_path / "g0.jsonl")),
        ("rloo", 1): BASE.replace(seed=1, advantage="rloo"),
        ("grpo", 1): BASE.replace(seed=1),
    }
    here = run_many(runs, TASK, start, jobs=1, progress=False)
    there = run_many({**runs, ("grpo", 0): runs["grpo", 0].replace(log_path=None)}, TASK, start, jobs=2, progress=False)
    assert list(there) == list(runs)  # the caller's order, whatever order the workers finished in
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as run_many's runs (threads=1): the same kernels, so the same bits
    try:
        direct = Trainer(runs["rloo", 1], TASK, model=load_model(start), tokenizer=CharTokenizer())
        direct.train(progress=False)
    finally:
        torch.set_num_threads(threads)
    assert _without_timing(direct.history) == _without_timing(here["rloo", 1].history)
    for key in runs:
        assert _without_timing(here[key].history) == _without_timing(there[key].history)
        trained = there[key].load_model().state_dict()
        assert all(torch.equal(trained[k], v) for k, v in here[key].state_dict.items())
    assert len(erl.llm.read_metrics(tmp_path / "g0.jsonl")) == BASE.steps
    assert _without_timing(here["grpo", 1].history) != _without_timing(here["rloo", 1].history)


def test_a_failing_worker_names_its_run(start):
    bad = BASE.replace(seed=0, log_path="/proc/no-such-dir/boom.jsonl")  # the worker cannot create its log
    with pytest.raises(RuntimeError, match="run 'boom' failed"):
        run_many({"fine": BASE, "boom": bad}, TASK, start, jobs=2, progress=False)


@pytest.mark.parametrize(
    ("runs", "kwargs", "match"),
    [
        ({"a": {"seed": 0}}, {}, "TrainConfig"),
        ({"a": BASE.replace(log_path="x.jsonl"), "b": BASE.replace(log_path="x.jsonl")}, {}, "log_path"),
        ({"a": BASE}, {"jobs": 0}, "jobs"),
        ({"a": BASE}, {"threads": 0}, "threads"),
    ],
)
def test_bad_arguments_raise(start, runs, kwargs, match):
    with pytest.raises(ValueError, match=match):
        run_many(runs, TASK, start, progress=False, **kwargs)


def test_model_dir_must_hold_a_saved_model(tmp_path):
    with pytest.raises(ValueError, match="model_dir"):
        run_many({"a": BASE}, TASK, tmp_path, progress=False)
