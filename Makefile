# The two set-up commands: `make demo` and `make test`. Both build .venv from python3 + pip.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_DIR := data/demo

.PHONY: demo test install benchmark clean

install: $(VENV)/.installed

# Exact pins live in constraints.txt; pyproject.toml keeps the compatible ranges.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

# The Spark extra only for the tests (and spark users): `make demo` never needs Spark or Java.
$(VENV)/.installed-spark: $(VENV)/.installed
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $@

demo: install
	$(BIN)/healthscore generate --out $(DEMO_DIR)
	$(BIN)/healthscore build-dataset --config $(DEMO_DIR)/healthscore.yaml --out $(DEMO_DIR)/dataset.parquet
	$(BIN)/healthscore train --config $(DEMO_DIR)/healthscore.yaml --dataset $(DEMO_DIR)/dataset.parquet
	$(BIN)/healthscore promote --dataset $(DEMO_DIR)/dataset.parquet
	$(BIN)/healthscore score --config $(DEMO_DIR)/healthscore.yaml --as-of 2025-12-01 --out $(DEMO_DIR)/scores-2025-12-01.parquet --history $(DEMO_DIR)/scores.duckdb
	$(BIN)/healthscore score --config $(DEMO_DIR)/healthscore.yaml --as-of 2026-01-01 --out $(DEMO_DIR)/scores-2026-01-01.parquet --history $(DEMO_DIR)/scores.duckdb
	$(BIN)/healthscore changes --from 2025-12-01 --to 2026-01-01 --db $(DEMO_DIR)/scores.duckdb --limit 10
	$(BIN)/healthscore forecast --config $(DEMO_DIR)/healthscore.yaml --as-of 2026-01-01 --months 12 --by segment --out $(DEMO_DIR)/forecast.parquet
	$(BIN)/healthscore report --scores $(DEMO_DIR)/scores-2026-01-01.parquet --history $(DEMO_DIR)/scores.duckdb --out $(DEMO_DIR)/report.html --csv $(DEMO_DIR)/accounts.csv --forecast $(DEMO_DIR)/forecast.parquet
	@echo "Scores: $(DEMO_DIR)/scores-2026-01-01.parquet; history: $(DEMO_DIR)/scores.duckdb"
	@echo "Report: $(DEMO_DIR)/report.html (open it in a browser; it needs no network)"
	@echo "MLflow UI: $(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db"

# The report's browser tests drive Debian's Chromium, the Spark tests a Java runtime: the scripts
# install them once from Debian's packages (needs root).
test: install $(VENV)/.installed-spark
	bash scripts/install-browser.sh
	bash scripts/install-java.sh
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/pytest -q

benchmark: install
	$(BIN)/python benchmarks/bench_dataset.py --accounts 50000 --months 24
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_scoring.py

clean:
	rm -rf $(VENV) data
