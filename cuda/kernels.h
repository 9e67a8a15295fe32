/* cuda/kernels.h — what the CUDA layer's kernels take and how the API reaches them: one
 * parameter block for forward and backward, the key-block width the whole layer shares, and the
 * launchers (one per pass, dispatching on element type and head dimension).
 * Layer: cuda (private; C++ only). The public API is include/flashmask/cuda.h (api.cu).
 */
#ifndef FM_CUDA_KERNELS_H
#define FM_CUDA_KERNELS_H

#include <cuda_runtime.h>
#include <stdint.h>

#include "flashmask/cuda.h" /* fm_fwd_shape, fm_kernel_options */
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
    float *dq_accum;    /* backward workspace, zeroed (fm_cuda_dq_accum_elems; row-major or
                           blocked, see below); NULL: deterministic dQ */
    const int32_t *bounds, *summary;
    int batch, q_heads, kv_heads, mask_heads, seqlen_q, seqlen_k, head_dim, n_kblocks;
    int causal;          /* fm_causal */
    long long offset;    /* fm_causal_offset(causal, Sq, Sk) */
    float scale;
    float live_per_kblock; /* fm_cuda_mask.live_per_kblock: what the heuristics read */
};

/* The float32 dQ accumulator (p.dq_accum) in one of two layouts, both within
 * fm_cuda_dq_accum_elems floats (Sq rounded up to whole 64-row query blocks):
 *   row-major: [B,Hq,Sq,D], added to with atomics (backward.cu's dK/dV kernel);
 *   blocked (D = 64 and 128): one contiguous 64 x D chunk per (batch, query head, 64-row query
 *     block), chunk (b * Hq + h) * ceil(Sq / 64) + qb, element (r, c) of the chunk at
 *     fm_dq_chunk_offset(r, c). That order is a warpgroup's wgmma accumulators with each
 *     thread's four values of one 8-column block adjacent: 8-column block n = c / 8 is a run of
 *     512 floats in which thread u of the warpgroup (warp r / 16, lane (r % 8) * 4 + (c % 8) / 2)
 *     holds element (r, c) in its register e = 2 ((r % 16) / 8) + c % 2, the float4s of threads
 *     0..127 one after the other. The accumulators of a product of N columns (N = 32 or 64,
 *     starting at a multiple of N) are then one contiguous run of N / 8 blocks: threads stage
 *     it in shared memory with one conflict-free float4 store per block, and one bulk reduction
 *     adds it in. Rows past Sq receive zeros and are never read. */
__host__ __device__ constexpr int fm_dq_chunk_offset(int r, int c)
{
    return (c >> 3) * 512 + ((r >> 4) * 32 + (r & 7) * 4 + ((c & 7) >> 1)) * 4 +
           ((r >> 3) & 1) * 2 + (c & 1);
}
static inline size_t fm_cuda_dq_accum_elems(const fm_attn_params &p)
{
    return (size_t)p.batch * p.q_heads * ((p.seqlen_q + 63) / 64) * 64 * p.head_dim;
}

/* dtype: FM_FLOAT16 or FM_BFLOAT16; head_dim one of 32, 64, 96, 128, 256 (checked by api.cu). */
cudaError_t fm_cuda_launch_summary(const int32_t *bounds, int32_t *summary, int batch, int heads,
                                   int seqlen_q, int seqlen_k, cudaStream_t stream);
/* *count = the live tiles of FM_CUDA_LIVE_ROWS query rows x one key block, over every
 * (b, mask head, key block) (count: device memory). */
enum { FM_CUDA_LIVE_ROWS = 64 };

cudaError_t fm_cuda_launch_live_tiles(const int32_t *summary, int batch, int heads, int seqlen_q,
                                      int seqlen_k, int causal, unsigned long long *count,
                                      cudaStream_t stream);

/* Which kernels one call runs: cuda/heuristics.cu decides (fm_cuda_plan_kernels, from the
 * caller's fm_kernel_options, the build, the device and the mask); the launchers below only
 * follow the plan. */
struct fm_kernel_plan {
    bool fwd_wgmma;     /* forward_wgmma.cu (which may still decline: see below) */
    bool fwd_pingpong;  /* with fwd_wgmma: forward_pingpong.cu instead (same results) */
    bool fwd_wide;      /* with fwd_wgmma: forward_wide.cu instead (128-key stages) */
    int fwd_shape;      /* fm_fwd_shape of forward.cu's kernel at D = 64 and 128 */
    bool bwd_wgmma;     /* backward_wgmma.cu */
    int bwd_warpgroups; /* 1 or 2: the wgmma dK/dV block (64 or 128 keys) */
    bool bwd_pipelined; /* with bwd_wgmma: backward_pipelined.cu's dK/dV kernel instead */
    bool bwd_jump;      /* backward.cu's dK/dV walk jumps over fully masked query blocks */
    bool deterministic; /* dQ in a fixed order by its own kernel (no dq_accum) */
};

cudaError_t fm_cuda_launch_forward(const fm_attn_params &p, fm_dtype dtype,
                                   const fm_kernel_plan &plan, cudaStream_t stream);
/* The Hopper path (forward_wgmma.cu, forward_pingpong.cu, forward_wide.cu, backward_wgmma.cu
 * and backward_pipelined.cu, at D = 64 and 128: wgmma), built when gpu_archs contains 90a
 * (FM_CUDA_WGMMA); the plan says whether it serves a call. */
#ifdef FM_CUDA_WGMMA
/* backward_wgmma.cu's dK/dV kernel (adding dQ into p.dq_accum when do_dq), `warpgroups` 1 or 2 */
cudaError_t fm_cuda_launch_dkdv_wgmma(const fm_attn_params &p, fm_dtype dtype, bool do_dq,
                                      int warpgroups, cudaStream_t stream);
/* dQ by query blocks, no atomics (writes p.dq) */
cudaError_t fm_cuda_launch_dq_wgmma(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);
/* backward_pipelined.cu's dK/dV kernel (TMA producer, two consumer warpgroups; the same
 * function as fm_cuda_launch_dkdv_wgmma with two warpgroups). cudaErrorNotSupported when it
 * cannot serve the call (another D, a tensor the copy engine cannot describe): the caller then
 * runs backward_wgmma.cu's kernel. */
cudaError_t fm_cuda_launch_dkdv_pipelined(const fm_attn_params &p, fm_dtype dtype, bool do_dq,
                                          cudaStream_t stream);
/* forward_wgmma.cu: the warp-specialised forward (TMA + wgmma, D = 64 or 128).
 * cudaErrorNotSupported when it cannot serve the call (another D, a tensor the copy engine
 * cannot describe, e.g. not 16-byte aligned): the caller then runs forward.cu's kernel. */
cudaError_t fm_cuda_launch_forward_wgmma(const fm_attn_params &p, fm_dtype dtype,
                                         cudaStream_t stream);
/* forward_pingpong.cu: the same forward with FlashAttention-3's ping-pong of the two
 * warpgroups and the overlap of one tile's softmax with the next tile's products; declines as
 * fm_cuda_launch_forward_wgmma does. */
cudaError_t fm_cuda_launch_forward_pingpong(const fm_attn_params &p, fm_dtype dtype,
                                            cudaStream_t stream);
/* forward_wide.cu: the ping-pong forward on 128-key stages (two live 64-key blocks each);
 * declines as fm_cuda_launch_forward_wgmma does. */
cudaError_t fm_cuda_launch_forward_wide(const fm_attn_params &p, fm_dtype dtype,
                                        cudaStream_t stream);
#else /* not built: never used (the stubs keep the callers free of #ifdefs) */
static inline cudaError_t fm_cuda_launch_dkdv_wgmma(const fm_attn_params &, fm_dtype, bool, int,
                                                    cudaStream_t)
{
    return cudaErrorNotSupported;
}
static inline cudaError_t fm_cuda_launch_dq_wgmma(const fm_attn_params &, fm_dtype, cudaStream_t)
{
    return cudaErrorNotSupported;
}
static inline cudaError_t fm_cuda_launch_dkdv_pipelined(const fm_attn_params &, fm_dtype, bool,
                                                        cudaStream_t)
{
    return cudaErrorNotSupported;
}
static inline cudaError_t fm_cuda_launch_forward_wgmma(const fm_attn_params &, fm_dtype,
                                                       cudaStream_t)
{
    return cudaErrorNotSupported;
}
static inline cudaError_t fm_cuda_launch_forward_pingpong(const fm_attn_params &, fm_dtype,
                                                          cudaStream_t)
{
    return cudaErrorNotSupported;
}
static inline cudaError_t fm_cuda_launch_forward_wide(const fm_attn_params &, fm_dtype,
                                                      cudaStream_t)
{
    return cudaErrorNotSupported;
}
#endif
cudaError_t fm_cuda_launch_backward(const fm_attn_params &p, fm_dtype dtype,
                                    const fm_kernel_plan &plan, cudaStream_t stream);

#endif
