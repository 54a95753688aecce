"""Replace a directory so that a kill at any instant leaves the old one or the new one, whole.

`write_atomically(directory, write)` lets `write` fill a fresh sibling `.<name>.partial`, flushes its files
to disk, then swaps it in with two renames (each atomic on a POSIX file system):

    <name>            -> .<name>.previous     the old directory, whole, moved aside
    .<name>.partial   -> <name>               the new one, whole
    .<name>.previous     removed

A kill while `write` runs leaves <name> untouched (the next write discards the partial copy). A kill
between the two renames leaves the new copy complete in .partial (the first rename only happens once
`write` has returned) and the old one in .previous; `recover`, which every read and write calls first,
finishes the swap. A kill after the second rename leaves only a stale .previous, which `recover` removes.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path


def partial_path(directory: Path) -> Path:
    """Where a new copy of `directory` is written before it is swapped in."""
    return directory.with_name(f".{directory.name}.partial")


def previous_path(directory: Path) -> Path:
    """Where the old copy waits while the new one is swapped in."""
    return directory.with_name(f".{directory.name}.previous")


def recover(directory: str | Path) -> Path:
    """Finish or undo a swap that a kill interrupted; afterwards `directory` is whole or absent."""
    directory = Path(directory)
    partial, previous = partial_path(directory), previous_path(directory)
    if not directory.exists() and previous.is_dir():
        # Killed between the renames: .partial is complete (renaming starts only after `write` returned).
        os.rename(partial if partial.is_dir() else previous, directory)
    for stale in (previous, partial):  # a finished swap's leftover, or a write that never finished
        if stale.is_dir():
            shutil.rmtree(stale)
    return directory


def _fsync(path: Path) -> None:
    """Flush one file or directory entry to disk (a kill loses nothing written; a power cut would)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(directory: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on an empty sibling directory, then swap it in for `directory` (see the module doc)."""
    directory = recover(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    partial, previous = partial_path(directory), previous_path(directory)
    partial.mkdir()
    write(partial)
    for path in [*partial.rglob("*"), partial]:  # the data is on disk before any rename publishes it
        _fsync(path)
    if directory.exists():
        os.rename(directory, previous)
    os.rename(partial, directory)
    _fsync(directory.parent)  # and the renames themselves
    if previous.exists():
        shutil.rmtree(previous)
    return directory
