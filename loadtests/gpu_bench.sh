#!/usr/bin/env bash
# On the lent GPU machine, in one call: install the carried wheels
# (scripts/gpu_bench_wheels.sh made them) into a scratch folder, put it first
# on PYTHONPATH, and run the whole benchmark plan (bench_xtts.py --gpu, about
# 5 minutes on an H200 by estimate), its JSON into $OUT (or the current
# folder), rewritten after each part: a run cut short keeps what it measured.
#   run: bash loadtests/gpu_bench.sh     carry: [".gpu-wheels"]   timeout_s: 540
set -euo pipefail
wheels="${1:-.gpu-wheels}"
site="$(mktemp -d)"
python3 -m pip install --quiet --no-index --no-deps --target "$site" "$wheels"/*.whl
if ! python3 -c "import torchaudio" 2>/dev/null; then
  python3 -m pip install --quiet --no-index --no-deps --target "$site" "$wheels"/if-missing/torchaudio-*.whl
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# BENCH_ARGS=--dry-run rehearses the recipe on a CPU (the tiny model).
# shellcheck disable=SC2086
PYTHONPATH="$site:$PWD" python3 loadtests/bench_xtts.py ${BENCH_ARGS:---gpu} --json "${OUT:-.}/bench_xtts_gpu.json"
