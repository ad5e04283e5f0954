SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
SPEC := openapi/task-operations.yaml
TEMPLATES := openapi/templates
TS_TYPES := generated/task-operations.ts
NODE_BIN := clients/node_modules/.bin
NODE_INSTALLED := clients/node_modules/.installed
HAVE_NPM := $(shell command -v npm 2>/dev/null)
CODEGEN = PYTHONWARNINGS=ignore::FutureWarning $(BIN)/fastapi-codegen --input $(SPEC) --template-dir $(TEMPLATES)/app \
	--model-template-dir $(CURDIR)/$(TEMPLATES)/models --custom-visitor $(TEMPLATES)/visitor.py \
	--disable-timestamp --strict-nullable --python-version 3.11

.PHONY: help install lock generate generate-to check-generated migrate run test lint fuzz bench clean \
	node-install types check-types contract-lint contract-check clients smoke

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

generate: install ## Rebuild generated/ from the contract (the TypeScript types too, with Node)
	rm -f generated/*.py
	$(CODEGEN) --output generated
	@touch generated/__init__.py
ifdef HAVE_NPM
	@$(MAKE) --no-print-directory types
else
	@echo "npm not found: $(TS_TYPES) was not rebuilt (make types, where Node is installed)"
endif

generate-to: install ## Generate another contract's code: SPEC=file.yaml OUTPUT=directory (the generator's tests)
	$(CODEGEN) --output $(OUTPUT)

check-generated: install ## Fail when generated/ differs from what the contract produces now
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(CODEGEN) --output "$$tmp/generated" && touch "$$tmp/generated/__init__.py" && \
	diff -ru --exclude=$(notdir $(TS_TYPES)) generated "$$tmp/generated" && \
	echo "generated/ (Python) matches $(SPEC)"
ifdef HAVE_NPM
	@$(MAKE) --no-print-directory check-types
else
	@echo "npm not found: $(TS_TYPES) not checked (CI checks it)"
endif

migrate: install ## Apply the database migrations (DATABASE_URL, or the embedded server)
	$(BIN)/python -m app migrate

run: install ## Serve on HOST:PORT (embedded PostgreSQL when DATABASE_URL is unset)
	$(BIN)/python -m app serve

test: install ## Lint, type-check and run the test suite on real PostgreSQL (and Redis)
	@command -v redis-server >/dev/null || test -x /usr/bin/redis-server || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server; } || \
		echo "redis-server could not be installed: the rate limits' Redis tests will be skipped (and fail in CI)"
	$(BIN)/ruff check app tests bench openapi
	$(BIN)/ruff format --check app tests bench openapi
	$(BIN)/mypy
	$(BIN)/pytest -n auto --dist loadfile

lint: install ## ruff and mypy only
	$(BIN)/ruff check app tests bench openapi
	$(BIN)/mypy

fuzz: install ## Fuzz a running server against the contract with schemathesis
	$(BIN)/python -m tests.support.fuzz_server

clean: ## Remove the environment, reports and local databases
	rm -rf $(VENV) reports .data .pytest_cache .mypy_cache .ruff_cache \
		clients/node_modules clients/.build clients/dist

# Node tooling for the contract, pinned by clients/package-lock.json. Only these targets need it.
$(NODE_INSTALLED): clients/package-lock.json
	@command -v npm >/dev/null || { echo "this target needs Node.js and npm"; exit 1; }
	cd clients && npm ci --no-audit --no-fund
	@touch $@

node-install: $(NODE_INSTALLED) ## Install the pinned Node tools (clients/package-lock.json)

types: $(NODE_INSTALLED) ## Rebuild generated/task-operations.ts (openapi-typescript)
	$(NODE_BIN)/openapi-typescript $(SPEC) --output $(TS_TYPES)

check-types: $(NODE_INSTALLED) ## Fail when generated/task-operations.ts is not what the contract produces
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(NODE_BIN)/openapi-typescript $(SPEC) --output "$$tmp/types.ts" >/dev/null && \
	diff -u $(TS_TYPES) "$$tmp/types.ts" && echo "$(TS_TYPES) matches $(SPEC)"

contract-lint: $(NODE_INSTALLED) ## Lint the contract: Redocly (recommended) and Spectral (spectral:oas)
	$(NODE_BIN)/redocly lint --config openapi/redocly.yaml $(SPEC)
	$(NODE_BIN)/spectral lint --ruleset openapi/.spectral.yaml --fail-severity warn $(SPEC)

contract-check: install $(NODE_INSTALLED) ## Fail on a breaking or unversioned contract change (CONTRACT_BASE)
	$(BIN)/python openapi/contract_check.py

clients: $(NODE_INSTALLED) ## Type-check the frontend flow against three generators (tsc --strict)
	rm -rf clients/.build
	$(NODE_BIN)/openapi-ts --no-log-file --input ./$(SPEC) --output clients/.build/hey-api
	$(NODE_BIN)/orval --input $(SPEC) --output clients/.build/orval/api.ts --client fetch
	$(NODE_BIN)/orval --input $(SPEC) --output clients/.build/orval-axios/api.ts
	$(NODE_BIN)/tsc --project clients/tsconfig.json
	@echo "the flow compiles with openapi-typescript + openapi-fetch, @hey-api/openapi-ts and orval (fetch and axios)"

smoke: install $(NODE_INSTALLED) ## Run the openapi-fetch flow against a live service (jwt mode)
	rm -rf clients/dist
	$(NODE_BIN)/tsc --project clients/tsconfig.smoke.json
	$(BIN)/python -m tests.support.smoke

bench: install ## Load 1M tasks and measure the service beside a bare asyncpg reference (wrk)
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
	$(BIN)/python -m bench.run

# Operations: the fault tests, each against PostgreSQL (and PgBouncer) processes of its own that it
# stops, freezes and locks. CI runs them after `make test`; PgBouncer comes from Debian's package.
.PHONY: test-faults

test-faults: install ## Outage, frozen database, locks, SIGTERM, start-up, PgBouncer (a few minutes)
	@command -v pgbouncer >/dev/null || test -x /usr/sbin/pgbouncer || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer; } || \
		echo "pgbouncer could not be installed: its tests will be skipped (and fail in CI)"
	$(BIN)/pytest tests/faults
