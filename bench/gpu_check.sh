#!/usr/bin/env bash
# Every avdit GPU check, as one command with a time limit (default 540 s; pass seconds as $1):
#   bash bench/gpu_check.sh [SECONDS]
# 1. tests/gpu: the 1.3B-sized region-CFG step, and both pipelines whole (tiny models) on CUDA against
#    the CPU, with group offload and in bf16;
# 2. the Wan2.1-1.3B step time, text CFG (2 passes) vs region audio CFG (3 batched passes);
# 3. the released-adapter benchmark at Wan2.1-I2V-14B size (random weights, bf16, SDPA) for 1, 2 and
#    3 speakers, 40 vs 8 steps, peak memory.
# Figures are appended to bench/RESULTS.md under a heading that names the GPU (nvidia-smi). A failing
# step is recorded and the next one still runs; the exit status is the first failure's.
set -uo pipefail
LIMIT="${1:-540}"
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
RESULTS=bench/RESULTS.md
GPU="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
echo "GPU: $GPU"
START=$(date +%s)
STATUS=0
left() { echo $((LIMIT - ($(date +%s) - START))); }
record() {  # record NAME RC
    [ "$2" -eq 0 ] && return
    echo "FAILED: $1 (exit $2)" | tee -a "$RESULTS"
    [ "$STATUS" -eq 0 ] && STATUS=$2
}
printf '\n## GPU check (%s): %s\n\n' "$(date -u +%F)" "$GPU" >> "$RESULTS"

timeout "$((LIMIT / 4))" "$PY" -m pytest -p no:warnings -p no:cacheprovider tests/gpu 2>&1 | tee /tmp/gpu_tests.txt
rc=$?
printf '`pytest tests/gpu`: %s (%ss)\n' "$(grep -E '[0-9]+ (passed|failed)' /tmp/gpu_tests.txt | tail -1)" \
    "$(($(date +%s) - START))" >> "$RESULTS"
record "pytest tests/gpu" $rc

timeout "$((LIMIT / 6))" "$PY" -m bench.avdit --preset wan2.1-1.3b --device cuda --steps 3 2>&1 | tee /tmp/b13.txt
rc=$?
{ printf '\n`python -m bench.avdit --preset wan2.1-1.3b --device cuda --steps 3`:\n\n```\n'; grep -v Warning /tmp/b13.txt; printf '```\n'; } >> "$RESULTS"
record "bench.avdit wan2.1-1.3b" $rc

timeout "$(left)" "$PY" -m bench.avdit --preset wan2.1-i2v-14b --device cuda --steps 2 --results "$RESULTS"
record "bench.avdit wan2.1-i2v-14b" $?
echo "appended to $RESULTS (total $(($(date +%s) - START)) s)"
exit $STATUS
