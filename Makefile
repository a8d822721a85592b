# The two commands: `make demo` and `make test`. Both create .venv and install everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgeq-installed
MODELS := build/models

.PHONY: demo test models install clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: its CPU wheel is on local disk; unpinned pulls a CUDA build.
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP)

models: $(STAMP)
	$(BIN)/python -m models.build --out $(MODELS)

demo: models
	$(BIN)/python -m tools.demo --models $(MODELS)

test: $(STAMP)
	$(BIN)/ruff check edgeq models tools tests
	$(BIN)/python -m pytest -q

clean:
	rm -rf build .pytest_cache
