#!/bin/bash
# tools/gpu/kernel_options_check.sh — on a GPU host, the evidence that moving the kernel choice
# into cuda/heuristics.cu (fm_kernel_options) changed no result and no speed: the CUDA suite
# (whose random cases now pick variants through the options), each variant forced through
# `flashmask run --kernel` on a generated case and judged by the oracle, a forced choice the
# device cannot run refused, and the FlexAttention benchmark with the default choice and with
# the mma.sync kernels forced.
#   usage (repository root, build-gpu compiled with -Dgpu_archs=80,90a -Dnative_cpu=false and the
#   GPU host's runtime packages in .gpu/, see docs/performance-cuda.md "Reproduce"):
#       tools/gpu/kernel_options_check.sh OUT_DIR [BUILD_DIR]
# OUT_DIR gets env.txt, test_cuda.txt, variants.txt, refusals.txt, flex-auto.{txt,json},
# flex-mma.{txt,json}. Compare flex-auto.txt with bench/results' last run of the same configs.
# Layer: tools (GPU evidence script; nothing here is part of the library).
set -u
OUT=$1 B=${2:-build-gpu}
source "$(dirname "$0")/common.sh"
gpu_begin "$OUT"

"$B/tests/cuda/test_cuda" > "$OUT/test_cuda.txt" 2>&1
echo "test_cuda: exit $?" >> "$OUT/test_cuda.txt"

# Every variant on one D = 128 case of each dtype, judged by the oracle.
rm -rf /tmp/fm-kopt && mkdir -p /tmp/fm-kopt
for dt in float16 bfloat16; do
    "$B/tools/flashmask" gen --mask document --seqlen 777 --q-heads 4 --kv-heads 2 \
        --head-dim 128 --dtype $dt --out /tmp/fm-kopt/case-$dt > /dev/null 2>&1 ||
        echo "gen $dt failed" >> "$OUT/variants.txt"
    for k in auto mma wgmma fwd=mma,bwd=wgmma fwd=wgmma,bwd=mma shape=8x1 shape=8x2 \
             wgs=1 wgs=2 deterministic bwd=wgmma,wgs=2,deterministic bwd=pipelined \
             bwd=pipelined,deterministic; do
        d=/tmp/fm-kopt/out-$dt-${k//[=,]/_}
        "$B/tools/flashmask" run --impl cuda --case /tmp/fm-kopt/case-$dt --out "$d" \
            --kernel "$k" > /tmp/fm-kopt/run.txt 2>&1
        rc=$?
        verdict=$("$B/tools/flashmask" check --case /tmp/fm-kopt/case-$dt --candidate "$d" \
                  2>&1 | tail -1)
        echo "$dt --kernel $k: run exit $rc; $(tail -1 /tmp/fm-kopt/run.txt); check: $verdict"
    done >> "$OUT/variants.txt"
done

# A forced choice the call cannot run is refused before any launch (exit 2 or 3, a message).
"$B/tools/flashmask" gen --mask causal --seqlen 100 --head-dim 64 --dtype float16 \
    --out /tmp/fm-kopt/case-d64 > /dev/null 2>&1
"$B/tools/flashmask" run --impl cuda --case /tmp/fm-kopt/case-d64 --out /tmp/fm-kopt/o64 \
    --kernel wgmma > "$OUT/refusals.txt" 2>&1
echo "wgmma at D = 64: exit $?" >> "$OUT/refusals.txt"

python3 bench/flex_bench.py --lib "$B/libflashmask.so" --out "$OUT/flex-auto.json" \
    > "$OUT/flex-auto.txt" 2>&1
echo "flex auto: exit $?" >> "$OUT/flex-auto.txt"
python3 bench/flex_bench.py --lib "$B/libflashmask.so" --no-flex --kernel mma \
    --configs 16x8192x128 --out "$OUT/flex-mma.json" > "$OUT/flex-mma.txt" 2>&1
echo "flex mma: exit $?" >> "$OUT/flex-mma.txt"
