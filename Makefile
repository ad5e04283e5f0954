SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
SPEC := openapi/task-operations.yaml
TEMPLATES := openapi/templates
CODEGEN = PYTHONWARNINGS=ignore::FutureWarning $(BIN)/fastapi-codegen --input $(SPEC) --template-dir $(TEMPLATES)/app \
	--model-template-dir $(CURDIR)/$(TEMPLATES)/models --custom-visitor $(TEMPLATES)/visitor.py \
	--disable-timestamp --strict-nullable --python-version 3.11

.PHONY: help install lock generate check-generated migrate run test lint fuzz bench clean

help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-17s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(BIN)/.installed: requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip sync --quiet --python $(BIN)/python --require-hashes requirements.lock
	@touch $@

install: $(BIN)/.installed ## Create .venv from the hash-pinned lock

lock: ## Re-pin requirements.lock from pyproject.toml (needs the registry)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 --quiet -o requirements.lock

generate: install ## Rebuild generated/ from the contract
	rm -rf generated
	$(CODEGEN) --output generated
	@touch generated/__init__.py

check-generated: install ## Fail when generated/ differs from what the contract produces now
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(CODEGEN) --output "$$tmp/generated" && touch "$$tmp/generated/__init__.py" && \
	diff -ru generated "$$tmp/generated" && echo "generated/ matches $(SPEC)"

migrate: install ## Apply the database migrations (DATABASE_URL, or the embedded server)
	$(BIN)/python -m app migrate

run: install ## Serve on HOST:PORT (embedded PostgreSQL when DATABASE_URL is unset)
	$(BIN)/python -m app serve

test: install ## Lint, type-check and run the test suite on real PostgreSQL
	$(BIN)/ruff check app tests bench openapi/templates
	$(BIN)/ruff format --check app tests bench openapi/templates
	$(BIN)/mypy
	$(BIN)/pytest

lint: install ## ruff and mypy only
	$(BIN)/ruff check app tests bench openapi/templates
	$(BIN)/mypy

fuzz: install ## Fuzz a running server against the contract with schemathesis
	$(BIN)/python -m tests.fuzz_server

clean: ## Remove the environment, reports and local databases
	rm -rf $(VENV) reports .data .pytest_cache .mypy_cache .ruff_cache

bench: install ## Load 1M tasks and measure the service beside a bare asyncpg reference (wrk)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	$(BIN)/python -m bench.run

# Operations: the fault tests, each against PostgreSQL (and PgBouncer) processes of its own that it
# stops, freezes and locks. CI runs them after `make test`; PgBouncer comes from Debian's package.
.PHONY: test-faults

test-faults: install ## Outage, frozen database, locks, SIGTERM, start-up, PgBouncer (a few minutes)
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; } || \
		echo "pgbouncer could not be installed: its tests will be skipped"
	$(BIN)/pytest tests/faults
