/* cuda/heuristics.cu — which kernels run, decided in one place (heuristics.h). The launchers in
 * forward.cu, backward.cu, forward_wgmma.cu and backward_wgmma.cu follow the plan made here and
 * read nothing else; nothing here reads the environment: callers choose through
 * fm_kernel_options (the CLI's --kernel, Python's kernel=, the benchmark, the tests).
 *
 * The rules, each measured on an H200 (the numbers and their history: docs/performance-cuda.md):
 * - wgmma (Hopper, D = 64 and 128) when built (gpu_archs has 90a) and the device is 9.0: both
 *   passes beat the mma.sync kernels there on every family at D = 128; the forward at D = 64
 *   as well (2026-12-02, H = 32, 8K: 1.16x forward.cu's geomean, no family below 1.01x). The
 *   backward takes them at D = 64 too (the same kernel, templated on D): compared with the
 *   mma.sync backward across runs only (full 184 -> 213 TFLOP/s, 11 of 12 families faster,
 *   random_eviction 130 -> 121), not yet in one process.
 * - mma.sync forward at D = 64 and 128: 4 warps of 2 x 16 rows, the two 16-row halves of a warp
 *   sharing each K/V fragment read from shared memory.
 * - sparse masks (fewer than FM_CUDA_SPARSE_BELOW of the 64-row x key-block tiles live): the
 *   backward takes its sparse forms — one-warpgroup wgmma dK/dV blocks (every family measured
 *   at <= 22% live gained, every one at >= 50% lost), and on the mma.sync path the walk that
 *   jumps over fully masked query blocks.
 * - the wgmma dK/dV kernel with two warpgroups (128 keys) halves the dQ atomics; the
 *   deterministic mode has no atomics to save and takes one.
 * - the pipelined backward (backward_pipelined.cu: the two-warpgroup dK/dV block fed by a TMA
 *   producer warp) is auto's at D = 128, dense or sparse, deterministic or not, and at D = 64
 *   where the two-warpgroup wgmma block would run (dense, not deterministic): in one process
 *   against the wgmma backward it was faster on every family at D = 128 (8K and 32K, 1.14x to
 *   1.41x; deterministic 1.10x to 1.23x) and on the dense families at D = 64 (1.30x to 1.40x),
 *   where the sparse ones, which the one-warpgroup block serves, were 0.96x to 1.01x.
 * - the Hopper forward is the wide one (forward_wide.cu: the ping-pong schedule on 128-key
 *   stages): 1.08x forward_pingpong.cu's geomean at 8K, 1.07x at 32K (D = 128, every family
 *   faster), 1.11x at D = 64; fwd=pingpong and fwd=wgmma still ask for the 64-key kernels.
 * Layer: cuda <- masks <- core.
 */
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

#include "heuristics.h"
extern "C" {
#include "fm_internal.h" /* a C header without C++ guards */
}

#define FM_CUDA_SPARSE_BELOW 0.35f

/* The fraction of 64-row x key-block tiles the mask leaves live (counted at upload). */
static bool sparse_mask(const fm_attn_params &p)
{
    const float qblocks = (float)((p.seqlen_q + FM_CUDA_LIVE_ROWS - 1) / FM_CUDA_LIVE_ROWS);
    return p.live_per_kblock / qblocks < FM_CUDA_SPARSE_BELOW;
}

/* FM_OK when the wgmma kernels can run on the current device; else the reason. */
static fm_status wgmma_runs(void)
{
#ifdef FM_CUDA_WGMMA
    static int capability[64]; /* per device: 0 unknown, 1 is 9.0, 2 is not */
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64)
        return fm_fail(FM_ERR_UNAVAILABLE, "cuda: no current device for the wgmma kernels");
    if (!capability[dev]) {
        int major = 0, minor = 0;
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev);
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev);
        capability[dev] = major == 9 && minor == 0 ? 1 : 2;
    }
    if (capability[dev] == 1) return FM_OK;
    return fm_fail(FM_ERR_UNAVAILABLE, "cuda: the wgmma kernels need a compute capability 9.0 "
                   "device (device %d is not)", dev);
#else
    return fm_fail(FM_ERR_UNAVAILABLE, "cuda: the wgmma kernels were not built (gpu_archs "
                   "lacks 90a)");
#endif
}

/* Whether a pass runs the wgmma kernels: forced, refused, or decided. FM_KERNEL_PINGPONG and
 * FM_KERNEL_WIDE (the forward's other Hopper kernels) and FM_KERNEL_PIPELINED (the backward's)
 * are wgmma choices with the same conditions. Both passes are built for D = 64 and 128; auto
 * takes them wherever they are built. */
static fm_status choose_wgmma(int choice, int head_dim, const char *pass, bool *use)
{
    *use = false;
    const bool forward = strcmp(pass, "forward") == 0;
    if (choice == FM_KERNEL_MMA) return FM_OK;
    const bool forward_only = choice == FM_KERNEL_PINGPONG || choice == FM_KERNEL_WIDE;
    const bool backward_only = choice == FM_KERNEL_PIPELINED;
    const char *name = choice == FM_KERNEL_PINGPONG    ? "pingpong"
                       : choice == FM_KERNEL_WIDE      ? "wide"
                       : choice == FM_KERNEL_PIPELINED ? "pipelined"
                                                       : "wgmma";
    if (forward_only && !forward)
        return fm_fail(FM_ERR_INVALID, "kernel options: %s is a forward kernel (the %s has "
                       "none)", name, pass);
    if (backward_only && forward)
        return fm_fail(FM_ERR_INVALID, "kernel options: %s is a backward kernel (the %s has "
                       "none)", name, pass);
    const bool served = head_dim == 64 || head_dim == 128;
    if (choice == FM_KERNEL_AUTO) {
        *use = served && wgmma_runs() == FM_OK;
        fm_clear_error(); /* auto: a device without wgmma is no error */
        return FM_OK;
    }
    if (choice != FM_KERNEL_WGMMA && !forward_only && !backward_only)
        return fm_fail(FM_ERR_INVALID, "kernel options: unknown %s kernel %d", pass, choice);
    if (!served)
        return fm_fail(FM_ERR_INVALID, "kernel options: the %s %s serves head_dim 64 and 128 "
                       "only (this call: %d)", name, pass, head_dim);
    fm_status st = wgmma_runs();
    *use = st == FM_OK;
    if (st != FM_OK && backward_only) { /* name the option the caller gave */
        char why[256];
        snprintf(why, sizeof why, "%s", fm_last_error());
        return fm_fail(st, "kernel options: %s=%s: %s", forward ? "fwd" : "bwd", name, why);
    }
    return st;
}

fm_status fm_cuda_plan_kernels(const fm_problem *p, const fm_attn_params &kp,
                               const fm_kernel_options *opt, bool backward, fm_kernel_plan *plan)
{
    fm_kernel_options o;
    if (opt) o = *opt;
    else fm_kernel_options_default(&o);
    *plan = fm_kernel_plan{};
    if ((unsigned)o.fwd_shape > FM_FWD_SHAPE_8X2)
        return fm_fail(FM_ERR_INVALID, "kernel options: unknown forward shape %d",
                       (int)o.fwd_shape);
    if (o.bwd_warpgroups < 0 || o.bwd_warpgroups > 2)
        return fm_fail(FM_ERR_INVALID, "kernel options: bwd_warpgroups = %d, must be 0, 1 or 2",
                       (int)o.bwd_warpgroups);
    plan->deterministic = (p->flags & FM_FLAG_DETERMINISTIC) || o.deterministic;
    if (!backward) {
        plan->fwd_shape = o.fwd_shape;
        fm_status st = choose_wgmma(o.forward, kp.head_dim, "forward", &plan->fwd_wgmma);
        plan->fwd_wide = plan->fwd_wgmma && (o.forward == FM_KERNEL_WIDE ||
                                             o.forward == FM_KERNEL_AUTO);
        plan->fwd_pingpong = plan->fwd_wgmma && o.forward == FM_KERNEL_PINGPONG;
        return st;
    }
    fm_status st = choose_wgmma(o.backward, kp.head_dim, "backward", &plan->bwd_wgmma);
    if (st != FM_OK) return st;
    const bool sparse = sparse_mask(kp);
    plan->bwd_jump = sparse;
    plan->bwd_warpgroups = o.bwd_warpgroups ? o.bwd_warpgroups
                                            : (!plan->deterministic && !sparse ? 2 : 1);
    const bool auto_pipelined = o.backward == FM_KERNEL_AUTO && !o.bwd_warpgroups &&
                                plan->bwd_wgmma &&
                                (kp.head_dim == 128 || (!sparse && !plan->deterministic));
    if (o.backward == FM_KERNEL_PIPELINED || auto_pipelined) { /* 128 keys, two warpgroups */
        if (o.bwd_warpgroups == 1)
            return fm_fail(FM_ERR_INVALID, "kernel options: wgs=1 is the wgmma backward's "
                           "one-warpgroup block; bwd=pipelined has two warpgroups");
        plan->bwd_pipelined = true;
        /* where the pipelined kernel declines (a tensor the copy engine cannot describe),
         * backward_wgmma.cu runs: asked for by name, in the same block shape; by auto, in
         * the shape the mask's density picked above */
        if (o.backward == FM_KERNEL_PIPELINED) plan->bwd_warpgroups = 2;
    }
    return FM_OK;
}
