/* cuda/kernels.h — what the CUDA layer's kernels take and how the API reaches them: one
 * parameter block for forward and backward, the key-block width the whole layer shares, and the
 * launchers (one per pass, dispatching on element type and head dimension).
 * Layer: cuda (private; C++ only). The public API is include/flashmask/cuda.h (api.cu).
 */
#ifndef FM_CUDA_KERNELS_H
#define FM_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "flashmask/masks.h"

/* Every kernel walks keys in blocks of this many columns, so one per-key-block summary (the
 * GPU pre-pass, summary.cu) serves the forward pass and both backward kernels. */
enum { FM_CUDA_BLOCK_K = 64 };

/* The sizes and pointers of one call. Tensors are contiguous: q, out, dout, dq [B,Hq,Sq,D];
 * k, v, dk, dv [B,Hk,Sk,D]; lse, delta [B,Hq,Sq] float32; bounds [B,Hm,Sk,4];
 * summary [B,Hm,n_kblocks,FM_SUMMARY_WIDTH]. Element tensors are __half or __nv_bfloat16. */
struct fm_attn_params {
    const void *q, *k, *v, *out_in, *dout;
    void *out, *dq, *dk, *dv;
    float *lse;         /* forward writes it */
    const float *lse_in; /* backward reads it */
    float *delta;       /* backward workspace: rowsum(dO * O) */
    float *dq_accum;    /* backward workspace [B,Hq,Sq,D], zeroed; NULL: deterministic dQ */
    const int32_t *bounds, *summary;
    int batch, q_heads, kv_heads, mask_heads, seqlen_q, seqlen_k, head_dim, n_kblocks;
    int causal;          /* fm_causal */
    long long offset;    /* fm_causal_offset(causal, Sq, Sk) */
    float scale;
    float live_per_kblock; /* fm_cuda_mask.live_per_kblock: picks the backward's block shape */
};

/* dtype: FM_FLOAT16 or FM_BFLOAT16; head_dim one of 32, 64, 96, 128, 256 (checked by api.cu). */
cudaError_t fm_cuda_launch_summary(const int32_t *bounds, int32_t *summary, int batch, int heads,
                                   int seqlen_q, int seqlen_k, cudaStream_t stream);
/* *count = the live tiles of FM_CUDA_LIVE_ROWS query rows x one key block, over every
 * (b, mask head, key block) (count: device memory). */
enum { FM_CUDA_LIVE_ROWS = 64 };

/* The fraction of 64-row x key-block tiles the mask leaves live; below FM_CUDA_SPARSE_BELOW the
 * backward takes its sparse-mask forms (one-warpgroup dK/dV blocks on Hopper, the jumping walk
 * over query blocks): every family measured at <= 22% live gained from them, every one at
 * >= 50% lost (docs/performance-cuda.md). */
#define FM_CUDA_SPARSE_BELOW 0.35f
static inline float fm_cuda_live_fraction(const fm_attn_params &p)
{
    return p.live_per_kblock / (float)((p.seqlen_q + FM_CUDA_LIVE_ROWS - 1) / FM_CUDA_LIVE_ROWS);
}
static inline bool fm_cuda_sparse_mask(const fm_attn_params &p)
{
    return fm_cuda_live_fraction(p) < FM_CUDA_SPARSE_BELOW;
}
cudaError_t fm_cuda_launch_live_tiles(const int32_t *summary, int batch, int heads, int seqlen_q,
                                      int seqlen_k, int causal, unsigned long long *count,
                                      cudaStream_t stream);
cudaError_t fm_cuda_launch_forward(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);
/* forward.cu's mma.sync kernel alone, never the Hopper one (ladder step 4) */
cudaError_t fm_cuda_launch_forward_mma(const fm_attn_params &p, fm_dtype dtype,
                                       cudaStream_t stream);
/* The Hopper path (forward_wgmma.cu, backward_wgmma.cu: wgmma, D = 128), built when gpu_archs
 * contains 90a (FM_CUDA_WGMMA). fm_cuda_use_wgmma says whether it serves a call: D = 128, the
 * current device is compute capability 9.0, and FM_CUDA_WGMMA is not "0" in the environment
 * (the switch that sends everything to the mma.sync kernels, for comparison and tests). */
#ifdef FM_CUDA_WGMMA
bool fm_cuda_use_wgmma(int head_dim);
/* backward_wgmma.cu's dK/dV kernel (with the atomic dQ when do_dq) */
cudaError_t fm_cuda_launch_dkdv_wgmma(const fm_attn_params &p, fm_dtype dtype, bool do_dq,
                                      cudaStream_t stream);
/* dQ by query blocks, no atomics (writes p.dq) */
cudaError_t fm_cuda_launch_dq_wgmma(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);
/* forward_wgmma.cu: the warp-specialised forward (TMA + wgmma). cudaErrorNotSupported when it
 * cannot serve the call (D != 128, FM_CUDA_FWD_WGMMA=0, a tensor the copy engine cannot
 * describe, e.g. not 16-byte aligned): the caller then runs forward.cu's kernel. */
cudaError_t fm_cuda_launch_forward_wgmma(const fm_attn_params &p, fm_dtype dtype,
                                         cudaStream_t stream);
#else /* not built: never used (the stubs keep the callers free of #ifdefs) */
static inline bool fm_cuda_use_wgmma(int) { return false; }
static inline cudaError_t fm_cuda_launch_dkdv_wgmma(const fm_attn_params &, fm_dtype, bool,
                                                    cudaStream_t)
{
    return cudaErrorNotSupported;
}
static inline cudaError_t fm_cuda_launch_dq_wgmma(const fm_attn_params &, fm_dtype, cudaStream_t)
{
    return cudaErrorNotSupported;
}
static inline cudaError_t fm_cuda_launch_forward_wgmma(const fm_attn_params &, fm_dtype,
                                                       cudaStream_t)
{
    return cudaErrorNotSupported;
}
#endif
cudaError_t fm_cuda_launch_backward(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);
/* The backward with its dK/dV (and dQ) kernels chosen by the caller: wgmma (backward_wgmma.cu,
 * D = 128 only; the caller checks fm_cuda_use_wgmma's conditions) or mma.sync (backward.cu).
 * fm_cuda_launch_backward is this with wgmma = fm_cuda_use_wgmma(head_dim). */
cudaError_t fm_cuda_launch_backward_path(const fm_attn_params &p, fm_dtype dtype, bool wgmma,
                                         cudaStream_t stream);

#endif
