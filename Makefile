# Setup and everyday commands. `make studio` and `make test` are the two commands in the README.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup studio test test-fast test-gpu gates lint format bench

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# Without CUDA, take the CPU torch wheel first so the range in pyproject is already met.
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(BIN)/pip install -q torch==2.13.0; fi
	$(BIN)/pip install -q -e '.[dev,judge,plot,web]'
	# The fast backend compiles llama.cpp (minutes); if that fails, torch decodes instead.
	$(BIN)/pip install -q -e '.[fast]' >$(VENV)/fast-extra.log 2>&1 || \
		echo "note: the fast backend (llama-cpp-python) did not install, so torch will decode; see $(VENV)/fast-extra.log"
	touch $(STAMP)

setup: $(STAMP)

studio: setup
	$(BIN)/poetstudio setup
	$(BIN)/poetstudio

# Every gate, then every test, then the numerics tests again as another kind of CPU would run
# them (tests/rerun_numerics.py). `.ci/run` calls this.
test: gates
	$(BIN)/pytest -q
	$(BIN)/python -m tests.rerun_numerics

# The quick inner loop: the gates and the tests that start no processes, tmux or browser.
test-fast: gates
	$(BIN)/pytest -q -m "not subprocess"

# Lint, formatting, the import contracts (ARCHITECTURE.md) and the type check.
gates: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

# The CUDA checks of training (tests/gpu); they skip themselves where there is no GPU.
test-gpu: setup
	$(BIN)/pytest -q -m gpu tests/gpu

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: setup
	$(BIN)/python benchmarks/bench_corpus.py
