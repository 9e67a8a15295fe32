#!/bin/sh
# bench/oracle_rates.sh — runs bench/oracle_rates in chunks (JOBS at a time, one thread each) and
# prints the false-alarm and power tables of docs/oracle.md section 6 from their summed counts.
#   usage: oracle_rates.sh BUILD_DIR [ALARM_CASES (30000)] [POWER_CASES (600)] [CHUNKS (12)]
#                          [JOBS (2)] [SEED (20261202)] [MAX_SEQLEN (4096)]
# Exit 1 when the derived rule raised a false alarm (the failing seeds are printed).
# Layer: bench (a driver over the oracle_rates program).
set -eu
BUILD=$1
ALARM=${2:-30000}
POWER=${3:-600}
CHUNKS=${4:-12}
JOBS=${5:-2}
SEED=${6:-20261202}
MAXS=${7:-4096}
EXE=$BUILD/bench/oracle_rates
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
a=$(( (ALARM + CHUNKS - 1) / CHUNKS ))
p=$(( (POWER + CHUNKS - 1) / CHUNKS ))
i=0
while [ "$i" -lt "$CHUNKS" ]; do
    echo "$i"
    i=$((i + 1))
done | OMP_NUM_THREADS=1 xargs -P "$JOBS" -I{} sh -c \
    "'$EXE' --alarm $a --power $p --first \$(( {} * $a )) --power-first \$(( {} * $p )) \
     --seed $SEED --max-seqlen $MAXS \
     > '$TMP/chunk{}.txt' 2>&1 || true"
cat "$TMP"/chunk*.txt > "$TMP/all.txt"
grep '^alarm-case' "$TMP/all.txt" || true
grep '^miss' "$TMP/all.txt" | sort || true
awk '
$1 == "alarm" { key = $2 " " $3; n[key] += $5; f[key, $4] += $6; keys[key] = 1
                if ($7 > w[key, $4]) w[key, $4] = $7 }
$1 == "power" { k = $2; e[k, $3, $4] += $5; c[k, $3, $4] += $6; bugs[k] = 1 }
$1 == "excluded" { x[$2 " " $4, $3] += $5; xk[$2 " " $4] = 1 }
function pct(x, y) { return y ? sprintf("%.1f%%", 100.0 * x / y) : "-" }
END {
    print "false alarms (correct candidates failed / judged):"
    printf "%-8s %-9s %9s %14s %14s %12s %12s\n", "cand", "dtype", "judged", "derived", "fa", "worst(der)", "worst(fa)"
    tot = 0; td = 0; tf = 0
    for (k in keys) {
        split(k, a, " ")
        printf "%-8s %-9s %9d %14s %14s %12.3g %12.3g\n", a[1], a[2], n[k], f[k, "derived"] " (" pct(f[k, "derived"], n[k]) ")", f[k, "fa"] " (" pct(f[k, "fa"], n[k]) ")", w[k, "derived"], w[k, "fa"]
        tot += n[k]; td += f[k, "derived"]; tf += f[k, "fa"]
    }
    printf "%-18s %9d %14d %14d\n", "total", tot, td, tf
    print ""
    print "power (bug caught / cases where the bug changes the result):"
    printf "%-20s %22s %22s %22s %22s\n", "bug", "derived <64 rows", "fa <64 rows", "derived >=64 rows", "fa >=64 rows"
    for (k in bugs)
        printf "%-20s %22s %22s %22s %22s\n", k,
            c[k, "lt64", "derived"] "/" e[k, "lt64", "derived"] " " pct(c[k, "lt64", "derived"], e[k, "lt64", "derived"]),
            c[k, "lt64", "fa"] "/" e[k, "lt64", "fa"] " " pct(c[k, "lt64", "fa"], e[k, "lt64", "fa"]),
            c[k, "ge64", "derived"] "/" e[k, "ge64", "derived"] " " pct(c[k, "ge64", "derived"], e[k, "ge64", "derived"]),
            c[k, "ge64", "fa"] "/" e[k, "ge64", "fa"] " " pct(c[k, "ge64", "fa"], e[k, "ge64", "fa"])
    print ""
    print "not counted above: the bug changes bits but is no bug on the case (bench/oracle_rates.c):"
    printf "%-36s %10s %10s\n", "bug reason", "<64 rows", ">=64 rows"
    for (k in xk)
        printf "%-36s %10d %10d\n", k, x[k, "lt64"], x[k, "ge64"]
    if (td > 0) exit 1
}' "$TMP/all.txt"
