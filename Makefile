# twinserve: `make up` sets up and starts the native stack, `make test` tests it.
# Every target is a doorway to `twinserve <verb>` (twinserve/cli/; `$(PY) -m twinserve --help` lists them).
PY := .venv/bin/python
SHELL := /bin/bash

.PHONY: help install up down status test unit lint format bench bench-cache bench-drift bench-drift-broker loadtest swapcheck drift-demo drift-eval pipeline

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

install:  ## install Debian packages and .venv if missing
	@scripts/install.sh

up: install  ## install if needed, build the demo archive, start the whole native stack
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

lint: install  ## ruff, the import contracts (layers; pyproject.toml), and luacheck on Nginx's Lua
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/lint-imports --no-cache --no-logo
	luacheck -q nginx/lua

format: install
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

bench: install  ## every model vs default TorchServe and its FastAPI peers at 1-200 connections, tables and plots (needs make up)
	$(PY) -m twinserve bench serving

bench-cache: install  ## the text model with Nginx's response cache on and off, 95% of requests repeating (needs make up)
	$(PY) -m twinserve bench cache

bench-drift: install  ## cost of publishing inputs on /predict, drift consumer throughput (needs make up)
	$(PY) -m twinserve bench drift

bench-drift-broker: install  ## the broker's memory per million input rows, consumer rows/s through it (a broker of its own)
	$(PY) -m twinserve bench drift-broker

loadtest: install  ## headless Locust on a model's route with its samples, a pass/fail gate (MODEL=name, STAGING=1)
	$(PY) -m twinserve loadtest $(if $(MODEL),--model "$(MODEL)") $(if $(STAGING),--staging)

swapcheck: install  ## 20 swaps of MODEL (default: the default model) and a deploy under wrk -c50 load on every model; prints the failures
	$(PY) -m twinserve swapcheck --swaps 20 --deploy $(if $(MODEL),--model "$(MODEL)")

drift-demo: install  ## simulator: 1,000 inputs, x1 shifted by 1 std after 400 (needs make up); see the Drift dashboard
	$(PY) -m twinserve drift-demo --messages 1000 --feature x1 --shift 1 --drift-after 400

drift-eval: install  ## drift detectors and Evidently's preset on 3 models' streams with known changes: false alarms, delays (~7 min, 2 cores; WRITE_DOCS=1: into docs/drift.md)
	nice -n 10 $(PY) -m twinserve drift-eval $(if $(WRITE_DOCS),--write-docs)

.PHONY: render-compose render-kube compose-config images test-compose k8s-validate

images: install  ## build the compose stack's images from Debian bookworm, no registry needed (BASE_IMAGE=...)
	$(PY) -m twinserve images $(if $(BASE_IMAGE),--base "$(BASE_IMAGE)")

test-compose: install  ## Docker Engine (started if none runs), images, docker-compose up, end-to-end checks, down
	$(PY) -m pytest -m compose tests/compose

render-compose: install  ## render compose/rendered/ from config/stack.compose.yaml (a unit test fails when stale)
	@$(PY) -m twinserve render-compose

compose-config: install  ## docker-compose config: validate docker-compose.yml and each of its profiles (no engine needed)
	docker-compose config -q
	for profile in $$(docker-compose config --profiles); do docker-compose --profile $$profile config -q || exit 1; done

render-kube: install  ## render deploy/kubernetes/base/ from config/stack.kube.yaml (a unit test fails when stale)
	@$(PY) -m twinserve render-kube

k8s-validate: install  ## deploy/kubernetes/: base current, each overlay built by kubectl kustomize, every object checked by kubernetes-validate --strict (offline)
	@$(PY) -m twinserve k8s-validate

pipeline: install  ## ship MODEL (VERSION, SEED, APPROVE=1): test, train, archive, staging, gates, promote, bake (needs make up)
	@python3 -I twinserve/doorway.py pipeline run --model-dir "$(or $(MODEL),models/regressor)" \
		$(if $(VERSION),--version "$(VERSION)") $(if $(SEED),--seed "$(SEED)") $(if $(APPROVE),--approve)
