# driftmon developer commands. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_ARGS ?=

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## create or update the local virtualenv with the project and dev tools

.PHONY: lint
lint: $(STAMP) ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor tests bench
	$(BIN)/mypy

.PHONY: test
test: lint ## install everything, lint, type-check and run the whole test suite
	$(BIN)/python -m pytest

.PHONY: bench
bench: $(STAMP) ## run the benchmark suite and rewrite BENCHMARKS.md
	$(BIN)/python -m pip install -q -e '.[peers]'
	$(BIN)/python -m bench

.PHONY: chaos
chaos: $(STAMP) ## faults, hostile input and a 10-minute soak against the real daemon, full durations (~30 min); prints the chaos table
	CHAOS_SCALE=full HYPOTHESIS_PROFILE=fuzz $(BIN)/python -m pytest tests/chaos tests/test_decode_fuzz.py -q -p no:cacheprovider

.PHONY: demo
demo: $(STAMP) ## run the embedded demo (pass options with DEMO_ARGS="--duration 120 --no-live")
	$(BIN)/driftmon demo $(DEMO_ARGS)

.PHONY: fmt
fmt: $(STAMP) ## format the code
	$(BIN)/ruff format monitor tests bench
	$(BIN)/ruff check --fix monitor tests bench
