# Every target sets up what it needs, so each works on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test test-pg test-ddp test-all lint bench setup setup-dev chromium

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

setup: $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt

setup-dev: $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt

# Debian's chromium for the browser tests (root on CI and dev machines; a no-op when present).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -q && apt-get install -y -q chromium; }

run: setup
	$(BIN)/python app.py

test: setup-dev chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not slow and not gpu"

# The storage, labeling, job and worker tests again on a real PostgreSQL server (Debian's package, started here).
PG_TESTS := tests/storage tests/label tests/app/test_app_worker.py tests/app/test_worker_problems.py tests/reliability
test-pg: setup-dev
	FINETUNER_TEST_DATABASE_URL="$$(bash .ci/postgres.sh start)" HF_HUB_OFFLINE=1 \
		$(BIN)/python -m pytest -m "not slow and not gpu and not e2e" $(wildcard $(PG_TESTS))

# Data-parallel training with real torchrun processes (gloo on the CPU): 2 ranks against 1, the CLI, the worker.
test-ddp: setup-dev
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m slow tests/finetuner/test_distributed.py \
		tests/finetuner/test_distributed_problems.py tests/app/test_worker_nproc.py

test-all: setup-dev chromium
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: setup-dev
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

bench: setup
	$(BIN)/python bench/quality.py --subset
