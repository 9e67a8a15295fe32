#!/bin/bash
# tests/gpu/cuda_suites.sh — on a GPU host, the three CUDA suites (test_cuda, test_cuda_reference,
# test_ladder) and one run of the probe_backward_inputs diagnostic, each with its log; for
# checking a change to the suites or their shared helpers (tests/common/runs.c, prop.c) where
# they can run rather than skip. A suite that skips (exit 77) counts as a failure here.
#   usage (repository root, BUILD_DIR compiled with -Dgpu_archs=90a -Dnative_cpu=false and the
#   GPU host's runtime packages in .gpu/, see docs/performance-cuda.md "Reproduce"):
#       tests/gpu/cuda_suites.sh OUT_DIR [BUILD_DIR]
# OUT_DIR gets env.txt, test_cuda.txt, test_cuda_reference.txt, test_ladder.txt, probe.txt and
# summary.txt (one "name: exit N" line each). Exits 1 unless every suite exited 0.
set -u
OUT=${1:?usage: tests/gpu/cuda_suites.sh OUT_DIR [BUILD_DIR]}
BUILD=${2:-build-gpu}
mkdir -p "$OUT"
if [ -f .gpu/env.sh ]; then source .gpu/env.sh; fi # the GPU host's runtime libraries
(date -u; git log -1 --oneline; nvidia-smi -L) > "$OUT/env.txt" 2>&1
: > "$OUT/summary.txt"
failed=0
for t in test_cuda test_cuda_reference test_ladder; do
    "$BUILD/tests/cuda/$t" > "$OUT/$t.txt" 2>&1
    rc=$?
    echo "$t: exit $rc" >> "$OUT/summary.txt"
    [ "$rc" -eq 0 ] || failed=1
done
"$BUILD/tests/cuda/probe_backward_inputs" 12345 > "$OUT/probe.txt" 2>&1
echo "probe_backward_inputs 12345: exit $?" >> "$OUT/summary.txt"
cat "$OUT/summary.txt"
exit $failed
