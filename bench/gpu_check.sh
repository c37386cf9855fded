#!/usr/bin/env bash
# The avdit GPU check, as one command with a time limit (default 540 s; pass seconds as $1):
#   bash bench/gpu_check.sh [SECONDS]
# 1. tests/gpu (the 1.3B-sized region-CFG step on the GPU), 2. the released-adapter benchmark at
# Wan2.1-I2V-14B size (random weights, bf16, SDPA) for 1, 2 and 3 speakers, 40 vs 8 steps, peak
# memory, appended to bench/RESULTS.md under a heading that names the GPU (nvidia-smi).
set -euo pipefail
LIMIT="${1:-540}"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export PYTHONPATH=.
GPU="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
echo "GPU: $GPU"
START=$(date +%s)
timeout "$((LIMIT / 4))" "$PY" -m pytest -q -p no:warnings tests/gpu
LEFT=$((LIMIT - ($(date +%s) - START)))
printf '\n## GPU check (%s): %s\n' "$(date -u +%F)" "$GPU" >> bench/RESULTS.md
timeout "$LEFT" "$PY" -m bench.avdit --preset wan2.1-i2v-14b --device cuda --steps 2 --results bench/RESULTS.md
echo "appended to bench/RESULTS.md"
