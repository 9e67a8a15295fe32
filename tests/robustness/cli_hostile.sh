#!/bin/bash
# tests/robustness/cli_hostile.sh — every `flashmask` subcommand against hostile command lines
# and hostile directories (suite 'robustness'), run by meson as
#   cli_hostile.sh /path/to/flashmask
# For each: the exit code must be the documented one (2 invalid input, 3 unavailable; never a
# signal, a sanitizer report or a time-out), a refusal must print one "flashmask <cmd>: ..."
# message, and a refused write must leave no result behind (no target, no .tmp- directory).
# Prints "N passed, N failed" and exits 1 if anything failed.
set -u
FM=${1:?usage: cli_hostile.sh FLASHMASK}
NAME=cli-hostile
LIMIT=${FM_CLI_TIMEOUT:-120}
NAMED_REFUSALS=1
. "$(dirname "$0")/cli_lib.sh"

# nothing at PATH, and no temporary directory beside it
absent() {
    if [ -e "$1" ]; then bad "$1 exists after a refusal"; else ok; fi
    if ls -A "$(dirname "$1")" | grep -q '\.tmp-'; then bad "temporary directory left in $(dirname "$1")"; fi
}

# --- fixtures: a small case, a candidate's results, a dense case -----------------------
"$FM" gen --mask causal_document --param doc_lens=5,7 --seqlen 12 --q-heads 2 --head-dim 4 \
    --out "$T/case" >/dev/null || { echo "FAIL fixture: gen"; exit 1; }
"$FM" run --impl reference --case "$T/case" --out "$T/cand" >/dev/null ||
    { echo "FAIL fixture: run"; exit 1; }
"$FM" gen-dense --pattern random --seqlen 12 --head-dim 4 --out "$T/dense" >/dev/null ||
    { echo "FAIL fixture: gen-dense"; exit 1; }
touch "$T/a-file"
mkdir -p "$T/full-dir" && touch "$T/full-dir/x"
mkfifo "$T/fifo"

# --- every subcommand: unknown flags, stray arguments, missing values --------------------
ALL="masks gen run check gen-suite check-suite demo version bench show gen-dense run-dense show-dense"
for c in $ALL; do
    expect 2 "$c --no-such-flag" -- "$FM" "$c" --no-such-flag
    expect_msg "flashmask"
    expect 2 "$c --no-such-flag=1" -- "$FM" "$c" --no-such-flag=1
    expect 2 "$c stray positional" -- "$FM" "$c" stray
    expect 2 "$c -x" -- "$FM" "$c" -x
    expect 0 "$c --help" -- "$FM" "$c" --help
done
expect 2 "unknown command" -- "$FM" no-such-command
expect_msg "unknown command 'no-such-command'"
expect 2 "no command" -- "$FM"
expect 2 "empty command" -- "$FM" ""

# options that take a value, given none (last on the line)
for spec in "gen --mask" "gen --out" "gen --seqlen" "gen --param" "gen --scale" "run --impl" \
    "run --case" "run --out" "run --dtype" "check --case" "check --candidate" "check --json" \
    "gen-suite --out" "gen-suite --seed" "check-suite --suite" "check-suite --candidates" \
    "demo --family" "demo --seqlen" "bench --seqlen" "bench --threads" "show --mask" "show --out" \
    "gen-dense --pattern" "gen-dense --density" "run-dense --method" "show-dense --case" \
    "masks --seqlen"; do
    # shellcheck disable=SC2086
    expect 2 "$spec (no value)" -- "$FM" $spec
done
expect_msg "needs a value"

# --- numbers: not numbers, negative, zero, overflowing, trailing junk ---------------------
BAD_INTS=(abc "" -5 0 99999999999999999999 12abc 1e3 " 7" 0x10 -9223372036854775808)
for v in "${BAD_INTS[@]}"; do
    expect 2 "gen --seqlen '$v'" -- "$FM" gen --mask causal --seqlen "$v" --out "$T/g-int"
    expect 2 "demo --seqlen '$v'" -- "$FM" demo --seqlen "$v"
    expect 2 "gen-dense --seqlen '$v'" -- "$FM" gen-dense --pattern random --seqlen "$v" \
        --out "$T/gd-int"
done
expect 2 "gen --seqlen abc" -- "$FM" gen --mask causal --seqlen abc --out "$T/g-int"
expect_msg "is not an integer"
for flag in --batch --q-heads --kv-heads --mask-heads --seqlen-q --seqlen-k --head-dim; do
    for v in abc -5 0 99999999999999999999 " 7"; do
        expect 2 "gen $flag '$v'" -- "$FM" gen --mask causal "$flag" "$v" --out "$T/g-int"
    done
done
absent "$T/g-int"
absent "$T/gd-int"
for v in abc "" -5 -1 99999999999999999999 9007199254740993 1.5; do
    expect 2 "gen --seed '$v'" -- "$FM" gen --mask causal --seed "$v" --out "$T/g-seed"
    expect 2 "gen-suite --seed '$v'" -- "$FM" gen-suite --seed "$v" --out "$T/gs-seed"
done
absent "$T/gs-seed"
for v in abc "" nan inf -inf -1 0 1e400 0x; do
    expect 2 "gen --scale '$v'" -- "$FM" gen --mask causal --scale "$v" --out "$T/g-scale"
done
absent "$T/g-scale"
for v in abc "" nan -0.1 1.5 inf; do
    expect 2 "gen-dense --density '$v'" -- "$FM" gen-dense --pattern random --density "$v" \
        --out "$T/gd-d"
done
for v in abc 0 -3 99999999999; do
    expect 2 "gen-dense --band '$v'" -- "$FM" gen-dense --pattern scrambled_band --band "$v" \
        --out "$T/gd-b"
done
for v in abc 1 3 -2; do # buckets: even, >= 2
    expect 2 "gen-dense --buckets '$v'" -- "$FM" gen-dense --pattern hash_sparse --buckets "$v" \
        --out "$T/gd-h"
done
absent "$T/gd-h"
for flag in --seqlen --head-dim --batch --heads --threads --reps --gemm-size --naive-mb; do
    for v in abc -1; do
        expect 2 "bench $flag '$v'" -- "$FM" bench "$flag" "$v"
    done
done
for flag in --block-q --block-k --size --batch-index --mask-head --seqlen; do
    for v in abc -1 99999999999999999999; do
        expect 2 "show $flag '$v'" -- "$FM" show --mask causal "$flag" "$v" --out "$T/s.svg"
    done
done
absent "$T/s.svg"
for flag in --block-q --block-k; do
    for v in abc 0 -1 99999999999; do
        expect 2 "run-dense $flag '$v'" -- "$FM" run-dense --impl reference --case "$T/dense" \
            "$flag" "$v" --out "$T/rd"
        expect 2 "show-dense $flag '$v'" -- "$FM" show-dense --case "$T/dense" "$flag" "$v"
    done
done
absent "$T/rd"
for v in abc 0 -1 99999999999999999999 2147483647; do
    expect 2 "masks --seqlen '$v'" -- "$FM" masks --seqlen "$v"
done

# --- names: families, implementations, dtypes, alignments, params --------------------------
expect 2 "gen unknown family" -- "$FM" gen --mask nope --out "$T/g-name"
expect 2 "gen --causal none" -- "$FM" gen --mask causal --causal none --out "$T/g-name"
expect 2 "gen --dtype int8" -- "$FM" gen --mask causal --dtype int8 --out "$T/g-name"
expect 2 "gen --param junk" -- "$FM" gen --mask causal_document --param junk --out "$T/g-name"
expect 2 "gen --param unknown key" -- "$FM" gen --mask causal --param window=3 --out "$T/g-name"
expect 2 "gen --param negative" -- "$FM" gen --mask sliding_window --param window=-3 \
    --out "$T/g-name"
expect 2 "gen --param doc_lens not summing" -- "$FM" gen --mask document --seqlen 16 \
    --param doc_lens=4,4 --out "$T/g-name"
expect 2 "gen --param huge list value" -- "$FM" gen --mask document --seqlen 16 \
    --param doc_lens=99999999999999999999999 --out "$T/g-name"
expect 2 "gen kv-heads not dividing" -- "$FM" gen --mask causal --q-heads 4 --kv-heads 3 \
    --out "$T/g-name"
expect_msg "does not divide"
expect 2 "gen mask-heads not dividing" -- "$FM" gen --mask causal --q-heads 4 --mask-heads 3 \
    --out "$T/g-name"
absent "$T/g-name"
expect 2 "run unknown impl" -- "$FM" run --impl gpu9 --case "$T/case" --out "$T/r-name"
expect 2 "run --dtype bogus" -- "$FM" run --impl reference --dtype bogus --case "$T/case" \
    --out "$T/r-name"
expect 2 "run-dense unknown method" -- "$FM" run-dense --impl reference --method nope \
    --case "$T/dense" --out "$T/r-name"
absent "$T/r-name"
expect 2 "check --dtype bogus" -- "$FM" check --case "$T/case" --candidate "$T/cand" \
    --dtype bogus
expect 2 "demo unknown family" -- "$FM" demo --family nope --seqlen 16
expect 2 "demo unknown impl" -- "$FM" demo --impl nope --seqlen 16
expect 2 "bench unknown family" -- "$FM" bench --families nope --seqlen 64
expect 2 "gen-dense unknown pattern" -- "$FM" gen-dense --pattern nope --out "$T/gd-n"
expect 2 "gen-dense --align sideways" -- "$FM" gen-dense --pattern qk_sparse --align sideways \
    --out "$T/gd-n"
absent "$T/gd-n"

# --- sizes: overflowing products are invalid input (exit 2) -------------------------------
expect 2 "gen B*Hq*S*D overflows" -- "$FM" gen --mask causal --batch 2147483647 \
    --q-heads 2147483647 --seqlen 2147483647 --head-dim 2147483647 --out "$T/g-big"
expect_msg "overflow"
# (the dense backend forced: the automatic choice takes the tiled one, which has no such limit)
expect 2 "gen beyond the oracle's dense limit" -- "$FM" gen --mask full --seqlen 65536 \
    --head-dim 1 --q-heads 1 --reference dense --out "$T/g-big"
expect_msg "limit"
absent "$T/g-big"
expect 2 "demo B*H*S*D overflows" -- "$FM" demo --batch 2147483647 --q-heads 2147483647 \
    --seqlen 2147483647 --head-dim 2147483647
expect 2 "gen-dense B*Hm*Sq*Sk overflows" -- "$FM" gen-dense --pattern random \
    --batch 2147483647 --seqlen 2147483647 --out "$T/gd-big"
expect_msg "B*Hm*Sq*Sk"
absent "$T/gd-big"
# sizes that pass every limit but exceed memory: "out of memory" (exit 1), promptly
expect "1|2" "gen S = 2^31 - 1 (mask bounds need 32 GiB)" -- "$FM" gen --mask causal \
    --seqlen 2147483647 --head-dim 1 --out "$T/g-mem"
absent "$T/g-mem"

# --- input directories: missing, a file, a FIFO, an empty directory -----------------------
for src in "$T/missing" "$T/a-file" "$T/fifo" "$T/full-dir"; do
    expect 2 "run --case $(basename "$src")" -- "$FM" run --impl reference --case "$src" \
        --out "$T/r-in"
    expect 2 "check --case $(basename "$src")" -- "$FM" check --case "$src" --candidate "$T/cand"
    expect 2 "check --candidate $(basename "$src")" -- "$FM" check --case "$T/case" \
        --candidate "$src"
    expect 2 "check-suite --suite $(basename "$src")" -- "$FM" check-suite --suite "$src" \
        --candidates "$T/cand"
    expect 2 "run-dense --case $(basename "$src")" -- "$FM" run-dense --impl reference \
        --case "$src" --out "$T/r-in"
    expect 2 "show-dense --case $(basename "$src")" -- "$FM" show-dense --case "$src"
    expect 2 "show --case $(basename "$src")" -- "$FM" show --case "$src" --out "$T/s-in.svg"
done
absent "$T/r-in"
absent "$T/s-in.svg"
# a case whose mask.npy is a FIFO: refused at once, not read forever
cp -r "$T/case" "$T/case-fifo" && rm "$T/case-fifo/mask.npy" && mkfifo "$T/case-fifo/mask.npy"
expect 2 "run on a case with a FIFO mask.npy" -- "$FM" run --impl reference \
    --case "$T/case-fifo" --out "$T/r-fifo"
expect_msg "not a regular file"
absent "$T/r-fifo"
# a dense-mask case whose case.json or mask_dense.npy is a FIFO: refused at once as well
for f in case.json mask_dense.npy; do
    rm -rf "$T/dense-fifo" && cp -r "$T/dense" "$T/dense-fifo" && rm "$T/dense-fifo/$f" &&
        mkfifo "$T/dense-fifo/$f"
    expect 2 "run-dense on a dense case with a FIFO $f" -- "$FM" run-dense --impl reference \
        --case "$T/dense-fifo" --out "$T/r-dfifo"
    expect_msg "not a regular file"
    absent "$T/r-dfifo"
done
# a case with NaN in q.npy: refused naming the file and the element
cp -r "$T/case" "$T/case-nan"
/usr/bin/python3 - "$T/case-nan/q.npy" <<'EOF' 2>/dev/null || cp "$T/case/q.npy" "$T/case-nan/q.npy"
import sys
import numpy as np
q = np.load(sys.argv[1])
q.flat[3] = np.nan
np.save(sys.argv[1], q)
EOF
if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    expect 2 "run on a case with NaN in q.npy" -- "$FM" run --impl cpu --case "$T/case-nan" \
        --out "$T/r-nan"
    expect_msg "q.npy: element 3 is nan"
    absent "$T/r-nan"
fi

# a path longer than PATH_MAX, and a symlink loop
long=$T/$(printf 'a%.0s' $(seq 1 5000))
expect 2 "run --case (path too long)" -- "$FM" run --impl reference --case "$long" --out "$T/r-long"
expect 2 "run --out (path too long)" -- "$FM" run --impl reference --case "$T/case" --out "$long"
expect 2 "gen-suite --out (path too long)" -- "$FM" gen-suite --out "$long"
ln -s loop-b "$T/loop-a" && ln -s loop-a "$T/loop-b"
expect 2 "run --case (symlink loop)" -- "$FM" run --impl reference --case "$T/loop-a" \
    --out "$T/r-long"
absent "$T/r-long"

# --- output paths: an existing file, a non-empty directory, under a file, read-only fs ----
for out in "$T/a-file" "$T/full-dir" "$T/a-file/sub" "/proc/fm-robustness-out" ""; do
    name=${out:-empty}
    expect 2 "gen --out $name" -- "$FM" gen --mask causal --seqlen 8 --out "$out"
    expect 2 "run --out $name" -- "$FM" run --impl reference --case "$T/case" --out "$out"
    expect 2 "gen-suite --out $name" -- "$FM" gen-suite --out "$out"
    expect 2 "gen-dense --out $name" -- "$FM" gen-dense --pattern random --seqlen 8 --out "$out"
    expect 2 "run-dense --out $name" -- "$FM" run-dense --impl reference --case "$T/dense" \
        --out "$out"
done
expect_msg "flashmask run-dense"
[ -f "$T/a-file" ] && [ ! -s "$T/a-file" ] && ok || bad "a-file was modified"
[ "$(ls -A "$T/full-dir")" = x ] && ok || bad "full-dir was modified"
for out in "$T/full-dir" "$T/a-file/sub.svg" "/proc/fm-robustness.svg"; do
    expect 2 "show --out $out" -- "$FM" show --mask causal --seqlen 8 --out "$out"
done
expect 2 "check --json unwritable" -- "$FM" check --case "$T/case" --candidate "$T/cand" \
    --json "$T/a-file/report.json"
if ls -A "$T" | grep -q '\.tmp'; then bad "temporary files left in $T"; else ok; fi

# --- and the unharmed commands still work --------------------------------------------------
expect 0 "check passes on the reference's own results" -- "$FM" check --case "$T/case" \
    --candidate "$T/cand"
expect 0 "version" -- "$FM" version

finish
