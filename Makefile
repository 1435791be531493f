# batchscore: `make demo` runs a whole nightly pipeline on embedded defaults; `make test` runs the tests.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

DEMO_DATE  ?= 2026-11-21
DEMO_DAYS  ?= 21
DEMO_ROWS  ?= 100000
TRAIN_DATE ?= 2026-11-14
DRIFT_FROM ?=
LABEL_LAG_DAYS ?= 3
# The demo first runs the day whose labels land on DEMO_DATE, so realized performance exists.
LABELED_DATE ?= $(shell $(PYTHON) -c "import datetime as d; print(d.date.fromisoformat('$(DEMO_DATE)') - d.timedelta(days=$(LABEL_LAG_DAYS)))")
PIPELINE   ?= churn

export AIRFLOW_HOME ?= $(CURDIR)/var/airflow

AIRFLOW_PORT ?= 8080

SERVE_PORT ?= 8090

.PHONY: serve setup demo test test-fast test-unit test-deps services browser tools mlflow-server-env lint format clean package airflow airflow-stop airflow-status

setup: $(STAMP)

$(STAMP): requirements.txt setup.cfg pyproject.toml infra/check_python.sh
	@bash infra/check_python.sh $(PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python -r requirements.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	$(BIN)/python -c "import pyspark, pathlib; jars = pathlib.Path(pyspark.__file__).parent / 'jars'; \
	  assert any(j.name.startswith('spark-core_2.13-' + pyspark.__version__) for j in jars.iterdir()), 'pyspark Python files do not match its jars'"
	@touch $@

demo: setup
	@echo "== 1/4 seed the lake ($(DEMO_DAYS) days x $(DEMO_ROWS) rows, ending $(DEMO_DATE); labels land $(LABEL_LAG_DAYS) days late)"
	$(BIN)/batchscore lake seed --days $(DEMO_DAYS) --rows $(DEMO_ROWS) --end-date $(DEMO_DATE) --label-lag-days $(LABEL_LAG_DAYS) $(if $(DRIFT_FROM),--drift-from $(DRIFT_FROM))
	@echo "== 2/4 train the first model (once; skipped when a champion exists)"
	$(BIN)/batchscore train --pipeline $(PIPELINE) --date $(TRAIN_DATE) --if-missing
	@echo "== 3/4 run the nightly DAG for $(LABELED_DATE) (its labels land by $(DEMO_DATE))"
	$(BIN)/batchscore run --pipeline $(PIPELINE) --date $(LABELED_DATE)
	@echo "== 4/4 run the nightly DAG for $(DEMO_DATE) through Airflow"
	$(BIN)/batchscore run --pipeline $(PIPELINE) --date $(DEMO_DATE)

# The read API over the published scores (docs/serving.md); needs BATCHSCORE_SERVE_TOKENS_FILE,
# or SERVE_ARGS=--insecure-no-auth on a laptop.
serve: setup
	$(BIN)/batchscore serve --port $(SERVE_PORT) $(SERVE_ARGS)

# `make test` is the one test command (CI's .ci/run calls it): it sets up the virtualenv,
# installs the browser and starts the services when they are missing, lints, runs everything
# (tests/infra runs infra/check.sh, the same check as `make infra-check`, so it is not run twice).
test: setup test-deps lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The loop while developing: unit and warehouse tests (local Spark, DuckDB, PostgreSQL);
# no Airflow DagRuns, no browsers, no Spark cluster, no test marked slow. Under 3 minutes on 2 cores.
FAST_TESTS := tests/unit tests/warehouse
test-fast: setup services
	$(BIN)/python -m pytest $(FAST_TESTS) -m "not e2e and not browser and not slow" $(PYTEST_ARGS)

# No service at all: what runs without PostgreSQL, Airflow or a browser.
test-unit: setup
	$(BIN)/python -m pytest -m "not integration and not e2e" $(PYTEST_ARGS)

test-deps: services browser tools mlflow-server-env

# The MLflow tracking server the tests run on loopback (tests/mlflow_server.py): full mlflow in
# its own virtualenv, since it would downgrade pyarrow and others in .venv (which has the client,
# mlflow-skinny, of the same version). Built once.
MLFLOW_VERSION := 3.17.2
MLFLOW_VENV    := .venv-mlflow
mlflow-server-env: $(MLFLOW_VENV)/.installed

$(MLFLOW_VENV)/.installed: | $(STAMP)
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(BIN)/uv pip install --quiet --python $(MLFLOW_VENV)/bin/python mlflow==$(MLFLOW_VERSION)
	$(MLFLOW_VENV)/bin/mlflow --version
	@touch $@

services:
	@bash infra/ci/ensure_services.sh

browser:
	@bash infra/ci/ensure_browser.sh

# wrk and hey (bench.serving), Prometheus, its Pushgateway and promtool (metrics tests).
tools:
	@bash infra/ci/ensure_tools.sh

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy batchscore jobs features dags bench
	$(BIN)/hadolint infra/docker/Dockerfile infra/docker/Dockerfile.gpu

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

package: setup
	@mkdir -p var/dist
	rm -f var/dist/batchscore.zip
	$(BIN)/python -m zipfile -c var/dist/batchscore.zip batchscore jobs features
	@echo "var/dist/batchscore.zip (for spark-submit --py-files)"

# Airflow as services (api-server, scheduler, dag-processor, triggerer) in the background.
# SQLite under $(AIRFLOW_HOME) by default; BATCHSCORE_AIRFLOW_DB_URL=postgresql+psycopg://... for PostgreSQL.
airflow: setup
	BATCHSCORE_AIRFLOW_PORT=$(AIRFLOW_PORT) $(BIN)/python -m batchscore.orchestration.airflow_server start

airflow-stop:
	$(BIN)/python -m batchscore.orchestration.airflow_server stop

airflow-status:
	$(BIN)/python -m batchscore.orchestration.airflow_server status

clean:
	rm -rf var

# Offline checks of the deployment files (docs/kubernetes.md): kustomize renders and schema
# validation of infra/k8s, the Airflow chart values, hadolint, the image install scripts' --check.
.PHONY: infra-check gpu-check
infra-check: setup
	bash infra/check.sh $(BIN)

# On a machine with an NVIDIA GPU and the GPU packages (the GPU image, or a venv from
# infra/docker/requirements-gpu.txt): the GPU tests and bench.scoring --device cuda at 1M and
# 10M rows, into bench/results/gpu_check.json. No Java, Spark or services, so no `setup`;
# fails fast without a GPU.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	$(GPU_PYTHON) infra/gpu_check.py
