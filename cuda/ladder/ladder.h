/* cuda/ladder/ladder.h — the kernel ladder: the FlashMask forward and backward written five
 * times, from the naive port of the CPU loop to the warp-specialised Hopper kernel, each step
 * selectable by number (docs/cuda-ladder.md tells the story and has the measured table).
 *
 *   forward                                         backward
 *   1 fwd1_naive.cu   one thread per query row,     1 bwd1_naive.cu   one thread per query row
 *                     element rule on every pair                      (dQ), one per key (dK, dV)
 *   2 fwd2_tiled.cu   shared-memory K/V tiles,      2 bwd2_tiled.cu   the same two kernels on
 *                     online softmax, tile skipping                   shared-memory tiles
 *   3 fwd3_mma.cu     step 2 on tensor cores        (none: the backward goes from 2 to 4)
 *                     (mma.sync m16n8k16)
 *   4 cuda/forward.cu the tuned mma.sync kernel     4 cuda/backward.cu
 *   5 cuda/forward_wgmma.cu  TMA + wgmma, D = 128   5 cuda/backward_wgmma.cu (D = 128)
 *
 * Step 0 is the library's own choice (what fm_cuda_forward / fm_cuda_backward run). This file
 * and ladder.cu are the one place that maps a step number to a kernel.
 * Layer: cuda (private; C++ only).
 */
#ifndef FM_CUDA_LADDER_H
#define FM_CUDA_LADDER_H

#include "../kernels.h"

/* The step launchers (head_dim one of 32, 64, 96, 128, 256, as api.cu checks). */
cudaError_t fm_ladder_fwd1(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);
cudaError_t fm_ladder_fwd2(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);
cudaError_t fm_ladder_fwd3(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);
/* The backward steps write dq, dk and dv in a fixed order (no atomics) and use p.delta as
 * their workspace; they ignore p.dq_accum. */
cudaError_t fm_ladder_bwd1(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);
cudaError_t fm_ladder_bwd2(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream);

/* Runs forward step 1-3 (backward step 1-2) of the ladder. cudaErrorNotSupported when the
 * step cannot serve the call (fm_ladder_refusal says why, for api.cu's message). */
cudaError_t fm_ladder_launch_forward(int step, const fm_attn_params &p, fm_dtype dtype,
                                     cudaStream_t stream);
cudaError_t fm_ladder_launch_backward(int step, const fm_attn_params &p, fm_dtype dtype,
                                      cudaStream_t stream);
/* NULL when step `step` of the forward (backward != 0: the backward) can serve head dimension
 * head_dim on the current device in this build; else the reason, and *unavailable says whether
 * it is this build or device (1) or the call (0). */
const char *fm_ladder_refusal(int step, int backward, int head_dim, int *unavailable);

#endif
