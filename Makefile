# The single entry point: developers and CI use the same targets.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: help install run test test-unit test-integration test-e2e lint format chromium clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $@

install: $(STAMP) ## Create .venv and install the pinned dependencies

run: $(STAMP) ## Serve the whole flow locally on http://127.0.0.1:8000 (no AWS account)
	$(BIN)/python -m local.run

test: $(STAMP) chromium lint ## Everything, offline: lint, unit, integration, e2e
	$(BIN)/python -m pytest

test-unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit

test-integration: $(STAMP)
	$(BIN)/python -m pytest tests/integration

test-e2e: $(STAMP) chromium
	$(BIN)/python -m pytest tests/e2e

lint: $(STAMP) ## ruff (lint + format check) and mypy --strict on the function package
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Browser tests use Debian's Chromium; playwright's own browser download cannot work here.
# In CI (CI=true) it is installed when missing; elsewhere only the browser tests skip.
chromium:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif [ "$${CI:-}" = "true" ] && [ "$$(id -u)" = "0" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found: browser tests will be skipped (apt-get install chromium)"; fi

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache
