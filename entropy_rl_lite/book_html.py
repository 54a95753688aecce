"""The book as static HTML: each executed chapter through nbconvert, and an index page (`book html`)."""

from __future__ import annotations

import html
from pathlib import Path

from .book import Book


def render(book: Book) -> Path:
    """Render each chapter (its executed copy in _build if there is one) to _build/html, plus an index page."""
    import nbformat
    from nbconvert import HTMLExporter

    out_dir = book.root / "_build" / "html"
    out_dir.mkdir(parents=True, exist_ok=True)
    exporter = HTMLExporter()
    for c in book.chapters:
        executed = book.root / "_build" / c.file
        nb = nbformat.read(executed if executed.exists() else book.root / c.file, as_version=4)
        body, _ = exporter.from_notebook_node(nb)
        (out_dir / f"{c.stem}.html").write_text(body)
    items, part = [], None
    for c in book.chapters:
        if c.part != part:
            if part is not None:
                items.append("</ol></li>")
            if c.part is not None:
                items.append(f"<li><strong>{html.escape(c.part)}</strong><ol>")
            part = c.part
        items.append(f'<li><a href="{c.stem}.html">{html.escape(c.title(book.root))}</a></li>')
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
