# The two commands a user needs: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --constraint constraints-cpu.txt
# Re-install only when the project's dependencies change.
SERVE_STAMP := $(VENV)/.installed-serve
TEST_STAMP := $(VENV)/.installed-test

.PHONY: serve test bench emulator clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The engine is chosen at run time (VG_ENGINE=xtts needs the xtts extra).
$(SERVE_STAMP): pyproject.toml constraints-cpu.txt | $(BIN)/python
	$(PIP) -e '.[xtts]'
	$(BIN)/python scripts/cpu_torchaudio.py
	touch $@

$(TEST_STAMP): pyproject.toml constraints-cpu.txt | $(BIN)/python
	$(PIP) -e '.[dev,xtts]'
	$(BIN)/python scripts/cpu_torchaudio.py
	touch $@

serve: $(SERVE_STAMP)
	exec $(BIN)/voicegraph-serve serve_config.yaml

test: $(TEST_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# A local Firebase Storage stand-in for `make serve` (README: "Firebase, locally").
emulator: $(TEST_STAMP)
	exec $(BIN)/gcp-storage-emulator -d data/emulator start --host 127.0.0.1 --port 9199 --default-bucket voicegraph-local

bench: $(TEST_STAMP)
	$(BIN)/python loadtests/bench_graph.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
