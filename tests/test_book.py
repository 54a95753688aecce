"""The book machinery: book.yml agrees with chapters/ and the library; the runner executes, reports and renders."""

from __future__ import annotations

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
    book.main(["--book", str(path), "list"])
    assert "01_tiny" in capsys.readouterr().out


def test_runner_names_the_failing_cell(tmp_path, capsys):
    path = _tiny_book(tmp_path, ["x = 1", "assert x == 2, 'x should be 2'"])
    before = os.environ.get("ERL_PROFILE")
    assert book.main(["--book", str(path), "run"]) == 1
    err = capsys.readouterr().err
    assert "01_tiny.ipynb: cell 3 of 3 failed" in err and "assert x == 2" in err and "x should be 2" in err
    assert os.environ.get("ERL_PROFILE") == before  # the runner restores the environment it changed


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
        "11_capstone",
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
