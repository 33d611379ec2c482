# case-closure-risk: `make` (or `make help`) lists every target.
.DEFAULT_GOAL := help
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
# Python caches what it compiles (in .venv and beside the sources). Where the environment sets
# PYTHONDONTWRITEBYTECODE, as some images do, every command compiled the same 3,700 modules again before doing
# anything: about 7 s of CPU each time (benchmarks/README.md, "The first make serve").
unexport PYTHONDONTWRITEBYTECODE

PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
RUN := $(UV) run --frozen
DATA ?= data/synthetic
CHILDREN ?= 40000
SEED ?= 20250331
START ?= 2016
END ?= 2025

.PHONY: help run serve install install-browser data ingest readiness features train reload mlflow-ui score screenshots test lint format typecheck check bench clean
.PHONY: fuzz stress
.PHONY: install-spark bench-spark
# The optional Spark engine (pyspark): every sync keeps it once `make install-spark` has added it, and under CI=true
# (whose tests must run it); a plain `uv sync` would remove it.
SPARK_EXTRA = $(if $(or $(filter true,$(CI)),$(wildcard .venv/.spark-extra)),--extra spark)

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# uv into .tools with the interpreter's own pip (half the time of a venv, which must first install pip), or, where
# that pip is missing or refuses, into a venv of its own.
.tools/bin/uv:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .tools uv==$(UV_VERSION) \
		|| { rm -rf .tools && $(PYTHON) -m venv .tools && .tools/bin/pip install --quiet uv==$(UV_VERSION); }

serve: install ## the main job: serve the API on 127.0.0.1:8000 (generates data and trains first on a fresh clone)
	$(RUN) closure-risk serve --host 127.0.0.1 --port 8000 --data $(DATA)

run: serve ## the same as serve

install: $(if $(findstring .tools,$(UV)),.tools/bin/uv) ## create .venv from uv.lock (installs uv itself if missing)
	$(UV) sync --frozen $(SPARK_EXTRA)

install-spark: $(if $(findstring .tools,$(UV)),.tools/bin/uv) ## install with the optional Spark engine (pyspark; needs Java 17+)
	$(UV) sync --frozen --extra spark
	touch .venv/.spark-extra
	@java -version 2>&1 | head -n 1 || echo "no Java found: Spark needs Java 17 or later (apt-get install openjdk-17-jre-headless)"

data: install ## (re)generate the synthetic authority (CHILDREN, SEED, START, END) into DATA
	$(RUN) closure-risk generate --children $(CHILDREN) --seed $(SEED) --start $(START) --end $(END) --out $(DATA)

$(DATA)/manifest.json:
	$(MAKE) --no-print-directory data

PARQUET ?=

ingest: install ## ingest the returns and extension: summary, problems, records (JSON lines; PARQUET=FILE for Parquet too)
	$(RUN) closure-risk ingest $(DATA)/cin_*.xml --extension $(DATA)/extension.jsonl \
		--problems $(DATA)/problems.csv --out $(DATA)/records.jsonl $(if $(PARQUET),--parquet $(PARQUET))

readiness: install ## the data officer's report on the returns: $(DATA)/readiness.html and readiness.json
	$(RUN) closure-risk readiness $(DATA)/cin_*.xml --extension $(DATA)/extension.jsonl --out $(DATA)

features: install ## label every eligible closure and build its features: $(DATA)/training.parquet
	$(RUN) closure-risk features --data $(DATA) --out $(DATA)/training.parquet

train: install $(DATA)/manifest.json ## train, evaluate, audit and register a model (DATA= for another folder)
	$(RUN) closure-risk train --data $(DATA)

reload: ## make a running server load the current champion (an admin key in CCR_ADMIN_KEY)
	$(RUN) closure-risk reload

mlflow-ui: install ## open the MLflow UI on http://127.0.0.1:5000 (runs, models, aliases, cards)
	$(RUN) mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} --host 127.0.0.1 --port 5000

install-browser: ## install Debian's Chromium for the browser tests and screenshots (apt-get; needs root)
	@if command -v chromium >/dev/null 2>&1; then echo "chromium: $$(command -v chromium)"; else \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			chromium fonts-dejavu-core; fi

screenshots: install $(DATA)/manifest.json ## docs/: the high- and low-risk report of the default cohort's champion, in Chromium
	$(RUN) python -m docs.screenshots --data $(DATA) --out docs

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
	$(RUN) python -m benchmarks.bench_audit_store
	$(RUN) python -m benchmarks.bench_model_quality $(QUALITY_GRID)

QUALITY_GRID ?= --sizes 10000 20000 --seeds 3
.PHONY: bench-quality
bench-quality: install ## model quality, full grid: 5 seeds x 10k/20k/40k children, 3 x 100k (hours on 2 cores)
	$(RUN) python -m benchmarks.bench_model_quality --cohorts data/bench-cohorts

RETURNS ?= $(DATA)/cin_*.xml
MONITOR_DEMO ?= data/monitor-demo

.PHONY: monitor monitor-demo

monitor: install ## join newer returns (RETURNS, SINCE) to stored scores: HTML report, MLflow run, endpoint summary
	$(RUN) closure-risk monitor --returns $(RETURNS) \
		$(if $(wildcard $(DATA)/extension.jsonl),--extension $(DATA)/extension.jsonl) $(if $(SINCE),--since $(SINCE))

monitor-demo: install ## two-year scenario in MONITOR_DEMO: generate, train to year N, score N+1 via the API, monitor
	$(RUN) python -m docs.monitor_demo --out $(MONITOR_DEMO)

FUZZ_EXAMPLES ?= 100
XML_FUZZ_EXAMPLES ?= 3000
STRESS_MINUTES ?= 10

fuzz: install ## longer fuzzing (minutes): the API from its own OpenAPI schema, mutated and hostile CIN returns
	CCR_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) CCR_XML_FUZZ_EXAMPLES=$(XML_FUZZ_EXAMPLES) $(RUN) pytest -q -s \
		--hypothesis-show-statistics tests/serving/test_fuzz_api.py tests/features/census/test_hostile_xml.py

stress: fuzz ## make fuzz, then 10 minutes of scoring load with a model reload; memory, p99, requests lost (not in test)
	$(RUN) python -m benchmarks.stress --minutes $(STRESS_MINUTES)

clean: ## remove generated data, caches and the virtual environments
	rm -rf .venv .tools data mlruns mlflow.db audit.db audit.db-wal audit.db-shm var test-artifacts reports .pytest_cache .mypy_cache \
		.ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

bench-spark: install-spark $(DATA)/manifest.json ## Spark local[1] and local[2] against the single-process scorer (CASES)
	$(RUN) python -m benchmarks.bench_spark --data $(DATA) $(if $(CASES),--cases $(CASES))

.PHONY: audit-check
AUDIT_CHILDREN ?= 20000
AUDIT_SEEDS ?= 10
AUDIT_JOBS ?= 2
WHATIF_CHILDREN ?= 6000
WHATIF_SEEDS ?= 5

audit-check: install ## planted biases the audit must catch, chance flags, what-ifs against the truth (AUDIT_SEEDS, AUDIT_CHILDREN, AUDIT_JOBS, WHATIF_SEEDS, WHATIF_CHILDREN)
	$(RUN) python -m benchmarks.bench_fairness_audit --children $(AUDIT_CHILDREN) --seeds $(AUDIT_SEEDS) --share 0.4 \
		--one-candidate --jobs $(AUDIT_JOBS)
	$(RUN) python -m benchmarks.bench_whatif_truth --children $(WHATIF_CHILDREN) --seeds $(WHATIF_SEEDS) --one-candidate \
		--jobs $(AUDIT_JOBS)
