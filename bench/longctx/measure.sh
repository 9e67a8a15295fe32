#!/bin/bash
# bench/longctx/measure.sh — time and peak memory of the float64 reference, forward + backward,
# at long context (docs/performance.md, "Long context: the float64 reference"). Each run is one
# `flashmask gen` of one head, D = 128, under /usr/bin/time -v; the case written is deleted.
#   usage: bench/longctx/measure.sh FLASHMASK LOG MODE:S:MASK [MODE:S:MASK ...]
#   MODE   dense | tiled (OMP_NUM_THREADS=2) | mpi2 (mpirun -np 2, one thread per rank)
#   MASK   full | causal | causal_document (8 documents, the family's default)
# Appends to LOG one line per run: mode S mask wall_s cpu_s peak_rss_kib exit_status, where
# cpu_s = user + system seconds of every process (on a shared machine wall time includes
# waiting for the cores; CPU time does not) and peak_rss_kib is the largest process's.
set -u
bin=$(readlink -f "$1"); log=$2; shift 2
root=()
[ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
for spec in "$@"; do
    IFS=: read -r mode S mask <<<"$spec"
    dir=$(mktemp -d /tmp/fm-longctx.XXXXXX); rmdir "$dir"
    args=(gen --mask "$mask" --seqlen "$S" --batch 1 --q-heads 1 --head-dim 128 --out "$dir")
    tv=$(mktemp)
    case $mode in
    dense) OMP_NUM_THREADS=2 /usr/bin/time -v -o "$tv" "$bin" "${args[@]}" --reference dense ;;
    tiled) OMP_NUM_THREADS=2 /usr/bin/time -v -o "$tv" "$bin" "${args[@]}" --reference tiled ;;
    # peak of the larger rank: time -v on each rank through a wrapper
    mpi2) /usr/bin/time -v -o "$tv" mpirun "${root[@]}" --oversubscribe -np 2 -x OMP_NUM_THREADS=1 \
              bash -c '/usr/bin/time -v -o "$0.rank$OMPI_COMM_WORLD_RANK" "$@"' "$tv" "$bin" "${args[@]}" ;;
    esac
    rc=$?
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/{n=split($2,a,":"); s=0; for(i=1;i<=n;i++) s=s*60+a[i]; print s}' "$tv")
    cpu=$(awk -F': ' '/(User|System) time/{s+=$2} END{print s}' "$tv")
    rss=$(awk -F': ' '/Maximum resident set size/{print $2}' "$tv")
    if [ "$mode" = mpi2 ]; then
        rss=$(cat "$tv".rank* 2>/dev/null | awk -F': ' '/Maximum resident set size/{if($2>m)m=$2} END{print m}')
        cpu=$(cat "$tv".rank* 2>/dev/null | awk -F': ' '/(User|System) time/{s+=$2} END{print s}')
        rm -f "$tv".rank*
    fi
    echo "$mode $S $mask $wall $cpu $rss $rc" | tee -a "$log"
    rm -rf "$dir" "$tv"
done
