"""Config fields documented once, in the source: the comment beside (or above) each field becomes its doc.

    @document_fields
    @dataclass(frozen=True)
    class BanditConfig(RLFields):
        lr: float = 1e-3  # η

`field_docs(BanditConfig)` reads those comments (through the class and its dataclass bases), and
`document_fields` appends them to the class docstring, so `help(BanditConfig)` lists every field with its
type, default and meaning; `erl-train --help` prints the same table for TrainConfig.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from typing import NamedTuple


class FieldDoc(NamedTuple):
    name: str
    type: str
    default: str
    doc: str


def _comments(cls: type) -> dict[str, str]:
    """Field name -> its comment in `cls`'s own source (the trailing one, after any comment lines just above)."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):  # no source (a frozen app, a class made at runtime): no docs, not an error
        return {}
    source = textwrap.dedent("".join(lines))
    src_lines = source.splitlines()
    docs = {}
    for node in ast.parse(source).body[0].body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        above, i = [], node.lineno - 2
        while i >= 0 and src_lines[i].strip().startswith("#"):
            above.insert(0, src_lines[i].strip().lstrip("#").strip())
            i -= 1
        line = src_lines[node.end_lineno - 1]
        trailing = line.split("  # ", 1)[1].strip() if "  # " in line else ""
        docs[node.target.id] = " ".join(part for part in (*above, trailing) if part)
    return docs


def field_docs(cls: type) -> list[FieldDoc]:
    """Every field of the dataclass `cls`, in declaration order, with the comment that documents it."""
    comments: dict[str, str] = {}
    for klass in reversed(cls.__mro__):  # a subclass's comment wins over its base's
        if dataclasses.is_dataclass(klass):
            comments.update({k: v for k, v in _comments(klass).items() if v})
    out = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = repr(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            default = repr(f.default_factory())
        else:
            default = "required"
        out.append(FieldDoc(f.name, str(f.type), default, comments.get(f.name, "")))
    return out


def format_fields(cls: type, prefix: str = "", width: int = 100, skip: tuple[str, ...] = ()) -> str:
    """The fields (but `skip`) as an indented list: `name: type = default` and its doc wrapped beneath."""
    rows = []
    for d in (d for d in field_docs(cls) if d.name not in skip):
        rows.append(f"    {prefix}{d.name}: {d.type} = {d.default}")
        if d.doc:
            rows.extend(textwrap.wrap(d.doc, width, initial_indent=" " * 8, subsequent_indent=" " * 8))
    return "\n".join(rows)


def document_fields(cls: type) -> type:
    """Class decorator: append a "Fields" section (from the source comments) to the docstring of a dataclass."""
    cls.__doc__ = f"{inspect.cleandoc(cls.__doc__ or '')}\n\nFields:\n{format_fields(cls)}\n"
    return cls
