# Footfall — developer commands. `make check` is what CI runs (through .ci/run).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo run test lint typecheck check bench clean

$(BIN)/footfall: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/footfall

demo: venv                ## the bundled demo site behind the proxy, with collectors
	$(BIN)/footfall demo

run: venv                 ## make run UPSTREAM=http://127.0.0.1:8000
	$(BIN)/footfall run --upstream $(UPSTREAM)

test: venv
	$(BIN)/pytest

lint: venv
	$(BIN)/ruff check proxy collectors tests load_tests

typecheck: venv
	$(BIN)/mypy

.PHONY: test-pyparser
test-pyparser: venv       ## the protocol tests again on aiohttp's pure-Python HTTP parser (parser parity)
	AIOHTTP_NO_EXTENSIONS=1 $(BIN)/pytest -q tests/proxy/edge

check: lint typecheck test test-pyparser

bench: venv               ## the hot-path benchmark (load_tests/README.md); BENCH_ARGS=--quick for a smoke run
	$(BIN)/python load_tests/bench.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) footfall-data .pytest_cache .mypy_cache .ruff_cache
