#!/bin/bash
# tests/cli/cli_e2e.sh — the `flashmask` executable end to end (suite 'cli'), run by meson as
#   cli_e2e.sh /path/to/flashmask
# gen then run --impl reference reproduces the expected files byte for byte; truncated,
# shape-mismatched or missing case files make run exit 2 and leave no results directory;
# unknown implementation/family/flag exits 2; an unavailable implementation exits 3; the GPU
# float64 oracle (gen --reference cuda, run --impl reference-cuda) reproduces itself, or exits 3.
set -u
FM=${1:?usage: cli_e2e.sh FLASHMASK}
T=$(mktemp -d /tmp/fm-cli-e2e-XXXXXX)
trap 'rm -rf "$T"' EXIT
fails=0
passes=0

ok() { passes=$((passes + 1)); echo "ok   $*"; }
bad() { fails=$((fails + 1)); echo "FAIL $*"; }

# expect CODE DESCRIPTION -- command...: the command's exit status must be CODE
expect() {
    local want=$1 what=$2
    shift 3
    "$@" >"$T/stdout" 2>"$T/stderr"
    local got=$?
    if [ "$got" -eq "$want" ]; then ok "$what (exit $got)"; else
        bad "$what: exit $got, expected $want"; sed 's/^/    /' "$T/stderr"; fi
}

# stderr of the last command must contain TEXT
expect_msg() {
    if grep -qF -- "$1" "$T/stderr"; then ok "message names '$1'"; else
        bad "stderr lacks '$1':"; sed 's/^/    /' "$T/stderr"; fi
}

absent() {
    if [ -e "$1" ]; then bad "$1 exists after a failure"; else ok "$(basename "$1") absent"; fi
    # nothing temporary is left beside it either
    if ls -A "$(dirname "$1")" | grep -q '\.tmp-'; then bad "temporary directory left"; fi
}

# --- gen, then run the reference: identical bytes ---------------------------------------
expect 0 "gen causal_document" -- "$FM" gen --mask causal_document --param doc_lens=20,13,15 \
    --batch 2 --q-heads 4 --kv-heads 2 --mask-heads 2 --seqlen 48 --head-dim 8 \
    --dtype float16 --seed 3 --out "$T/case"
expect 0 "run --impl reference" -- "$FM" run --impl reference --case "$T/case" --out "$T/res"
for f in out lse dq dk dv; do
    if cmp -s "$T/case/$f.npy" "$T/res/$f.npy"; then ok "$f.npy reproduced"; else
        bad "$f.npy differs from the case's expected"; fi
done
expect 0 "gen sliding_window Sq != Sk top_left" -- "$FM" gen --mask sliding_window \
    --param window=5 --seqlen-q 7 --seqlen-k 19 --causal top_left --dtype bfloat16 \
    --head-dim 6 --out "$T/case2"    # scale 1/sqrt(6) needs all 17 digits in case.json
expect 0 "run reference on it" -- "$FM" run --impl reference --case "$T/case2" --out "$T/res2"
for f in out lse dq; do
    cmp -s "$T/case2/$f.npy" "$T/res2/$f.npy" && ok "Sq != Sk $f.npy reproduced" || bad "case2 $f"
done
expect 0 "run --impl cpu" -- "$FM" run --impl cpu --case "$T/case" --out "$T/res-cpu"
[ -f "$T/res-cpu/dv.npy" ] && ok "cpu wrote dv.npy" || bad "cpu results missing"

# --- a case written by a third party with NumPy alone (Paddle [B,Hm,Sk,2] mask) ----------
PY=/usr/bin/python3
if [ -x "$PY" ] && "$PY" -c 'import numpy' 2>/dev/null; then
    here=$(dirname "$0")
    expect 0 "NumPy-written case" -- "$PY" "$here/third_party_case.py" write "$T/tp"
    expect 0 "run reference on it" -- "$FM" run --impl reference --case "$T/tp" --out "$T/tp-res"
    expect 0 "equals NumPy's dense attention" -- "$PY" "$here/third_party_case.py" compare \
        "$T/tp" "$T/tp-res"
else
    ok "numpy not installed: third-party case test not applicable"
fi

# --- exit 2: invalid input, and no results directory ------------------------------------
expect 2 "results dir exists and is not empty" -- "$FM" run --impl reference --case "$T/case" \
    --out "$T/res"
expect_msg "already exists"
cp -r "$T/case" "$T/trunc"
truncate -s -8 "$T/trunc/q.npy"
expect 2 "truncated q.npy" -- "$FM" run --impl reference --case "$T/trunc" --out "$T/r-trunc"
expect_msg "q.npy: truncated"
absent "$T/r-trunc"
cp -r "$T/case" "$T/mism"
cp "$T/case2/k.npy" "$T/mism/k.npy"
expect 2 "shape-mismatched k.npy" -- "$FM" run --impl reference --case "$T/mism" --out "$T/r-mism"
expect_msg "k.npy: shape"
absent "$T/r-mism"
cp -r "$T/case" "$T/nomask"
rm "$T/nomask/mask.npy"
expect 2 "missing mask.npy" -- "$FM" run --impl reference --case "$T/nomask" --out "$T/r-nomask"
expect_msg "mask.npy"
absent "$T/r-nomask"
cp -r "$T/case" "$T/badjson"
sed -i 's/"head_dim":\t8/"head_dim":\t9/' "$T/badjson/case.json"
expect 2 "case.json head_dim disagrees with q.npy" -- "$FM" run --impl reference \
    --case "$T/badjson" --out "$T/r-badjson"
expect_msg "q.npy: shape (2, 4, 48, 8)"
expect_msg "(D: 8, expected 9)"
absent "$T/r-badjson"
printf 'garbage' > "$T/badjson/case.json"
expect 2 "case.json not JSON" -- "$FM" run --impl cpu --case "$T/badjson" --out "$T/r-badjson"
expect_msg "case.json: invalid JSON"
absent "$T/r-badjson"

expect 2 "unknown implementation" -- "$FM" run --impl gpu --case "$T/case" --out "$T/r-x"
expect_msg "unknown implementation 'gpu'"
expect 2 "unknown family" -- "$FM" gen --mask diagonal --out "$T/g-x"
expect_msg "unknown mask family 'diagonal'"
absent "$T/g-x"
expect 2 "unknown parameter" -- "$FM" gen --mask causal --param window=3 --out "$T/g-x"
expect_msg "not a parameter of causal"
expect 2 "doc_lens not summing to S" -- "$FM" gen --mask document --param doc_lens=3,3 \
    --seqlen 16 --out "$T/g-x"
absent "$T/g-x"
expect 2 "kv heads not dividing" -- "$FM" gen --mask full --q-heads 4 --kv-heads 3 --out "$T/g-x"
expect_msg "--kv-heads 3 does not divide --q-heads 4"
expect 2 "bad integer" -- "$FM" gen --mask full --seqlen 12x --out "$T/g-x"
expect 2 "unknown flag" -- "$FM" run --impl reference --case "$T/case" --out "$T/r-x" --fast
expect 2 "missing value" -- "$FM" run --impl reference --case
expect 2 "unknown command" -- "$FM" frobnicate
expect 2 "no command" -- "$FM"
expect 0 "help" -- "$FM" help
expect 0 "masks" -- "$FM" masks
grep -q "random_eviction" "$T/stdout" && ok "masks lists random_eviction" || bad "masks output"

# --- demo on a small problem: every family is run and judged ------------------------------
# (the verdicts belong to the implementations' suites and the oracle's: here exit 0 = all pass
# and 1 = a verdict FAIL are both a demo that worked; anything else is not)
"$FM" demo --family causal --family document --seqlen 40 --head-dim 8 --q-heads 2 \
    >"$T/stdout" 2>"$T/stderr"
rc=$?
[ $rc -eq 0 ] || [ $rc -eq 1 ] && ok "demo on two families (exit $rc)" || bad "demo: exit $rc"
grep -q "^== document" "$T/stdout" && ok "demo printed the document family" || bad "demo output"
[ "$(grep -cE "^ *cpu +float32 .* (pass|FAIL)$" "$T/stdout")" -eq 2 ] &&
    ok "demo: cpu judged on both families" || bad "demo: cpu verdicts missing"
grep -q "^2 runs: .* 0 errors" "$T/stdout" && ok "demo: no errors" || bad "demo: errors"
expect 2 "demo with an unknown family" -- "$FM" demo --family nope
expect 2 "demo --impl reference" -- "$FM" demo --impl reference
expect 2 "masks --seqlen 0" -- "$FM" masks --seqlen 0
expect 0 "version" -- "$FM" version

# --- exit 3: an implementation that is not available here ------------------------------
"$FM" version >"$T/version" 2>&1
if grep -q "cuda *available" "$T/version"; then
    ok "cuda available here: exit-3 test not applicable"
else
    expect 3 "run --impl cuda without cuda" -- "$FM" run --impl cuda --case "$T/case" \
        --out "$T/r-cuda"
    expect_msg "implementation unavailable"
    absent "$T/r-cuda"
    expect 3 "run --impl cuda --ladder 2 without cuda" -- "$FM" run --impl cuda --ladder 2 \
        --case "$T/case" --out "$T/r-cuda"
    absent "$T/r-cuda"
fi
# --ladder (the CUDA kernel ladder's steps): refused before anything runs when misused
expect 2 "--ladder with --impl cpu" -- "$FM" run --impl cpu --ladder 2 --case "$T/case" \
    --out "$T/r-lad"
expect_msg "--impl cuda"
absent "$T/r-lad"
expect 2 "--ladder 6" -- "$FM" run --impl cuda --ladder 6 --case "$T/case" --out "$T/r-lad"
expect_msg "--ladder"
absent "$T/r-lad"

# --- the float64 oracle on the GPU: gen --reference cuda, run --impl reference-cuda --------
GEN_ARGS=(gen --mask causal_document --param doc_lens=20,13,15 --batch 2 --q-heads 4
    --kv-heads 2 --mask-heads 2 --seqlen 48 --head-dim 8 --dtype float16 --seed 3)
if grep -q "reference-cuda *available" "$T/version"; then
    expect 0 "gen --reference cuda" -- "$FM" "${GEN_ARGS[@]}" --reference cuda --out "$T/gcase"
    expect 0 "run --impl reference-cuda" -- "$FM" run --impl reference-cuda --case "$T/gcase" \
        --out "$T/gres"
    for f in out lse dq dk dv; do
        cmp -s "$T/gcase/$f.npy" "$T/gres/$f.npy" && ok "reference-cuda $f.npy reproduced" ||
            bad "reference-cuda: run's $f.npy differs from gen's"
    done
    cmp -s "$T/gcase/q.npy" "$T/case/q.npy" && ok "gen --reference cuda: same inputs" ||
        bad "gen --reference cuda drew other inputs"
else
    expect 3 "gen --reference cuda without a GPU" -- "$FM" "${GEN_ARGS[@]}" --reference cuda \
        --out "$T/g-rc"
    expect_msg "implementation unavailable"
    absent "$T/g-rc"
    expect 3 "run --impl reference-cuda without a GPU" -- "$FM" run --impl reference-cuda \
        --case "$T/case" --out "$T/r-rc"
    absent "$T/r-rc"
fi
expect 0 "gen --reference dense" -- "$FM" "${GEN_ARGS[@]}" --reference dense --out "$T/gdense"
cmp -s "$T/gdense/dq.npy" "$T/case/dq.npy" && ok "--reference dense is the default" ||
    bad "--reference dense differs from the default"
expect 2 "gen --reference nonsense" -- "$FM" gen --mask full --reference cpu2 --out "$T/g-x"
expect_msg "--reference 'cpu2'"
absent "$T/g-x"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
