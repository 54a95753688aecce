"""The book machinery: book.yml agrees with chapters/ and the library; the runner executes, reports and renders."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml

import entropy_rl_lite as erl
from entropy_rl_lite import book

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def the_book() -> book.Book:
    return book.load_book(ROOT / "book.yml")


def test_version_matches_library(the_book):
    assert the_book.version == erl.__version__


def test_every_chapter_listed_in_number_order(the_book):
    on_disk = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    listed = [c.file for c in the_book.chapters]
    assert sorted(listed) == on_disk, "book.yml and chapters/ disagree"
    numbers = [int(c.number) for c in the_book.chapters]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_every_chapter_has_solutions(the_book):
    for c in the_book.chapters:
        assert (ROOT / "chapters" / "solutions" / f"{c.stem}_solutions.ipynb").is_file(), f"{c.stem} has no solutions"


@pytest.mark.parametrize("path", sorted((ROOT / "chapters").glob("**/*.ipynb")), ids=lambda p: p.name)
def test_notebooks_are_committed_executed_small_and_clean(path):
    assert path.stat().st_size <= 1_000_000, f"{path.name} is {path.stat().st_size} bytes (limit 1 MB)"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count is not None for c in code), "every code cell must be executed"
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs), "stored outputs hold an error"
    assert any(c.outputs for c in code)
    first = "".join(nb.cells[0].source)
    assert re.match(r"# \S", first), "a chapter opens with its H1 title"


def test_nbval_files_cover_chapters_and_solutions(the_book):
    files = [p.as_posix() for p in book.nbval_files(the_book)]
    assert [c.file for c in the_book.chapters if c.nbval != "skip"] == files[: len(the_book.chapters)]
    assert any("solutions/" in f for f in files)


def _tiny_book(tmp_path: Path, cells: list[str], settings: dict | None = None) -> Path:
    (tmp_path / "chapters").mkdir(parents=True)
    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# Tiny chapter")] + [nbformat.v4.new_code_cell(c) for c in cells],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    )
    nbformat.write(nb, tmp_path / "chapters" / "01_tiny.ipynb")
    spec = {
        "title": "Tiny",
        "version": "0.0",
        "project": {"toc": [{"title": "Part A", "children": [{"file": "chapters/01_tiny.ipynb"}]}]},
        "execution": {"chapters": {"chapters/01_tiny.ipynb": settings or {"budget_s": 30}}},
    }
    (tmp_path / "book.yml").write_text(yaml.safe_dump(spec))
    return tmp_path / "book.yml"


def test_bad_book_files_fail_with_a_clear_message(tmp_path):
    path = _tiny_book(tmp_path, ["x = 1"])
    spec = yaml.safe_load(path.read_text())
    spec["project"]["toc"][0]["children"].append({"file": "chapters/02_missing.ipynb"})
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match="02_missing.ipynb"):
        book.load_book(path)
    with pytest.raises(ValueError, match="unknown execution setting 'budget'"):
        book.load_book(_tiny_book(tmp_path / "b", ["x = 1"], {"budget": 3}))
    with pytest.raises(ValueError, match="profile 'tpu'"):
        book.load_book(_tiny_book(tmp_path / "c", ["x = 1"], {"profile": "tpu"}))


def test_select_by_number_slug_or_path(the_book):
    assert [c.number for c in book.select(the_book, ["02", "00"])] == ["00", "02"]
    assert book.select(the_book, ["softmax_bandits"])[0].number == "01"
    with pytest.raises(SystemExit, match="no chapter matches 'nope'"):
        book.select(the_book, ["nope"])


def test_runner_executes_into_build_records_time_and_renders_html(tmp_path, capsys):
    path = _tiny_book(tmp_path, ["x = 6 * 7", "print(f'answer {x}')"])
    assert book.main(["--book", str(path), "run"]) == 0
    executed = nbformat.read(tmp_path / "_build" / "chapters" / "01_tiny.ipynb", as_version=4)
    assert executed.cells[2].outputs[0]["text"] == "answer 42\n"
    committed = nbformat.read(tmp_path / "chapters" / "01_tiny.ipynb", as_version=4)
    assert committed.cells[2].outputs == []  # untouched without --inplace
    runs = json.loads((tmp_path / "_build" / "runs.json").read_text())
    assert runs["chapters/01_tiny.ipynb"]["seconds"] > 0
    assert book.main(["--book", str(path), "html"]) == 0
    index = (tmp_path / "_build" / "html" / "index.html").read_text()
    assert "Tiny chapter" in index and "01_tiny.html" in index and "Part A" in index
    assert "erl-warning" not in index  # executed by this build and passing: no mark
    book.main(["--book", str(path), "list"])
    assert "01_tiny" in capsys.readouterr().out


def test_runner_names_the_failing_cell(tmp_path, capfd):
    path = _tiny_book(tmp_path, ["x = 1", "assert x == 2, 'x should be 2'"])
    before = os.environ.get("ERL_PROFILE")
    assert book.main(["--book", str(path), "run"]) == 1
    err = capfd.readouterr().err  # capfd: the kernel writes to the process's stderr, not to sys.stderr
    assert "FAILED chapters/01_tiny.ipynb: cell 3 of 3 (code cell 2, nbval's Cell 1)" in err
    assert re.search(r"^>\s+1  assert x == 2, 'x should be 2'$", err, re.M) and "AssertionError: x should be 2" in err
    assert "x = 1" in err  # the values, even when the assert has a message
    assert "without encryption" not in err and "IPKernelApp" not in err  # ipc sockets: no warning from the kernel
    assert os.environ.get("ERL_PROFILE") == before  # the runner restores the environment it changed


def _book_of(root: Path, chapters: dict[str, list[str]]) -> Path:
    """A book of tiny chapters {stem: code cells}, each opening with its title; return its book.yml."""
    (root / "chapters").mkdir(parents=True)
    for stem, cells in chapters.items():
        nb = nbformat.v4.new_notebook(
            cells=[nbformat.v4.new_markdown_cell(f"# {stem}")] + [nbformat.v4.new_code_cell(c) for c in cells],
            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        )
        nbformat.write(nb, root / "chapters" / f"{stem}.ipynb")
    toc = [{"file": f"chapters/{stem}.ipynb"} for stem in chapters]
    spec = {"title": "Small", "version": "0.0", "project": {"toc": toc}}
    spec["execution"] = {"defaults": {"budget_s": 30}}
    (root / "book.yml").write_text(yaml.safe_dump(spec))
    return root / "book.yml"


FAILING = {
    "01_pass": ["a = 6 * 7"],
    "02_fail": ["import math", "x = 3\nassert x > 5", "print('never reached')"],
    "03_after": ["b = 1"],
    "04_unrun": ["c = 1"],  # in the book, never run: `html` must say so
}


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory):
    """Chapters 01-03 run --inplace --keep-going (02 fails), then `html`: (root, rc, out, err, committed 02)."""
    root = tmp_path_factory.mktemp("failing")
    path = _book_of(root, FAILING)
    committed = (root / "chapters" / "02_fail.ipynb").read_bytes()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = book.main(["--book", str(path), "run", "01", "02", "03", "--inplace", "--keep-going"])
        book.main(["--book", str(path), "html"])
    return root, rc, out.getvalue(), err.getvalue(), committed


def test_a_failing_chapter_is_reported_like_a_failing_test(failed_run):
    _, rc, _, err, _ = failed_run
    assert rc == 1
    report = err[err.index("FAILED chapters/02_fail.ipynb") :]
    assert report.startswith("FAILED chapters/02_fail.ipynb: cell 3 of 4 (code cell 2, nbval's Cell 1)")
    assert re.search(r"^\s+1  x = 3$", report, re.M) and re.search(r"^>\s+2  assert x > 5$", report, re.M)
    assert "E   AssertionError (no message)" in report
    assert re.search(r"^\s+x = 3$", report[report.index("values") :], re.M)  # the value, read from the kernel
    assert "partly executed notebook (outputs up to the failing cell): _build/chapters/02_fail.ipynb" in report


def test_a_failed_run_saves_the_partial_notebook_and_leaves_the_committed_one(failed_run):
    root, _, _, _, committed = failed_run
    assert (root / "chapters" / "02_fail.ipynb").read_bytes() == committed  # --inplace, yet untouched
    partial = nbformat.read(root / "_build" / "chapters" / "02_fail.ipynb", as_version=4)
    assert partial.cells[1].execution_count == 1 and partial.cells[2].outputs[0]["ename"] == "AssertionError"
    assert partial.cells[3].execution_count is None and partial.cells[3].outputs == []
    refreshed = nbformat.read(root / "chapters" / "03_after.ipynb", as_version=4)  # the passing ones: in place
    assert refreshed.cells[1].execution_count == 1


def test_keep_going_runs_the_rest_records_every_chapter_and_prints_a_table(failed_run):
    root, _, out, _, _ = failed_run
    runs = json.loads((root / "_build" / "runs.json").read_text())
    assert runs["chapters/01_pass.ipynb"]["status"] == runs["chapters/03_after.ipynb"]["status"] == "passed"
    assert (
        runs["chapters/02_fail.ipynb"]["status"] == "failed"
        and "AssertionError" in runs["chapters/02_fail.ipynb"]["failure"]
    )
    assert all(r["seconds"] > 0 and r["profile"] == "ci" and r["when"] for r in runs.values())
    assert "chapters/04_unrun.ipynb" not in runs
    assert re.search(r"^\[2/3\] 02_fail: running \(profile ci, budget 30s\)$", out, re.M)
    assert re.search(r"^\[2/3\] 02_fail: failed in [\d.]+s of 30s$", out, re.M)
    table = out[out.index("chapter ") :]
    for stem, status in (("01_pass", "passed"), ("02_fail", "failed"), ("03_after", "passed")):
        assert re.search(rf"^{stem}\s+{status}\s+[\d.]+s\s+30s$", table, re.M), stem


def test_html_marks_failed_and_unexecuted_chapters(failed_run):
    root, _, _, err, _ = failed_run
    html_dir = root / "_build" / "html"
    index = {li.split('"')[1]: li for li in (html_dir / "index.html").read_text().split("<li>")[1:]}
    assert (
        "(failed in the last run)" in index["02_fail.html"] and "(not executed in this build)" in index["04_unrun.html"]
    )
    assert "erl-warning" not in index["01_pass.html"] + index["03_after.html"]  # refreshed in place: executed
    page = (html_dir / "02_fail.html").read_text()
    assert "class='erl-warning'" in page and "its outputs stop at the failing cell" in page
    assert page.index("erl-warning") < page.index("<h1")  # at the top of the page
    assert "warning: 02_fail: failed in the last run" in err and "warning: 04_unrun: not executed" in err


def test_runs_json_keeps_the_times_of_passed_chapters_when_one_fails(tmp_path, capsys):
    path = _book_of(tmp_path, {k: FAILING[k] for k in ("01_pass", "02_fail", "03_after")})
    earlier = {"status": "passed", "seconds": 1.5, "budget_s": 30, "profile": "ci", "when": "2026-01-01 00:00:00"}
    (tmp_path / "_build").mkdir()
    (tmp_path / "_build" / "runs.json").write_text(json.dumps({"chapters/02_fail.ipynb": earlier}))
    assert book.main(["--book", str(path), "run"]) == 1
    runs = json.loads((tmp_path / "_build" / "runs.json").read_text())
    assert runs["chapters/01_pass.ipynb"]["status"] == "passed" and runs["chapters/01_pass.ipynb"]["seconds"] > 0
    assert runs["chapters/02_fail.ipynb"]["last_passed"]["seconds"] == 1.5  # the last good time survives the failure
    assert "chapters/03_after.ipynb" not in runs  # no --keep-going: stopped at the failure
    out = capsys.readouterr().out
    assert re.search(r"^03_after\s+not run\s+-\s+30s$", out, re.M) and "1 not run (--keep-going runs the rest)" in out
    book.main(["--book", str(path), "list"])
    listing = capsys.readouterr().out
    assert re.search(r"02_fail .* [\d.]+s FAILED$", listing, re.M) and re.search(r"01_pass .* [\d.]+s$", listing, re.M)


def test_assert_expressions_are_the_pure_parts_of_the_failing_assert():
    source = "%time y = 1\nx = [1]\nassert abs(x[0] - y) < tol and train(model) > 0 and all(v > 1 for v in vs)"
    exprs = book.assert_expressions(source, 3)
    assert exprs == ["abs(x[0] - y) < tol", "abs(x[0] - y)", "x[0] - y", "x[0]", "x", "y", "tol", "model", "vs"]
    assert book.assert_expressions(source, 2) == [] and book.assert_expressions("assert (", 1) == []


def test_a_report_shows_the_frames_below_the_cell():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# T"), nbformat.v4.new_code_cell("f(2)")])
    tb = [
        "\x1b[31m------\x1b[39m",
        "AssertionError    Traceback (most recent call last)",
        "Cell In[3], line 1\n----> 1 f(2)\n",
        "Cell In[1], line 2, in f(v)\n      1 def f(v):\n----> 2     assert v < 0\n",
        "AssertionError: ",
    ]
    failure = book.Failure(1, "AssertionError", "", [book.ANSI.sub("", c) for c in tb])
    report = book.failure_report("chapters/t.ipynb", nb, failure, "_build/chapters/t.ipynb")
    assert "FAILED chapters/t.ipynb: cell 2 of 2 (code cell 1, nbval's Cell 0)" in report
    assert re.search(r"^>\s+1  f\(2\)$", report, re.M) and "traceback below the cell:" in report
    assert "----> 2     assert v < 0" in report and "values" not in report


def test_html_marks_a_chapter_whose_build_copy_is_older_than_its_source(tmp_path, capsys):
    path = _tiny_book(tmp_path, ["x = 1"])
    src, build = tmp_path / "chapters" / "01_tiny.ipynb", tmp_path / "_build" / "chapters" / "01_tiny.ipynb"
    build.parent.mkdir(parents=True)
    build.write_bytes(src.read_bytes())
    os.utime(build, (src.stat().st_mtime - 60,) * 2)  # the source was edited after the last run
    from entropy_rl_lite.book_html import render

    index = render(book.load_book(path)).read_text()
    assert "(not executed in this build)" in index
    assert (
        "the _build/ copy is older than chapters/01_tiny.ipynb"
        in (tmp_path / "_build" / "html" / "01_tiny.html").read_text()
    )
    assert "warning: 01_tiny: not executed in this build" in capsys.readouterr().err


def test_gpu_chapters_pick_the_gpu_profile_only_for_readers_with_cuda(monkeypatch):
    import torch

    from entropy_rl_lite.book import Chapter, chapter_profile

    gpu_ch, cpu_ch = Chapter("chapters/x.ipynb", None, gpu=True), Chapter("chapters/y.ipynb", None)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert chapter_profile(gpu_ch) == "gpu" and chapter_profile(cpu_ch) == "ci"
    assert chapter_profile(gpu_ch, inplace=True) == "ci"  # committed outputs stay the chapter's own profile
    assert chapter_profile(gpu_ch, profile="cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert chapter_profile(gpu_ch) == "ci"


def test_portable_files_are_the_sampling_chapters_and_their_solutions(the_book, tmp_path):
    files = [p.as_posix() for p in book.nbval_files(the_book, samples_only=True)]
    sampled = [c for c in the_book.chapters if c.samples]
    assert [c.file for c in sampled] == files[: len(sampled)]
    assert {c.stem for c in sampled} >= {
        "05_numerical_precision",
        "08_trainability",
        "09_tokens",
        "10_tiny_lm",
        "12_capstone",
    }
    assert all(f"chapters/solutions/{c.stem}_solutions.ipynb" in files for c in sampled)
    assert "chapters/00_preface.ipynb" not in files and "chapters/solutions/00_preface_solutions.ipynb" not in files
    with pytest.raises(ValueError, match="samples='yes'"):
        book.load_book(_tiny_book(tmp_path, ["x = 1"], {"samples": "yes"}))


def test_kernel_variants_differ_from_the_native_configuration(monkeypatch):
    import torch

    for native, expected in (("AVX512", {"default", "avx2"}), ("AVX2", {"default"}), ("DEFAULT", set())):
        monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda native=native: native)
        monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: False)
        assert set(book.kernel_variants()) == expected, native
        monkeypatch.setattr(torch.backends.mkl, "is_available", lambda: True)
        variants = book.kernel_variants()
        assert set(variants) == expected | {"mkl-compatible"} and variants["mkl-compatible"] == {
            "MKL_CBWR": "COMPATIBLE"
        }
        assert all(env.get("ATEN_CPU_CAPABILITY", "").upper() != native for env in variants.values())


def test_variants_command_prints_one_environment_per_line(capsys):
    assert book.main(["--book", str(ROOT / "book.yml"), "variants"]) == 0
    for line in capsys.readouterr().out.splitlines():
        name, *assignments = line.split()
        assert (
            name in book.kernel_variants() and assignments and all(re.fullmatch(r"[A-Z_]+=\w+", a) for a in assignments)
        )


# The claims ledger (claims.yml): every row is decided by the chapter it names, and that chapter's stored
# outputs show the ledger's status, so the preface's table, the chapters and their asserts cannot drift.
CHECK_CALL = re.compile(r"""claims\.check\(\s*["']([^"']+)["']""")


def _chapter_text(stem: str) -> tuple[str, str]:
    """(all code sources, all stored text outputs) of chapters/<stem>.ipynb."""
    nb = nbformat.read(ROOT / "chapters" / f"{stem}.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    outputs = "".join(o.get("text", "") for c in code for o in c.outputs if o.get("output_type") == "stream")
    return "\n".join(c.source for c in code), outputs


def test_every_ledger_row_is_checked_by_its_chapter_with_the_same_status(the_book):
    from entropy_rl_lite import book_claims

    ledger = book_claims.load_claims(ROOT / "claims.yml")
    stems = {c.stem for c in the_book.chapters}
    for row in ledger.values():
        assert row.chapter in stems, f"claim {row.id}: where={row.where!r} names no chapter of book.yml"
        code, outputs = _chapter_text(row.chapter)
        assert row.id in CHECK_CALL.findall(code), f"claim {row.id}: {row.chapter} never calls claims.check({row.id!r})"
        line = f"claim {row.id}: {row.status} (ledger agrees)"
        assert line in outputs, f"claim {row.id}: {row.chapter}'s stored outputs lack {line!r}; re-execute it"


def test_chapters_check_only_rows_that_name_them(the_book):
    from entropy_rl_lite import book_claims

    ledger = book_claims.load_claims(ROOT / "claims.yml")
    for chapter in the_book.chapters:
        code, _ = _chapter_text(chapter.stem)
        for claim_id in CHECK_CALL.findall(code):
            assert claim_id in ledger, f"{chapter.stem} checks claim {claim_id!r}, which claims.yml lacks"
            assert ledger[claim_id].chapter == chapter.stem, (
                f"{chapter.stem} checks claim {claim_id!r}, but the ledger places it in {ledger[claim_id].where!r}"
            )


def test_the_ledger_refuses_bad_rows_and_disagreement(tmp_path):
    from entropy_rl_lite import book_claims

    row = {"id": "1", "claim": "c", "where": "02_x §1", "status": "reproduced", "evidence": "e", "choices": ""}
    path = tmp_path / "claims.yml"
    for bad, message in [
        ({**row, "status": "sort of"}, "is not one of"),
        ({k: v for k, v in row.items() if k != "evidence"}, "missing fields"),
        ({**row, "colour": "red"}, "unknown fields"),
    ]:
        path.write_text(yaml.safe_dump({"claims": [bad]}))
        with pytest.raises(ValueError, match=message):
            book_claims.load_claims(path)
    path.write_text(yaml.safe_dump({"claims": [row, row]}))
    with pytest.raises(ValueError, match="appears twice"):
        book_claims.load_claims(path)
    path.write_text(yaml.safe_dump({"claims": [row]}))
    book_claims.check("1", "reproduced", path)
    with pytest.raises(AssertionError, match="the ledger .* says 'reproduced'"):
        book_claims.check("1", "undecided", path)
    with pytest.raises(KeyError, match="not in the ledger"):
        book_claims.check("2", "reproduced", path)
    (tmp_path / "deeper" / "still").mkdir(parents=True)
    assert book_claims.find_ledger(tmp_path / "deeper" / "still") == path  # a solutions notebook finds the root's
    assert "| 1 | c | ch. 02 §1 | **reproduced** |" in book_claims.ledger_markdown(path)
