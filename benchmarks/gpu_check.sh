#!/usr/bin/env bash
# One check of pvdm on a GPU, with numbers in its output: at most about 8 minutes on one modern GPU.
# Checks and options: benchmarks/gpu_check.py. Exits 2 with a message when torch sees no CUDA GPU.
#   benchmarks/gpu_check.sh              # on CUDA
#   benchmarks/gpu_check.sh --cpu        # the same logic at toy sizes on the CPU
#   PYTHON=.venv/bin/python benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python}" benchmarks/gpu_check.py "$@"
