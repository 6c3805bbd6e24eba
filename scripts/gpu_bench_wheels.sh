#!/usr/bin/env bash
# Wheels the lent GPU machine lacks for loadtests/bench_xtts.py (it has torch,
# numpy, scipy, numba, tokenizers, huggingface-hub; no registry): cp312
# manylinux wheels, ~30 MB, at the lock's versions, into DIR (default
# .gpu-wheels, ignored by git). Carry DIR there; loadtests/gpu_bench.sh
# installs them and runs the benchmark.
set -euo pipefail
dir="${1:-.gpu-wheels}"
mkdir -p "$dir"
packages=(coqui-tts transformers coqpit-config coqui-tts-trainer anyascii inflect jaraco.functools
  more-itertools typeguard ko-speech-tools librosa lazy-loader audioread decorator pooch platformdirs
  soxr soundfile cffi pycparser monotonic-alignment-search num2words pysbd pydantic pydantic-core
  pydantic-settings python-dotenv typing-inspection annotated-types six)
pinned=()
for package in "${packages[@]}"; do
  # The lock's version where it has one: pydantic and pydantic-core, for one, must match.
  pin=$(grep -ioE "^${package//./[.]}==[^ ]+" requirements/lock.txt || true)
  pinned+=("${pin:-$package}")
done
# `import TTS` only checks that torchcodec is installed; the CPU lock has none.
pinned+=(torchcodec)
.venv/bin/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
  --dest "$dir" "${pinned[@]}" 2>&1 | grep -v "is ignored: it is neither" || true
# coqui-tts will not import without torchaudio, which must match the
# machine's torch (2.11 on the H200 of ../shared/notes/gpu.md): installed
# there only where the machine has none.
mkdir -p "$dir/if-missing"
.venv/bin/pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --dest "$dir/if-missing" "torchaudio==${TORCHAUDIO_VERSION:-2.11.0}" 2>&1 \
  | grep -v "is ignored: it is neither" || true
ls "$dir" | grep -q '^coqui_tts-' || { echo "download failed: no coqui-tts wheel in $dir" >&2; exit 1; }
du -sh "$dir"
