# One command to run, one to test. Both create .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-js lint bench bench-quick clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.run-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[hub]'
	touch $@

$(VENV)/.bench-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[hub,test,bench]'
	touch $@ $(VENV)/.test-deps $(VENV)/.run-deps

$(VENV)/.test-deps: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[hub,test]'
	touch $@ $(VENV)/.run-deps

run: $(VENV)/.run-deps
	$(BIN)/python -m monitor_server.quickstart

# Branch coverage of the three packages, measured in the pytest process only (hubs and agents that
# tests start as subprocesses are not measured). CI sets a floor: make test COV_FAIL_UNDER=<n>.
COV_FAIL_UNDER ?= 0
test: $(VENV)/.test-deps test-js
	$(BIN)/pytest --cov=protocol --cov=monitor_server --cov=monitor_agent --cov-branch \
		--cov-report=term:skip-covered --cov-fail-under=$(COV_FAIL_UNDER) --durations=25

# The dashboard's pure ES modules (fleet state, sorting, formatting): Node's own test runner, no npm.
test-js:
	@command -v node >/dev/null 2>&1 || { echo "make test: node (Node.js 20 or newer) is required for tests/js; install it (Debian: apt-get install nodejs)" >&2; exit 1; }
	node --test tests/js/

# Formatting, lint, types, and the import contracts in pyproject.toml ([tool.importlinter]).
lint: $(VENV)/.test-deps
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Benchmarks (never part of `make test`): hub on core 0, load on core 1. See docs/benchmarks.md.
bench: $(VENV)/.bench-deps
	$(BIN)/python -m bench.run

# Every scenario, tiny: a smoke run so the suite cannot rot (CI runs it).
bench-quick: $(VENV)/.bench-deps
	$(BIN)/python -m bench.run --quick $(if $(ONLY),--only $(ONLY))

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache .coverage
