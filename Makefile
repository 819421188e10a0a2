# BillingOS — `make run` starts everything, `make test` runs the whole suite.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
export FLASK_APP := app:create_app
export PYTHONPATH := $(CURDIR)

.PHONY: setup browser run test test-stripe e2e lint format migrate bench chaos fuzz clean

$(BIN)/activate:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: requirements.txt | $(BIN)/activate
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

## setup: create the virtualenv and install the pinned requirements
setup: $(VENV)/.installed

## browser: Debian's Chromium for the browser tests, installed with apt when absent
browser:
	@bash scripts/install_chromium.sh

## migrate: create the database if needed and apply every migration
migrate: setup
	$(PY) scripts/ensure_database.py
	$(BIN)/alembic upgrade head

## run: the whole stack in the foreground (web, worker, beat, flower, and the Stripe emulator
##      when no STRIPE_SECRET_KEY is set); Ctrl-C stops it all
run: migrate
	@bash scripts/run_dev.sh

## test: the whole suite against real Postgres and Redis, in TEST_WORKERS pytest processes side by
##       side (default 2; 0 = one process); each has its own database, redis-server and ports,
##       so two `make test` on one machine do not meet. Whole files go to one process (loadfile),
##       so a module's shared server starts once. Browser tests (headless Chromium) included.
TEST_WORKERS ?= 2
test: setup browser
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

## test-stripe: the Stripe contract suite (tests/gateway, the emulator's Stripe-rule cases)
##              against Stripe test mode when STRIPE_SECRET_KEY=sk_test_… is set (and
##              STRIPE_API_BASE is not), against the emulator otherwise
test-stripe: setup
	BILLINGOS_STRIPE_CONTRACT=1 $(PY) -m pytest tests/gateway tests/emulator/test_stripe_rules.py $(PYTEST_ARGS)

## e2e: the browser tests alone; screenshots of the demo app go to docs/screenshots/
e2e: setup browser
	E2E_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/browser $(PYTEST_ARGS)

## lint: ruff (lint + format check), mypy, and the import layers (lint-imports; contracts in
##       pyproject.toml)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app tasks models stripe_emulator
	$(BIN)/lint-imports

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: the benchmark table beside its same-run baselines (≤ 10 min; BENCH_QUICK=1 for a
##        seconds-long smoke run) → bench/results/latest.{json,md} and PNG plots
bench: setup
	$(PY) -m bench.run $(if $(filter 1,$(BENCH_QUICK)),--quick,)

## chaos: webhooks + checkouts while workers, Redis, Postgres and a web process die (≤ 15 min;
##        CHAOS_QUICK=1 for a small run) → bench/results/chaos.{json,md}; non-zero on loss/dup
chaos: setup
	$(PY) -m bench.chaos $(if $(filter 1,$(CHAOS_QUICK)),--quick,)

## fuzz: schemathesis against /openapi.json of a server it starts, as a merchant and a buyer
fuzz: setup
	$(PY) -m bench.fuzz

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
