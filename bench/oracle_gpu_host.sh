#!/bin/bash
# bench/oracle_gpu_host.sh — the oracle's GPU-host measurements in one command (< 6 min on an
# H200), logs and JSON under $OUT:
#   1. bench/oracle_gpu_rates.py: false alarms of the derived and fa rules on our CUDA kernels,
#      FlexAttention and SDPA's flash / memory-efficient / cuDNN backends (float16, bfloat16,
#      shapes from 1 row up), with a few failures judged again through `flashmask check`;
#   2. test_cuda at the four seeds that failed under the FA rule (0x2026120201, 0x51-0x53), then
#      tools/seed_sweep.sh: test_cuda at consecutive fresh seeds (the seeds are printed).
# Prerequisites (docs/performance-cuda.md, "Reproduce"): on the build machine
#   meson setup build-gpu -Dgpu_archs=90a -Dnative_cpu=false -Dbuildtype=release -Dcuda=enabled
#   ninja -C build-gpu
#   .gpu/ with the Debian packages the GPU host lacks and its env.sh (docs/performance-cuda.md)
# then carry .gpu and build-gpu. Usage on the GPU host, from the repository root:
#   bash bench/oracle_gpu_host.sh [BUILD (build-gpu)] [RATES_SECONDS (240)] [SEEDS (20)] [PART]
# PART: all (default), rates (1 only, about 5 min) or seeds (2 only): two calls fit a 10-minute
# command limit where one might not.
# Layer: bench (driver).
set -u
BUILD=${1:-build-gpu}
SECS=${2:-240}
SEEDS=${3:-20}
PART=${4:-all}
OUT=${OUT:-/tmp/oracle-gpu}
mkdir -p "$OUT"
# shellcheck disable=SC1091
[ -f .gpu/env.sh ] && source .gpu/env.sh
export FLASHMASK_LIB=$BUILD/libflashmask.so PYTHONPATH=python
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
if [ "$PART" != seeds ]; then
timeout $((SECS + 120)) python3 bench/oracle_gpu_rates.py --out "$OUT" --cli "$BUILD/tools/flashmask" \
    --budget "$SECS" 2>&1 | tee "$OUT/oracle_gpu_rates.log"
echo "oracle_gpu_rates exit ${PIPESTATUS[0]}"
fi
[ "$PART" = rates ] && exit 0
# the four seeds at which test_cuda failed under the FA rule (float16 dK on 1-2 row problems)
for seed in 0x2026120201 0x51 0x52 0x53; do
    FM_SEED=$seed timeout 100 "$BUILD/tests/cuda/test_cuda" > "$OUT/test_cuda_$seed.log" 2>&1
    echo "test_cuda FM_SEED=$seed: exit $?" | tee -a "$OUT/test_cuda_seeds.txt"
done
# test_cuda at fresh seeds: small trials so that 20 seeds fit in about a minute
FM_TRIALS=${FM_TRIALS:-4} timeout 200 bash tools/seed_sweep.sh "$BUILD" "$SEEDS" \
    "$BUILD/tests/cuda/test_cuda" 2>&1 | tee "$OUT/seed_sweep_cuda.log"
cp "$BUILD"/seed_sweep_*.log "$OUT/" 2>/dev/null || true
