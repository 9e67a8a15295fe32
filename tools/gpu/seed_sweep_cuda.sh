#!/bin/bash
# tools/gpu/seed_sweep_cuda.sh — the CUDA test suites (test_cuda, test_ladder) at N consecutive
# fresh seeds on a GPU host, several processes at a time so that 20 seeds at the suites' full
# trial counts fit in about 5 minutes (docs/oracle.md section 7). Each (suite, seed) is one job;
# JOBS run at once (one CPU thread each: the oracle's checks are the CPU side of every trial; the
# GPU is shared). The first seed comes from the clock (or FM_SEED_BASE) and every seed is
# printed, so a failure replays with `FM_SEED=<seed> BUILD/tests/cuda/<suite>`. First come the
# seeds at which test_cuda once failed under FlashAttention's rule (docs/oracle.md section 2.3).
#   usage: tools/gpu/seed_sweep_cuda.sh [BUILD (build-gpu)] [N (20)] [JOBS (nproc)] [BUDGET_S (300)]
# Environment: FM_SEED_BASE (first seed; default the clock), FM_TRIALS (trials per property;
# default unset: the suites' own counts, 200 per dtype in test_cuda), OUT (logs; default
# /tmp/seed-sweep-cuda). Writes OUT/seed_sweep_cuda.txt (one line per seed and suite, then a
# summary) and keeps the log of every failing or unfinished job (OUT/<suite>_<seed>.log).
# A job still running at BUDGET_S is stopped and reported "TIMEOUT" (not a pass); jobs not yet
# started then are reported "NOT RUN". Exit 0 only when every job passed.
# Layer: tools (a driver over the CUDA test executables).
set -u
BUILD=${1:-build-gpu}
N=${2:-20}
JOBS=${3:-$(nproc)}
BUDGET=${4:-300}
OUT=${OUT:-/tmp/seed-sweep-cuda}
mkdir -p "$OUT"
base=${FM_SEED_BASE:-$(date +%s)}
suites="test_cuda test_ladder"
for s in $suites; do
    [ -x "$BUILD/tests/cuda/$s" ] || { echo "no $BUILD/tests/cuda/$s (build with -Dcuda=enabled)"; exit 2; }
done
deadline=$(($(date +%s) + BUDGET))
summary="$OUT/seed_sweep_cuda.txt"
{
    echo "cuda seed sweep: $N seeds from FM_SEED=$base, suites: $suites; FM_TRIALS=${FM_TRIALS:-default}; $JOBS jobs; budget ${BUDGET} s"
    echo "earlier FA-rule failures of test_cuda first: 0x2026120201 0x51 0x52 0x53"
} | tee "$summary"

# one job: SUITE SEED -> a line "SUITE FM_SEED=SEED: pass|FAIL|TIMEOUT|NOT RUN (N s)"
job() {
    suite=$1 seed=$2
    left=$((deadline - $(date +%s)))
    if [ "$left" -le 0 ]; then
        echo "$suite FM_SEED=$seed: NOT RUN (budget spent)"
        return
    fi
    log="$OUT/${suite}_$seed.log"
    t0=$(date +%s)
    FM_SEED=$seed OMP_NUM_THREADS=1 timeout "$left" "$BUILD/tests/cuda/$suite" > "$log" 2>&1
    rc=$?
    dt=$(($(date +%s) - t0))
    ok=$(grep -c '^\[       OK \]' "$log")
    skipped=$(grep -c '^\[  SKIPPED \] test_' "$log")
    if [ "$rc" -eq 0 ] && [ "$skipped" -eq 0 ]; then
        echo "$suite FM_SEED=$seed: pass (${dt} s, $ok tests)"
        rm -f "$log"
    elif [ "$rc" -eq 0 ] || [ "$rc" -eq 77 ]; then
        echo "$suite FM_SEED=$seed: FAIL: $skipped tests skipped (no usable GPU?) (log: $log)"
    elif [ "$rc" -eq 124 ]; then
        echo "$suite FM_SEED=$seed: TIMEOUT after ${dt} s (log: $log)"
    else
        echo "$suite FM_SEED=$seed: FAIL exit $rc (${dt} s; log: $log)"
        grep -E "FAILED|property failed|replay:" "$log" | head -8 | sed 's/^/    /'
    fi
}
export -f job
export BUILD OUT deadline

jobs="$OUT/jobs.txt"
{
    for seed in 0x2026120201 0x51 0x52 0x53; do echo "test_cuda $seed"; done
    for s in test_ladder test_cuda; do  # the longer suite first: the jobs pack better
        i=0
        while [ "$i" -lt "$N" ]; do
            echo "$s $((base + i))"
            i=$((i + 1))
        done
    done
} > "$jobs"
# shellcheck disable=SC2016  # $0, $1 expand in the child bash
xargs -P "$JOBS" -L 1 bash -c 'job "$0" "$1"' < "$jobs" | tee -a "$summary"
rm -f "$jobs"

pass=$(grep -c ': pass' "$summary")
fail=$(grep -c ': FAIL' "$summary")
tout=$(grep -c ': TIMEOUT' "$summary")
notrun=$(grep -c ': NOT RUN' "$summary")
seeds_ok=0
i=0
while [ "$i" -lt "$N" ]; do  # one line per seed
    seed=$((base + i))
    line="FM_SEED=$seed:"
    for s in $suites; do
        st=$(grep "^$s FM_SEED=$seed: " "$summary" | head -1 |
            sed -E 's/^[^:]*: (pass|FAIL|TIMEOUT|NOT RUN).*/\1/')
        line="$line $s ${st:-missing},"
    done
    if [ "$(grep -c "FM_SEED=$seed: pass" "$summary")" -eq 2 ]; then
        seeds_ok=$((seeds_ok + 1))
        echo "seed $line -> pass"
    else
        echo "seed $line -> FAIL"
    fi
    i=$((i + 1))
done | tee -a "$summary.seeds"
cat "$summary.seeds" >> "$summary"
seeds_ok=$(grep -c -- '-> pass$' "$summary.seeds")
rm -f "$summary.seeds"
echo "cuda seed sweep: $seeds_ok of $N fresh seeds passed both suites; jobs: $pass pass, $fail FAIL, $tout TIMEOUT, $notrun NOT RUN" \
    | tee -a "$summary"
[ "$fail" -eq 0 ] && [ "$tout" -eq 0 ] && [ "$notrun" -eq 0 ]
