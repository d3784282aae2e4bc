PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
STAMP := .installed.stamp

.PHONY: install test demo bench chaos lint clean

$(STAMP): setup.cfg setup.py
	$(PIP) install -q -e ".[dev,local,cli]"
	@touch $(STAMP)

install: ## pip install -e ".[dev,local,cli]" (no venv)
	$(PIP) install -q -e ".[dev,local,cli]"
	@touch $(STAMP)

test: $(STAMP) ## the whole test suite (what CI runs)
	$(PYTHON) -m pytest -q

demo: $(STAMP) ## a parallel backtest of ~2,000 slots on the local simulator, with progress
	$(PYTHON) -m simclient.demo --output-file demo-run.json

bench: $(STAMP) ## benchmarks: ratios against a raw websocket-client loop
	$(PYTHON) benchmarks/run_all.py

chaos: $(STAMP) ## the long chaos set
	SIMCLIENT_CHAOS_LONG=1 $(PYTHON) -m pytest -q -m chaos tests/chaos

lint: $(STAMP)
	$(PYTHON) -m ruff check simclient tests examples benchmarks
	$(PYTHON) -m mypy simclient

clean:
	rm -rf $(STAMP) build dist *.egg-info .mypy_cache .ruff_cache demo-run.json
