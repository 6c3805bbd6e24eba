# The two commands a user needs: `make serve` and `make test`.
# Every install goes through the lock (docs/development.md: "Dependencies").
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet
LOCK := requirements/lock.txt
TORCH_PINS := requirements/torch.txt
UV_LOCK := requirements/uv.txt
# uv installs the lock ~4x faster than pip (docs/development.md: Dependencies); `make test
# LOCK_INSTALLER=pip` uses pip, e.g. behind an index only pip is set up for.
LOCK_INSTALLER ?= uv
# Re-install only when the lock, the torch pins or the project change.
STAMP := $(VENV)/.installed

.PHONY: serve test test-ui bench loadtest emulator lock check-lock image docs clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# torch first, with pip, from pins that fit both its CPU and CUDA builds; then
# the hashed lock, checked complete (uv compiles bytecode, as pip does: Ray
# starts many processes, and where PYTHONDONTWRITEBYTECODE is set each would
# compile every import again); then the project itself, with the locked setuptools.
$(STAMP): pyproject.toml $(LOCK) $(TORCH_PINS) $(UV_LOCK) | $(BIN)/python
	$(PIP) -r $(TORCH_PINS)
ifeq ($(LOCK_INSTALLER),uv)
	$(PIP) --require-hashes -r $(UV_LOCK)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --require-hashes -r $(LOCK)
else
	$(PIP) --require-hashes -r $(LOCK)
endif
	$(PIP) --no-deps --no-build-isolation -e .
	$(BIN)/python scripts/cpu_torchaudio.py
	touch $@

# Fails, naming `make lock`, when pyproject.toml asks for what the lock lacks.
check-lock: $(STAMP)
	$(BIN)/python scripts/check_lock.py

# The engine is chosen at run time (VG_ENGINE=xtts needs the xtts extra, which the lock includes).
serve: check-lock
	exec $(BIN)/voicegraph-serve serve_config.yaml

# The layer contract and the linter first: both take seconds.
test: check-lock
	$(BIN)/lint-imports --no-cache
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The try-it page in headless Chromium (Debian's chromium and chromium-driver;
# .ci/run installs them). `make test` never collects tests/ui.
test-ui: check-lock
	$(BIN)/python -m pytest tests/ui $(PYTEST_ARGS)

# Re-resolve every package to the newest version pyproject.toml allows, then
# rewrite the lock. Run `make test` after it. `make lock UPGRADE=` only adds
# what pyproject.toml newly asks for and keeps every other pin. Depends on the
# install, not on check-lock: a lock that disagrees is what this mends.
UPGRADE ?= --upgrade
lock: $(STAMP)
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet $(UPGRADE) \
		--generate-hashes --strip-extras --extra xtts --extra dev \
		--no-emit-index-url --no-emit-find-links \
		--unsafe-package torch --unsafe-package torchaudio --unsafe-package torchcodec \
		--constraint $(TORCH_PINS) --output-file $(LOCK) pyproject.toml
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet $(UPGRADE) --generate-hashes \
		--no-emit-index-url --no-emit-find-links --output-file $(UV_LOCK) requirements/uv.in

# A local Firebase Storage stand-in for `make serve` (docs/operations.md: "Firebase, locally").
emulator: $(STAMP)
	exec $(BIN)/gcp-storage-emulator -d data/emulator start --host 127.0.0.1 --port 9199 --default-bucket voicegraph-local

bench: $(STAMP)
	$(BIN)/python loadtests/bench_graph.py

# Locust, headless and bounded, against LOADTEST_HOST (default http://127.0.0.1:8000),
# starting the service there when nothing answers. LOADTEST_* variables and
# LOADTEST_ARGS (flags of loadtests/loadtest.py) shape it: docs/performance.md "Load testing (Locust)".
loadtest: $(STAMP)
	$(BIN)/python loadtests/loadtest.py $(LOADTEST_ARGS)

# The service's image from cluster/Dockerfile (docs/operations.md: "Deploying"), where Docker
# exists: IMAGE_VARIANT=gpu for GPU workers, IMAGE to tag it for a registry. The
# sha gets "-dirty" when uncommitted changes went into the image, so /health
# never names a commit the image does not match.
IMAGE_VARIANT ?= cpu
IMAGE ?= voicegraph:$(IMAGE_VARIANT)
image:
	@command -v docker >/dev/null || { echo "make image: docker not found" >&2; exit 1; }
	docker build -f cluster/Dockerfile --build-arg VARIANT=$(IMAGE_VARIANT) \
		--build-arg VG_GIT_SHA=$$(git rev-parse HEAD)$$(git diff --quiet HEAD || echo -dirty) \
		--build-arg VG_BUILD_TIME=$$(date -u +%Y-%m-%dT%H:%M:%SZ) \
		-t $(IMAGE) .

# docs/configuration.md from the settings model (`make test` fails while it is out of date).
docs: $(STAMP)
	$(BIN)/python scripts/settings_docs.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
