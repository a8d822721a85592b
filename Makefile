# The two commands: `make demo` and `make test`. Both create .venv and install everything.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.edgeq-installed
MODELS := build/models

# Debian packages for the C backend's Cortex-M and aarch64 builds and their QEMU runs (host gcc
# is assumed).
APT_PKGS := gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm \
            gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user cmake chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test models install system-deps clean coverage fuzz scalesim-venv scalesim npu-bench

# apt-get only when a tool is missing (a machine that has them needs no root and no network).
# If apt-get cannot run, say so and go on: the Cortex-M tests then skip, each printing why.
system-deps:
	@if ! command -v arm-none-eabi-gcc >/dev/null || ! command -v qemu-system-arm >/dev/null \
	    || ! ls /usr/lib/arm-none-eabi/newlib/rdimon.specs >/dev/null 2>&1 \
	    || ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null \
	    || ! command -v cmake >/dev/null || ! command -v chromium >/dev/null; then \
	  echo "installing $(APT_PKGS)"; \
	  ( $(SUDO) apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
	      $(APT_PKGS) >/dev/null ) || \
	  echo "WARNING: could not install $(APT_PKGS): Cortex-M / aarch64 builds and QEMU runs will be skipped"; \
	fi

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first and pinned: its CPU wheel is on local disk; unpinned pulls a CUDA build.
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0
	$(BIN)/pip install --disable-pip-version-check -q -e '.[all,dev]'
	touch $(STAMP)

install: $(STAMP) system-deps

models: $(STAMP)
	$(BIN)/python -m models.build --out $(MODELS)

demo: models system-deps
	$(BIN)/python -m tools.demo --models $(MODELS)

# The whole suite; tiers are selectable: `make test PYTEST_ARGS="-m unit"` (or backend, e2e).
PYTEST_ARGS ?=
test: $(STAMP) system-deps
	$(BIN)/ruff check edgeq models tools tests
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 $(PYTEST_ARGS)

# The real-model coverage table (tools/bench_coverage.py; about an hour on 2 cores): needs the
# corpus extra (torchvision, timm, onnxscript architectures; no weights are downloaded).
coverage: $(STAMP) system-deps
	$(BIN)/pip install --disable-pip-version-check -q torch==2.13.0 -e '.[corpus]'
	$(BIN)/python -m tools.bench_coverage $(COVERAGE_ARGS)

# The coverage-guided fuzzers of tests/fuzz/ (ONNX import, .eqm loading, calibration data), each
# for FUZZ_S seconds; `make test` runs each for 30 s. Crashing inputs are kept in build/fuzz/.
FUZZ_S ?= 600
fuzz: $(STAMP)
	EDGEQ_FUZZ_S=$(FUZZ_S) $(BIN)/python -m pytest -q -s tests/fuzz/test_fuzz.py

# The NPU simulator against its references: Vela 5.2 (tools/bench_npu.py, in the main venv) and
# SCALE-Sim 3 (tools/npu_scalesim.py; SCALE-Sim needs numpy < 2: it gets its own venv).
SCALESIM_VENV := build/scalesim-venv
scalesim-venv: $(SCALESIM_VENV)/.ok
$(SCALESIM_VENV)/.ok:
	$(PYTHON) -m venv $(SCALESIM_VENV)
	$(SCALESIM_VENV)/bin/pip install --disable-pip-version-check -q 'scalesim==3.*' 'numpy<2'
	touch $@
scalesim: $(STAMP) scalesim-venv
	$(BIN)/python -m tools.npu_scalesim
npu-bench: $(STAMP)
	$(BIN)/python -m tools.bench_npu

clean:
	rm -rf build .pytest_cache
