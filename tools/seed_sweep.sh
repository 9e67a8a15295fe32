#!/bin/sh
# tools/seed_sweep.sh — runs the seeded random test suites at N consecutive fresh seeds: the
# first seed comes from the clock (or FM_SEED_BASE) and is printed, so any failure is replayed
# with `FM_SEED=<seed> meson test -C BUILD <test>`. A failing seed is a defect of the code or of
# the rule, never a seed to avoid (docs/oracle.md section 7).
#   usage: tools/seed_sweep.sh BUILD_DIR N [TEST...]
#   default tests: every C suite whose cases come from the seeded generator (tests/common/prop.c
#   reads FM_SEED); a TEST that is a path to an executable is run directly (no meson needed),
#   e.g. on the GPU host: tools/seed_sweep.sh build-gpu 20 build-gpu/tests/cuda/test_cuda
# Environment: FM_SEED_BASE (first seed), FM_TRIALS (trials per property, the suites' default
# when unset). Exit 0 when every seed passed, 1 otherwise (the failing seeds are listed).
# Layer: tools (a driver over `meson test`).
set -u
BUILD=${1:?usage: seed_sweep.sh BUILD_DIR N [TEST...]}
N=${2:?usage: seed_sweep.sh BUILD_DIR N [TEST...]}
shift 2
if [ "$#" -eq 0 ]; then
    set -- masks_props reference test_cpu_props test_cpu_skip test_cpu_rules oracle rule_power \
        families \
        test_bbm test_sparse_attn test_dense_check backends
fi
base=${FM_SEED_BASE:-$(date +%s)}
echo "seed sweep: $N seeds from FM_SEED=$base (tests: $*)"
names=""
exes=""
for t in "$@"; do
    if [ -f "$t" ] && [ -x "$t" ]; then exes="$exes $t"; else names="$names $t"; fi
done
# one seed: the meson tests, then the executables; 0 when all passed
run_seed() {
    rc=0
    if [ -n "$names" ]; then
        # its own log name, so that the suite's testlog.json (which .ci/summarize.py reads) stays
        # shellcheck disable=SC2086  # a list of test names
        FM_SEED=$1 meson test -C "$BUILD" --no-rebuild --print-errorlogs --logbase "seed_sweep_$1" \
            $names || rc=1
    fi
    for e in $exes; do
        echo "== $e"
        FM_SEED=$1 "$e"
        r=$?
        [ "$r" -eq 0 ] || [ "$r" -eq 77 ] || rc=1   # 77: skipped (no GPU)
    done
    return $rc
}
failed=""
i=0
while [ "$i" -lt "$N" ]; do
    seed=$((base + i))
    if run_seed "$seed" > "$BUILD/seed_sweep_$seed.log" 2>&1; then
        echo "FM_SEED=$seed: pass"
        rm -f "$BUILD/seed_sweep_$seed.log"
    else
        echo "FM_SEED=$seed: FAIL (log: $BUILD/seed_sweep_$seed.log)"
        grep -E "^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT)|FAILED|property failed" \
            "$BUILD/seed_sweep_$seed.log" | head -20 || true
        failed="$failed $seed"
    fi
    i=$((i + 1))
done
if [ -n "$failed" ]; then
    echo "seed sweep: FAILED at seeds:$failed"
    exit 1
fi
echo "seed sweep: all $N seeds passed"
