"""pytest configuration shared by the library tests and nbval over the chapters.

nbval compares outputs only in cells tagged `nbval-check-output` (we run it with --nbval-lax); for those,
stderr (warnings, progress bars) and rich outputs other than plain text are not compared: they vary
between machines and library versions without the chapter's meaning changing.
"""

from __future__ import annotations


def pytest_collectstart(collector) -> None:
    path = getattr(collector, "path", None)
    if path is not None and path.suffix == ".ipynb":
        collector.skip_compare += (
            "stderr",
            "text/html",
            "text/markdown",
            "application/javascript",
            "image/svg+xml",
            "text/latex",
        )
