# finance_dag: `make demo` and `make test` are all a fresh clone needs (Python 3.11 + make).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DAGSTER_HOME ?= $(CURDIR)/.dagster_home
FINANCE_DAG_STORAGE ?= $(CURDIR)/data
# The demo and the UI share one instance and one lake; tests make their own.
demo dev: export DAGSTER_HOME := $(DAGSTER_HOME)
demo dev: export FINANCE_DAG_STORAGE := $(FINANCE_DAG_STORAGE)
# The demo is a fixed historical window ending on Thanksgiving week 2024: the UI shows it as it
# is. Two years of minute bars, so the strategies' walk-forward (252 training sessions, then 63 at
# a time) has a year out of sample.
demo dev: export FINANCE_DAG_START_DATE ?= 2022-12-01
demo dev: export FINANCE_DAG_END_DATE ?= 2024-11-29
# Lending: the same last day, with the 31 earlier sessions its factors look back over.
demo dev: export FINANCE_DAG_LENDING_START_DATE ?= 2024-10-01
demo dev: export FINANCE_DAG_LENDING_END_DATE ?= 2024-11-29
# ETF: three years of prices to the same day, so the walk-forward backtest covers two years.
demo dev: export FINANCE_DAG_ETF_START_DATE ?= 2021-11-01
demo dev: export FINANCE_DAG_ETF_END_DATE ?= 2024-11-29
# Risk: a year of factor returns to the same day (the covariance reads 252 sessions).
demo dev: export FINANCE_DAG_RISK_START_DATE ?= 2023-11-01
demo dev: export FINANCE_DAG_RISK_END_DATE ?= 2024-11-29

.PHONY: env demo dev test test-fast e2e chaos bench prod-up prod-down clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH (or make PYTHON=python3)"; exit 1; }
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

env: $(STAMP)

$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml
	@mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $@

demo: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m finance_dag.demo

dev: $(STAMP) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml

test: $(STAMP)
	$(BIN)/ruff check finance_dag tests benchmarks
	$(BIN)/ruff format --check finance_dag tests benchmarks
	$(BIN)/dagster definitions validate -m finance_dag.definitions
	$(BIN)/pytest -n 2 --dist worksteal -q

# The fast set for the edit-test loop: no CLI subprocesses, no S3 server, no vendor SDKs.
test-fast: $(STAMP)
	$(BIN)/pytest -n 2 -q -m "not cli and not s3 and not vendors"

# The UI and API end to end: webserver and daemon on loopback, the UI in headless Chromium.
e2e: $(STAMP)
	$(BIN)/pytest -n 2 -q -m e2e tests/e2e

# The production profile on this machine (deploy/prod/local.py, docs/production.md): PostgreSQL,
# RabbitMQ, Redis, an S3 stand-in, two Celery workers, the daemon and the UI on http://127.0.0.1:3001.
prod-up: $(STAMP)
	$(BIN)/python deploy/prod/local.py up

prod-down: $(STAMP)
	$(BIN)/python deploy/prod/local.py down

# Faults across the graph and the re-runs that recover from them (tests/chaos; README, "Chaos").
chaos: $(STAMP)
	rm -f $(CURDIR)/.chaos-report.jsonl
	CHAOS_REPORT=$(CURDIR)/.chaos-report.jsonl $(BIN)/pytest -n 2 -q -m chaos; status=$$?; \
	$(BIN)/python -m tests.chaos.report $(CURDIR)/.chaos-report.jsonl && exit $$status

bench: $(STAMP)
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) data .dagster_home .prod
