"""_build/runs.json, the record of every chapter's last run: its status, time, budget, profile, when, the notebook
it wrote and, for a failure, the one-line summary and the chapter's last passing run; `book list` and `book html`
read it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .book_toc import Book, Chapter


def _runs_file(book: Book) -> Path:
    """Where the book's run records live."""
    return book.root / "_build" / "runs.json"


def load_runs(book: Book) -> dict[str, Any]:
    """_build/runs.json: {chapter file: its last run (status, seconds, budget_s, profile, when, notebook, ...)}."""
    f = _runs_file(book)
    return json.loads(f.read_text()) if f.exists() else {}


def save_runs(book: Book, runs: dict[str, Any]) -> None:
    """Write runs.json through a temporary file, so that an interrupted run never leaves half a file."""
    f = _runs_file(book)
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(runs, indent=1))
    tmp.replace(f)


def record(runs: dict[str, Any], c: Chapter, seconds: float, profile: str, notebook: Path, failure: str | None) -> None:
    """Store this run of c; a failed run keeps the time of the chapter's last passing run as `last_passed`."""
    old, status = runs.get(c.file, {}), "failed" if failure else "passed"
    entry = {
        "status": status,
        "seconds": round(seconds, 2),
        "budget_s": c.budget_s,
        "profile": profile,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "notebook": notebook.as_posix(),
    }
    if failure:
        entry["failure"] = failure
        if old.get("status", "passed") == "passed" and "seconds" in old:  # entries before statuses were passes
            entry["last_passed"] = {k: old[k] for k in ("seconds", "profile", "when") if k in old}
        elif "last_passed" in old:
            entry["last_passed"] = old["last_passed"]
    runs[c.file] = entry


def last_run(run: dict[str, Any] | None) -> str:
    """'12.4s' for a passed run, '3.1s FAILED' for a failed one, '-' for none (old entries were all passes)."""
    if not run or run.get("seconds") is None:
        return "-"
    return f"{run['seconds']:.1f}s" + (" FAILED" if run.get("status") == "failed" else "")
