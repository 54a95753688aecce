"""The book runner: read book.yml, list the chapters, execute them, render HTML.

    python -m entropy_rl_lite.book list
    python -m entropy_rl_lite.book run [CHAPTER ...] [--inplace] [--profile ci|cpu|gpu]
    python -m entropy_rl_lite.book html
    python -m entropy_rl_lite.book files [--samples]
    python -m entropy_rl_lite.book variants

CHAPTER is a number ("01"), a slug ("softmax_bandits") or a path. `run` executes into _build/chapters/
and leaves the committed notebooks alone unless --inplace (for authors refreshing stored outputs).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from .book_toc import PROFILES, Book, Chapter, load_book, select  # noqa: F401  (the runner's API: `book.load_book(...)`)
from .float_kernels import kernel_variants  # noqa: F401  (the runner's API: `book.kernel_variants()`)


def _runs_file(book: Book) -> Path:
    return book.root / "_build" / "runs.json"


def _load_runs(book: Book) -> dict[str, Any]:
    f = _runs_file(book)
    return json.loads(f.read_text()) if f.exists() else {}


class ChapterFailed(RuntimeError):
    """A chapter's cell raised; the message names the chapter, the cell and the error."""


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
    book: Book, chapter: Chapter, inplace: bool = False, profile: str | None = None, timeout: int = 1800
) -> float:
    """Execute one chapter with a fresh kernel; return its wall time in seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    src = book.root / chapter.file
    nb = nbformat.read(src, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(src.parent)}}
    )
    saved = os.environ.get("ERL_PROFILE")
    os.environ["ERL_PROFILE"] = chapter_profile(chapter, profile, inplace)  # the kernel inherits our environment
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        failing = next(
            (
                i
                for i, c in enumerate(nb.cells)
                if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.get("outputs", []))
            ),
            None,
        )
        where = f"cell {failing + 1} of {len(nb.cells)}" if failing is not None else "a cell"
        first = nb.cells[failing].source.strip().splitlines()[0] if failing is not None else ""
        raise ChapterFailed(f"{chapter.file}: {where} failed ({first!r})\n{e.ename}: {e.evalue}") from None
    finally:
        if saved is None:
            os.environ.pop("ERL_PROFILE", None)
        else:
            os.environ["ERL_PROFILE"] = saved
    elapsed = time.perf_counter() - start
    out = src if inplace else book.root / "_build" / chapter.file
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out)
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
    runs = _load_runs(book)
    print(f"{book.title}  (version {book.version})")
    print(f"{'#':<3} {'chapter':<34} {'part':<10} {'profile':<8} {'budget':>7} {'last run':>9}")
    for c in book.chapters:
        last = runs.get(c.file, {}).get("seconds")
        part = (c.part or "-").split(":")[0]
        print(
            f"{c.number:<3} {c.stem:<34} {part:<10} {c.profile:<8} {c.budget_s:>6.0f}s "
            f"{(f'{last:.1f}s' if last is not None else '-'):>9}"
        )


def cmd_run(book: Book, names: list[str], inplace: bool, profile: str | None) -> int:
    from tqdm import tqdm

    chapters = select(book, names)
    runs = _load_runs(book)
    results = []
    bar = tqdm(chapters, unit="chapter", desc="book")
    for c in bar:
        bar.set_postfix_str(c.stem)
        try:
            seconds = execute(book, c, inplace=inplace, profile=profile)
        except ChapterFailed as e:
            bar.close()
            print(f"\nFAILED {e}", file=sys.stderr)
            return 1
        runs[c.file] = {
            "seconds": round(seconds, 2),
            "budget_s": c.budget_s,
            "profile": chapter_profile(c, profile, inplace),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        results.append((c, seconds))
    _runs_file(book).parent.mkdir(parents=True, exist_ok=True)
    _runs_file(book).write_text(json.dumps(runs, indent=1))
    print(f"\n{'chapter':<34} {'time':>8} {'budget':>8}")
    over = 0
    for c, s in results:
        flag = "" if s <= c.budget_s else "  OVER BUDGET"
        over += bool(flag)
        print(f"{c.stem:<34} {s:>7.1f}s {c.budget_s:>7.0f}s{flag}")
    where = "the committed notebooks (--inplace)" if inplace else f"{book.root / '_build' / 'chapters'}"
    print(f"executed {len(results)} chapter(s) into {where}" + (f"; {over} over budget" if over else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m entropy_rl_lite.book", description=__doc__.split("\n\n")[0])
    ap.add_argument("--book", default="book.yml", help="path to book.yml (default: ./book.yml)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="chapters, budgets and last run times")
    run = sub.add_parser("run", help="execute chapters into _build/ (or --inplace)")
    run.add_argument("chapters", nargs="*", help="numbers, slugs or paths; default: every chapter")
    run.add_argument("--inplace", action="store_true", help="refresh the committed notebooks' outputs")
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
        return cmd_run(book, args.chapters, args.inplace, args.profile)
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
