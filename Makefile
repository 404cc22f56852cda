# Developer entry points. `make demo` and `make test` work on a fresh machine: they run
# `make setup` first, which is idempotent and fast once everything is cached. Every Python
# package comes from the hash-locked requirements/dev.txt (`make lock` regenerates it);
# `make test-latest` runs the same checks on the newest releases pyproject.toml allows.
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: setup demo test lint check bench lock lock-upgrade test-latest

setup:
	./tools/setup.sh

demo: setup
	$(BIN)/syncer demo

lint: setup
	$(MAKE) --no-print-directory lint-only

test: setup
	$(MAKE) --no-print-directory check

# The checks themselves, on whichever virtualenv VENV names (no setup).
.PHONY: lint-only
lint-only:
	$(BIN)/ruff check syncer syncer_lab tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/hadolint Dockerfile

check: lint-only
	$(BIN)/pytest

# Regenerate requirements/*.txt: `make lock` keeps pins the ranges still allow,
# `make lock-upgrade` moves every pin to the newest release. Commit the result.
lock:
	./tools/lock.sh

lock-upgrade:
	./tools/lock.sh --upgrade

# The canary: a separate virtualenv from the newest releases, then every check.
test-latest:
	./tools/setup.sh --latest
	$(MAKE) --no-print-directory check VENV=.venv-latest

# Every benchmark prints its ratio against a baseline measured in the same run and exits
# non-zero when it misses its target; this runs them all and fails if any missed.
# Hand-written mutants of the node stage's safety functions (tools/mutants.py).
mutants: setup
	$(BIN)/python tools/mutants.py

bench: setup
	@failed=""; for b in benchmarks/*.py; do \
		echo "== $$b"; $(BIN)/python $$b || failed="$$failed $$b"; \
	done; \
	if [ -n "$$failed" ]; then echo "missed target:$$failed"; exit 1; fi
