"""The book as static HTML: each executed chapter through nbconvert, and an index page (`book html`).

A chapter that failed in its last run, or that this build did not execute (so the page shows the outputs stored
in the committed notebook), is marked on the index and at the top of its page, and warned about on the console.
"""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path
from typing import Any

from .book_runs import load_runs
from .book_toc import Book, Chapter

BANNER = (
    "<div class='erl-warning' style='background:#fff3cd; border:1px solid #d4a017; padding:0.6em 1em; "
    "margin:1em; font-family:sans-serif'><strong>Warning:</strong> {notes}</div>"
)


def chapter_source(book: Book, chapter: Chapter, runs: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """The notebook to render for chapter (its _build copy unless stale) and what a reader must be told about it:
    {short mark: detail}, empty for a chapter executed by this build and passing."""
    src, build = book.root / chapter.file, book.root / "_build" / chapter.file
    run = runs.get(chapter.file, {})
    fresh = build.exists() and build.stat().st_mtime >= src.stat().st_mtime
    notes = {}
    if run.get("status") == "failed":
        stop = "; its outputs stop at the failing cell" if fresh else ""
        notes["failed in the last run"] = f"{run.get('when', '?')}, {run.get('failure', 'see book run')}{stop}"
    # a passing --inplace run wrote its outputs into the committed notebook: that one is executed, not stale
    refreshed = run.get("status") == "passed" and run.get("notebook") == chapter.file
    if not fresh and not refreshed:
        why = "no executed copy in _build/" if not build.exists() else f"the _build/ copy is older than {chapter.file}"
        notes["not executed in this build"] = f"{why}; showing the outputs stored in the committed notebook"
    return (build if fresh else src), notes


def _describe(notes: dict[str, str]) -> str:
    """The notes as one line: "mark (detail); mark (detail)"."""
    return "; ".join(f"{mark} ({detail})" for mark, detail in notes.items())


def _mark(notes: dict[str, str]) -> str:
    """The short mark next to a chapter on the index page; the details show on hovering."""
    title = html.escape(_describe(notes))
    return f" <span class='erl-warning' style='color:#a00' title='{title}'>({html.escape(', '.join(notes))})</span>"


def _with_banner(body: str, notes: dict[str, str]) -> str:
    """The page with a warning box first thing inside <body>."""
    banner = BANNER.format(notes=html.escape(_describe(notes)))
    out, n = re.subn(r"(<body[^>]*>)", lambda m: m.group(1) + banner, body, count=1)
    return out if n else banner + body


def render(book: Book) -> Path:
    """Render each chapter (its executed copy in _build if there is a fresh one) to _build/html, plus an index page."""
    import nbformat
    from nbconvert import HTMLExporter

    out_dir = book.root / "_build" / "html"
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    runs = load_runs(book)
    marks = {}
    for c in book.chapters:
        path, notes = chapter_source(book, c, runs)
        body, _ = exporter.from_notebook_node(nbformat.read(path, as_version=4))
        if notes:
            body, marks[c.file] = _with_banner(body, notes), _mark(notes)
            print(f"warning: {c.stem}: {_describe(notes)}", file=sys.stderr)
        (out_dir / f"{c.stem}.html").write_text(body)
    items, part = [], None
    for c in book.chapters:
        if c.part != part:
            if part is not None:
                items.append("</ol></li>")
            if c.part is not None:
                items.append(f"<li><strong>{html.escape(c.part)}</strong><ol>")
            part = c.part
        items.append(f'<li><a href="{c.stem}.html">{html.escape(c.title(book.root))}</a>{marks.get(c.file, "")}</li>')
    if part is not None:
        items.append("</ol></li>")
    index = (
        f"<!doctype html><meta charset='utf-8'><title>{html.escape(book.title)}</title>"
        f"<body style='font-family: sans-serif; max-width: 46em; margin: 3em auto'>"
        f"<h1>{html.escape(book.title)}</h1><p>{html.escape(book.subtitle)}</p>"
        f"<p>Version {html.escape(book.version)}</p><ul>{''.join(items)}</ul></body>"
    )
    (out_dir / "index.html").write_text(index)
    return out_dir / "index.html"
