# The README's commands. Each one sets up what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
export PLATFORM_DATA_DIR ?= $(CURDIR)/.platform
export DAGSTER_HOME ?= $(PLATFORM_DATA_DIR)/dagster
HOST ?= 127.0.0.1
PORT ?= 3000
MC_HOST ?= 127.0.0.1
MC_PORT ?= 8090

.PHONY: install run test dev lint format bench clean

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (the CPU torch wheel is built for it); set PYTHON=")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(VENV)/.installed  ## create .venv and install the project

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

run: install $(DAGSTER_HOME)/dagster.yaml  ## sample data → every asset and check → summary + example search
	$(BIN)/platform run

test: install  ## the test suite (CI runs this)
	$(BIN)/pytest

dev: install $(DAGSTER_HOME)/dagster.yaml  ## Dagster UI + daemon on $(HOST):$(PORT), metadata center on $(MC_HOST):$(MC_PORT)
	PATH=$(BIN):$$PATH $(BIN)/platform dev --host $(HOST) --port $(PORT) --mc-host $(MC_HOST) --mc-port $(MC_PORT)

lint: install
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

format: install
	$(BIN)/ruff check --fix . && $(BIN)/ruff format .

SIZE ?= 1000000
EMBED_TEXTS ?= 4000
EMBED_JOB_ROWS ?= 100000
bench: install  ## benchmark suite at SIZE reviews (figures as ratios against baselines measured in the same run)
	$(BIN)/python -m benchmarks --size $(SIZE) --embed-texts $(EMBED_TEXTS) --embed-job-rows $(EMBED_JOB_ROWS) $(if $(STAGES),--stages $(STAGES))

clean:
	rm -rf $(PLATFORM_DATA_DIR)
