#!/bin/bash
# tests/reference/mpi_gen.sh — suite 'reference', test reference_mpi: `mpirun -np 2` (and 3) of
# `flashmask gen` and `gen-suite` write case directories identical bit for bit to a one-process
# `--reference tiled` run (tools/ref_compute.c). Skipped (exit 77) when the tool was built
# without MPI (-Dmpi=disabled, the default).
#   usage: mpi_gen.sh FLASHMASK enabled|disabled
set -euo pipefail
bin=$1
[ "$2" = enabled ] || { echo "built without MPI (-Dmpi=disabled): skipped"; exit 77; }
command -v mpirun >/dev/null || { echo "mpirun not found (Debian: openmpi-bin)" >&2; exit 1; }
run=(mpirun --oversubscribe -x OMP_NUM_THREADS=1)
[ "$(id -u)" = 0 ] && run+=(--allow-run-as-root)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# GQA with two mask heads, Sq != Sk, fully masked rows (causal, Sq > Sk, bottom_right), many
# tiles (S = 700 over 128-row tiles), float16 inputs.
case_args=(--mask causal_document --batch 2 --q-heads 4 --kv-heads 2 --mask-heads 2
           --seqlen-q 700 --seqlen-k 520 --causal bottom_right --head-dim 24 --dtype float16
           --seed 11)
"$bin" gen "${case_args[@]}" --reference tiled --out "$tmp/one" >/dev/null
for n in 2 3; do
    "${run[@]}" -np "$n" "$bin" gen "${case_args[@]}" --out "$tmp/np$n" >/dev/null
    diff -r "$tmp/one" "$tmp/np$n"
    echo "gen: mpirun -np $n equals one process, bit for bit"
done
# some row of the case is fully masked, so that path was compared too
/usr/bin/python3 -c "import numpy, sys; l = numpy.load(sys.argv[1]); assert numpy.isneginf(l).any()" \
    "$tmp/one/lse.npy"

"$bin" gen-suite --reference tiled --out "$tmp/suite1" >/dev/null
"${run[@]}" -np 2 "$bin" gen-suite --out "$tmp/suite2" >/dev/null
diff -r "$tmp/suite1" "$tmp/suite2"
echo "gen-suite: mpirun -np 2 equals one process, bit for bit"

# dense cannot be split: a clear refusal on every rank, not a hang
if "${run[@]}" -np 2 "$bin" gen "${case_args[@]}" --reference dense --out "$tmp/dense" \
    2>"$tmp/err"; then
    echo "mpirun gen --reference dense succeeded" >&2; exit 1
fi
grep -q "cannot be split" "$tmp/err"
[ ! -e "$tmp/dense" ]
echo "gen --reference dense under 2 ranks: refused"
