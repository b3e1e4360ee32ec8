# The two commands a new user needs: `make run` and `make test`. Everything else is for developers.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYTHON313 := $(shell deploy/python313.sh)
STAMP := $(VENV)/.installed

.PHONY: run test lint bench venv clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade 'pip>=24' 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -m pip install --quiet -r requirements.txt 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e . 2>&1 | grep -v '^WARNING: Location' || true
	$(PY) -c 'import nameko, pymongo, mongoeco, chassis' && touch $(STAMP)

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

clean:
	rm -rf $(VENV) .data
