# The two commands a new user needs: `make run` and `make test`. Everything else is for developers.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON313 := $(shell deploy/python313.sh)
STAMP := $(VENV)/.installed

.PHONY: run test lint bench chaos venv clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	@echo "installing pinned packages into $(VENV) (log: $(VENV)/install.log)"
	@( $(PY) -m pip install -q --upgrade 'pip>=24' && \
	   $(PY) -m pip install -q -r requirements.txt && \
	   $(PY) -m pip install -q --no-build-isolation --no-deps -e . ) > $(VENV)/install.log 2>&1 \
	   || { tail -40 $(VENV)/install.log; exit 1; }
	$(PY) -c 'import nameko, pymongo, mongoeco, chassis, gateway' && touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	deploy/ensure_rabbitmq.sh
	$(PY) deploy/run.py

test: $(STAMP)
	deploy/ensure_rabbitmq.sh
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	deploy/ensure_rabbitmq.sh
	$(PY) deploy/bench.py

# The long chaos run (CHAOS_SECONDS, default 600); CI runs a short one inside `make test`.
chaos: $(STAMP)
	deploy/ensure_rabbitmq.sh
	$(PY) -m chaos --seconds $${CHAOS_SECONDS:-600} --work-dir .data/chaos

clean:
	rm -rf $(VENV) .data
