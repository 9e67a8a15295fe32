# tools/gpu/common.sh — sourced by the GPU evidence scripts (kernel_options_check.sh,
# host_code_check.sh, torch_cuda.sh, hopper_forwards.sh, hopper_backward.sh): gpu_begin OUT_DIR
# makes OUT_DIR, loads the GPU host's runtime packages (.gpu/env.sh, docs/performance-cuda.md
# "Reproduce") and records the machine and the commit in OUT_DIR/env.txt; gpu_step runs one
# step of a script with a time limit. Layer: tools (GPU-host scripts).
gpu_begin() {
    mkdir -p "$1"
    [ -f .gpu/env.sh ] && source .gpu/env.sh
    { date -u; nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
      git log -1 --oneline; } > "$1/env.txt" 2>&1
}

# gpu_step NAME LIMIT COMMAND...: runs COMMAND for at most LIMIT seconds with its output in
# $W/NAME.txt, and adds "== NAME: exit RC (T s)" to the summary $S (both set by the caller).
gpu_step() {
    local name=$1 limit=$2
    shift 2
    local t0=$SECONDS
    timeout "$limit" "$@" > "$W/$name.txt" 2>&1
    local rc=$? note=""
    [ $rc = 124 ] && note=", stopped at its limit"
    echo "== $name: exit $rc ($((SECONDS - t0)) s$note)" | tee -a "$S"
    return $rc
}
