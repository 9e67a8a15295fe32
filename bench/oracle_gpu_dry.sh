#!/bin/sh
# bench/oracle_gpu_dry.sh — bench/oracle_gpu_rates.py without a GPU (meson test
# oracle_gpu_rates_dry): the driver (random shapes and FlexAttention's menu), the judging
# workers, the split of a large problem into one job per candidate and rule, and --merge, with libflashmask's cpu layer as the (correct)
# candidate. Fails when the script fails, judges nothing, or the derived rule raises an alarm.
#   usage: oracle_gpu_dry.sh SOURCE_ROOT OUT_DIR [PYTHON (/usr/bin/python3)]
# Needs FLASHMASK_LIB (meson sets it). Layer: bench (a test driver).
set -eu
SRC=$1
OUT=$2
PY=${3:-/usr/bin/python3}
rm -rf "$OUT"
mkdir -p "$OUT"
export PYTHONPATH="$SRC/python" PYTHONDONTWRITEBYTECODE=1
"$PY" "$SRC/bench/oracle_gpu_rates.py" --backends cpu --budget 6 --big 1 --big-max 600 \
    --workers 2 --seed 20261202 --out "$OUT" --name dry > "$OUT/dry.log"
"$PY" "$SRC/bench/oracle_gpu_rates.py" --backends cpu --budget 4 --shapes menu --big-max 700 \
    --workers 2 --seed 20261203 --out "$OUT" --name menu > "$OUT/menu.log"
"$PY" "$SRC/bench/oracle_gpu_rates.py" --out "$OUT" --name merged \
    --merge "$OUT/dry.json" "$OUT/menu.json" > "$OUT/merged.log"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
d = json.load(open(sys.argv[1] + "/dry.json"))
u = json.load(open(sys.argv[1] + "/menu.json"))
m = json.load(open(sys.argv[1] + "/merged.json"))
n, nu = d["by_backend"]["cpu"]["judged"], u["by_backend"]["cpu"]["judged"]
assert n > 0 and d["candidates"] == n, d
assert any(r["rows"] == "201-1024" for r in d["table"]), "no large problem judged"
assert any(r["rows"] == "201-1024" for r in u["table"]), "the menu's 700 x 600 not judged"
assert m["candidates"] == n + nu and m["by_backend"]["cpu"]["judged"] == n + nu, m
assert not d["errors"] and not u["errors"], (d["errors"], u["errors"])
print(f"dry run: {n} + {nu} (menu) candidates judged, derived alarms "
      f"{m['by_backend']['cpu']['derived']}")
PYEOF
