#!/usr/bin/env bash
# bench/gpu_reference_f64.sh — everything the GPU float64 oracle needs on a GPU host, in one
# run meant to stay under 8 minutes on an H200 (estimated, not yet measured), logs and JSON
# under $OUT. Phases, in this order by default:
#   test      tests/cuda/test_cuda_reference (GPU float64 against the CPU float64 reference;
#             FM_REF_CUDA_LONG=16384: one head at 16K; FM_REF_CUDA_BIG=1: tensors past 2^31
#             elements)                                                        test.log
#   example   the worked 128K example: `flashmask gen --reference cuda` (causal_document,
#             bfloat16), the CLI's `run --impl reference-cuda` reproducing it bit for bit,
#             FlexAttention on it (flex.json), then `flashmask check` on one CPU thread in the
#             background while the next phases use the GPU        example.log, check.log/.json
#   time      forward + backward, D = 128, one head, S = 32K, 64K, 128K, full / causal /
#             causal_document (8 docs), with a float64 torch spot check    time.json, time.log
#   sanitize  compute-sanitizer memcheck and racecheck on small runs    memcheck.log, racecheck.log
# Usage, from the repository root (build dir compiled on the build machine with the recipe of
# docs/performance-cuda.md: meson setup build-gpu -Dgpu_archs=90a -Dnative_cpu=false
# -Dbuildtype=release -Dcuda=enabled; .gpu/ from the gpu-host bundle):
#   OUT=/some/dir bash bench/gpu_reference_f64.sh [PHASE ...]        (default: all four)
# Environment: BUILD (default build-gpu), DOCS (documents of the worked example, default 64:
# `check`'s naive same-precision computation is dense and single-threaded, minutes at 128K,
# longer with more allowed pairs), BUDGET (seconds after which later phases are skipped,
# default 450). Exit status: the number of failed steps (check's FAIL verdict, exit 1, is a
# result, not a failed step).
# Layer: tools (GPU host script).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-gpu}
OUT=${OUT:-$PWD/gpu-reference-out}
DOCS=${DOCS:-64}
BUDGET=${BUDGET:-450}
PHASES=${*:-test example time sanitize}
mkdir -p "$OUT"
[ -f .gpu/env.sh ] && source .gpu/env.sh
export FLASHMASK_LIB=$PWD/$BUILD/libflashmask.so PYTHONPATH=$PWD/python${PYTHONPATH:+:$PYTHONPATH}
FM=$BUILD/tools/flashmask
[ -x "$FM" ] || FM=$BUILD/flashmask
T=$BUILD/tests/cuda/test_cuda_reference
CS=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
TV=()
[ -x /usr/bin/time ] && TV=(/usr/bin/time -v) # peak memory of gen, where GNU time exists
START=$(date +%s)
FAILED=0
log() { echo "[$(($(date +%s) - START)) s] $*" | tee -a "$OUT/summary.txt"; }
step() { # step NAME LOGFILE CMD...: runs CMD, output to LOGFILE, records rc and time
    local name=$1 file=$2
    shift 2
    local t0
    t0=$(date +%s)
    "$@" >"$OUT/$file" 2>&1
    local rc=$?
    log "$name: rc=$rc, $(($(date +%s) - t0)) s ($file)"
    [ $rc -eq 0 ] || FAILED=$((FAILED + 1))
    return $rc
}
over_budget() {
    if [ $(($(date +%s) - START)) -gt "$BUDGET" ]; then
        log "skipped $1: past the budget of $BUDGET s"
        return 0
    fi
    return 1
}

{ nvidia-smi; nvcc --version; git log -1 --oneline; } >"$OUT/machine.txt" 2>&1
log "phases: $PHASES; build $BUILD; out $OUT"

for phase in $PHASES; do
    over_budget "$phase" && continue
    case $phase in
    test)
        step "test_cuda_reference" test.log env FM_REF_CUDA_BIG=1 FM_REF_CUDA_LONG=16384 \
            timeout 300 "$T"
        ;;
    sanitize)
        step "memcheck" memcheck.log env FM_TRIALS=3 FM_LIMITS=2,4,200,128 FM_REF_CUDA_GRID_STEP=6 \
            timeout 150 "$CS" --tool memcheck --error-exitcode 1 "$T"
        step "racecheck" racecheck.log env FM_TRIALS=1 FM_LIMITS=1,2,150,128 FM_REF_CUDA_GRID_STEP=12 \
            timeout 120 "$CS" --tool racecheck --error-exitcode 1 "$T"
        ;;
    time)
        step "time" time.log timeout 240 python3 bench/gpu_reference_f64.py time --json "$OUT/time.json"
        ;;
    example)
        CASE=/tmp/fm-ref128k-case CAND=/tmp/fm-ref128k-flex RUN=/tmp/fm-ref128k-run
        rm -rf "$CASE" "$CAND" "$RUN"
        LENS=$(python3 -c "n=$DOCS; S=131072; l=[S//n]*n; l[-1]+=S-sum(l); print(','.join(map(str,l)))")
        {
            echo "== gen: causal_document, $DOCS documents, S = 131072, D = 128, bfloat16, GPU reference"
            timeout 150 "${TV[@]}" "$FM" gen --mask causal_document --param doc_lens="$LENS" \
                --seqlen 131072 --head-dim 128 --q-heads 1 --dtype bfloat16 --seed 1 \
                --reference cuda --out "$CASE" 2>&1
            du -sh "$CASE"; ls -l "$CASE"
            echo "== run --impl reference-cuda on the case: the same bits as gen's expected files"
            timeout 120 "$FM" run --impl reference-cuda --case "$CASE" --out "$RUN"
            for f in out lse dq dk dv; do
                cmp "$CASE/$f.npy" "$RUN/$f.npy" && echo "$f.npy identical"
            done
        } >"$OUT/example.log" 2>&1
        log "example gen + run: $(grep -c identical "$OUT/example.log") of 5 files identical (example.log)"
        [ "$(grep -c identical "$OUT/example.log")" -eq 5 ] || FAILED=$((FAILED + 1))
        step "flex" flex.log timeout 240 python3 bench/gpu_reference_f64.py flex --case "$CASE" \
            --candidate "$CAND" --json "$OUT/flex.json"
        # `check` works on one CPU thread for minutes at 128K: it runs in the background while
        # the GPU phases that follow run, and is waited for at the end.
        (
            t0=$(date +%s)
            timeout 330 "$FM" check --case "$CASE" --candidate "$CAND" --json "$OUT/check.json" \
                >"$OUT/check.log" 2>&1
            echo "rc=$? $(($(date +%s) - t0)) s" >"$OUT/check.rc"
        ) &
        CHECK_PID=$!
        log "check started in the background (check.log)"
        ;;
    *) log "unknown phase $phase (test, sanitize, time, example)"; FAILED=$((FAILED + 1)) ;;
    esac
done
if [ -n "${CHECK_PID:-}" ]; then
    wait "$CHECK_PID"
    log "check (FlexAttention against the GPU oracle's case; rc 1 = a FAIL verdict): $(cat "$OUT/check.rc")"
    grep -q "^rc=[01] " "$OUT/check.rc" || FAILED=$((FAILED + 1))
fi
log "done: $FAILED failed step(s)"
exit $FAILED
