# The single entry point: developers and CI use the same targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: help install lock run test test-unit test-integration test-e2e test-infra lint format chromium \
	build synth deploy bench clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

# Installs exactly what requirements.lock pins, each file checked against its hash; the project
# itself (the function package, importable by infra/ and local/) goes in editable, without deps.
PIP := $(BIN)/python -m pip --quiet --disable-pip-version-check
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install --require-hashes -r requirements.lock
	$(PIP) install --no-deps -e .
	touch $@

lock: $(STAMP) ## Re-resolve requirements.lock within pyproject.toml's ranges (needs PyPI)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --universal \
	  --python-version 3.11 --quiet -o requirements.lock

NODE_STAMP := node_modules/.installed
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) $(NODE_STAMP) ## Create .venv and node_modules with the pinned dependencies

run: $(STAMP) ## Serve the whole flow locally on http://127.0.0.1:8000 (no AWS account)
	$(BIN)/python -m local.run

test: $(STAMP) $(NODE_STAMP) chromium lint build ## Everything: lint, unit, integration, infrastructure, e2e
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

test-e2e: $(STAMP) chromium
	$(BIN)/python -m pytest tests/e2e

test-infra: $(STAMP) $(NODE_STAMP)
	$(BIN)/python -m pytest tests/infrastructure

build: $(STAMP) $(NODE_STAMP) ## Build the function artifact (build/function): 3.13 bytecode, no container engine
	$(BIN)/python -m infra.packaging

# A benchmark, not a test: prints markdown tables and writes them into docs/ (between each
# section's markers). BENCH_ARGS passes options, e.g. make bench BENCH_ARGS="--only load --no-write".
BENCH_ARGS ?=
bench: $(STAMP) ## Measure (load run: 500 registrations, throttled Marketplace) and write the figures to docs/
	$(BIN)/python -m bench $(BENCH_ARGS)

# CONTEXT passes extra context, e.g. make deploy CONTEXT="-c productCodes=prod-x -c registrationUrl=https://..."
CONTEXT ?=
CDK := npx --no-install cdk

synth: build ## Synthesize the stack offline into cdk.out (cdk-nag runs at every synth)
	$(CDK) synth --quiet --no-notices $(CONTEXT)
	$(BIN)/cfn-lint cdk.out/*.template.json

deploy: build ## Build what is shipped, then deploy (refuses cdk.json's example values)
	$(CDK) deploy --no-notices --require-approval broadening -c deploy=true $(CONTEXT)

lint: $(STAMP) ## ruff (lint, format, complexity), mypy --strict, the import contract
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Browser tests use Debian's Chromium; playwright's own browser download cannot work here.
# In CI (CI=true) it is installed when missing; elsewhere only the browser tests skip.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$${CI:-}" = "true" ]; then \
	  if [ "$$(id -u)" = "0" ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; \
	  else echo "CI needs Debian's chromium and cannot install it (not root, no sudo)" >&2; exit 1; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found: browser tests will be skipped (apt-get install chromium)"; fi

clean:
	rm -rf $(VENV) node_modules build cdk.out .pytest_cache .mypy_cache .ruff_cache
