# One entry point for people and CI. Every target installs what it needs from the project's own files.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
STAMP := $(VENV)/.installed
# `make run` needs only the runtime dependencies and the embedded PostgreSQL: a newcomer's first
# start stays short.
RUNTIME_STAMP := $(VENV)/.runtime-installed
# Debian packages the tests and drills use for real (load balancer, load generator, wasm toolchain,
# PostgreSQL 15 for backups across server versions, the PgBouncer production runs in front of
# PostgreSQL).
APT_PACKAGES := haproxy wrk strace clang-14 lld-14 wasi-libc postgresql-15 pgbouncer chromium chromium-driver graphviz

.PHONY: run test lint drill bench bench-scale sysdeps tools clean docs lock

$(RUNTIME_STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet -e '.[local]'
	touch $(RUNTIME_STAMP)

$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

# checkov and network-config-analyzer pin old libraries: each lives in its own venv.
$(TOOLS)/checkov/bin/checkov:
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install --quiet checkov

$(TOOLS)/nca/bin/nca:
	$(PYTHON) -m venv $(TOOLS)/nca
	$(TOOLS)/nca/bin/pip install --quiet network-config-analyzer

tools: $(TOOLS)/checkov/bin/checkov $(TOOLS)/nca/bin/nca

sysdeps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(RUNTIME_STAMP)
	$(BIN)/healthstack serve

test: $(STAMP) tools sysdeps
	$(BIN)/pytest -m "not slow"

drill: $(STAMP) sysdeps
	$(BIN)/healthstack drill all

bench: $(STAMP) tools sysdeps
	$(BIN)/python -m bench
	$(BIN)/python -m bench.bulk_export

# US Core searches at 100,000 and 1,000,000 resources (about an hour on 2 cores: seeding goes
# through the API); docs/performance.md, "Search at scale".
bench-scale: $(STAMP)
	$(BIN)/python -m bench.scale

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

docs: $(STAMP)
	$(BIN)/healthstack check --list --format markdown > docs/checks.md
	$(BIN)/python -m healthstack.fhir.reference_docs > docs/fhir-search.md

clean:
	rm -rf $(VENV) $(TOOLS) .healthstack .pytest_cache .mypy_cache .ruff_cache

# The image's hash-locked runtime dependencies (pyproject.toml [project].dependencies only).
lock: $(STAMP)
	$(BIN)/python -m healthstack.ops.lockfile requirements/runtime.lock
