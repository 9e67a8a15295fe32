#!/bin/bash
# tools/gpu/torch_cuda.sh — flashmask.torch on CUDA tensors and against FlexAttention, and the
# time to judge a candidate at S = 8192 on the GPU, on a GPU host with PyTorch (>= 2.5) as its
# python3. From the repository root, with a CUDA build of this checkout and the gpu-host
# packages carried over (docs/performance-cuda.md "Reproduce"):
#     bash tools/gpu/torch_cuda.sh BUILD_DIR GPU_HOST_DIR OUT_DIR
# e.g. bash tools/gpu/torch_cuda.sh build-gpu .gpu "$OUT" (about 2-3 minutes; the steps' time
# limits add up to 3 min 40 s). Writes OUT_DIR/summary.txt and OUT_DIR/torch_cuda.tgz
# (env.txt; torch_cuda.txt: tests/gpu/test_torch_cuda.py, verbose; check_scale.jsonl:
# bench/check_scale.py on torch CUDA tensors, S = 8192, H = 8, D = 128, bfloat16, full and
# causal, judged with the float64 GPU oracle and, for the full mask, with the CPU one).
# Exit 0 only when every test ran and passed (a run where everything skipped, e.g. no device,
# is a failure here) and every timed check passed.
# Layer: tools (GPU-host scripts).
set -u
BUILD=$(cd "$1" && pwd) HOST_DIR=$2 OUT=$3
mkdir -p "$OUT"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
source "$(dirname "$0")/common.sh"
gpu_begin "$WORK"           # env.txt: date, GPU, commit
source "$HOST_DIR/env.sh"   # OpenBLAS, cJSON for libflashmask
export FLASHMASK_LIB=$BUILD/libflashmask.so PYTHONPATH=python PYTHONDONTWRITEBYTECODE=1
{ echo "cpus $(nproc)"
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  python3 -c 'import flashmask as fm; print("flashmask", fm.__version__, fm.LIB_PATH)
print("available: cuda", fm.available("cuda"), "reference-cuda", fm.available("reference-cuda"))'
} >> "$WORK/env.txt" 2>&1

rc=0
start=$(date +%s)
timeout 90 python3 -m unittest -v tests/gpu/test_torch_cuda.py > "$WORK/torch_cuda.txt" 2>&1
test_rc=$?
[ $test_rc -eq 0 ] || rc=1
skipped=no
if grep -q "skipped" "$WORK/torch_cuda.txt"; then skipped=yes; rc=1; fi
tests_s=$(( $(date +%s) - start ))

# item: judging a candidate at a real size (docs/python.md "Checking at real sizes")
start=$(date +%s)
timeout 90 python3 bench/check_scale.py --input torch-cuda --oracle reference-cuda --phases \
    > "$WORK/check_scale.jsonl" 2> "$WORK/check_scale.err"
gpu_rc=$?
timeout 40 python3 bench/check_scale.py --input torch-cuda --oracle reference --family full \
    >> "$WORK/check_scale.jsonl" 2>> "$WORK/check_scale.err"
cpu_rc=$?
scale_s=$(( $(date +%s) - start ))
# the CPU oracle's run is for comparison: its time limit fails nothing, a failed verdict does
if [ $gpu_rc -ne 0 ] || { [ $cpu_rc -ne 0 ] && [ $cpu_rc -ne 124 ]; } ||
    grep -q '"passed": false' "$WORK/check_scale.jsonl"; then rc=1; fi

{ echo "torch_cuda.sh: exit $rc"
  cat "$WORK/env.txt"
  echo "--- tests/gpu/test_torch_cuda.py: exit $test_rc, skipped: $skipped, ${tests_s} s"
  tail -n 25 "$WORK/torch_cuda.txt"
  echo "--- bench/check_scale.py (exit $gpu_rc with the GPU oracle, $cpu_rc with the CPU one;" \
       "124 = time limit), ${scale_s} s"
  cat "$WORK/check_scale.jsonl"
  tail -n 20 "$WORK/check_scale.err"
} > "$OUT/summary.txt"
tar -czf "$OUT/torch_cuda.tgz" -C "$WORK" .
cat "$OUT/summary.txt"
exit $rc
