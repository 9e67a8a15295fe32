#!/bin/bash
# examples/flex_sdpa_on_gpu_host.sh — the measurement behind docs/oracle.md's FlexAttention and
# SDPA section, as run on a GPU host that has PyTorch (as its python3) but cannot install
# packages: the flashmask CLI and library built elsewhere (-Dnative_cpu=false -Dcuda=disabled)
# are carried in BIN together with the Debian runtime packages they need (gpu-host/ + libcjson1,
# libgomp1, libquadmath0 in its debs/), unpacked by gpu-host/env.sh.
#   usage: examples/flex_sdpa_on_gpu_host.sh GPU_HOST_DIR BIN_DIR OUT_DIR [budget seconds]
# The Python step starts no case after BUDGET seconds and is stopped at BUDGET + 90 (a compile
# that hangs), so that the judging below always runs. OUT_DIR gets env.txt, gen-suite.txt,
# candidates.txt, check-K.txt and check-K-fa2.txt (per-case verdicts, totals), check-K.json
# (every number), table-K.txt (the 80x48 bottom-right bfloat16 case) and details-K.txt (the full
# table of every case that did not pass), for K in sdpa, flex.
# Layer: examples.
set -u
HOST_DIR=$1 BIN=$2 OUT=$3 BUDGET=${4:-150}
HOST_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}   # PyTorch runs with the host's own loader path
source "$HOST_DIR/env.sh"
export LD_LIBRARY_PATH=$BIN:$LD_LIBRARY_PATH
mkdir -p "$OUT"
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  LD_LIBRARY_PATH=$HOST_LD_LIBRARY_PATH python3 -c \
      'import torch, triton; print("torch", torch.__version__, "cuda", torch.version.cuda,
"triton", triton.__version__)'
} > "$OUT/env.txt" 2>&1
"$BIN/flashmask" gen-suite --out /tmp/fm-suite > "$OUT/gen-suite.txt" 2>&1 || exit 2
rm -rf /tmp/fm-cands
LD_LIBRARY_PATH=$HOST_LD_LIBRARY_PATH PYTHONUNBUFFERED=1 timeout "$((${BUDGET%.*} + 90))" \
    python3 examples/flex_sdpa_candidates.py --suite /tmp/fm-suite --out /tmp/fm-cands \
    --budget "$BUDGET" --verbose > "$OUT/candidates.txt" 2>&1
echo "candidates: exit $?" >> "$OUT/candidates.txt"
for k in sdpa flex; do
    "$BIN/flashmask" check-suite --suite /tmp/fm-suite --candidates /tmp/fm-cands/$k \
        --json "$OUT/check-$k.json" > "$OUT/check-$k.txt" 2>&1
    echo "check-suite $k: exit $?" >> "$OUT/check-$k.txt"
    # the full table of every case that did not pass
    for c in $(awk '$3 == "FAIL" {print $1}' "$OUT/check-$k.txt"); do
        "$BIN/flashmask" check --case /tmp/fm-suite/$c --candidate /tmp/fm-cands/$k/$c
        echo
    done > "$OUT/details-$k.txt" 2>&1
    "$BIN/flashmask" check-suite --suite /tmp/fm-suite --candidates /tmp/fm-cands/$k \
        --allow-fa2-inf-lse > "$OUT/check-$k-fa2.txt" 2>&1
done
# one full table per kernel, on a case with fully masked rows
for k in sdpa flex; do
    "$BIN/flashmask" check --case /tmp/fm-suite/causal-sq80-sk48-br-bf16 \
        --candidate /tmp/fm-cands/$k/causal-sq80-sk48-br-bf16 > "$OUT/table-$k.txt" 2>&1
done
tail -n 3 "$OUT"/candidates.txt "$OUT"/check-*.txt
