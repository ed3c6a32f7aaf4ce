# og-settle: the two commands are `make demo` (the end-to-end run on the local replica) and `make test`.
# Both set everything up first; a second run reuses what the first installed.

SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
NETWORK := base:sepolia-fork:foundry
TESTS ?= tests
PY_SOURCES = src tests $(wildcard scripts benchmarks)
# Ape finds the solc-js shims and the npm-installed anvil through these.
export SOLCX_BINARY_PATH := $(CURDIR)/toolchain/solc
export PATH := $(CURDIR)/node_modules/@foundry-rs/anvil-linux-amd64/bin:$(CURDIR)/$(BIN):$(PATH)
export OG_SETTLE_HOME := $(CURDIR)
# Ape compiles in an isolated copy of the project under the temporary directory, unless the checkout itself lies
# there (a fresh CI clone in /tmp): then it unpacks OpenZeppelin (500+ files) into contracts/.cache, and its source
# scan, which stops at 500 files, loses our own contracts on the next run. A temporary directory of Ape's own keeps
# it isolating wherever the checkout is; the compile happens before `ape test`, which then finds it up to date.
APE_TMP := $(CURDIR)/.cache/ape-tmp

.PHONY: setup postgres test test-base demo bench lint typecheck compile gas-update artifacts clean sdk-envs

setup: $(VENV)/.installed node_modules/.installed

node_modules/.installed: package.json package-lock.json toolchain/check-node.sh
	@toolchain/check-node.sh
	@echo "og-settle setup: npm ci: anvil, solc-js, OpenZeppelin and Permit2's sources into node_modules/ (under a minute with a warm npm cache)"
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(VENV)/.installed: pyproject.toml requirements.lock setup.py src/og_settle/_batch_native.c src/og_settle/_intake_native.c \
		src/og_settle/_native_common.h
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else "og-settle needs Python 3.11 or 3.12, found " + sys.version.split()[0])'
	@echo "og-settle setup: Python packages from requirements.lock into $(VENV)/, and the C extension (about 1 minute with a warm pip cache, several without)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[dev]'
	@echo "og-settle setup: Python packages installed"
	@touch $@

lint: setup
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)

typecheck: setup
	$(BIN)/mypy

# PostgreSQL server binaries for the PostgreSQL queue store tests (installed through apt-get as root if missing).
postgres:
	@toolchain/ensure-postgres.sh

# The stock SDKs (x402, opengradient, @x402/evm) in their own environments under .cache/sdk-envs/, built up front
# with progress output whenever the run includes tests/interop (the full suite does); reused while their pins hold.
sdk-envs: setup
	$(BIN)/python -m tests.support.sdk_envs

# contracts/.cache is only ever Ape's unpacked copy of the dependencies (left by an older checkout's runs).
compile: setup
	@rm -rf contracts/.cache
	@mkdir -p $(APE_TMP)
	TMPDIR=$(APE_TMP) $(BIN)/ape compile

test: setup lint typecheck compile postgres $(if $(filter tests tests/ tests/interop%,$(TESTS)),sdk-envs)
	$(BIN)/og-settle chain exec -- $(BIN)/ape test $(TESTS) --network $(NETWORK) -p no:cacheprovider $(PYTEST_ARGS)

demo: setup
	$(BIN)/og-settle demo

bench: setup
	$(BIN)/python benchmarks/run.py

# The x402 proxy and stock batcher tests again on a fork of a Base (mainnet, chain id 8453) replica, with Base's
# OPG address; `make test` stays on Base Sepolia (tests/chain/test_base_network.py covers Base there too).
BASE_TESTS ?= tests/payments/test_x402_proxies.py tests/payments/test_stock_batcher.py tests/payments/test_eip3009_token.py \
	tests/payments/test_eip3009_batcher.py
test-base: setup compile
	OG_SETTLE_NETWORK=base $(BIN)/og-settle chain exec -- $(BIN)/ape test $(BASE_TESTS) --network base:mainnet-fork:foundry -p no:cacheprovider $(PYTEST_ARGS)

gas-update: setup compile
	OG_SETTLE_GAS_SNAPSHOT=update $(BIN)/og-settle chain exec -- $(BIN)/ape test tests --network $(NETWORK) -p no:cacheprovider -m gas

clean:
	rm -rf $(VENV) node_modules .cache .build contracts/.cache

# Forced: Ape does not recompile a contract when only a library it imports changed, and the committed artifacts
# must match the sources.
artifacts: setup
	@rm -rf contracts/.cache
	@mkdir -p $(APE_TMP)
	TMPDIR=$(APE_TMP) $(BIN)/ape compile --force
	$(BIN)/ape run export_artifacts
