# The two commands of the README: `make run` and `make test`. Both set up
# everything they need (a virtualenv in .venv with the pinned packages).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
ETL := $(VENV)/bin/etl
# pytest-xdist workers; the tests mostly wait on servers, so more than the cores pays (TEST_WORKERS=0: one process)
TEST_WORKERS ?= 4

.PHONY: venv tools run test test-quick bench clean

venv: $(VENV)/.installed

# PYTHONWARNINGS hides setuptools' notice that an editable install is one (information, not a warning).
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	PYTHONWARNINGS="ignore:Editable installation" $(PY) -m pip install --quiet --no-deps -e .
	touch $@

## run: migrate, register example assets and run every job (embedded PostgreSQL unless configured)
run: venv
	ETL=$(ETL) bash scripts/run_example.sh

## tools: podman, linters and checkers for the container and deployment tests (Debian packages)
tools:
	bash scripts/install-test-tools.sh

## test: the whole test suite against real PostgreSQL, Kafka and loopback HTTP servers
test: venv tools
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup $(PYTEST_ARGS)

## test-quick: everything but the container, deployment and browser tests (needs no system tools)
test-quick: venv
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not container and not browser" $(PYTEST_ARGS)

bench: venv
	$(PY) bench/load.py
	$(PY) bench/backfill.py
	$(PY) bench/backfill.py --unthrottled
	$(PY) bench/transactions.py
	$(PY) bench/rebase.py
	$(PY) bench/faults.py
	$(PY) bench/scaleout.py

clean:
	rm -rf $(VENV) .pytest_cache
