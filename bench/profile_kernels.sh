#!/bin/bash
# bench/profile_kernels.sh — Nsight Compute on our forward and backward kernels (bf16, 8K, D = 128,
# full and causal_document), to say what limits each: speed of light (compute / memory), the
# pipes' utilisation (tensor cores), issue-slot use, warp stall reasons, occupancy. Run on a GPU
# host from the repository root with a CUDA build (docs/performance-cuda.md "Reproduce"):
#     bash bench/profile_kernels.sh BUILD_DIR OUT_DIR [CONFIG] [FAMILIES] [KERNEL_SPEC]
# Writes OUT_DIR/ncu.ncu-rep (open it in Nsight Compute) and OUT_DIR/ncu_summary.txt (the
# sections as text). Clocks are left alone (--clock-control none). Layer: tools (benchmark).
set -u
BUILD=$1 OUT=$2 CONFIG=${3:-16x8192x128} FAMILIES=${4:-full,causal_document} KERNEL=${5:-auto}
mkdir -p "$OUT"
ncu --clock-control none --target-processes all \
    -k regex:'fm_(forward_wide|forward_pingpong|forward_wgmma|dkdv_pipelined|dkdv_wgmma|dq_wgmma|forward|dkdv|dq|delta)_kernel' \
    --section SpeedOfLight --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis \
    --section Occupancy --section LaunchStats --section SchedulerStats --section WarpStateStats \
    --section InstructionStats \
    -f -o "$OUT/ncu" \
    python3 bench/profile_kernels.py --lib "$BUILD/libflashmask.so" --config "$CONFIG" \
        --families "$FAMILIES" --kernel "$KERNEL" > "$OUT/ncu_run.log" 2>&1
rc=$?
ncu --import "$OUT/ncu.ncu-rep" --page details --print-units base > "$OUT/ncu_summary.txt" 2>&1
exit $rc
