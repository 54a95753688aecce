"""Per-step metrics as JSON Lines: one object per training step, appended and flushed as it happens.

A crashed run keeps every completed step; a resumed run first drops the lines at or after the step it
resumes from, so the file always reads as one uninterrupted run. `read_metrics` loads a file back, and
`erl.plot.metrics` re-plots it.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

TIMING_KEYS = (
    "step_time_s",
    "rollout_time_s",
    "update_time_s",
    "tokens_per_s",
    "train_tflops",
    "mfu",
)  # the only fields that differ between reruns


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null rather than invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def run_metadata(device: torch.device | str = "cpu") -> dict[str, Any]:
    """Where a run happened: versions, hardware, git commit, time (the sidecar of a committed log)."""
    device = torch.device(device)
    hardware = (
        torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or platform.machine())
    )
    try:
        commit = (
            subprocess.run(
                ["git", "rev-parse", "--short=12", "HEAD"],
                capture_output=True,
                text=True,
                timeout=5,
                cwd=Path(__file__).parent,
            ).stdout.strip()
            or None
        )
    except (OSError, subprocess.SubprocessError):
        commit = None
    versions = {}
    for pkg in ("entropy-rl-lite", "torch", "transformers"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "versions": {**versions, "python": platform.python_version()},
        "device": str(device),
        "hardware": hardware,
        "torch_threads": torch.get_num_threads(),
        "git_commit": commit,
        "started_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


class MetricsLog:
    """Append-only JSONL writer; `truncate_from(step)` forgets steps >= step (used on resume)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    @property
    def meta_path(self) -> Path:
        """The sidecar next to the log: `<name>.meta.json` (config, versions, hardware, commit)."""
        return self.path.with_suffix(".meta.json")

    def write_meta(self, meta: dict[str, Any]) -> None:
        """Write the sidecar (overwrites: a fresh run's log starts with fresh metadata)."""
        self.meta_path.write_text(json.dumps(meta, indent=1))

    def start(self, step: int, meta: dict[str, Any]) -> None:
        """Before a process's first logged step: a fresh run (step 0) empties the log and writes the sidecar; a
        resumed run keeps the original sidecar and appends where and with what it continued to its `resumes`."""
        if step == 0:
            self.path.write_text("")  # a new run replaces an old log instead of appending to it
        if step == 0 or not self.meta_path.exists():
            self.write_meta(meta)
            return
        old = json.loads(self.meta_path.read_text())
        keep = ("resumed_from", "start_step", "config", "started_utc", "hardware", "git_commit")
        old.setdefault("resumes", []).append({k: meta[k] for k in keep if k in meta})
        self.write_meta(old)

    def append(self, row: dict[str, Any]) -> None:
        """Write one step's metrics as a line and flush it to disk."""
        with self.path.open("a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")

    def truncate_from(self, step: int) -> None:
        """Keep only the rows of steps < `step`."""
        if not self.path.exists():
            return
        lines = self.path.read_text().splitlines()
        if lines and lines[-1].strip():
            try:
                json.loads(lines[-1])
            except json.JSONDecodeError:  # a crash mid-write leaves half a line; that step is redone anyway
                self.path.write_text("".join(line + "\n" for line in lines[:-1]))
        rows = [r for r in read_metrics(self.path) if r["step"] < step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a metrics JSONL file, in file order (a missing file raises FileNotFoundError)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no metrics file at {str(path)!r}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{n} is not valid JSON ({e.msg}); was the file cut mid-line?") from e
    return rows
