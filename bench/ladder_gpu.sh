#!/bin/bash
# bench/ladder_gpu.sh — everything the CUDA kernel ladder needs from a GPU host, in one run
# (about 5 minutes on an H200): the ladder's tests against the oracle, compute-sanitizer memcheck
# on a tiny run of steps 1-3, and the timing of every step (bench/ladder_bench.py). Logs and
# the JSON go under $OUT; a summary line per stage goes to stdout.
#
#   bash bench/ladder_gpu.sh [BUILD_DIR]          (default build-gpu; .gpu/env.sh beside it)
#
# BUILD_DIR is compiled on the build machine (docs/cuda-ladder.md, "Reproduce"):
#   meson setup build-gpu -Dgpu_archs=90a -Dnative_cpu=false -Dbuildtype=release
#   ninja -C build-gpu
# and only BUILD_DIR/libflashmask.so and BUILD_DIR/tests/cuda/test_ladder are needed here,
# with the dependency bundle .gpu/ (env.sh: cmocka, OpenBLAS, cJSON).
# Each stage has its own time limit so that a slow stage cannot take the others' time.
set -u
BUILD=${1:-build-gpu}
OUT=${OUT:-/tmp/ladder-out}
mkdir -p "$OUT"
[ -f .gpu/env.sh ] && source .gpu/env.sh
export PATH=/usr/local/cuda/bin:$PATH
nvidia-smi --query-gpu=name,clocks.max.sm,memory.total --format=csv > "$OUT/device.txt" 2>&1
git log -1 --format='%H %s' > "$OUT/commit.txt" 2>/dev/null
start=$(date +%s)
stage() { echo "[$(( $(date +%s) - start )) s] $*"; }

# 1. every step against the oracle (both dtypes, every family, GQA, alignments, D up to 256)
stage "test_ladder"
timeout 150 "$BUILD/tests/cuda/test_ladder" > "$OUT/test_ladder.log" 2>&1
stage "test_ladder exit $? ($(grep -c '^\[       OK \]' "$OUT/test_ladder.log") ok, \
$(grep -c '^\[  FAILED  \]' "$OUT/test_ladder.log") failed lines, \
$(grep -c '^\[  SKIPPED \]' "$OUT/test_ladder.log") skipped)"

# 2. memcheck on a tiny run of the new kernels (steps 1-3): out-of-bounds or misaligned
#    accesses, shared memory included; exit 9 if it reports any
stage "memcheck steps 1-3"
FM_LADDER_STEPS=1,2,3 FM_TRIALS=2 FM_LIMITS=2,4,150,128 timeout 60 \
    compute-sanitizer --tool memcheck --error-exitcode 9 \
    "$BUILD/tests/cuda/test_ladder" > "$OUT/memcheck.log" 2>&1
stage "memcheck exit $? ($(grep -m1 'ERROR SUMMARY' "$OUT/memcheck.log"))"

# 3. racecheck on the same tiny run (shared-memory hazards between the barriers)
stage "racecheck steps 2-3"
FM_LADDER_STEPS=2,3 FM_TRIALS=1 FM_LIMITS=1,2,130,64 timeout 40 \
    compute-sanitizer --tool racecheck --error-exitcode 9 \
    "$BUILD/tests/cuda/test_ladder" > "$OUT/racecheck.log" 2>&1
stage "racecheck exit $? ($(grep -m1 'RACECHECK SUMMARY\|ERROR SUMMARY' "$OUT/racecheck.log"))"

# 4. the timing of every step: steps 1-2 at S = 2048 only (they take seconds at 8192)
stage "ladder_bench"
timeout 100 python3 bench/ladder_bench.py --lib "$BUILD/libflashmask.so" \
    --out "$OUT/ladder.json" > "$OUT/ladder_bench.log" 2>&1
stage "ladder_bench exit $? ($(grep -c '"step"' "$OUT/ladder_bench.log") rows)"
python3 - "$OUT/ladder.json" <<'EOF' | tee "$OUT/ladder_table.md"
import json, sys
d = json.load(open(sys.argv[1]))
print("| dir | step | family | H x S x D | ms | TFLOP/s | max diff vs step 4 |")
print("|---|---|---|---|---|---|---|")
for r in d["rows"]:
    ms = f'{r["ms"]:.3f}' if "ms" in r else r.get("skipped", r.get("error", ""))[:60]
    tf = f'{r["tflops"]:.2f}' if "tflops" in r else ""
    df = f'{r["max_abs_diff_vs_step4"]:.2g}' if "max_abs_diff_vs_step4" in r else ""
    print(f'| {r["direction"][:3]} | {r["step"]} | {r["family"]} | '
          f'{r["heads"]}x{r["seqlen"]}x{r["head_dim"]} | {ms} | {tf} | {df} |')
EOF
stage "done"
