# The book's two commands: `make book` runs the book, `make test` passes the tests.
# Each creates its own virtual environment (.venv) on first use and reinstalls when the pins change.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check --quiet
STAMP := $(VENV)/.installed
CHAPTERS := $(sort $(wildcard chapters/[0-9][0-9]_*.ipynb))

.PHONY: install book test test-lib test-book bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	@# torch first and pinned: 2.13.0 is the CPU wheel on this machine's disk; anything else pulls a CUDA build.
	$(PIP) install torch==2.13.0 -c constraints.txt
	$(PIP) install -e ".[book,test]" -c constraints.txt
	touch $(STAMP)

install: $(STAMP)

book: install
ifeq ($(CHAPTERS),)
	@echo "No chapters yet under chapters/: the library and its tests are in place (make test)."
else
	@mkdir -p _build
	$(PY) -m jupyter nbconvert --to notebook --execute --output-dir _build $(CHAPTERS)
	@echo "Executed chapters are in _build/; open them with: $(VENV)/bin/jupyter lab chapters/"
endif

test: install test-lib test-book

test-lib: install
	$(PY) -m pytest tests -q

test-book: install
ifeq ($(CHAPTERS),)
	@echo "No chapters yet: nbval has nothing to run."
else
	$(PY) -m pytest --nbval-lax -q $(CHAPTERS)
endif

bench: install
	$(PY) benchmarks/bandit_engine.py
	$(PY) benchmarks/logprob_memory.py

clean:
	rm -rf $(VENV) _build .pytest_cache .hypothesis
