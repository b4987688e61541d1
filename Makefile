# The two commands of the README: `make demo` and `make test`. Both set up what they need first.
VENV ?= .venv
PY := $(VENV)/bin/python
export AMML_VENV := $(VENV)

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/bootstrap.sh

demo: setup
	@bash scripts/demo.sh

test: setup
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/amml lint dags/

bench: setup
	$(PY) bench/compile.py
	$(PY) bench/vm.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
