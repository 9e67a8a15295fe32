/* cuda/summary.cu — the GPU pre-pass: per (batch, mask head, key block of FM_CUDA_BLOCK_K
 * columns) the min and max of each of the four bound vectors, with the same definition as
 * masks/ fm_block_summary_build (empty intervals: [Sq, Sq) / [0, 0) for the intersection the
 * fully-masked test reads, skipped in the hull the unmasked test reads, so that they neither
 * make a tile look masked nor cost it its unmasked call). tests/cuda compares the two on every
 * case.
 * Also how much work the mask leaves: the live (not fully masked) tiles of 64 query rows x one
 * key block, counted once at upload so that the backward can pick its block shape.
 * Layer: cuda <- masks (rules.h). One warp per key block; lanes stride the columns.
 */
#include "kernels.h"

__global__ void fm_summary_kernel(const int32_t *__restrict__ bounds, int32_t *__restrict__ summary,
                                  int n_rows, int seqlen_q, int seqlen_k, int n_kblocks)
{
    const int warp = (blockIdx.x * blockDim.x + threadIdx.x) >> 5, lane = threadIdx.x & 31;
    if (warp >= n_rows * n_kblocks) return; /* whole warps exit together */
    const int row = warp / n_kblocks, kb = warp % n_kblocks; /* row = b * Hm + m */
    const int c0 = kb * FM_CUDA_BLOCK_K;
    const int c1 = min(c0 + (int)FM_CUDA_BLOCK_K, seqlen_k);
    /* Identities: Sq for min (the largest bound), 0 for max. */
    int lo[FM_BOUNDS], hi[FM_BOUNDS];
    for (int k = 0; k < FM_BOUNDS; k++) lo[k] = seqlen_q, hi[k] = 0;
    for (int j = c0 + lane; j < c1; j += 32) {
        int4 c = *reinterpret_cast<const int4 *>(bounds + ((size_t)row * seqlen_k + j) * 4);
        const bool lt_empty = c.x >= c.y, ut_empty = c.z >= c.w;
        /* The intersection (max start, min end: the fully-masked test) sees an empty LT as
         * [Sq, Sq) and an empty UT as [0, 0); the hull (min start, max end: only the unmasked
         * test reads it) skips empty intervals. */
        hi[FM_LTS] = max(hi[FM_LTS], lt_empty ? seqlen_q : c.x);
        lo[FM_LTE] = min(lo[FM_LTE], lt_empty ? seqlen_q : c.y);
        hi[FM_UTS] = max(hi[FM_UTS], ut_empty ? 0 : c.z);
        lo[FM_UTE] = min(lo[FM_UTE], ut_empty ? 0 : c.w);
        if (!lt_empty) lo[FM_LTS] = min(lo[FM_LTS], c.x), hi[FM_LTE] = max(hi[FM_LTE], c.y);
        if (!ut_empty) lo[FM_UTS] = min(lo[FM_UTS], c.z), hi[FM_UTE] = max(hi[FM_UTE], c.w);
    }
    int32_t *out = summary + (size_t)warp * FM_SUMMARY_WIDTH;
    for (int k = 0; k < FM_BOUNDS; k++) {
        int mn = __reduce_min_sync(0xffffffffu, lo[k]);
        int mx = __reduce_max_sync(0xffffffffu, hi[k]);
        if (lane == 0) out[2 * k] = mn, out[2 * k + 1] = mx; /* FM_MIN_x, FM_MAX_x */
    }
}

cudaError_t fm_cuda_launch_summary(const int32_t *bounds, int32_t *summary, int batch, int heads,
                                   int seqlen_q, int seqlen_k, cudaStream_t stream)
{
    const int n_kblocks = (seqlen_k + FM_CUDA_BLOCK_K - 1) / FM_CUDA_BLOCK_K;
    const long long warps = (long long)batch * heads * n_kblocks;
    const int threads = 256;
    const long long blocks = (warps * 32 + threads - 1) / threads;
    fm_summary_kernel<<<(unsigned)blocks, threads, 0, stream>>>(bounds, summary, batch * heads,
                                                                seqlen_q, seqlen_k, n_kblocks);
    return cudaGetLastError();
}

/* *count += the live tiles (64 query rows x key block) of every (b, mask head, key block), one
 * thread per key block walking down its tiles with fm_next_live_qblock (rules.h: masked runs
 * cost one step), as masks/ fm_mask_tile_stats counts them. */
__global__ void fm_live_tiles_kernel(const int32_t *__restrict__ summary, long long n_kblocks_all,
                                     int n_kblocks, int seqlen_q, int seqlen_k, int causal,
                                     long long offset, unsigned long long *count)
{
    const long long id = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    unsigned long long live = 0;
    if (id < n_kblocks_all) {
        int32_t mm[FM_SUMMARY_WIDTH];
        for (int k = 0; k < FM_SUMMARY_WIDTH; k++) mm[k] = summary[id * FM_SUMMARY_WIDTH + k];
        const int c0 = (int)(id % n_kblocks) * FM_CUDA_BLOCK_K;
        const int c1 = min(c0 + (int)FM_CUDA_BLOCK_K, seqlen_k);
        const int64_t n = (seqlen_q - 1) / FM_CUDA_LIVE_ROWS + 1;
        fm_tile_class cls;
        for (int64_t qb = fm_next_live_qblock(mm, (fm_causal)causal, offset, 0, FM_CUDA_LIVE_ROWS,
                                              seqlen_q, c0, c1, &cls);
             qb < n; qb = fm_next_live_qblock(mm, (fm_causal)causal, offset, qb + 1,
                                              FM_CUDA_LIVE_ROWS, seqlen_q, c0, c1, &cls))
            live++;
    }
    for (int off = 16; off > 0; off >>= 1) live += __shfl_down_sync(0xffffffffu, live, off);
    if ((threadIdx.x & 31) == 0 && live) atomicAdd(count, live);
}

cudaError_t fm_cuda_launch_live_tiles(const int32_t *summary, int batch, int heads, int seqlen_q,
                                      int seqlen_k, int causal, unsigned long long *count,
                                      cudaStream_t stream)
{
    const int n_kblocks = (seqlen_k + FM_CUDA_BLOCK_K - 1) / FM_CUDA_BLOCK_K;
    const long long all = (long long)batch * heads * n_kblocks;
    const long long offset = fm_causal_offset((fm_causal)causal, seqlen_q, seqlen_k);
    cudaError_t err = cudaMemsetAsync(count, 0, sizeof *count, stream);
    if (err != cudaSuccess) return err;
    fm_live_tiles_kernel<<<(unsigned)((all + 255) / 256), 256, 0, stream>>>(
        summary, all, n_kblocks, seqlen_q, seqlen_k, causal, offset, count);
    return cudaGetLastError();
}
