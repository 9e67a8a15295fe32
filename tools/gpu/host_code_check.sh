#!/bin/bash
# tools/gpu/host_code_check.sh — on a GPU host, the evidence that sharing the CUDA layer's host
# code (cuda/problem_check.h: one problem/mask check for cuda/api.cu and
# cuda/reference_f64_api.cu; cuda/host.cu: one host-memory path for forward and backward) changed
# no result and no speed: the three CUDA suites, `flashmask run` through the host path (the
# kernels, every ladder step, the GPU float64 oracle) judged by the oracle, the refusals the
# shared check makes, and the FlexAttention benchmark to compare with the last recorded run.
#   usage (repository root, BUILD_DIR compiled with -Dgpu_archs=90a -Dnative_cpu=false and the
#   GPU host's runtime packages in .gpu/, see docs/performance-cuda.md "Reproduce"):
#       tools/gpu/host_code_check.sh OUT_DIR [BUILD_DIR]
# OUT_DIR gets env.txt, suites.txt, runs.txt, flex.{txt,json}.
# Layer: tools (GPU evidence script; nothing here is part of the library).
set -u
OUT=$1 B=${2:-build-gpu}
source "$(dirname "$0")/common.sh"
gpu_begin "$OUT"

for t in test_cuda test_cuda_reference test_ladder; do
    "$B/tests/cuda/$t" > "$OUT/$t.log" 2>&1
    echo "$t: exit $? ($(tail -1 "$OUT/$t.log"))"
done > "$OUT/suites.txt"

# The host path (staging, padding, LSE transfer) on odd sizes, both dtypes, every ladder step.
W=/tmp/fm-hostcheck && rm -rf "$W" && mkdir -p "$W"
FM="$B/tools/flashmask"
judge() { # case dir, result dir, what
    echo "$3: $(tail -1 "$W/run.txt"); check: $("$FM" check --case "$1" --candidate "$2" 2>&1 |
        tail -1)"
}
for dt in float16 bfloat16; do
    for d in 40 64 128; do
        c=$W/case-$dt-$d
        "$FM" gen --mask causal_document --seqlen 333 --q-heads 4 --kv-heads 2 --head-dim $d \
            --dtype $dt --out "$c" > /dev/null 2>&1 || echo "gen $dt D=$d failed"
        "$FM" run --impl cuda --case "$c" --out "$c-cuda" > "$W/run.txt" 2>&1
        judge "$c" "$c-cuda" "$dt D=$d cuda (exit $?)"
        "$FM" run --impl reference-cuda --case "$c" --out "$c-ref" > "$W/run.txt" 2>&1
        judge "$c" "$c-ref" "$dt D=$d reference-cuda (exit $?)"
    done
    for step in 1 2 3 4 5; do
        c=$W/case-$dt-128
        "$FM" run --impl cuda --ladder $step --case "$c" --out "$c-l$step" > "$W/run.txt" 2>&1
        judge "$c" "$c-l$step" "$dt D=128 ladder $step (exit $?)"
    done
done > "$OUT/runs.txt" 2>&1

python3 bench/flex_bench.py --lib "$B/libflashmask.so" --out "$OUT/flex.json" \
    > "$OUT/flex.txt" 2>&1
echo "flex: exit $?" >> "$OUT/flex.txt"
