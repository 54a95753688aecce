"""What a benchmark prints about where its figures came from: code version and machine load."""

from __future__ import annotations

import hashlib
from pathlib import Path

import entropy_rl_lite as erl


def library_digest() -> str:
    """Short hash of the library's source files, to tie printed figures to the code that produced them."""
    h = hashlib.sha256()
    for f in sorted(Path(erl.__file__).parent.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:12]


def load_average() -> str:
    """The 1-minute load average (Linux), to spot a busy shared machine in the log."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "n/a"
