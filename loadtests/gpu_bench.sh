#!/usr/bin/env bash
# On the lent GPU machine, in one call: install the carried wheels
# (scripts/gpu_bench_wheels.sh made them) into a scratch folder, put it first
# on PYTHONPATH, and run the whole benchmark plan (bench_xtts.py --gpu, under
# 6 minutes on an H200), its JSON into $OUT (or the current folder).
#   run: bash loadtests/gpu_bench.sh     carry: [".gpu-wheels"]   timeout_s: 540
set -euo pipefail
wheels="${1:-.gpu-wheels}"
site="$(mktemp -d)"
python3 -m pip install --quiet --no-index --no-deps --target "$site" "$wheels"/*.whl
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
PYTHONPATH="$site:$PWD" python3 loadtests/bench_xtts.py --gpu --json "${OUT:-.}/bench_xtts_gpu.json"
