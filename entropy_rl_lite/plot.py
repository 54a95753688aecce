"""Plotting helpers for chapters: curves over steps with seed bands, and where a policy's mass sits.

matplotlib is imported lazily, so the library itself does not need it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from .bandit import History
from .logs import read_metrics


def _plt():
    import matplotlib.pyplot as plt

    return plt


# The per-step curves a History holds ([steps(+1), seeds] tensors; probs is per arm: see `arm_probs`).
HISTORY_FIELDS = tuple(f.name for f in dataclasses.fields(History) if f.type == "Tensor") + ("clip_frac",)


def _check_field(runs: Mapping[str, Any], field: object) -> None:
    """`field` must be a curve every History in runs has; the error lists the valid ones."""
    if not isinstance(field, str):
        raise TypeError(f"field must be a str naming a History curve, got {type(field).__name__}")
    if field not in HISTORY_FIELDS and any(isinstance(run, History) for run in runs.values()):
        raise ValueError(f"unknown field {field!r}; a History has: {', '.join(HISTORY_FIELDS)}")


def curves(
    runs: Mapping[str, History | Tensor],
    field: str = "entropy",
    ax: Any = None,
    band: str = "minmax",
    ylabel: str | None = None,
    title: str | None = None,
    x: Mapping[str, Tensor] | None = None,
) -> Any:
    """One line per run: the seed mean of `field` per step, with a band over seeds.

    band: 'minmax' (lowest to highest seed), 'iqr' (25th to 75th percentile), 'std' (mean ± 1 sd) or None.

    runs: name -> History (its `field`, [steps, seeds]) or a tensor [steps] / [steps, seeds].
    x: name -> the step numbers of that run's rows (default 0, 1, 2, ...).
    """
    if band not in ("minmax", "iqr", "std", None):
        raise ValueError(f"unknown band {band!r}; known: 'minmax', 'iqr', 'std', None")
    if not isinstance(runs, Mapping):
        raise TypeError(f"runs must be a mapping name -> History or tensor, got {type(runs).__name__}")
    _check_field(runs, field)
    ys = {name: _curve(name, getattr(run, field) if isinstance(run, History) else run) for name, run in runs.items()}
    plt = _plt()
    ax = ax if ax is not None else plt.subplots(figsize=(6, 3.2), dpi=80)[1]
    for name, y in ys.items():
        y = y[:, None] if y.dim() == 1 else y.reshape(y.shape[0], -1)
        steps = torch.arange(y.shape[0]) if x is None or name not in x else torch.as_tensor(x[name])
        if steps.shape != (y.shape[0],):
            raise ValueError(f"x[{name!r}] has shape {tuple(steps.shape)}; run {name!r} has {y.shape[0]} steps")
        (line,) = ax.plot(steps, y.mean(1), label=name)
        if band and y.shape[1] > 1:
            if band == "minmax":
                lo, hi = y.amin(1), y.amax(1)
            elif band == "iqr":
                lo, hi = y.quantile(0.25, dim=1), y.quantile(0.75, dim=1)
            else:
                lo, hi = y.mean(1) - y.std(1), y.mean(1) + y.std(1)
            ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    ax.set_xlabel("step")
    ax.set_ylabel(field if ylabel is None else ylabel)
    if title:
        ax.set_title(title)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    return ax


def _curve(name: str, run: object) -> Tensor:
    """A run's values as a float64 tensor [steps] or [steps, ...]; anything else names the run."""
    try:
        y = torch.as_tensor(run, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TypeError(f"run {name!r} must be a History or a tensor [steps] / [steps, seeds], got {run!r}") from None
    if y.dim() == 0:
        raise ValueError(f"run {name!r} must be [steps] or [steps, seeds], got a single number")
    return y


def arm_probs(
    history: History,
    seed: int = 0,
    state: int = 0,
    labels: Sequence[str] | None = None,
    highlight: Sequence[int] = (),
    ax: Any = None,
    title: str | None = None,
) -> Any:
    """Stacked area of π(a) over steps for one seed (and state): where the probability mass goes.

    highlight: arms drawn in strong colours (e.g. the correct ones); the rest are grey.
    """
    if not isinstance(history, History):
        raise TypeError(f"history must be a bandit History (from erl.bandit.run), got {type(history).__name__}")
    if history.probs is None:
        raise ValueError("history has no probs: run the engine with record_probs=True")
    p = history.probs[:, _check_index("seed", seed, history.probs.shape[1])]
    if p.dim() == 3:
        p = p[:, _check_index("state", state, p.shape[1])]  # [steps+1, arms]
    elif state != 0:
        raise ValueError(f"state must be 0: this history has a single state, got state={state!r}")
    plt = _plt()
    ax = ax if ax is not None else plt.subplots(figsize=(6, 3.2), dpi=80)[1]
    K = p.shape[1]
    strong = plt.get_cmap("tab10")
    colors = [strong(i % 10) if i in highlight else plt.get_cmap("Greys")(0.25 + 0.5 * (i % 2)) for i in range(K)]
    names = labels or [f"arm {i}" + (" ✓" if i in highlight else "") for i in range(K)]
    ax.stackplot(torch.arange(p.shape[0]), p.T.numpy(), colors=colors, labels=names, linewidth=0)
    ax.set_xlim(0, p.shape[0] - 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("step")
    ax.set_ylabel("π(a)")
    if title:
        ax.set_title(title)
    if highlight:
        handles, texts = ax.get_legend_handles_labels()
        keep = [i for i in range(K) if i in highlight]
        ax.legend([handles[i] for i in keep], [texts[i] for i in keep], fontsize=8, loc="upper left")
    return ax


def _check_index(name: str, i: object, n: int) -> int:
    if isinstance(i, bool) or not isinstance(i, int):
        raise TypeError(f"{name} must be an int, got {type(i).__name__}")
    if not 0 <= i < n:
        raise ValueError(f"{name} must be in [0, {n}), got {i}")
    return i


def metrics(
    runs: Mapping[str, Any],
    fields: Sequence[str] = ("entropy", "reward"),
    smooth: int = 1,
    axes: Any = None,
    title: str | None = None,
) -> Any:
    """Re-plot trainer runs from their JSONL metrics: one panel per field, one line per run.

    runs: name -> a metrics file path (as `TrainConfig.log_path` writes) or a list of row dicts
    (`Trainer.history`), or groups of them (name -> [path, path, ...]: the lines are seed means with a
    min-max band). smooth: trailing moving average over this many steps (1 = raw). Returns the axes.
    """
    if isinstance(smooth, bool) or not isinstance(smooth, int) or smooth < 1:
        raise ValueError(f"smooth must be an int >= 1, got {smooth!r}")
    if isinstance(fields, str) or not all(isinstance(f, str) for f in fields):
        raise TypeError(f"fields must be a sequence of field names, e.g. ('entropy',), got {fields!r}")
    plt = _plt()
    if axes is None:
        _, axes = plt.subplots(1, len(fields), figsize=(4.2 * len(fields), 3.2), dpi=80, squeeze=False)
        axes = axes[0]
    for ax, field in zip(axes, fields):
        series, xs = {}, {}
        for name, run in runs.items():
            group = run if isinstance(run, (list, tuple)) and run and not isinstance(run[0], dict) else [run]
            ys, steps = [], None
            for one in group:
                rows = read_metrics(one) if not isinstance(one, list) else one
                if not rows:
                    raise ValueError(f"run {name!r} has no rows (an empty log or history)")
                missing = [r["step"] for r in rows if field not in r]
                if missing:
                    raise ValueError(f"run {name!r} has no field {field!r} (known: {sorted(rows[0])})")
                ys.append(
                    torch.tensor([float("nan") if r[field] is None else r[field] for r in rows], dtype=torch.float64)
                )
                steps = torch.tensor([r["step"] for r in rows]) if steps is None else steps
            n = min(len(y) for y in ys)
            y = torch.stack([y[:n] for y in ys], 1)  # [steps, runs]
            if smooth > 1:  # trailing mean over the last `smooth` steps that have a value (a logged null is skipped)
                ok = ~torch.isnan(y)
                c = torch.cat([torch.zeros(1, y.shape[1], dtype=y.dtype), torch.where(ok, y, 0).cumsum(0)])
                k = torch.cat([torch.zeros(1, y.shape[1], dtype=y.dtype), ok.to(y.dtype).cumsum(0)])
                idx = torch.arange(1, n + 1)
                lo = (idx - smooth).clamp_min(0)
                y = (c[idx] - c[lo]) / (k[idx] - k[lo])  # 0/0 -> nan only where the whole window is empty
            series[name], xs[name] = y, steps[:n]
        curves(series, field, ax=ax, x=xs)
    if title:
        axes[0].figure.suptitle(title)
    return axes
