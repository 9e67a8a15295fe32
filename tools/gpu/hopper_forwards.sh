#!/bin/bash
# tools/gpu/hopper_forwards.sh — on a GPU host (an H200), the evidence for a Hopper forward kernel
# against the others, all timed in one process on the same inputs: by default the wide forward
# (cuda/forward_wide.cu, fwd=wide, the default at D = 64 and 128) against the ping-pong one on
# 64-key stages (cuda/forward_pingpong.cu, fwd=pingpong); VARIANTS=wgmma,pingpong gives the
# evidence the ping-pong kernel was chosen on. In about 6 minutes:
#   1. test_cuda with the random properties judging the forward only (FM_FORWARD_ONLY=1): every
#      case at a head dim that pads to 64 or 128 runs one of auto (wide), mma, wgmma and
#      pingpong; the NaN-in-a-masked-block test at D = 64 and 128 (auto and fwd=pingpong); and
#      the property that pingpong gives wgmma's bits (O, LSE) and passes the oracle;
#   2. compute-sanitizer memcheck, racecheck and synccheck (the named barriers) on small cases
#      of those properties;
#   3. bench/flex_bench.py with the variants timed in one process on the same inputs
#      (--fwd-variants, --no-bwd), 12 families at 8K and 32K, D = 128, H = 16, plus GQA 32:8 at 8K
#      on full and causal, cuDNN / FlashAttention-2 on full and causal (--sdpa) and the bf16
#      matmul as the ceiling; and at D = 64 (H = 32, 8K, 12 families) mma and the variants.
#      FlexAttention is left out unless FLEX=1 (its compiles take minutes); then it runs at 8K on
#      five families.
#   usage (repository root; build-gpu compiled with -Dgpu_archs=90a -Dnative_cpu=false and the
#   GPU host's runtime packages in .gpu/, see docs/performance-cuda.md "Reproduce"):
#       OUT=/some/dir [VARIANTS=a,b] tools/gpu/hopper_forwards.sh [BUILD_DIR]
# $OUT gets forwards.tgz (every log and the benchmark JSON) and summary.txt (the verdicts and
# tables). Every step has its own time limit (together 9 minutes at worst; about 5 expected).
# Layer: tools (GPU evidence script; nothing here is part of the library).
set -u
B=${1:-build-gpu}
OUT=${OUT:?set OUT to the output directory}
V=${VARIANTS:-pingpong,wide}
W=$OUT/forwards
S=$W/summary.txt
source "$(dirname "$0")/common.sh"
gpu_begin "$W"
cat "$W/env.txt" > "$S"

# 1. The suite, forward only.
gpu_step test_cuda_forward 150 env FM_FORWARD_ONLY=1 "$B/tests/cuda/test_cuda"
grep -E "^\[ +(OK|PASSED|FAILED|SKIPPED|SKIP|ERROR) +\]|trials passed|FAILED at|smallest" \
    "$W/test_cuda_forward.txt" | head -40 >> "$S"

# 2. Sanitizers on the masked-block test (every Hopper forward at D = 64 and 128) and the
#    pingpong property (small cases; two Hopper forwards in each).
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck synccheck; do
    for t in masked pingpong; do # cmocka's filter is one pattern
        gpu_step "sanitizer_${tool}_$t" 90 env FM_TEST_FILTER="test_$t*" FM_TRIALS=3 \
            FM_LIMITS=2,4,300,1 "$CS" --tool "$tool" "$B/tests/cuda/test_cuda"
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|trials passed|FAILED|PASSED" \
            "$W/sanitizer_${tool}_$t.txt" | head -8 >> "$S"
    done
done

# 3. The variants, same process, same inputs.
LIB=$B/libflashmask.so
gpu_step bench 120 python3 bench/flex_bench.py --lib "$LIB" --no-flex --no-bwd --sdpa \
    --fwd-variants "$V" --configs 16x8192x128,16x32768x128 \
    --out "$W/bench.json"
sed -n '/^forward variants/,$p' "$W/bench.txt" >> "$S"
grep -E "^bf16 matmul" "$W/bench.txt" >> "$S"
python3 - "$W/bench.json" "$V" >> "$S" 2>&1 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
names = sys.argv[2].split(",")
for r in d["results"]:
    if r["family"] in ("full", "causal"):
        times = ", ".join(f"{n} {r['ours_fwd_tflops_' + n]:.0f}" for n in names)
        print(f"{r['seqlen']:>6} {r['family']:>7}: {times}, cudnn "
              f"{r.get('cudnn_fwd_tflops', float('nan')):.0f}, fa2 "
              f"{r.get('fa2_fwd_tflops', float('nan')):.0f} TFLOP/s")
PY
gpu_step bench_d64 60 python3 bench/flex_bench.py --lib "$LIB" --no-flex --no-bwd --sdpa \
    --fwd-variants "mma,$V" --configs 32x8192x64 --out "$W/bench_d64.json"
sed -n '/^forward variants/,$p' "$W/bench_d64.txt" >> "$S"
gpu_step bench_gqa 30 python3 bench/flex_bench.py --lib "$LIB" --no-flex --no-bwd \
    --fwd-variants "$V" --configs 32:8x8192x128 --families full,causal \
    --out "$W/bench_gqa.json"
sed -n '/^forward variants/,$p' "$W/bench_gqa.txt" >> "$S"
if [ "${FLEX:-0}" = 1 ]; then
    gpu_step bench_flex 400 python3 bench/flex_bench.py --lib "$LIB" --no-bwd \
        --fwd-variants "$V" --configs 16x8192x128 \
        --families full,causal,causal_document,sliding_window,qk_sparse \
        --out "$W/bench_flex.json"
    sed -n '/^bf16 matmul:/,$p' "$W/bench_flex.txt" >> "$S"
fi

cp "$S" "$OUT/summary.txt"
tar -C "$OUT" -czf "$OUT/forwards.tgz" forwards && rm -rf "$W"
cat "$OUT/summary.txt"
