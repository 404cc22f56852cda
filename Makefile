# Developer entry points. `make demo` and `make test` work on a fresh machine: they run
# `make setup` first, which is idempotent and fast once everything is cached.
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

# Every benchmark prints its ratio against a baseline measured in the same run and exits
# non-zero when it misses its target; this runs them all and fails if any missed.
bench: setup
	@failed=""; for b in benchmarks/*.py; do \
		echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "missed target:$$failed"; exit 1; fi
