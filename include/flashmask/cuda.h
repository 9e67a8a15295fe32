/* flashmask/cuda.h — the CUDA layer: FlashMask forward/backward kernels on tensor cores in
 * float16/bfloat16 (p->dtype), float32 accumulation and LSE.
 * Layer: cuda <- masks <- core. Built only when CUDA is enabled; otherwise every call returns
 * FM_ERR_UNAVAILABLE with a message. The host-memory path below converts float64 host tensors
 * to p->dtype, runs on the current device and converts back (used by fm_forward/fm_backward and
 * `flashmask run --impl cuda`). The float64 oracle on the GPU (fm_cuda_reference_*) is at
 * the end.
 */
#ifndef FLASHMASK_CUDA_H
#define FLASHMASK_CUDA_H

#include "flashmask/masks.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- kernel choice */

/* Which kernels a call runs. All zero (fm_kernel_options_default, or NULL where a pointer is
 * taken) lets cuda/heuristics.cu decide, which is what every caller should do unless it
 * measures or tests one variant; the decision and the measurements behind it are
 * cuda/heuristics.cu's and docs/performance-cuda.md's. Nothing in the library reads the
 * environment: tests, the CLI (`--kernel`), Python (`kernel=`) and the benchmark choose here. */
typedef enum fm_kernel_choice {
    FM_KERNEL_AUTO = 0,  /* the heuristics decide */
    FM_KERNEL_MMA = 1,   /* the mma.sync kernels (forward.cu, backward.cu): every GPU, every D */
    FM_KERNEL_WGMMA = 2, /* the Hopper kernels (forward_wgmma.cu, backward_wgmma.cu): a build
                            with 90a in gpu_archs, a compute capability 9.0 device, D = 64
                            or 128; as a forward choice, the wgmma
                            forward without the ping-pong schedule */
    FM_KERNEL_PINGPONG = 3, /* forward only: the Hopper forward with its two warpgroups taking
                               turns at the tensor cores and each tile's softmax overlapping the
                               next tile's products (forward_pingpong.cu; same conditions and
                               the same results as FM_KERNEL_WGMMA) */
    FM_KERNEL_WIDE = 4,     /* forward only: the ping-pong forward on 128-key stages, two live
                               64-key blocks each (forward_wide.cu; same conditions; results
                               differ from the 64-key kernels' by the order of float32 sums) */
    FM_KERNEL_PIPELINED = 5 /* backward only: the Hopper dK/dV kernel with a TMA producer warp
                               feeding two consumer warpgroups through mbarrier stages
                               (backward_pipelined.cu; the conditions of FM_KERNEL_WGMMA; the
                               same products as its two-warpgroup block, so results differ
                               from it at most by the order of the float32 dQ additions) */
} fm_kernel_choice;

typedef enum fm_fwd_shape {
    FM_FWD_SHAPE_AUTO = 0, /* 4 warps of 2 x 16 rows */
    FM_FWD_SHAPE_8X1 = 1,  /* 8 warps of 16 rows */
    FM_FWD_SHAPE_4X2 = 2,  /* 4 warps of 2 x 16 rows */
    FM_FWD_SHAPE_8X2 = 3   /* 8 warps of 2 x 16 rows */
} fm_fwd_shape;

typedef struct fm_kernel_options {
    int32_t forward;        /* fm_kernel_choice of the forward pass */
    int32_t backward;       /* fm_kernel_choice of the backward pass */
    int32_t fwd_shape;      /* fm_fwd_shape of the mma.sync forward at D = 64 and 128 (other
                               head dims and the wgmma forward have one shape each) */
    int32_t bwd_warpgroups; /* 0 auto, 1 or 2: the wgmma dK/dV kernel's warpgroups (64 or 128
                               keys per block) when that kernel runs */
    int32_t deterministic;  /* 1: dQ in a fixed order by its own kernel, as p->flags'
                               FM_FLAG_DETERMINISTIC asks; 0: as p->flags says */
} fm_kernel_options;

void fm_kernel_options_default(fm_kernel_options *o); /* every field auto / 0 */
int fm_kernel_options_is_default(const fm_kernel_options *o); /* 1 if NULL or all auto */

/* Reads a spec such as "auto", "mma", "wgmma", or a comma list of fwd=auto|mma|wgmma|pingpong|wide,
 * bwd=auto|mma|wgmma|pipelined, shape=8x1|4x2|8x2, wgs=1|2, deterministic (a bare "mma" / "wgmma" sets
 * both passes). FM_ERR_INVALID names the item it cannot read. */
fm_status fm_kernel_options_parse(const char *spec, fm_kernel_options *o);
/* The spec that fm_kernel_options_parse reads back into *o ("auto" for the default). */
void fm_kernel_options_format(const fm_kernel_options *o, char *buf, size_t len);

/* FM_OK if the layer was built and a CUDA device of compute capability >= 8.0 is present. */
fm_status fm_cuda_available(void);

/* Host memory: float64 tensors in and out (fm_tensors); inputs are rounded to p->dtype, which
 * must be FM_FLOAT16 or FM_BFLOAT16. Any head dimension 1..256 (padded with zeros up to the
 * next of 32, 64, 96, 128, 256, which changes no dot product). Synchronous. */
/* `opt` (NULL: auto) chooses the kernels; inputs are validated by the caller (fm_forward). */
fm_status fm_cuda_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                               const fm_kernel_options *opt);
fm_status fm_cuda_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                                const fm_kernel_options *opt);

/* ---------------------------------------------------------------- device memory */

/* A mask resident on the device: the bounds [B, Hm, Sk, 4] and their per-key-block summary
 * (min/max of each bound per block of 64 keys, computed on the GPU by a pre-pass kernel at
 * upload with the definition of fm_block_summary_build). Owned; free with fm_cuda_mask_free. */
typedef struct fm_cuda_mask {
    int64_t batch, heads, seqlen_q, seqlen_k;
    fm_causal causal;
    int64_t block_k, n_blocks; /* the summary's key-block width and count */
    int32_t *bounds;           /* device */
    int32_t *summary;          /* device [B, Hm, n_blocks, FM_SUMMARY_WIDTH] */
    double live_per_kblock;    /* mean live (not fully masked) tiles of 64 query rows per key
                                  block, counted at upload: over ceil(Sq / 64), the live-tile
                                  fraction that picks the backward's block shape on Hopper
                                  (docs/performance-cuda.md) */
} fm_cuda_mask;

/* Validates the host mask (fm_mask_validate), copies it to the current device and runs the
 * summary pre-pass (and counts the live tiles). Synchronous. */
fm_status fm_cuda_mask_upload(const fm_mask *mask, fm_cuda_mask *out);
void fm_cuda_mask_free(fm_cuda_mask *m); /* safe on a zeroed or already freed mask */

/* Copies the device summary to host memory `out` ([B, Hm, n_blocks, FM_SUMMARY_WIDTH] int32,
 * the layout of fm_block_summary.minmax): how tests compare the GPU pre-pass with masks/. */
fm_status fm_cuda_copy_summary(const fm_cuda_mask *m, int32_t *out);

/* The same calling shape as the other layers, on device pointers: q, k, v, out, dout, dq, dk,
 * dv hold p->dtype elements (float16 or bfloat16, contiguous [B,H,S,D]); lse is float32
 * [B,Hq,Sq]. Element tensors must start on a 16-byte boundary and lse on a 4-byte one (as
 * cudaMalloc's pointers do; FM_ERR_INVALID otherwise, before any launch).
 * head_dim must be 32, 64, 96, 128 or 256. `stream` is a cudaStream_t (NULL: the
 * default stream); the calls are asynchronous on it and do not check input finiteness.
 * Backward reads out and lse as fm_cuda_forward wrote them. dK and dV are always summed in a
 * fixed order; dQ is summed in float32 with atomics (order varies run to run) unless
 * p->flags has FM_FLAG_DETERMINISTIC (or opt->deterministic), which computes it in a fixed
 * order by a second kernel. `opt` (NULL: auto) chooses the kernels; a choice the build or the
 * device cannot run is refused (FM_ERR_UNAVAILABLE, or FM_ERR_INVALID for a head dimension the
 * variant does not serve) before any launch. */
fm_status fm_cuda_forward(const fm_problem *p, const fm_cuda_mask *mask, const void *q,
                          const void *k, const void *v, void *out, float *lse,
                          const fm_kernel_options *opt, void *stream);
fm_status fm_cuda_backward(const fm_problem *p, const fm_cuda_mask *mask, const void *q,
                           const void *k, const void *v, const void *out, const float *lse,
                           const void *dout, void *dq, void *dk, void *dv,
                           const fm_kernel_options *opt, void *stream);

/* ---------------------------------------------------------------- the float64 oracle on the GPU */

/* The reference (flashmask/reference.h: the same function, fully masked rows giving out = 0,
 * lse = -inf and no gradient) computed in float64 on the GPU's FP64 tensor cores, tiled: O(S D)
 * memory, fully masked tiles skipped, so that expected outputs exist at long contexts (128K
 * and beyond). No float32 anywhere; the backward recomputes P from the given LSE and Delta from
 * out and dout, in float64, and sums in a fixed order (the same bits on every run).
 * docs/reference.md says how it is computed and why it agrees with the CPU reference.
 * p->dtype is ignored (always float64); head_dim 1..256; B*Hq <= 65535.
 * A device whose shared memory per block is below 99 KB: FM_ERR_UNAVAILABLE. */

/* Tests: 1 makes the float64 GPU oracle take its small tiles (those of compute capability 8.x
 * devices, 99 KB of shared memory) even where the big ones fit, so one Hopper host tests both;
 * 0 (the default) restores the choice by the device's shared memory. */
void fm_cuda_reference_force_small_tiles(int on);

/* Host memory: float64 fm_tensors as fm_forward / fm_backward take them (inputs are used as
 * they are, not rounded). Synchronous. The backward refuses an lse that does not fit its row
 * and both refuse results that overflow float64, as the CPU reference does. */
fm_status fm_cuda_reference_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t);
fm_status fm_cuda_reference_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t);

/* Device memory: float64 tensors, contiguous [B,H,S,D] (lse [B,Hq,Sq]), 8-byte aligned.
 * Asynchronous on `stream` (a cudaStream_t; NULL: the default stream); no finiteness checks. */
fm_status fm_cuda_reference_forward(const fm_problem *p, const fm_cuda_mask *mask,
                                    const double *q, const double *k, const double *v,
                                    double *out, double *lse, void *stream);
fm_status fm_cuda_reference_backward(const fm_problem *p, const fm_cuda_mask *mask,
                                     const double *q, const double *k, const double *v,
                                     const double *out, const double *lse, const double *dout,
                                     double *dq, double *dk, double *dv, void *stream);

/* ---------------------------------------------------------------- the kernel ladder */

/* The kernels of docs/cuda-ladder.md, selected by step number: forward 1 (one thread per query
 * row, the element rule on every pair), 2 (shared-memory tiles and tile skipping on CUDA
 * cores), 3 (the same on tensor cores, mma.sync), 4 (the tuned mma.sync kernel), 5 (the
 * warp-specialised Hopper kernel: head_dim 128, compute capability 9.0, built with 90a);
 * backward 1, 2, 4 and 5 likewise (there is no backward step 3). Step 0 is the library's own
 * choice, what fm_cuda_forward / fm_cuda_backward run. Arguments and results are those of the
 * calls without a step; backward steps 1 and 2 sum every gradient in a fixed order whatever
 * p->flags says. */
enum { FM_CUDA_LADDER_STEPS = 5 };

/* FM_OK when step `step` of the forward (backward != 0: the backward) can serve head_dim (the
 * kernels' head dimension: 32, 64, 96, 128 or 256) here; FM_ERR_UNAVAILABLE when this build or
 * device cannot run it (no device, step 5 off Hopper), FM_ERR_INVALID when the request is
 * wrong (a step out of range, backward step 3, step 5 at head_dim != 128); the message says
 * which. */
fm_status fm_cuda_ladder_check(int step, int backward, int64_t head_dim);

fm_status fm_cuda_forward_step(int step, const fm_problem *p, const fm_cuda_mask *mask,
                               const void *q, const void *k, const void *v, void *out,
                               float *lse, void *stream);
fm_status fm_cuda_backward_step(int step, const fm_problem *p, const fm_cuda_mask *mask,
                                const void *q, const void *k, const void *v, const void *out,
                                const float *lse, const void *dout, void *dq, void *dk, void *dv,
                                void *stream);
/* Host memory, as fm_cuda_forward_host / fm_cuda_backward_host (head_dim padded as they do). */
fm_status fm_cuda_forward_host_step(int step, const fm_problem *p, const fm_mask *mask,
                                    fm_tensors *t);
fm_status fm_cuda_backward_host_step(int step, const fm_problem *p, const fm_mask *mask,
                                     fm_tensors *t);

#ifdef __cplusplus
}
#endif
#endif
