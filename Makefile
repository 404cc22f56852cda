# Developer entry points. `make demo` and `make test` work on a fresh machine: they run
# `make setup` first, which is idempotent and fast once everything is cached.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint bench

setup:
	./tools/setup.sh

demo: setup
	$(BIN)/syncer demo

lint: setup
	$(BIN)/ruff check syncer tests benchmarks
	$(BIN)/mypy
	$(BIN)/hadolint Dockerfile

test: setup lint
	$(BIN)/pytest

bench: setup
	$(BIN)/python benchmarks/run.py
