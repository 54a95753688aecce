"""Many small runs side by side: one `Trainer` per (arm, seed), spread over worker processes.

The chapters compare methods over paired seeds, tens of runs of a tiny model. One run uses one core
well and a second thread only contends, so the runs go to `jobs` processes, each with `threads` torch
threads. A run is the same whether it ran in a worker or here: every process starts from the same saved
weights and the trainer seeds its own random streams from `TrainConfig.seed`.

    runs = {("GRPO", s): base.replace(seed=s) for s in range(5)}
    results = run_many(runs, task, "out/warm_start", jobs=2)      # {key: RunResult}
    results["GRPO", 0].history[-1]["entropy"];  results["GRPO", 0].load_model()
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Hashable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from tqdm import tqdm

from .._checks import check_int
from .config import TrainConfig
from .model import load_model
from .tokenizer import load_tokenizer
from .trainer import Trainer


@dataclass(frozen=True)
class RunResult:
    """What one run leaves: its per-step log rows and its final weights (on the CPU)."""

    history: list[dict[str, Any]]
    state_dict: dict[str, torch.Tensor]
    model_dir: str  # the start the run was trained from

    def load_model(self) -> Any:
        """The trained model: the start's architecture with this run's final weights."""
        model = load_model(self.model_dir)
        model.load_state_dict(self.state_dict)
        return model


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run_one(cfg: TrainConfig, task: Any, model_dir: str, threads: int) -> RunResult:
    """Train one run from the model saved in `model_dir` (a worker's job, or the caller's with jobs=1)."""
    with _torch_threads(threads):
        trainer = Trainer(cfg, task, model=load_model(model_dir), tokenizer=load_tokenizer(model_dir))
        trainer.train(progress=False)
    weights = {k: v.detach().cpu().clone() for k, v in trainer.model.state_dict().items()}
    return RunResult(trainer.history, weights, model_dir)


def run_many(
    runs: Mapping[Hashable, TrainConfig],
    task: Any,
    model_dir: str | Path,
    jobs: int = 1,
    threads: int = 1,
    progress: bool = True,
) -> dict[Hashable, RunResult]:
    """Train every config of `runs` from the model in `model_dir`; -> {key: RunResult} in the order of `runs`.

    jobs > 1 runs them in that many spawned processes (the task must pickle; `environments` tasks do).
    Each config's log_path, if set, is written by the process that runs it; give each run its own.
    """
    check_int("jobs", jobs, low=1)
    check_int("threads", threads, low=1)
    bad = [key for key, cfg in runs.items() if not isinstance(cfg, TrainConfig)]
    if bad:
        raise ValueError(f"runs must map keys to TrainConfig, got {type(runs[bad[0]]).__name__} for {bad[0]!r}")
    paths = [Path(cfg.log_path).resolve() for cfg in runs.values() if cfg.log_path is not None]
    if len(set(paths)) != len(paths):
        raise ValueError("two runs share a log_path; give each run its own file")
    model_dir = str(model_dir)
    missing = [f for f in ("config.json", "tokenizer_config.json") if not (Path(model_dir) / f).is_file()]
    if missing:
        raise ValueError(
            f"model_dir must hold a saved model and tokenizer (save_pretrained of both); {model_dir!r} lacks {missing}"
        )
    bar = tqdm(total=len(runs), desc="runs", disable=not progress)
    done: dict[Hashable, RunResult] = {}
    if jobs == 1 or len(runs) <= 1:
        for key, cfg in runs.items():
            done[key] = _run_one(cfg, task, model_dir, threads)
            bar.update()
    else:
        # spawn, not fork: a forked child of a process that has run torch's thread pools can hang
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(jobs, len(runs)), mp_context=context)
        finished_all = False
        try:
            futures = {pool.submit(_run_one, cfg, task, model_dir, threads): key for key, cfg in runs.items()}
            pending = set(futures)
            while pending:
                finished, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in finished:
                    key = futures[future]
                    if future.exception() is not None:
                        raise RuntimeError(f"run {key!r} failed: {future.exception()}") from future.exception()
                    done[key] = future.result()
                    bar.update()
            finished_all = True
        finally:
            # after a failure or an interrupt, return at once: queued runs are cancelled, running ones end on their own
            pool.shutdown(wait=finished_all, cancel_futures=not finished_all)
    bar.close()
    return {key: done[key] for key in runs}
