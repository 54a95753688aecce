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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .float_kernels import kernel_variants  # noqa: F401  (part of the runner's API: `book.kernel_variants()`)

PROFILES = ("ci", "cpu", "gpu")
NBVAL_MODES = ("lax", "skip")
SETTINGS = {"profile": str, "budget_s": (int, float), "nbval": str, "gpu": bool, "samples": bool}


@dataclass
class Chapter:
    """One notebook of the book with its execution settings."""

    file: str  # path relative to the book root, e.g. chapters/01_softmax_bandits.ipynb
    part: str | None  # title of the part it belongs to (None for top-level entries)
    profile: str = "ci"
    budget_s: float = 120.0
    nbval: str = "lax"
    gpu: bool = False
    samples: bool = False  # samples or trains: its numbers depend on the float kernels (test-portable)

    @property
    def stem(self) -> str:
        return Path(self.file).stem

    @property
    def number(self) -> str:
        return self.stem.split("_", 1)[0]

    def title(self, root: Path) -> str:
        """The notebook's H1 heading (its first markdown line starting with '# ')."""
        nb = json.loads((root / self.file).read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "markdown":
                for line in "".join(cell["source"]).splitlines():
                    if line.startswith("# "):
                        return line[2:].strip()
        return self.stem


@dataclass
class Book:
    title: str
    version: str
    subtitle: str
    chapters: list[Chapter]
    root: Path
    parts: list[str] = field(default_factory=list)


def _settings(where: str, values: Any, base: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise ValueError(f"book.yml: execution settings for {where} must be a mapping, got {values!r}")
    out = dict(base)
    for key, val in values.items():
        if key not in SETTINGS:
            raise ValueError(f"book.yml: unknown execution setting {key!r} for {where}; known: {', '.join(SETTINGS)}")
        if not isinstance(val, SETTINGS[key]) or (key == "budget_s" and (isinstance(val, bool) or val <= 0)):
            raise ValueError(f"book.yml: {key}={val!r} for {where} is not a valid value")
        out[key] = val
    if out["profile"] not in PROFILES:
        raise ValueError(f"book.yml: profile {out['profile']!r} for {where}; known: {', '.join(PROFILES)}")
    if out["nbval"] not in NBVAL_MODES:
        raise ValueError(f"book.yml: nbval {out['nbval']!r} for {where}; known: {', '.join(NBVAL_MODES)}")
    return out


def load_book(path: str | Path = "book.yml") -> Book:
    """Parse and validate book.yml: every listed file must exist; settings must be known and valid."""
    import yaml

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no book file at {path.resolve()}")
    root = path.resolve().parent
    data = yaml.safe_load(path.read_text()) or {}
    for key in ("title", "version", "project"):
        if key not in data:
            raise ValueError(f"book.yml: missing top-level key {key!r}")
    toc = data["project"].get("toc")
    if not isinstance(toc, list) or not toc:
        raise ValueError("book.yml: project.toc must be a non-empty list")
    execution = data.get("execution", {}) or {}
    defaults = _settings(
        "defaults",
        execution.get("defaults", {}),
        {"profile": "ci", "budget_s": 120.0, "nbval": "lax", "gpu": False, "samples": False},
    )
    per_file = execution.get("chapters", {}) or {}

    chapters: list[Chapter] = []
    parts: list[str] = []

    def add(entry: Any, part: str | None) -> None:
        if not isinstance(entry, dict) or ("file" not in entry) == ("children" not in entry):
            raise ValueError(f"book.yml: toc entry {entry!r} needs exactly one of 'file' or 'children'")
        if "children" in entry:
            if part is not None:
                raise ValueError(f"book.yml: parts cannot nest (inside {part!r})")
            title = entry.get("title")
            if not title:
                raise ValueError(f"book.yml: a part needs a title: {entry!r}")
            parts.append(title)
            for child in entry["children"]:
                add(child, title)
            return
        file = entry["file"]
        if not (root / file).is_file():
            raise ValueError(f"book.yml: toc entry file {file!r} does not exist (looked in {root})")
        chapters.append(Chapter(file=file, part=part, **_settings(file, per_file.get(file, {}), defaults)))

    for entry in toc:
        add(entry, None)
    unknown = set(per_file) - {c.file for c in chapters}
    if unknown:
        raise ValueError(f"book.yml: execution settings for files not in the toc: {sorted(unknown)}")
    return Book(
        title=data["title"],
        version=str(data["version"]),
        subtitle=data.get("subtitle", ""),
        chapters=chapters,
        root=root,
        parts=parts,
    )


def select(book: Book, names: list[str]) -> list[Chapter]:
    """Chapters matching each name (number, slug, stem or path), in book order; all when names is empty."""
    if not names:
        return list(book.chapters)
    chosen = []
    for name in names:
        hits = [
            c
            for c in book.chapters
            if name in (c.number, c.stem, c.file, Path(c.file).name)
            or c.stem.split("_", 1)[-1] == name
            or Path(name).resolve() == (book.root / c.file).resolve()
        ]
        if not hits:
            known = ", ".join(c.stem for c in book.chapters)
            raise SystemExit(f"no chapter matches {name!r}; chapters: {known}")
        chosen.extend(h for h in hits if h not in chosen)
    return sorted(chosen, key=book.chapters.index)


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
