# mlfep — two commands set everything up: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.mlfep-installed
SHARED ?= $(abspath ../shared)
export PATH := $(abspath $(BIN)):$(PATH)
# Model weights come from a local folder (no network at run time); users may point this elsewhere.
export TORCHANI_DATA_DIR ?= $(SHARED)/models/torchani
PYTEST_ARGS ?=
# The dashboard's real-browser test runs when Debian's chromium is installed (`make browser-deps`).
BROWSER_FLAG := $(if $(wildcard /usr/bin/chromium),--run-browser,)

.PHONY: install demo test test-all lint format clean browser-deps bench

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@# torch first, pinned, so that nothing pulls a multi-GB CUDA build as a side effect
	$(BIN)/python -m pip install -qq --disable-pip-version-check "torch==2.13.0"
	$(BIN)/python -m pip install -qq --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

PACKAGES := mlfep_core ligand_prep fep analysis app gpu_kernels

# ruff (style), lint-imports (the import rules of docs/architecture.md), mypy (types)
lint: install
	$(BIN)/ruff check $(PACKAGES) tests benchmarks
	$(BIN)/ruff format --check $(PACKAGES) tests benchmarks
	$(BIN)/lint-imports --no-cache
	$(BIN)/mypy $(PACKAGES)

format: install
	$(BIN)/ruff check --fix $(PACKAGES) tests benchmarks
	$(BIN)/ruff format $(PACKAGES) tests benchmarks

test: install lint
	$(BIN)/python -m pytest -q --durations=15 $(BROWSER_FLAG) $(PYTEST_ARGS)

test-all: install
	MLFEP_RUN_SLOW=1 $(BIN)/python -m pytest -q $(BROWSER_FLAG) $(PYTEST_ARGS)

demo: install
	bash examples/demo.sh

browser-deps:
	apt-get update && apt-get install -y chromium

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache demo_run

# The speed suite (CPU; add PLATFORM=CUDA on a GPU machine): benchmarks/results/speed.{json,md}
PLATFORM ?= CPU
bench: install
	$(BIN)/python -m pip install -qq --disable-pip-version-check -e ".[dev,bench]"
	$(BIN)/python benchmarks/speed.py --platform $(PLATFORM)
