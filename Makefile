# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint coverage-doc bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m openmaker.demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks scripts

coverage-doc: $(STAMP)
	$(BIN)/python scripts/generate_api_coverage.py

bench: $(STAMP)
	$(BIN)/python benchmarks/s3_requests.py
	$(BIN)/python benchmarks/s3_throughput.py
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/pipe_mode.py
	$(BIN)/python benchmarks/xgboost_job.py
	$(BIN)/python benchmarks/serving.py
	$(BIN)/python benchmarks/tuning.py
	$(BIN)/python benchmarks/kmeans.py
	$(BIN)/python benchmarks/pca.py
	$(BIN)/python benchmarks/random_cut_forest.py
	$(BIN)/python benchmarks/linear_learner.py
	$(BIN)/python benchmarks/batch_transform.py

clean:
	rm -rf $(VENV) build src/*.egg-info
