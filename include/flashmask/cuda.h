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

/* FM_OK if the layer was built and a CUDA device of compute capability >= 8.0 is present. */
fm_status fm_cuda_available(void);

/* Host memory: float64 tensors in and out (fm_tensors); inputs are rounded to p->dtype, which
 * must be FM_FLOAT16 or FM_BFLOAT16. Any head dimension 1..256 (padded with zeros up to the
 * next of 32, 64, 96, 128, 256, which changes no dot product). Synchronous. */
fm_status fm_cuda_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t);
fm_status fm_cuda_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t);

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
 * p->flags has FM_FLAG_DETERMINISTIC, which computes it in a fixed order by a second kernel. */
fm_status fm_cuda_forward(const fm_problem *p, const fm_cuda_mask *mask, const void *q,
                          const void *k, const void *v, void *out, float *lse, void *stream);
fm_status fm_cuda_backward(const fm_problem *p, const fm_cuda_mask *mask, const void *q,
                           const void *k, const void *v, const void *out, const float *lse,
                           const void *dout, void *dq, void *dk, void *dv, void *stream);

/* ---------------------------------------------------------------- the float64 oracle on the GPU */

/* The reference (flashmask/reference.h: the same function, fully masked rows giving out = 0,
 * lse = -inf and no gradient) computed in float64 on the GPU's FP64 tensor cores, tiled: O(S D)
 * memory, fully masked tiles skipped, so that expected outputs exist at long contexts (128K
 * and beyond). No float32 anywhere; the backward recomputes P from the given LSE and Delta from
 * out and dout, in float64, and sums in a fixed order (the same bits on every run).
 * docs/reference.md says how it is computed and why it agrees with the CPU reference.
 * p->dtype is ignored (always float64); head_dim 1..256; B*Hq <= 65535.
 * A device whose shared memory per block is below 99 KB: FM_ERR_UNAVAILABLE. */

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

#ifdef __cplusplus
}
#endif
#endif
