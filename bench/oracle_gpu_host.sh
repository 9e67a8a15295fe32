#!/bin/bash
# bench/oracle_gpu_host.sh — the oracle's GPU-host measurements (docs/oracle.md 6.2 and 7), in
# two parts that each fit one 10-minute command; each writes OUT/oracle_gpu_PART.tgz (every log
# and JSON) and OUT/summary_PART.txt (a few lines), and exits non-zero when something failed.
#   rates  (about 5 min) bench/oracle_gpu_rates.py twice at once, then merged:
#          - our CUDA kernels and SDPA's flash, memory-efficient and cuDNN backends on random
#            problems (1 x 1 up to 4096 x 4096, every family, GQA, both alignments, fully masked
#            rows), judged by RATES_WORKERS CPU processes;
#          - FlexAttention on its fixed menu of shapes (one compiled graph per shape, reused),
#            judged by 3 more;
#          target: >= 5,000 candidates, 0 derived-rule false alarms (per-backend counts in
#          oracle_gpu_rates.json's by_backend).
#   seeds  (about 5 min; stopped at 8) tools/gpu/seed_sweep_cuda.sh: test_cuda and test_ladder at SEEDS
#          consecutive fresh seeds (clock), full trials, 16 processes; first the four seeds at
#          which test_cuda failed under the FA rule (0x2026120201, 0x51-0x53).
# Prerequisites (docs/performance-cuda.md, "Reproduce"): build-gpu configured with
# -Dgpu_archs=90a -Dnative_cpu=false -Dcuda=enabled and built, .gpu/ with env.sh, and
# BUILD/libflashmask.so linking to the versioned library. From the repository root:
#   OUT=/path bash bench/oracle_gpu_host.sh [BUILD (build-gpu)] [PART (rates|seeds)]
#                                           [RATES_SECONDS (240) | SEEDS (20)]
# Testing without a GPU: PYTHON=/usr/bin/python3 RATES_BACKENDS=cpu FLEX_BACKENDS=cpu
# RATES_EXTRA="--big 1 --big-max 600" runs the rates part on libflashmask's cpu layer.
# Layer: bench (driver).
set -u
BUILD=${1:-build-gpu}
PART=${2:-rates}
ARG=${3:-}
OUT=${OUT:-/tmp/oracle-gpu}
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/oracle-gpu-XXXXXX)
# shellcheck disable=SC1091
[ -f .gpu/env.sh ] && source .gpu/env.sh
export FLASHMASK_LIB=${FLASHMASK_LIB:-$BUILD/libflashmask.so} PYTHONPATH=python
PY=${PYTHON:-python3}
SUM=$OUT/summary_$PART.txt
: > "$SUM"
say() { echo "$*" | tee -a "$SUM"; }
say "oracle_gpu_host $PART: $(date -u +%FT%TZ), $(git rev-parse --short HEAD 2>/dev/null), \
$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1), \
$(nproc) CPUs"
rc=0
case "$PART" in
rates)
    SECS=${ARG:-240}
    CORES=$(nproc)
    W=${RATES_WORKERS:-$((CORES > 8 ? CORES - 5 : 2))}
    seed=$(date +%s)
    # shellcheck disable=SC2086  # RATES_EXTRA: options, split on purpose
    timeout $((SECS + 200)) "$PY" bench/oracle_gpu_rates.py --out "$WORK" --name main \
        --cli "$BUILD/tools/flashmask" --budget "$SECS" --seed "$seed" --workers "$W" \
        --backends "${RATES_BACKENDS:-ours,sdpa-flash,sdpa-efficient,sdpa-cudnn}" \
        ${RATES_EXTRA:-} > "$WORK/main.log" 2>&1 &
    pa=$!
    # shellcheck disable=SC2086
    timeout $((SECS + 200)) "$PY" bench/oracle_gpu_rates.py --out "$WORK" --name flex \
        --cli "$BUILD/tools/flashmask" --budget "$SECS" --seed $((seed + 1)) --workers 3 \
        --backends "${FLEX_BACKENDS:-flex}" --shapes menu ${RATES_EXTRA:-} \
        > "$WORK/flex.log" 2>&1 &
    pb=$!
    wait $pa; ra=$?
    wait $pb; rb=$?
    say "random shapes (ours, SDPA): exit $ra; FlexAttention menu: exit $rb (1 = a derived alarm)"
    files=()
    for f in main flex; do [ -s "$WORK/$f.json" ] && files+=("$WORK/$f.json"); done
    if [ "${#files[@]}" -gt 0 ]; then
        "$PY" bench/oracle_gpu_rates.py --out "$WORK" --merge "${files[@]}" \
            > "$WORK/merged.log" 2>&1
        mr=$?
        grep -E '^[0-9]+ problems|^total ' "$WORK/merged.log" | tee -a "$SUM"
        "$PY" - "$WORK/oracle_gpu_rates.json" <<'EOF' | tee -a "$SUM"
import json, sys
r = json.load(open(sys.argv[1]))
for n, e in r["errors"].items():
    print(f"errors {n}: {e['count']} ({e['first'].strip().splitlines()[-1][:150]})")
if r.get("flex_compile_s"):
    print("flex first call (compile) seconds per shape:", r["flex_compile_s"])
bad = [f for f in r["failures"] if f["rule"] == "derived"]
for f in bad[:5]:
    p = f["problem"]
    print(f"derived alarm {f['backend']} {p['dtype']} {p['b']}x{p['hq']}/{p['hk']}x{p['sq']}x"
          f"{p['sk']}x{p['d']} {p['family']} {p['align']}: {f['why'][0][:200]}")
gqa = [x for x in r["table"] if x["backend"] == "sdpa-efficient" and x["gqa"] == "gqa"]
print("sdpa-efficient GQA (term B7): judged", sum(x["judged"] for x in gqa),
      "derived fails", sum(x["derived"] for x in gqa))
EOF
        [ "$mr" -eq 0 ] || rc=1
    else
        say "no results: see main.log / flex.log"
        tail -5 "$WORK/main.log" "$WORK/flex.log" | tee -a "$SUM"
        rc=1
    fi
    [ "$ra" -eq 0 ] && [ "$rb" -eq 0 ] || rc=1
    ;;
seeds)
    OUT=$WORK bash tools/gpu/seed_sweep_cuda.sh "$BUILD" "${ARG:-20}" "$(nproc)" 480 \
        > "$WORK/seed_sweep.log" 2>&1
    rc=$?
    head -1 "$WORK/seed_sweep_cuda.txt" | tee -a "$SUM"
    grep -E '^test_cuda FM_SEED=0x' "$WORK/seed_sweep_cuda.txt" | tee -a "$SUM"
    grep -E ': (FAIL|TIMEOUT|NOT RUN)' "$WORK/seed_sweep_cuda.txt" | grep -v 'FM_SEED=0x' | head -20 |
        tee -a "$SUM"
    grep '^seed ' "$WORK/seed_sweep_cuda.txt" | tee -a "$SUM"
    tail -1 "$WORK/seed_sweep_cuda.txt" | tee -a "$SUM"
    ;;
*)
    say "unknown PART $PART (rates or seeds)"
    exit 2
    ;;
esac
say "exit $rc"
cp "$SUM" "$WORK/"
tar -czf "$OUT/oracle_gpu_$PART.tgz" -C "$WORK" .
rm -rf "$WORK"
exit $rc
