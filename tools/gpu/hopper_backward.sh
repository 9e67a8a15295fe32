#!/bin/bash
# tools/gpu/hopper_backward.sh — on a GPU host (an H200), the evidence for the pipelined Hopper
# dK/dV kernel (cuda/backward_pipelined.cu, bwd=pipelined) against the wgmma one
# (cuda/backward_wgmma.cu, bwd=wgmma, the default), in about 6 minutes:
#   1. test_cuda's tests that run it: the property that it gives the wgmma kernel's dK and dV
#      bits (and deterministic dQ) and passes the oracle (test_pipelined_backward), the
#      NaN-in-a-masked-block test (test_masked_tiles_not_loaded), the repeatability test
#      (test_deterministic), the refusals (test_bad_arguments), and the random properties
#      ("... pass(es) the oracle"), in which one Hopper case in three runs it;
#   2. compute-sanitizer memcheck, racecheck and synccheck (the named barriers) on small cases
#      of the property and of the masked-block test;
#   3. bench/flex_bench.py with both backwards timed in one process on the same inputs
#      (--bwd-variants wgmma,pipelined): 12 families at 8K and 32K, D = 128, H = 16; GQA 32:8 at
#      8K; D = 64 (H = 32, 8K); and the deterministic mode at 8K, D = 128.
#   usage (repository root; build-gpu compiled with -Dgpu_archs=90a -Dnative_cpu=false and the
#   GPU host's runtime packages in .gpu/, see docs/performance-cuda.md "Reproduce"):
#       OUT=/some/dir tools/gpu/hopper_backward.sh [BUILD_DIR]
# $OUT gets backward.tgz (every log and the benchmark JSON) and summary.txt (the verdicts and
# tables). Every step has its own time limit (together 10 minutes at worst).
# Layer: tools (GPU evidence script; nothing here is part of the library).
set -u
B=${1:-build-gpu}
OUT=${OUT:?set OUT to the output directory}
W=$OUT/backward
S=$W/summary.txt
source "$(dirname "$0")/common.sh"
gpu_begin "$W"
cat "$W/env.txt" > "$S"

# 1. The tests that run the pipelined kernel (cmocka's filter is one pattern per run).
for t in pipelined masked deterministic bad oracle; do
    gpu_step "test_$t" 150 env FM_TEST_FILTER="*$t*" "$B/tests/cuda/test_cuda"
    grep -E "^\[ +(OK|PASSED|FAILED|SKIPPED|SKIP|ERROR) +\]|trials passed|FAILED at|smallest" \
        "$W/test_$t.txt" | head -12 >> "$S"
done

# 2. Sanitizers on small cases of the property and on the masked-block test.
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck synccheck; do
    for t in pipelined masked; do
        gpu_step "sanitizer_${tool}_$t" 90 env FM_TEST_FILTER="test_$t*" FM_TRIALS=3 \
            FM_LIMITS=2,4,300,1 "$CS" --tool "$tool" "$B/tests/cuda/test_cuda"
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|trials passed|FAILED|PASSED" \
            "$W/sanitizer_${tool}_$t.txt" | head -8 >> "$S"
    done
done

# 3. Both backwards, same process, same inputs.
LIB=$B/libflashmask.so
bench() { # name, limit, flex_bench arguments...
    local name=$1 limit=$2
    shift 2
    gpu_step "$name" "$limit" python3 bench/flex_bench.py --lib "$LIB" --no-flex \
        --bwd-variants wgmma,pipelined --out "$W/$name.json" "$@"
    sed -n '/^backward variants/,$p' "$W/$name.txt" >> "$S"
}
bench bench 150 --configs 16x8192x128,16x32768x128
bench bench_gqa 40 --configs 32:8x8192x128 --families full,causal,causal_document
bench bench_d64 60 --configs 32x8192x64
bench bench_det 60 --configs 16x8192x128 --deterministic

cp "$S" "$OUT/summary.txt"
tar -C "$OUT" -czf "$OUT/backward.tgz" backward && rm -rf "$W"
cat "$OUT/summary.txt"
