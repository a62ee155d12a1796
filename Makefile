# twinserve: `make up` sets up and starts the native stack, `make test` tests it.
PY := .venv/bin/python
SHELL := /bin/bash

.PHONY: help install up down status test unit lint format bench loadtest swapcheck

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install:  ## install Debian packages and .venv if missing
	@scripts/install.sh

up: install  ## install if needed, build the demo archive, start blue, green and Nginx
	@$(PY) -m twinserve up

down:  ## stop everything `make up` started
	@if [ -x $(PY) ]; then $(PY) -m twinserve down; fi

status:  ## processes, production colour, deployed versions
	@$(PY) -m twinserve status

test: install  ## unit tests, then integration tests against real TorchServe and Nginx
	$(PY) -m pytest tests/unit
	$(PY) -m pytest -m integration tests/integration

unit: install  ## unit tests only (no servers)
	$(PY) -m pytest tests/unit

lint: install  ## ruff
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .

format: install
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: install  ## twinserve vs default TorchServe vs FastAPI, wrk at 100/200 connections, then ab (needs make up)
	$(PY) -m twinserve.bench

loadtest: install  ## headless Locust on /predict with a pass/fail gate; ROUTE=/test/predict for staging
	$(PY) -m twinserve.loadtest --route $(or $(ROUTE),/predict)

swapcheck: install  ## 20 swaps and a deploy under wrk -c50 load; prints the failures
	$(PY) -m twinserve.swapcheck --swaps 20 --deploy models/regressor
