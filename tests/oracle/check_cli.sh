#!/bin/sh
# tests/oracle/check_cli.sh — the oracle's commands end to end: gen-suite writes a suite and its
# manifest; check-suite passes the suite's own expected outputs; `check` exits 0 on the
# reference, 1 on a candidate with a wrong tensor, 2 on a missing file, a wrong shape, a
# missing or broken case, a bad option; forward-only mode; fully masked rows counted.
# (NaN, the FA-2 +inf lse option and perturbations are tested in C and Python.)
# Usage: check_cli.sh path/to/flashmask   (Layer: tests of tools/ + oracle/.)
set -u
FM=$1
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
expect() { # expect CODE description command...
    want=$1; what=$2; shift 2
    "$@" > "$TMP/out.txt" 2>&1
    got=$?
    if [ "$got" -eq "$want" ]; then echo "ok: $what (exit $got)"
    else echo "FAILED: $what: exit $got, expected $want"; cat "$TMP/out.txt"; fails=$((fails + 1)); fi
}

expect 0 "gen-suite" "$FM" gen-suite --out "$TMP/suite"
test -f "$TMP/suite/manifest.json" || { echo "FAILED: no manifest"; fails=$((fails + 1)); }
n=$(ls -d "$TMP"/suite/*/ | wc -l)
[ "$n" -ge 36 ] || { echo "FAILED: only $n cases"; fails=$((fails + 1)); }
expect 0 "check-suite: the suite's own expected outputs pass" \
    "$FM" check-suite --suite "$TMP/suite" --candidates "$TMP/suite"
grep -q "0 FAIL, 0 invalid" "$TMP/out.txt" || { echo "FAILED: totals"; fails=$((fails + 1)); }

C=$TMP/suite/causal-f16          # B=1 Hq=4 Hk=2 Sq=Sk=77 D=64
expect 0 "check: reference passes" "$FM" check --case "$C" --candidate "$C"
grep -q "verdict: PASS" "$TMP/out.txt" || { echo "FAILED: no PASS line"; fails=$((fails + 1)); }

# a wrong candidate: the case's own results with dq replaced by out (same shape, wrong values)
mkdir "$TMP/wrong"
cp "$C/out.npy" "$C/lse.npy" "$C/dk.npy" "$C/dv.npy" "$TMP/wrong/"
cp "$C/out.npy" "$TMP/wrong/dq.npy"          # dq replaced by out: same shape, wrong values
expect 1 "check: a wrong dq fails" "$FM" check --case "$C" --candidate "$TMP/wrong"
grep -q "dq .*FAIL" "$TMP/out.txt" || { echo "FAILED: dq not flagged"; fails=$((fails + 1)); }
expect 0 "check --forward-only ignores the gradients" \
    "$FM" check --case "$C" --candidate "$TMP/wrong" --forward-only

mkdir "$TMP/partial"
cp "$C/out.npy" "$C/lse.npy" "$TMP/partial/"
expect 2 "check: missing dq.npy is invalid input" "$FM" check --case "$C" --candidate "$TMP/partial"
expect 0 "check --forward-only: out and lse suffice" \
    "$FM" check --case "$C" --candidate "$TMP/partial" --forward-only
expect 2 "check: wrong shape" "$FM" check --case "$C" --candidate "$TMP/suite/full-f16"
expect 2 "check: missing case" "$FM" check --case "$TMP/nope" --candidate "$C"
mkdir "$TMP/broken"
cp "$C"/*.npy "$TMP/broken/"
echo '{"format": "flashmask-case", "version": 1' > "$TMP/broken/case.json"
expect 2 "check: broken case.json" "$FM" check --case "$TMP/broken" --candidate "$C"
expect 2 "check: unknown option" "$FM" check --case "$C" --candidate "$C" --bogus
expect 2 "check: --dtype float64 refused" "$FM" check --case "$C" --candidate "$C" --dtype float64
mkdir -p "$TMP/cands" && cp -r "$TMP/wrong" "$TMP/cands/causal-f16"   # one wrong, rest missing
expect 1 "check-suite: a failing case and missing ones" \
    "$FM" check-suite --suite "$TMP/suite" --candidates "$TMP/cands" --json "$TMP/s.json"
grep -q "0 pass, 1 FAIL, $((n - 1)) invalid" "$TMP/out.txt" || { echo "FAILED: totals"; fails=$((fails + 1)); }
grep -q '"verdict":.*"fail"' "$TMP/s.json" || { echo "FAILED: no fail in json"; fails=$((fails + 1)); }
expect 0 "check --json" "$FM" check --case "$C" --candidate "$C" --json "$TMP/c.json"
grep -q '"pass":true' "$TMP/c.json" || { echo "FAILED: json report"; fails=$((fails + 1)); }

M=$TMP/suite/causal-sq80-sk48-br-f16     # 32 fully masked rows per head
expect 0 "check: masked rows" "$FM" check --case "$M" --candidate "$M"
grep -q "fully masked rows: 128" "$TMP/out.txt" || { echo "FAILED: masked row count"; fails=$((fails + 1)); }

# --rule: the FA rule is selectable, a bad name is invalid input
expect 0 "check --rule fa" "$FM" check --case "$C" --candidate "$C" --rule fa
grep -q "rule fa" "$TMP/out.txt" || { echo "FAILED: rule fa not reported"; fails=$((fails + 1)); }
expect 2 "check --rule bogus" "$FM" check --case "$C" --candidate "$C" --rule bogus

# the naive column: left out by the derived rule where no overflow is possible ("-", null in
# JSON), computed with --naive and always under --rule fa (bfloat16: the float16 cases' dK
# column sums are beyond what the overflow condition accepts, so their naive runs)
BF=$TMP/suite/causal-bf16
expect 0 "check: naive left out" "$FM" check --case "$BF" --candidate "$BF" --json "$TMP/n0.json"
grep -q "naive_err -: not computed" "$TMP/out.txt" || { echo "FAILED: no naive note"; fails=$((fails + 1)); }
grep -q '"naive_max_abs":null,"naive_computed":false' "$TMP/n0.json" || { echo "FAILED: naive null in json"; fails=$((fails + 1)); }
expect 0 "check --naive" "$FM" check --case "$BF" --candidate "$BF" --naive --json "$TMP/n1.json"
! grep -q "not computed" "$TMP/out.txt" || { echo "FAILED: --naive left it out"; fails=$((fails + 1)); }
grep -q '"naive_computed":true' "$TMP/n1.json" || { echo "FAILED: --naive json"; fails=$((fails + 1)); }
! grep -q '"naive_computed":false' "$TMP/n1.json" || { echo "FAILED: --naive json"; fails=$((fails + 1)); }
expect 0 "check --rule fa computes the naive" "$FM" check --case "$BF" --candidate "$BF" --rule fa
! grep -q "not computed" "$TMP/out.txt" || { echo "FAILED: fa left the naive out"; fails=$((fails + 1)); }

# a causal-only kernel (the cpu layer run on the causal cases alone, nothing for the others)
# is judged on its subset: check-suite --only causal exits 0, without --only it fails
mkdir "$TMP/causal-only"
for d in "$TMP"/suite/causal-*; do
    case $(basename "$d") in causal_document*) continue ;; esac
    "$FM" run --impl cpu --case "$d" --out "$TMP/causal-only/$(basename "$d")" > /dev/null
done
expect 1 "check-suite: a causal-only kernel fails the whole suite" \
    "$FM" check-suite --suite "$TMP/suite" --candidates "$TMP/causal-only"
expect 0 "check-suite --only causal: the causal-only kernel passes its subset" \
    "$FM" check-suite --suite "$TMP/suite" --candidates "$TMP/causal-only" --only causal
grep -q "12 cases: 12 pass, 0 FAIL, 0 invalid or missing, $((n - 12)) skipped" "$TMP/out.txt" ||
    { echo "FAILED: --only causal totals"; cat "$TMP/out.txt"; fails=$((fails + 1)); }
expect 0 "check-suite --only causal --skip '*-f32'" "$FM" check-suite --suite "$TMP/suite" \
    --candidates "$TMP/causal-only" --only causal --skip '*-f32'
grep -q "8 cases: 8 pass" "$TMP/out.txt" || { echo "FAILED: --skip totals"; fails=$((fails + 1)); }
expect 2 "check-suite: nothing selected" "$FM" check-suite --suite "$TMP/suite" \
    --candidates "$TMP/causal-only" --only no_such_kind

# a shaped suite: families, dtypes, head dims up to 256, Sq != Sk, both alignments, count
expect 0 "gen-suite shaped" "$FM" gen-suite --out "$TMP/shaped" --families causal,full \
    --dtypes bfloat16 --head-dims 128,256 --seqlens 3,40x70 --alignment both --q-heads 2 \
    --kv-heads 1 --count 5
[ "$(ls -d "$TMP"/shaped/*/ | wc -l)" -eq 5 ] || { echo "FAILED: shaped count"; fails=$((fails + 1)); }
expect 0 "check-suite on the shaped suite" "$FM" check-suite --suite "$TMP/shaped" \
    --candidates "$TMP/shaped"
expect 2 "gen-suite: unknown family" "$FM" gen-suite --out "$TMP/bad" --families nope

# the files a suite writes do not depend on the thread count (OpenBLAS splits sums by thread)
OMP_NUM_THREADS=1 "$FM" gen-suite --out "$TMP/t1" > /dev/null
OMP_NUM_THREADS=2 "$FM" gen-suite --out "$TMP/t2" > /dev/null
if diff -r "$TMP/t1" "$TMP/t2" > /dev/null; then echo "ok: suite bit-identical with 1 and 2 threads"
else echo "FAILED: suite depends on OMP_NUM_THREADS: $(diff -rq "$TMP/t1" "$TMP/t2" | wc -l) files differ"
    fails=$((fails + 1)); fi

echo "$fails failed"
[ "$fails" -eq 0 ]
