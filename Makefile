# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV := $(BIN)/uv
HOST ?= 127.0.0.1
PORT ?= 8000
MODEL_DIR ?= models/champion

.PHONY: run test install install-dev install-spark train serve mlflow-ui prefect-ui flow lint lock \
        bench bench-quality bench-serving bench-flow bench-tuning evaluate clean \
        monitor bench-calibration bench-protected bench-batch bench-engines bench-drift bench-reasons bench-recourse bench-spark bench-lifecycle screenshot image

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade uv

# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on this project's
# machines and in many containers) every command would otherwise recompile what it imports,
# ~3 s per start of `credit-risk`.
$(VENV)/.installed: requirements.txt pyproject.toml | $(BIN)/python
	$(UV) pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements.txt
	$(UV) pip install --python $(BIN)/python --quiet --no-deps -e .
	$(BIN)/python -m compileall -q src
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(UV) pip install --python $(BIN)/python --quiet --compile-bytecode -r requirements-dev.txt
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

## install-spark: what `credit-risk predict --engine spark` needs: pyspark (its pin in
## requirements-dev.txt) and a Java 17 runtime (Debian's openjdk-17-jre-headless, unless a
## `java` or JAVA_HOME is already there)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
install-spark: install
	$(UV) pip install --python $(BIN)/python --quiet $$(grep -E '^(pyspark|py4j)==' requirements-dev.txt)
	@if [ -n "$$JAVA_HOME" ] || command -v java >/dev/null 2>&1; then \
		echo "Java runtime: $$(java -version 2>&1 | head -n 1)"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		$(SUDO) mkdir -p /usr/share/man/man1 && \
		$(SUDO) apt-get update -qq && \
		$(SUDO) apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	else echo "install a Java 17 or 21 runtime (e.g. Eclipse Temurin) and set JAVA_HOME" >&2; exit 1; fi

## run: install, train if no champion is exported yet, then serve the API and page
run: install
	@if [ ! -f $(MODEL_DIR)/metadata.json ]; then $(BIN)/credit-risk train; fi
	@if $(BIN)/python -c "import credit_risk.api" 2>/dev/null; then \
		$(BIN)/credit-risk serve --host $(HOST) --port $(PORT); \
	else $(BIN)/credit-risk info; fi

## test: install the dev tools and run the whole suite
test: install-dev
	$(BIN)/python -m pytest -n 2 --dist loadfile $(PYTEST_ARGS)

train: install
	$(BIN)/credit-risk train $(ARGS)

evaluate: install
	$(BIN)/credit-risk evaluate $(ARGS)

serve: install
	$(BIN)/credit-risk serve --host $(HOST) --port $(PORT)

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri $${MLFLOW_TRACKING_URI:-sqlite:///mlflow.db} \
		--default-artifact-root ./mlruns --host $(HOST) --port 5000

## prefect-ui: Prefect server and UI on the default local store (~/.prefect), port 4200
prefect-ui: install
	$(BIN)/prefect server start --host $(HOST) --port 4200

## flow: run the training flow once (recorded by `make prefect-ui` when it is running)
flow: install
	@if $(BIN)/python -c "import urllib.request as u; u.urlopen('http://$(HOST):4200/api/health', timeout=2)" 2>/dev/null; then \
		echo "Prefect server found on $(HOST):4200"; \
		PREFECT_API_URL=http://$(HOST):4200/api $(BIN)/credit-risk flow run $(ARGS); \
	else $(BIN)/credit-risk flow run $(ARGS); fi

## screenshot: regenerate docs/screenshot.png (the README's picture of the page) in Chromium
screenshot: install-dev
	CREDIT_RISK_SCREENSHOT=$(CURDIR)/docs/screenshot.png $(BIN)/python -m pytest -p no:xdist \
		tests/api/test_browser.py -k scores_an_applicant

## image: build the base image (Debian packages), the full and the slim serving image with podman
image:
	containers/build.sh

lint: install-dev
	$(BIN)/ruff check src tests benchmarks *.py
	$(BIN)/ruff format --check src tests benchmarks *.py
	$(BIN)/mypy

## lock: re-pin requirements*.txt from requirements*.in
lock: | $(BIN)/python
	$(UV) pip compile --python-version 3.11 requirements.in -o requirements.txt
	$(UV) pip compile --python-version 3.11 requirements-dev.in -o requirements-dev.txt
	$(UV) pip compile --python-version 3.11 requirements-serve.in -c requirements.txt \
		-o requirements-serve.txt

bench: bench-quality

## monitor: drift of the decision log against the training data (exit 1 on drift); ARGS=--since 7d
monitor: install
	$(BIN)/credit-risk monitor $(ARGS)

## bench-<name>: run benchmarks/<script>.py with ARGS (each prints its protocol and figures)
BENCH_serving := serving
BENCH_batch := batch
BENCH_engines := engines
BENCH_quality := model_quality
BENCH_calibration := calibration
BENCH_protected := protected_policy
BENCH_flow := flow_overhead
BENCH_tuning := tuning_scaleout
BENCH_gauges := realised_gauges
BENCH_drift := drift_alarms
BENCH_reasons := reasons
BENCH_recourse := recourse
BENCH_spark := spark_batch
BENCH_lifecycle := lifecycle
BENCHES := $(patsubst BENCH_%,bench-%,$(filter BENCH_%,$(.VARIABLES)))

$(BENCHES): bench-%: install
	$(BIN)/python benchmarks/$(BENCH_$*).py $(ARGS)

clean:
	rm -rf $(VENV) mlruns mlflow.db models reports .pytest_cache
