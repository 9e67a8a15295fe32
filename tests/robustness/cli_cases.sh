#!/bin/bash
# tests/robustness/cli_cases.sh — the second round of hostile input (suite 'robustness'; see
# docs/robustness.md, "Round two"): a case that lies to `check` (changed mask, parameters or
# expected outputs, two mask files, +inf expected lse in a dense case), OpenBLAS under ulimit -v,
# NaN from extreme but finite inputs, check-suite manifests and --json targets, lying .npy
# headers, show --out over a case file, SIGXFSZ, repeated flags, NUL and 2^53 + 1 in case.json.
# Run by meson as  cli_cases.sh /path/to/flashmask . Prints "N passed, N failed".
set -u
FM=${1:?usage: cli_cases.sh FLASHMASK}
NAME=cli-cases
LIMIT=${FM_CLI_TIMEOUT:-60}
. "$(dirname "$0")/cli_lib.sh"
PY=/usr/bin/python3
# py CODE ARGS...: numpy edits of fixtures; the checks that need it are skipped without numpy
have_numpy=0
$PY -c 'import numpy' 2>/dev/null && have_numpy=1
py() { $PY - "$@"; }
# removes case.json's digest: a case as written before digests existed
unseal() {
    py "$1/case.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); d.pop("digest", None)
json.dump(d, open(sys.argv[1], "w"), indent=1)
EOF
}

# --- fixtures -------------------------------------------------------------------------------
"$FM" gen --mask causal --seqlen 16 --q-heads 2 --head-dim 8 --out "$T/case" >/dev/null &&
    "$FM" gen --mask sliding_window --param window=3 --seqlen 16 --q-heads 2 --head-dim 8 \
        --out "$T/other" >/dev/null &&
    "$FM" run --impl reference --case "$T/case" --out "$T/cand" >/dev/null &&
    "$FM" gen-dense --pattern random --seqlen 16 --head-dim 8 --out "$T/dense" >/dev/null ||
    { echo "FAIL fixtures"; exit 1; }
grep -q '"digest"' "$T/case/case.json" && ok || bad "gen wrote no digest"
grep -q '"digest"' "$T/dense/case.json" && ok || bad "gen-dense wrote no digest"
[ ! -e "$T/dense/mask.npy" ] && ok || bad "gen-dense wrote a second mask file"
# io/sha256.c against coreutils: every file's digest is its sha256sum
for f in mask.npy q.npy k.npy v.npy do.npy out.npy lse.npy dq.npy dk.npy dv.npy; do
    want=$(sha256sum "$T/case/$f" | cut -d' ' -f1)
    grep -q "\"$f\":[[:space:]]*\"$want\"" "$T/case/case.json" && ok || bad "digest of $f"
done
want=$(sha256sum "$T/dense/mask_dense.npy" | cut -d' ' -f1)
grep -q "\"mask_dense.npy\":[[:space:]]*\"$want\"" "$T/dense/case.json" && ok ||
    bad "digest of mask_dense.npy"
expect 0 "check on the reference's results" -- "$FM" check --case "$T/case" --candidate "$T/cand"

# --- 1. a case cannot lie to check -----------------------------------------------------------
# another mask in place of mask.npy: refused by check and run, naming the file
cp -r "$T/case" "$T/c-mask" && cp "$T/other/mask.npy" "$T/c-mask/mask.npy"
expect 2 "check, mask.npy replaced" -- "$FM" check --case "$T/c-mask" --candidate "$T/cand"
expect_msg "mask.npy changed after the case was written"
expect 2 "run, mask.npy replaced" -- "$FM" run --impl cpu --case "$T/c-mask" --out "$T/r1"
expect_msg "mask.npy changed"
# "causal" flipped in case.json: the parameters' digest differs
cp -r "$T/case" "$T/c-causal"
sed -i 's/"causal":[[:space:]]*"bottom_right"/"causal": "none"/' "$T/c-causal/case.json"
expect 2 "check, causal flipped" -- "$FM" check --case "$T/c-causal" --candidate "$T/cand"
expect_msg "parameters changed after it was written"
# an expected output removed, a file added
cp -r "$T/case" "$T/c-rm" && rm "$T/c-rm/dq.npy"
expect 2 "check, dq.npy removed" -- "$FM" check --case "$T/c-rm" --candidate "$T/cand"
expect_msg "dq.npy was removed"
# both mask files: refused by run, run-dense and check
cp -r "$T/case" "$T/c-both" && cp "$T/dense/mask_dense.npy" "$T/c-both/"
for c in "run --impl reference" "run-dense --impl reference"; do
    expect 2 "$c, both mask files" -- "$FM" $c --case "$T/c-both" --out "$T/r2"
    expect_msg "holds both mask.npy and mask_dense.npy"
done
expect 2 "check, both mask files" -- "$FM" check --case "$T/c-both" --candidate "$T/cand"
cp -r "$T/dense" "$T/d-both" && cp "$T/case/mask.npy" "$T/d-both/"
expect 2 "run-dense, dense case plus mask.npy" -- "$FM" run-dense --impl reference \
    --case "$T/d-both" --out "$T/r3"
expect_msg "holds both"
# check-suite refuses a changed case too (reported invalid; the suite is broken: exit 2)
"$FM" gen-suite --out "$T/suite" >/dev/null || bad "gen-suite"
first=$(ls "$T/suite" | grep -v manifest | head -1)
mkdir -p "$T/cands"
"$FM" run --impl reference --case "$T/suite/$first" --out "$T/cands/$first" >/dev/null
# one byte of the expected out.npy changed (its last element's lowest byte)
size=$(stat -c %s "$T/suite/$first/out.npy")
printf '\001' | dd of="$T/suite/$first/out.npy" bs=1 seek=$((size - 8)) conv=notrunc 2>/dev/null
expect 2 "check-suite with a changed case" -- "$FM" check-suite --suite "$T/suite" \
    --candidates "$T/cands"
grep -q "changed after the case was written" "$T/stdout" && ok || bad "check-suite did not name the change"

if [ $have_numpy -eq 1 ]; then
    # an old case (no digest) whose expected outputs were scaled by 0.5, and a candidate equal
    # to them: judged against the recomputed reference, it fails
    cp -r "$T/case" "$T/c-old" && unseal "$T/c-old"
    cp -r "$T/cand" "$T/cand-half"
    py "$T/c-old" "$T/cand-half" <<'EOF'
import numpy as np, sys
for f in ("out", "dq", "dk", "dv"):
    for d in sys.argv[1:]:
        a = np.load(f"{d}/{f}.npy"); np.save(f"{d}/{f}.npy", a * 0.5)
EOF
    expect 1 "check, old case with halved outputs" -- "$FM" check --case "$T/c-old" \
        --candidate "$T/cand-half"
    expect 0 "check, old case, the true results" -- "$FM" check --case "$T/c-old" \
        --candidate "$T/cand"
    expect 0 "check --recompute" -- "$FM" check --recompute --case "$T/case" --candidate "$T/cand"
    # dense case: +inf expected lse, float64 inputs not rounded to float32
    cp -r "$T/dense" "$T/d-inf" && unseal "$T/d-inf"
    py "$T/d-inf/lse.npy" <<'EOF'
import numpy as np, sys
a = np.load(sys.argv[1]); a.flat[2] = np.inf; np.save(sys.argv[1], a)
EOF
    expect 2 "dense case with +inf expected lse" -- "$FM" check --case "$T/d-inf" \
        --candidate "$T/cand"
    expect_msg "lse.npy: element 2 is inf"
    cp -r "$T/dense" "$T/d-f64" && unseal "$T/d-f64"
    py "$T/d-f64/q.npy" <<'EOF'
import numpy as np, sys
a = np.load(sys.argv[1]).astype(np.float64); a.flat[0] = 0.1; np.save(sys.argv[1], a)
EOF
    expect 2 "dense case with unrounded float64 q" -- "$FM" run --impl reference \
        --case "$T/d-f64" --out "$T/r4"
    expect_msg "is not a float32 value"

    # --- 4. extreme but finite inputs: finite results or an error naming the tensor ----------
    cp -r "$T/case" "$T/c-big" && unseal "$T/c-big"
    py "$T/c-big/do.npy" <<'EOF'
import numpy as np, sys
a = np.load(sys.argv[1]); a[...] = np.float32(3e38); a.flat[::2] = np.float32(-3e38)
np.save(sys.argv[1], a)
EOF
    expect 2 "run cpu with do = +-3e38" -- "$FM" run --impl cpu --case "$T/c-big" --out "$T/r5"
    expect_msg "dout"
    [ ! -e "$T/r5" ] && ok || bad "run cpu wrote results holding NaN"
    expect 0 "run reference with do = +-3e38" -- "$FM" run --impl reference --case "$T/c-big" \
        --out "$T/r6"
    cp -r "$T/case" "$T/c-qk" && unseal "$T/c-qk"
    py "$T/c-qk/q.npy" "$T/c-qk/k.npy" <<'EOF'
import numpy as np, sys
for f in sys.argv[1:]:
    a = np.load(f); a[...] = np.float32(1e30); np.save(f, a)
EOF
    expect 2 "run cpu with q = k = 1e30" -- "$FM" run --impl cpu --case "$T/c-qk" --out "$T/r7"
    if grep -q "tensor out" "$T/stderr"; then bad "q = k = 1e30 blamed on out"; else ok; fi

    # --- 6. a .npy header promising 1 KiB on a 4 GiB sparse file: refused before the body ----
    cp -r "$T/case" "$T/c-sparse"
    truncate -s 4G "$T/c-sparse/q.npy.big"
    py "$T/c-sparse/q.npy.big" <<'EOF'
import sys
h = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 16, 8), }"
h += b" " * (118 - len(h)) + b"\n"
with open(sys.argv[1], "r+b") as f: f.write(b"\x93NUMPY\x01\x00" + len(h).to_bytes(2, "little") + h)
EOF
    mv "$T/c-sparse/q.npy.big" "$T/c-sparse/q.npy"
    LIMIT=5 expect 2 "4 GiB sparse q.npy with a 1 KiB header" -- "$FM" run --impl reference \
        --case "$T/c-sparse" --out "$T/r8"
    expect_msg "trailing bytes"
fi

# --- 2. OpenBLAS under ulimit -v: an error or a result, never a hang ----------------------------
if ! grep -qa __asan_init "$FM" && ! ldd "$FM" 2>/dev/null | grep -q asan; then
    for lim in 150000 300000; do
        LIMIT=30 expect "0|1" "run reference under ulimit -v $lim" -- bash -c \
            "ulimit -v $lim; exec \"\$0\" run --impl reference --case \"\$1\" --out \"\$2\"" \
            "$FM" "$T/case" "$T/r-ulimit-$lim"
    done
    LIMIT=120 expect "0|1" "gen --seqlen 4096 under ulimit -v 600000" -- bash -c \
        "ulimit -v 600000; exec \"\$0\" gen --mask causal --seqlen 4096 --out \"\$1\"" \
        "$FM" "$T/g-ulimit"
fi

# --- 5. check-suite: manifest and --json ------------------------------------------------------
mkdir -p "$T/s-fifo" "$T/s-zero" "$T/s-empty"
mkfifo "$T/s-fifo/manifest.json"
ln -s /dev/zero "$T/s-zero/manifest.json"
echo '{"format": "flashmask-suite", "cases": []}' >"$T/s-empty/manifest.json"
LIMIT=10 expect 2 "check-suite, FIFO manifest" -- "$FM" check-suite --suite "$T/s-fifo" \
    --candidates "$T/cands"
expect_msg "not a regular file"
LIMIT=10 expect 2 "check-suite, /dev/zero manifest" -- "$FM" check-suite --suite "$T/s-zero" \
    --candidates "$T/cands"
expect 2 "check-suite, no cases" -- "$FM" check-suite --suite "$T/s-empty" --candidates "$T/cands"
expect_msg "non-empty \"cases\" array"
cp "$T/cand/out.npy" "$T/out-copy.npy"
expect 2 "check --json over a candidate's out.npy" -- "$FM" check --case "$T/case" \
    --candidate "$T/cand" --json "$T/cand/out.npy"
expect_msg "exists; remove it first"
cmp -s "$T/cand/out.npy" "$T/out-copy.npy" && ok || bad "--json overwrote out.npy"
mkfifo "$T/json-fifo"
LIMIT=10 expect 2 "check --json to a FIFO" -- "$FM" check --case "$T/case" \
    --candidate "$T/cand" --json "$T/json-fifo"
expect 0 "check --json to a new file" -- "$FM" check --case "$T/case" --candidate "$T/cand" \
    --json "$T/report.json"
grep -q '"pass"' "$T/report.json" && ok || bad "report.json incomplete"
ls -A "$T/cand" | grep -q tmp && bad "temporary left in cand" || ok
expect 2 "check-suite --dtype float64" -- "$FM" check-suite --dtype float64 --suite "$T/suite" \
    --candidates "$T/cands"
expect 2 "check --dtype float64" -- "$FM" check --dtype float64 --case "$T/case" \
    --candidate "$T/cand"

# --- 6. smaller ------------------------------------------------------------------------------
cp "$T/case/mask.npy" "$T/mask-copy.npy"
expect 2 "show --out over the case's mask.npy" -- "$FM" show --case "$T/case" \
    --out "$T/case/mask.npy"
cmp -s "$T/case/mask.npy" "$T/mask-copy.npy" && ok || bad "show overwrote mask.npy"
expect 0 "show --out a new picture" -- "$FM" show --case "$T/case" --out "$T/p.svg"
expect 0 "show --out over its own picture" -- "$FM" show --case "$T/case" --out "$T/p.svg"
# SIGXFSZ: a result larger than ulimit -f is an error, not a signal (exit 153)
expect 2 "run under ulimit -f 1" -- bash -c \
    "ulimit -f 1; exec \"\$0\" run --impl reference --case \"\$1\" --out \"\$2\"" \
    "$FM" "$T/case" "$T/r-fsize"
expect 2 "gen under ulimit -f 1" -- bash -c \
    "ulimit -f 1; exec \"\$0\" gen --mask causal --seqlen 64 --out \"\$1\"" "$FM" "$T/g-fsize"
# repeated flags
expect 2 "run --case twice" -- "$FM" run --impl reference --case "$T/case" --case "$T/other" \
    --out "$T/r9"
expect_msg "option --case is given twice"
expect 2 "gen --seqlen=8 --seqlen 9" -- "$FM" gen --mask causal --seqlen=8 --seqlen 9 \
    --out "$T/g2"
expect 0 "gen --param twice" -- "$FM" gen --mask causal_document --param doc_lens=4,4 \
    --param doc_lens=2,6 --seqlen 8 --out "$T/g3"
expect 2 "gen --scale ' 0.5'" -- "$FM" gen --mask causal --seqlen 8 --scale " 0.5" --out "$T/g4"
# case.json: a NUL inside a key, 2^53 + 1, a huge ignored custom description
for edit in 's/"seed":/"seed\\u0000junk":/' 's/"seed":[[:space:]]*[0-9]*/"seed": 9007199254740993/'; do
    cp -r "$T/case" "$T/c-json" && sed -i "$edit" "$T/c-json/case.json"
    expect 2 "case.json edit $edit" -- "$FM" run --impl reference --case "$T/c-json" --out "$T/r10"
    rm -rf "$T/c-json"
done
cp -r "$T/case" "$T/c-huge"
$PY - "$T/c-huge/case.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1])); d.pop("digest", None)
d["mask_kind"] = "custom"; d["mask_params"] = {"notes": [0] * 6000000}
json.dump(d, open(sys.argv[1], "w"), separators=(",", ":"))
EOF
LIMIT=20 expect 2 "case.json with 6 million ignored values" -- "$FM" run --impl reference \
    --case "$T/c-huge" --out "$T/r11"
expect_msg "more than"
# error prefixes name the command typed
expect 2 "gen-dense prefix" -- "$FM" gen-dense --pattern bogus --out "$T/g5"
expect_msg "flashmask gen-dense:"

finish
