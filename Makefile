# Inside an active virtual environment (VIRTUAL_ENV set) everything installs there. Otherwise the Makefile creates
# a project venv in $(VENV) with $(BASE_PYTHON) and uses it, so nothing is ever pip-installed into the system
# interpreter (Debian's /usr/bin/python3 refuses that anyway: "externally-managed-environment"; creating the venv
# needs its python3-venv package). Another interpreter: make test BASE_PYTHON=python3.9 VENV=.venv-3.9
BASE_PYTHON ?= python3
VENV ?= .venv

ifeq ($(strip $(VIRTUAL_ENV)),)
ENV_DIR := $(VENV)
PYTHON := $(VENV)/bin/python
else
ENV_DIR := $(VIRTUAL_ENV)
PYTHON := $(VIRTUAL_ENV)/bin/python
endif
PIP := $(PYTHON) -m pip
# One stamp per environment and purpose: the demo needs only the `local` and `cli` extras; tests need `dev` too.
DEMO_STAMP := $(ENV_DIR)/.simclient-demo.stamp
TEST_STAMP := $(ENV_DIR)/.simclient-test.stamp
BENCH_STAMP := $(ENV_DIR)/.simclient-bench.stamp

.PHONY: install venv test demo bench chaos lint clean

$(VENV)/bin/python:
	@echo "make: creating the project venv $(VENV) with $(BASE_PYTHON) (no venv is active)"
	@$(BASE_PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
	  echo "make: could not create a venv with $(BASE_PYTHON) (on Debian/Ubuntu: apt install python3-venv)" >&2; \
	  exit 1; }

venv: $(PYTHON) ## create the project venv (.venv) unless one is active

$(DEMO_STAMP): setup.cfg setup.py | $(PYTHON)
	$(PIP) install -q -e ".[local,cli]"
	@touch $@

$(TEST_STAMP): setup.cfg setup.py | $(PYTHON)
	$(PIP) install -q -e ".[dev,local,cli]"
	@touch $@ $(DEMO_STAMP)

# The raw-loop references of make bench (orjson, websockets, picows); without them their rows are skipped, loudly.
$(BENCH_STAMP): setup.cfg setup.py | $(TEST_STAMP)
	$(PIP) install -q -e ".[bench]" || echo "make: the bench extra did not install: its raw-loop rows will be skipped" >&2
	@touch $@

install: $(TEST_STAMP) ## pip install -e ".[dev,local,cli]" into the active venv, else into .venv

test: $(TEST_STAMP) ## the whole test suite (what CI runs)
	$(PYTHON) -m pytest -q

demo: $(DEMO_STAMP) ## a parallel backtest of ~2,000 slots on the local simulator, with progress
	$(PYTHON) -m simclient.demo --output-file demo-run.json

bench: $(TEST_STAMP) $(BENCH_STAMP) ## benchmarks: ratios against a raw websocket-client loop
	$(PYTHON) benchmarks/run_all.py

chaos: $(TEST_STAMP) ## the long chaos set
	SIMCLIENT_CHAOS_LONG=1 $(PYTHON) -m pytest -q -m chaos tests/chaos

lint: $(TEST_STAMP)
	$(PYTHON) -m ruff check simclient tests examples benchmarks
	$(PYTHON) -m mypy simclient
	$(PYTHON) -m mypy --strict --follow-imports=silent simclient --exclude 'simclient/local'  # the core strict; the simulator is not

clean:
	rm -rf .installed.stamp build dist *.egg-info .mypy_cache .ruff_cache demo-run.json
