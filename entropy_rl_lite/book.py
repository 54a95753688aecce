"""The book runner: read book.yml, list the chapters, execute them, render HTML.

    python -m entropy_rl_lite.book list
    python -m entropy_rl_lite.book run [CHAPTER ...] [--inplace] [--keep-going] [--profile ci|cpu|gpu]
    python -m entropy_rl_lite.book html
    python -m entropy_rl_lite.book files [--samples]
    python -m entropy_rl_lite.book variants

CHAPTER is a number ("01"), a slug ("softmax_bandits") or a path. `run` executes into _build/chapters/
and leaves the committed notebooks alone unless --inplace (for authors refreshing stored outputs). A failing
chapter is reported like a failing test (its cell, the failing line, the values involved) and its partly
executed notebook is saved to _build/chapters/, --inplace or not. Every run is recorded in _build/runs.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .book_kernel import environ, kernel_config, run_cells
from .book_report import ANSI, Failure, assert_expressions, failure_report, failure_summary  # noqa: F401  (re-exported)
from .book_runs import last_run, load_runs, record, save_runs
from .book_toc import PROFILES, Book, Chapter, load_book, select  # noqa: F401  (the runner's API: `book.load_book(...)`)
from .float_kernels import kernel_variants  # noqa: F401  (the runner's API: `book.kernel_variants()`)

ERASE_LINE = "\x1b[2K\r"  # a terminal's "clear this line, back to its start"


class ChapterFailed(RuntimeError):
    """A chapter's cell raised; str() is the full report, `summary` one line of it for runs.json."""

    def __init__(self, report: str, summary: str, seconds: float, notebook: Path):
        super().__init__(report)
        self.report, self.summary, self.seconds, self.notebook = report, summary, seconds, notebook


def chapter_profile(chapter: Chapter, profile: str | None = None, inplace: bool = False) -> str:
    """The profile a run uses: the --profile override; else "gpu" for a `gpu: true` chapter on a CUDA machine
    (readers with a GPU get the real run); else the chapter's own. In-place refreshes keep the chapter's own
    profile, so committed outputs always come from it."""
    if profile:
        return profile
    if chapter.gpu and not inplace:
        import torch

        if torch.cuda.is_available():
            return "gpu"
    return chapter.profile


def execute(
    book: Book,
    chapter: Chapter,
    inplace: bool = False,
    profile: str | None = None,
    timeout: int = 1800,
    on_cell: Callable[[int, int, float], None] | None = None,
) -> float:
    """Execute one chapter with a fresh kernel; return its wall time in seconds, or raise ChapterFailed.

    on_cell(number, total, seconds) is called as each cell starts. A failed run saves its partly executed notebook
    to _build/ (even with inplace: the committed notebook only ever receives complete runs)."""
    import nbformat
    from nbclient import NotebookClient

    src = book.root / chapter.file
    build = book.root / "_build" / chapter.file
    nb = nbformat.read(src, as_version=4)
    start = time.perf_counter()
    with (
        environ("ERL_PROFILE", chapter_profile(chapter, profile, inplace)),
        tempfile.TemporaryDirectory(prefix="erl-kernel-") as sockets,
    ):
        client = NotebookClient(
            nb,
            timeout=timeout,
            interrupt_on_timeout=True,  # a cell past the timeout fails with a traceback showing where it was
            kernel_name="python3",
            resources={"metadata": {"path": str(src.parent)}},
            config=kernel_config(sockets),
        )
        failure = run_cells(client, nb, on_cell or (lambda *_: None), start)
    elapsed = time.perf_counter() - start
    out = build if failure or not inplace else src
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
    if failure:
        saved = out.relative_to(book.root)
        report = failure_report(chapter.file, nb, failure, saved)
        raise ChapterFailed(report, failure_summary(nb, failure), elapsed, saved)
    return elapsed


def nbval_files(book: Book, samples_only: bool = False) -> list[Path]:
    """Notebooks the tests execute: every chapter not marked `nbval: skip`, then every solutions notebook.

    samples_only: just the chapters marked `samples: true` and their solutions (what `make test-portable` reruns).
    """
    chapters = [c for c in book.chapters if c.nbval != "skip" and (c.samples or not samples_only)]
    solutions = sorted((book.root / "chapters" / "solutions").glob("*.ipynb"))
    if samples_only:
        stems = {c.stem for c in chapters}
        solutions = [s for s in solutions if s.stem.removesuffix("_solutions") in stems]
    return [Path(c.file) for c in chapters] + [s.relative_to(book.root) for s in solutions]


def cmd_list(book: Book) -> None:
    runs = load_runs(book)
    print(f"{book.title}  (version {book.version})")
    print(f"{'#':<3} {'chapter':<34} {'part':<10} {'profile':<8} {'budget':>7} {'last run':>13}")
    for c in book.chapters:
        part = (c.part or "-").split(":")[0]
        last = last_run(runs.get(c.file))
        print(f"{c.number:<3} {c.stem:<34} {part:<10} {c.profile:<8} {c.budget_s:>6.0f}s {last:>13}")


def _cell_progress(stem: str, budget: float) -> Callable[[int, int, float], None] | None:
    """A live 'cell 15/42 running, 12s of 90s' line on a terminal; nothing when the output is a log."""
    if not sys.stderr.isatty():
        return None

    def show(number: int, total: int, seconds: float) -> None:
        line = f"  {stem}: cell {number}/{total} running, {seconds:.0f}s of {budget:.0f}s"
        print(ERASE_LINE + line, end="", file=sys.stderr, flush=True)

    return show


def _table(rows: list[tuple[Chapter, str, float | None]]) -> list[str]:
    """The end-of-run table: chapter, status, seconds (None: not run), budget."""
    out = [f"{'chapter':<34} {'status':<8} {'time':>8} {'budget':>8}"]
    for c, status, s in rows:
        flag = "  OVER BUDGET" if s is not None and s > c.budget_s else ""
        took = f"{s:.1f}s" if s is not None else "-"
        out.append(f"{c.stem:<34} {status:<8} {took:>8} {c.budget_s:>7.0f}s{flag}")
    return out


def _run_one(
    book: Book, c: Chapter, label: str, runs: dict[str, Any], inplace: bool, profile: str | None
) -> tuple[str, float]:
    """Run one chapter with progress lines, print its report if it fails, record it; return (status, seconds)."""
    used = chapter_profile(c, profile, inplace)
    print(f"{label} {c.stem}: running (profile {used}, budget {c.budget_s:.0f}s)", flush=True)
    progress = _cell_progress(c.stem, c.budget_s)
    report = None
    try:
        seconds = execute(book, c, inplace=inplace, profile=profile, on_cell=progress)
        notebook, failure = Path(c.file if inplace else f"_build/{c.file}"), None
    except ChapterFailed as e:
        seconds, notebook, failure, report = e.seconds, e.notebook, e.summary, e.report
    if progress:
        print(ERASE_LINE, end="", file=sys.stderr)
    if report:
        print(f"\n{report}\n", file=sys.stderr, flush=True)
    record(runs, c, seconds, used, notebook, failure)
    save_runs(book, runs)  # after every chapter: a failed or interrupted run keeps the times it measured
    status = runs[c.file]["status"]
    over = " (OVER BUDGET)" if seconds > c.budget_s else ""
    print(f"{label} {c.stem}: {status} in {seconds:.1f}s of {c.budget_s:.0f}s{over}", flush=True)
    return status, seconds


def cmd_run(book: Book, names: list[str], inplace: bool, profile: str | None, keep_going: bool = False) -> int:
    chapters = select(book, names)
    runs = load_runs(book)
    rows: list[tuple[Chapter, str, float | None]] = []
    for i, c in enumerate(chapters, 1):
        status, seconds = _run_one(book, c, f"[{i}/{len(chapters)}]", runs, inplace, profile)
        rows.append((c, status, seconds))
        if status == "failed" and not keep_going:
            break
    rows += [(c, "not run", None) for c in chapters[len(rows) :]]
    print("\n" + "\n".join(_table(rows)))
    count = {status: sum(s == status for _, s, _ in rows) for status in ("passed", "failed", "not run")}
    over = sum(s is not None and s > c.budget_s for c, _, s in rows)
    build = book.root / "_build" / "chapters"
    print(
        f"executed {count['passed']} chapter(s) into {'the committed notebooks (--inplace)' if inplace else build}"
        + (f"; {count['failed']} FAILED (partly executed copies in {build})" if count["failed"] else "")
        + (f"; {over} over budget" if over else "")
        + (f"; {count['not run']} not run (--keep-going runs the rest)" if count["not run"] else "")
    )
    return 1 if count["failed"] else 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m entropy_rl_lite.book", description=__doc__.split("\n\n")[0])
    ap.add_argument("--book", default="book.yml", help="path to book.yml (default: ./book.yml)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="chapters, budgets and last run times")
    run = sub.add_parser("run", help="execute chapters into _build/ (or --inplace)")
    run.add_argument("chapters", nargs="*", help="numbers, slugs or paths; default: every chapter")
    run.add_argument("--inplace", action="store_true", help="refresh the committed notebooks' outputs")
    run.add_argument("--keep-going", action="store_true", help="after a failing chapter, run the rest")
    run.add_argument("--profile", choices=PROFILES, help="override each chapter's profile (sets ERL_PROFILE)")
    sub.add_parser("html", help="render the executed book to _build/html/")
    files = sub.add_parser(
        "files", help="print the notebooks nbval checks: chapters (unless nbval: skip) and solutions"
    )
    files.add_argument(
        "--samples", action="store_true", help="only chapters marked `samples: true`, and their solutions"
    )
    sub.add_parser(
        "variants", help="print the non-native float-kernel configurations, one per line: NAME VAR=VALUE ..."
    )
    args = ap.parse_args(argv)
    book = load_book(args.book)
    if args.cmd == "list":
        cmd_list(book)
        return 0
    if args.cmd == "run":
        return cmd_run(book, args.chapters, args.inplace, args.profile, args.keep_going)
    if args.cmd == "files":
        print("\n".join(str(p) for p in nbval_files(book, samples_only=args.samples)))
        return 0
    if args.cmd == "variants":
        for name, env in kernel_variants().items():
            print(name, *(f"{k}={v}" for k, v in env.items()))
        return 0
    from .book_html import render  # nbconvert: only for this command

    index = render(book)
    print(f"open {index}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
