"""The output directory of a compare run: made new, refused, overwritten, or resumed — never mixed silently.

mode "new"        --out must be absent or empty
mode "overwrite"  a previous run's directory (it holds spec.yaml) is emptied first; anything else is refused
mode "resume"     a previous run of the same spec is finished: its warm start and every algorithm whose
                  summary exists are kept, the others' partial outputs removed and run again
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

MODES = ("new", "overwrite", "resume")
SPEC_FILE = "spec.yaml"


def write_json(path: Path, obj: Any) -> None:
    """Write JSON through a temporary sibling and a rename: a kill leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def check_out(out: str | Path) -> Path:
    """`out` as a Path; an empty name or an existing file fails with one line."""
    if str(out).strip() == "":
        raise ValueError("--out must name a directory, got an empty string")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {str(out)!r} is a file, not a directory")
    return out


def prepare_out(out: str | Path, spec_dict: dict[str, Any], mode: str = "new") -> list[str]:
    """Make `out` ready for a run of `spec_dict` in `mode`; returns the algorithms already finished (resume)."""
    from .spec import read_yaml

    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; known: {MODES}")
    out = check_out(out)
    if not out.exists() or not any(out.iterdir()):
        if mode == "resume":
            raise ValueError(f"--resume: {str(out)!r} holds no run to resume; drop --resume to start one")
        out.mkdir(parents=True, exist_ok=True)
        return []
    is_run = (out / SPEC_FILE).is_file()
    if mode == "new":
        raise ValueError(
            f"--out {str(out)!r} is not empty{' (it holds a previous run)' if is_run else ''}: choose a new "
            "directory, or pass --overwrite to replace that run, or --resume to finish it"
        )
    if not is_run:
        raise ValueError(
            f"--out {str(out)!r} is not empty and holds no {SPEC_FILE}, so it is not an erl-train run: "
            "refusing to overwrite or resume it; choose a new directory"
        )
    if mode == "overwrite":
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        return []
    saved = read_yaml((out / SPEC_FILE).read_text(), str(out / SPEC_FILE))
    if saved != spec_dict:
        changed = sorted(k for k in set(saved or {}) | set(spec_dict) if (saved or {}).get(k) != spec_dict.get(k))
        raise ValueError(
            f"--resume: the spec differs from the one that started {str(out)!r} (in {changed}); "
            "resume with the same settings, or --overwrite"
        )
    finished = [n for n in spec_dict["algorithms"] if (out / f"{n}.summary.json").is_file()]
    for name in spec_dict["algorithms"]:
        if name not in finished:
            discard_algorithm(out, name)
    return finished


def discard_algorithm(out: Path, name: str) -> None:
    """Remove what an unfinished run of one algorithm left (logs, sidecars, checkpoints)."""
    for phase_dir in out.glob("phase*"):
        for path in phase_dir.glob(f"{name}*"):
            if path.name == name or path.name.startswith(f"{name}."):
                shutil.rmtree(path) if path.is_dir() else path.unlink()
    for leftover in (out / f"{name}.summary.json", out / f"{name}.stderr.log"):
        leftover.unlink(missing_ok=True)
