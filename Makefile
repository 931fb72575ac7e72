# Footfall — developer commands. `make check` is what CI runs (through .ci/run).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo run test lint typecheck check sysdeps bench update-data clean

# One stamp per set of extras installed into .venv: a venv made by the README's
# first command (`pip install -e .`, no dev tools) gets the dev extras the first
# time a target needs them, and either command works first on a fresh clone.
BASE := $(VENV)/.installed-base
DEV := $(VENV)/.installed-dev

$(BIN)/python:
	$(PY) -m venv $(VENV)

$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev]'
	touch $(BASE) $@

venv: $(DEV)

demo: $(BASE)             ## the bundled demo site behind the proxy, with collectors
	$(BIN)/footfall demo

run: $(BASE)              ## make run UPSTREAM=http://127.0.0.1:8000
	$(BIN)/footfall run --upstream $(UPSTREAM)

test: $(DEV)
	$(BIN)/pytest

lint: $(DEV)
	$(BIN)/ruff check proxy collectors tests load_tests

typecheck: $(DEV)
	$(BIN)/mypy

.PHONY: test-pyparser
test-pyparser: venv       ## the protocol tests again on aiohttp's pure-Python HTTP parser (parser parity)
	AIOHTTP_NO_EXTENSIONS=1 $(BIN)/pytest -q tests/proxy/edge

sysdeps:                  ## Debian packages the tests drive for real (chromium, promtool, redis-server >= 7)
	bash tests/system-deps.sh

check: sysdeps lint typecheck test test-pyparser

bench: $(DEV)             ## the hot-path benchmark (load_tests/README.md); BENCH_ARGS=--quick for a smoke run
	$(BIN)/python load_tests/bench.py $(BENCH_ARGS)

update-data: venv        ## make update-data MATOMO_DIR=path/to/searchengine-and-social-list [ISBOT_DIR=path/to/package]
	$(if $(MATOMO_DIR),$(BIN)/python -m proxy.tracking.enrich.update_data matomo $(MATOMO_DIR))
	$(if $(ISBOT_DIR),$(BIN)/python -m proxy.tracking.enrich.update_data isbot $(ISBOT_DIR))

clean:
	rm -rf $(VENV) footfall-data .pytest_cache .mypy_cache .ruff_cache
