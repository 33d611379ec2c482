# case-closure-risk: `make` (or `make help`) lists every target.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen
DATA ?= data/synthetic
CHILDREN ?= 40000
SEED ?= 20250331
START ?= 2016
END ?= 2025

.PHONY: help run serve install data ingest features train mlflow-ui score test lint format typecheck check bench clean

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

serve: install ## the main job: serve the API on 127.0.0.1:8000 (generates data and trains first on a fresh clone)
	$(RUN) closure-risk serve --host 127.0.0.1 --port 8000 --data $(DATA)

run: serve ## the same as serve

install: $(if $(findstring .tools,$(UV)),.tools/bin/uv) ## create .venv from uv.lock (installs uv itself if missing)
	$(UV) sync --frozen

data: install ## (re)generate the synthetic authority (CHILDREN, SEED, START, END) into DATA
	$(RUN) closure-risk generate --children $(CHILDREN) --seed $(SEED) --start $(START) --end $(END) --out $(DATA)

$(DATA)/manifest.json:
	$(MAKE) --no-print-directory data

ingest: install ## ingest the generated returns and extension, print the summary, write records and problems
	$(RUN) closure-risk ingest $(DATA)/cin_*.xml --extension $(DATA)/extension.jsonl \
		--problems $(DATA)/problems.csv --out $(DATA)/records.jsonl

features: install ## label every eligible closure and build its features: $(DATA)/training.parquet
	$(RUN) closure-risk features --data $(DATA) --out $(DATA)/training.parquet

train: install $(DATA)/manifest.json ## train, evaluate, audit and register a model (DATA= for another folder)
	$(RUN) closure-risk train --data $(DATA)

mlflow-ui: install ## open the MLflow UI on http://127.0.0.1:5000 (runs, models, aliases, cards)
	$(RUN) mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port 5000

test: install ## run the test suite
	$(RUN) pytest

lint: install ## check lint and formatting (ruff)
	$(RUN) ruff check .
	$(RUN) ruff format --check .

format: install ## fix lint and formatting where ruff can
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

typecheck: install ## mypy --strict with the pydantic plugin
	$(RUN) mypy

check: lint typecheck test ## everything CI runs: lint, types, tests

bench: install $(DATA)/manifest.json ## run every benchmark (figures and ratios; several minutes; wrk if installed)
	$(RUN) python -m benchmarks.bench_synthetic
	$(RUN) python -m benchmarks.bench_features
	$(RUN) python -m benchmarks.bench_training
	$(RUN) python -m benchmarks.bench_api
	$(RUN) python -m benchmarks.bench_explain
	$(RUN) python -m benchmarks.bench_score

clean: ## remove generated data, caches and the virtual environments
	rm -rf .venv .tools data mlruns mlflow.db audit.db audit.db-wal audit.db-shm var .pytest_cache .mypy_cache \
		.ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
