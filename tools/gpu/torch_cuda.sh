#!/bin/bash
# tools/gpu/torch_cuda.sh — flashmask.torch on CUDA tensors and against FlexAttention, on a GPU
# host with PyTorch (>= 2.5) as its python3. From the repository root, with a CUDA build of this
# checkout and the gpu-host packages carried over (docs/performance-cuda.md "Reproduce"):
#     bash tools/gpu/torch_cuda.sh BUILD_DIR GPU_HOST_DIR OUT_DIR
# e.g. bash tools/gpu/torch_cuda.sh build-gpu .gpu "$OUT". Writes OUT_DIR/env.txt and
# OUT_DIR/torch_cuda.txt (tests/gpu/test_torch_cuda.py, verbose). Exit 0 only when every test
# ran and passed (a run where everything skipped, e.g. no device, is a failure here).
# Layer: tools (GPU-host scripts).
set -u
BUILD=$(cd "$1" && pwd) HOST_DIR=$2 OUT=$3
mkdir -p "$OUT"
source "$HOST_DIR/env.sh"   # OpenBLAS, cJSON for libflashmask
{ date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  FLASHMASK_LIB=$BUILD/libflashmask.so PYTHONPATH=python python3 -c \
      'import flashmask as fm; print("flashmask", fm.__version__, fm.LIB_PATH)'
} > "$OUT/env.txt" 2>&1
FLASHMASK_LIB=$BUILD/libflashmask.so PYTHONPATH=python PYTHONDONTWRITEBYTECODE=1 \
    python3 -m unittest -v tests/gpu/test_torch_cuda.py > "$OUT/torch_cuda.txt" 2>&1
rc=$?
tail -n 5 "$OUT/torch_cuda.txt"
if grep -q "skipped" "$OUT/torch_cuda.txt"; then
    echo "torch_cuda: tests were skipped (no device, no CUDA layer or no FlexAttention)"
    rc=1
fi
exit $rc
