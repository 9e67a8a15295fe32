# tools/gpu/common.sh — sourced by the GPU evidence scripts (kernel_options_check.sh,
# host_code_check.sh): gpu_begin OUT_DIR makes OUT_DIR, loads the GPU host's runtime packages
# (.gpu/env.sh, docs/performance-cuda.md "Reproduce") and records the machine and the commit in
# OUT_DIR/env.txt. Layer: tools (GPU-host scripts).
gpu_begin() {
    mkdir -p "$1"
    [ -f .gpu/env.sh ] && source .gpu/env.sh
    { date -u; nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
      git log -1 --oneline; } > "$1/env.txt" 2>&1
}
