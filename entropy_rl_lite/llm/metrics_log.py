"""Per-step metrics as JSON Lines: one object per training step, appended and flushed as it happens.

A crashed run keeps every completed step; a resumed run first drops the lines at or after the step it
resumes from, so the file always reads as one uninterrupted run. `read_metrics` loads a file back, and
`erl.plot.metrics` re-plots it.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TIMING_KEYS = ("step_time_s", "rollout_time_s", "tokens_per_s")  # the only fields that differ between reruns


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null rather than invalid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class MetricsLog:
    """Append-only JSONL writer; `truncate_from(step)` forgets steps >= step (used on resume)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, row: dict[str, Any]) -> None:
        """Write one step's metrics as a line and flush it to disk."""
        with self.path.open("a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in row.items()}) + "\n")

    def truncate_from(self, step: int) -> None:
        """Keep only the rows of steps < `step`."""
        if not self.path.exists():
            return
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
