# The book's two commands: `make book` runs the book, `make test` passes the tests.
# Each creates its own virtual environment (.venv) on first use and reinstalls when the pins change.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --quiet
STAMP := $(VENV)/.installed
# Where pip finds torch: empty for PyPI (the CUDA build on Linux), or https://download.pytorch.org/whl/cpu.
TORCH_INDEX ?=
BOOK := $(PY) -m entropy_rl_lite.book
# nbval: asserts are checked in every cell; outputs only in cells tagged nbval-check-output. The stored outputs
# are the ci profile's, so the kernels run ci even on a GPU machine (where chapters would pick the gpu profile).
NBVAL := ERL_PROFILE=ci $(PY) -m pytest -q -p no:cacheprovider --nbval-lax --nbval-sanitize-with nbval_sanitize.cfg \
	--nbval-cell-timeout 600

.PHONY: install book test lint format test-lib test-book test-portable bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	@# torch first and pinned, from TORCH_INDEX when set (the CPU build: make book TORCH_INDEX=.../whl/cpu).
	$(PIP) install torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) -c constraints.txt
	$(PIP) install -e ".[book,test,trl]" -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

# Run every chapter in its default profile into _build/, render HTML, say where to open it.
book: install
	$(BOOK) run
	$(BOOK) html

test: install lint test-lib test-book

# One style (pyproject.toml [tool.ruff]): lint and formatting are checked here; `make format` applies both.
lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test-lib: install
	$(PY) -m pytest tests -q

# nbval over every chapter listed in book.yml and every solutions notebook.
test-book: install
	$(NBVAL) $$($(BOOK) files)

# The library tests and every chapter that samples or trains (book.yml `samples: true`, with its solutions),
# once under each float-kernel configuration other than this machine's (`$(BOOK) variants`: ATen's scalar
# path, AVX2 where the CPU has AVX-512, MKL's CPU-independent path). Sampled runs differ between them; the
# asserted claims must not. About 8 minutes per configuration on a 2-core CPU (24 for the three).
test-portable: install
	@$(BOOK) variants | while read -r name vars; do \
		echo "== kernel configuration $$name: $$vars"; \
		env $$vars $(PY) -m pytest tests -q -p no:cacheprovider || exit 1; \
		env $$vars $(NBVAL) $$($(BOOK) files --samples) || exit 1; \
	done

bench: install
	$(PY) benchmarks/bandit_engine.py
	$(PY) benchmarks/logprob_memory.py
	$(PY) benchmarks/trainer_throughput.py
	$(PY) benchmarks/trl_vs_ours.py

clean:
	rm -rf $(VENV) _build .pytest_cache .hypothesis
