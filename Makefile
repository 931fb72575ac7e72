# Footfall — developer commands. `make check` is what CI runs (through .ci/run).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: venv demo run test lint typecheck check bench update-data clean

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

check: lint typecheck test

bench: venv               ## the hot-path benchmark (load_tests/README.md); BENCH_ARGS=--quick for a smoke run
	$(BIN)/python load_tests/bench.py $(BENCH_ARGS)

update-data: venv        ## make update-data MATOMO_DIR=path/to/searchengine-and-social-list [ISBOT_DIR=path/to/package]
	$(if $(MATOMO_DIR),$(BIN)/python -m proxy.tracking.enrich.update_data matomo $(MATOMO_DIR))
	$(if $(ISBOT_DIR),$(BIN)/python -m proxy.tracking.enrich.update_data isbot $(ISBOT_DIR))

clean:
	rm -rf $(VENV) footfall-data .pytest_cache .mypy_cache .ruff_cache
