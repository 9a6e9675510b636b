# reconphys_ros developer commands. Each target installs what it needs on first use (scripts/install.sh is
# idempotent and takes < 1 s once everything is in place).
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: install demo test test-slow test-all bench clean

install:
	bash scripts/install.sh

## The main job: the end-to-end pipeline on the embedded example clip (outputs in out/demo).
demo: install
	$(PY) -m reconphys_ros.demo

## The default test suite (what CI runs). A run that collects no test fails (pytest exits 5).
test: install
	$(PY) -m pytest $(PYTEST_ARGS)

## Long tests (reference lattice, fuzzing, soak).
test-slow: install
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-all: install
	$(PY) -m pytest -m "slow or not slow" $(PYTEST_ARGS)

bench: install
	for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf build .cache .pytest_cache
