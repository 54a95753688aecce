"""A failing chapter's report, laid out like a failing test's: where it failed, the cell's source with the failing
line marked, the error, the values of the failing assert's parts (evaluated in the still-running kernel, and only
for expressions that merely read) and the frames below the cell, parsed from IPython's ANSI-coloured traceback.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
CELL_FRAME = re.compile(r"Cell In\[\d+\], line (\d+)")  # IPython's name for a frame in a notebook cell
FRAME = re.compile(r"\s*(Cell In\[\d+\]|File )")
SHOWN_LINES = 25  # cells longer than this are shown around the failing line only
MAX_VALUES, REPR_WIDTH = 12, 300


@dataclass
class Failure:
    """What a failing cell left: its index, the error and, for a failed assert, the values of its parts."""

    index: int
    ename: str
    evalue: str
    traceback: list[str] = field(default_factory=list)  # IPython's chunks: a header, one per frame, the error
    values: list[tuple[str, str]] = field(default_factory=list)


def cell_failure(client: Any, nb: Any, index: int) -> Failure:
    """The failing cell's error output and, for a failed `assert` in the cell itself, the values of its parts."""
    error = next((o for o in nb.cells[index].outputs if o.get("output_type") == "error"), {})
    tb = [ANSI.sub("", chunk) for chunk in error.get("traceback", [])]
    failure = Failure(index, error.get("ename", "error"), error.get("evalue", ""), tb)
    line = failing_line(tb)
    if failure.ename == "AssertionError" and line is not None and len(_frames(tb)) == 1:
        exprs = assert_expressions(nb.cells[index].source, line)
        if exprs:
            failure.values = _kernel_values(client, exprs)
    return failure


def failing_line(traceback: list[str]) -> int | None:
    """The failing line of the cell, from the first frame of IPython's (colour-stripped) traceback."""
    m = CELL_FRAME.search("\n".join(traceback))
    return int(m.group(1)) if m else None


def _frames(traceback: list[str]) -> list[str]:
    """The traceback's frame chunks (IPython's list also holds a header and the final error line)."""
    return [chunk for chunk in traceback if FRAME.match(chunk)]


# Calls that are cheap and change nothing, so that re-evaluating them after the failure is safe; any other call
# (a training run, a sampler) is left alone and only its arguments are shown.
PURE_FUNCTIONS = {"abs", "len", "min", "max", "sum", "round", "int", "float", "bool", "str", "repr", "set", "list"}
PURE_FUNCTIONS |= {"tuple", "sorted", "type", "isinstance"}
PURE_METHODS = {"item", "tolist", "all", "any", "sum", "mean", "median", "max", "min", "abs", "amax", "amin"}
PURE_METHODS |= {"std", "var", "exp", "log", "log2", "sqrt", "diff", "sign", "numel", "size", "dim", "double"}
PURE_METHODS |= {"float", "int", "long", "bool", "argmax", "argmin", "isfinite", "isnan", "isinf", "isclose"}
PURE_METHODS |= {"allclose", "equal", "unique", "keys", "values", "items", "get", "norm", "count", "prod", "cpu"}
PURE_METHODS |= {"detach", "numpy", "startswith", "endswith"}
PURE_NODES = (ast.Name, ast.Constant, ast.Attribute, ast.Subscript, ast.Slice, ast.BinOp, ast.UnaryOp)
PURE_NODES += (ast.Compare, ast.BoolOp, ast.IfExp, ast.Tuple, ast.List, ast.Set, ast.Dict, ast.Call)


def _is_pure(node: ast.expr) -> bool:
    """Whether evaluating node again can only read: names, attributes, subscripts, operators, pure calls."""
    for n in ast.walk(node):
        if isinstance(n, ast.expr) and not isinstance(n, PURE_NODES):
            return False
        if isinstance(n, ast.Call) and not (
            (isinstance(n.func, ast.Name) and n.func.id in PURE_FUNCTIONS)
            or (isinstance(n.func, ast.Attribute) and n.func.attr in PURE_METHODS)
        ):
            return False
    return True


def assert_expressions(source: str, line: int) -> list[str]:
    """The parts worth showing of the `assert` statement at `line` of a cell's source, outermost first."""
    lines = ["" if s.lstrip().startswith(("%", "!")) else s for s in source.splitlines()]  # magics aren't Python
    try:
        tree = ast.parse("\n".join(lines))
    except SyntaxError:
        return []
    asserts = [n for n in ast.walk(tree) if isinstance(n, ast.Assert) and n.lineno <= line <= (n.end_lineno or 0)]
    if not asserts:
        return []
    found: list[str] = []
    _collect(asserts[-1].test, "\n".join(lines), found, top=True)
    return list(dict.fromkeys(found))[:MAX_VALUES]


def _collect(node: ast.AST, source: str, found: list[str], top: bool = False) -> None:
    """Append the pure subexpressions of node that read some name (constants show nothing new), preorder,
    as written in source (`5e-4`, not `0.0005`) unless they span lines (then as ast.unparse writes them)."""
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        for gen in node.generators:  # the iterables are the notebook's names; the body uses loop variables
            _collect(gen.iter, source, found)
        return
    if isinstance(node, (ast.Lambda, ast.NamedExpr, ast.Await, ast.Yield, ast.YieldFrom, ast.Starred)):
        return
    if (
        not top  # the whole test is known to be false
        and isinstance(node, ast.expr)
        and not isinstance(node, ast.Slice)
        and _is_pure(node)
        and any(isinstance(n, ast.Name) for n in ast.walk(node))
    ):
        text = ast.get_source_segment(source, node) or ""
        found.append(text if text and "\n" not in text else ast.unparse(node))
    for child in ast.iter_child_nodes(node):
        if isinstance(node, ast.Call) and child is node.func:
            if isinstance(child, ast.Attribute):  # `x.item()`: show x, not the bound method
                _collect(child.value, source, found)
        elif isinstance(child, ast.keyword):
            _collect(child.value, source, found)
        elif isinstance(child, ast.expr):
            _collect(child, source, found)


# Runs in the still-running kernel after the failure: evaluate each expression in the notebook's namespace and
# return [expression, repr] pairs as JSON, leaving out what fails (e.g. a loop variable) and modules/functions.
PROBE = """
def _erl_probe(exprs, width):
    import json, types
    skip = (types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.MethodType, type)
    shown = []
    for e in exprs:
        try:
            v = eval(e, globals())
            if isinstance(v, skip):
                continue
            r = repr(v)
        except Exception:
            continue
        shown.append([e, r if len(r) <= width else r[:width] + " ..."])
    return json.dumps(shown)
"""


def _kernel_values(client: Any, exprs: list[str], timeout: float = 30) -> list[tuple[str, str]]:
    """[(expression, repr)] evaluated in the kernel; [] if anything goes wrong (the report then has the traceback)."""
    from jupyter_core.utils import run_sync

    code = PROBE + f"_erl_probe_out = _erl_probe({exprs!r}, {REPR_WIDTH})\n"
    try:
        # execute_interactive returns once the kernel is idle again, not at its reply: the kernel shutdown that
        # follows interrupts the kernel, and an interrupt inside a request handler makes ipykernel log an error.
        reply = run_sync(client.kc.execute_interactive)(
            code,
            silent=True,
            store_history=False,
            user_expressions={"out": "_erl_probe_out"},
            allow_stdin=False,
            timeout=timeout,
            output_hook=lambda msg: None,
        )
        out = reply["content"]["user_expressions"]["out"]["data"]["text/plain"]
        return [(e, r) for e, r in json.loads(ast.literal_eval(out))]
    except Exception:  # a report without values beats no report
        return []


def _where(nb: Any, index: int) -> str:
    """'cell 15 of 42 (code cell 6, nbval's Cell 5)': nbval counts code cells only, from 0."""
    code = sum(c.cell_type == "code" for c in nb.cells[: index + 1])
    return f"cell {index + 1} of {len(nb.cells)} (code cell {code}, nbval's Cell {code - 1})"


def _error_line(failure: Failure) -> str:
    """'AssertionError: message', or a word on what an empty message or an interrupt means."""
    if failure.ename == "KeyboardInterrupt":  # only the timeout interrupts the kernel (Ctrl-C stops the runner)
        return "KeyboardInterrupt: the cell ran past the timeout and was interrupted"
    if failure.evalue:
        return f"{failure.ename}: {failure.evalue}"
    return f"{failure.ename} (no message)" if failure.ename == "AssertionError" else failure.ename


def failure_summary(nb: Any, failure: Failure) -> str:
    """The one line runs.json and `book html` show for a failure."""
    return f"{_where(nb, failure.index)}: {_error_line(failure)}"


def _source_block(source: str, line: int | None) -> list[str]:
    """The cell's numbered lines with `>` at the failing one; long cells only around it."""
    lines = source.splitlines() or [""]
    first, last = 1, len(lines)
    if len(lines) > SHOWN_LINES:
        anchor = line or len(lines)
        first, last = max(1, anchor - SHOWN_LINES + 5), min(len(lines), anchor + 4)
    out = ["    ..."] if first > 1 else []
    for n in range(first, last + 1):
        out.append(f"{'>' if n == line else ' '} {n:>4}  {lines[n - 1]}".rstrip())
    return out + (["    ..."] if last < len(lines) else [])


def failure_report(file: str, nb: Any, failure: Failure, saved: Path | str) -> str:
    """The pytest-like report of a failed chapter: where, the cell's source, the error, values or traceback."""
    line = failing_line(failure.traceback)
    out = [f"FAILED {file}: {_where(nb, failure.index)}", ""]
    out += _source_block(nb.cells[failure.index].source, line) + [""]
    out.append(f"E   {_error_line(failure)}")
    if failure.values:
        out.append("    values in the kernel after the failure:")
        for expr, rep in failure.values:
            out.append(f"      {expr} = " + rep.replace("\n", "\n        "))
    deeper = _frames(failure.traceback)[1:]
    if deeper or (failure.traceback and line is None):  # raised below the cell, or a traceback we can't parse
        out += ["", "    traceback below the cell:" if deeper else "    traceback:"]
        out += ["      " + s for chunk in (deeper or failure.traceback) for s in chunk.rstrip().splitlines()]
    out += ["", f"partly executed notebook (outputs up to the failing cell): {saved}"]
    return "\n".join(out)
