"""The book's table of contents: book.yml read and validated into chapters with their run settings."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
