# Every target creates .venv itself on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: demo test lint bench soak tools clean

$(STAMP): pyproject.toml middleware/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]' -e ./middleware
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m penguiflow demo

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(PY) -m ruff check src tests middleware benchmarks examples dashboards
	$(PY) -m ruff format --check src tests middleware benchmarks examples dashboards
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

soak: $(STAMP)
	PENGUIFLOW_SOAK=1 $(PY) -m pytest -q -m soak tests/reliability

# npm tools some tests use (validating mock server, MCP conformance suite, reference servers); .ci/run calls it.
# Without them those tests skip, saying to run this.
tools:
	npm install --prefix .ci/npm --no-audit --no-fund --loglevel=error

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
