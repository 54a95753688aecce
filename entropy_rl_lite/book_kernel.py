"""The chapter's kernel: the run's profile in its environment, private ipc sockets, and the notebook run in it cell by
cell, kept alive at a failure long enough to ask it for the values the failure report shows.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .book_report import Failure, cell_failure


@contextmanager
def environ(name: str, value: str) -> Iterator[None]:
    """Set one environment variable for the duration (the kernel inherits our environment), then restore it."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


def kernel_config(socket_dir: str) -> Any:
    """Kernel settings: on POSIX, talk over ipc sockets in socket_dir. Over TCP, ipykernel >= 7 warns at every
    start that the traffic is unencrypted; local sockets are private to the user and need no such warning."""
    from traitlets.config import Config

    if os.name != "posix":  # no ipc transport on Windows
        return Config()
    return Config({"KernelManager": {"transport": "ipc", "ip": os.path.join(socket_dir, "kernel")}})


def run_cells(client: Any, nb: Any, on_cell: Callable[[int, int, float], Any], start: float) -> Failure | None:
    """Run the notebook cell by cell, as NotebookClient.execute does, but keep the kernel alive at a failure
    long enough to ask it for the values in the failing assert."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    client.reset_execution_trackers()
    with client.setup_kernel():
        info = client.wait_for_reply(client.kc.kernel_info())
        if info and "language_info" in info["content"]:
            nb.metadata["language_info"] = info["content"]["language_info"]
        for index, cell in enumerate(nb.cells):
            on_cell(index + 1, len(nb.cells), time.perf_counter() - start)
            try:
                client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
            except CellExecutionError:
                return cell_failure(client, nb, index)
            except (CellTimeoutError, DeadKernelError) as e:  # the kernel is busy or gone: nothing to ask it
                return Failure(index, type(e).__name__, str(e).strip().splitlines()[0] if str(e).strip() else "")
        client.set_widgets_metadata()
    return None
