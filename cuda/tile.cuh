/* cuda/tile.cuh — how a kernel asks "what kind of tile is this?" on the GPU: it reads the key
 * block's eight summary values (summary.cu wrote them) and calls fm_classify_tile from
 * flashmask/rules.h, the one home of the rule; and the element test of a partial tile, which
 * calls fm_element_masked on the column's bounds staged in shared memory.
 * Layer: cuda (private, device code).
 */
#ifndef FM_CUDA_TILE_CUH
#define FM_CUDA_TILE_CUH

#include "kernels.h"
#include "tc.cuh"

/* Class of the tile rows [r0, r1) x key block kb (its columns clipped at Sk). `summary` points
 * at the (b, mask head)'s first key block. */
__device__ __forceinline__ fm_tile_class fm_cuda_classify(const fm_attn_params &p,
                                                          const int32_t *summary, int kb, int r0,
                                                          int r1)
{
    const int4 a = __ldg(reinterpret_cast<const int4 *>(summary + kb * FM_SUMMARY_WIDTH));
    const int4 b = __ldg(reinterpret_cast<const int4 *>(summary + kb * FM_SUMMARY_WIDTH + 4));
    const int32_t mm[FM_SUMMARY_WIDTH] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
    const int c0 = kb * FM_CUDA_BLOCK_K, c1 = min(c0 + (int)FM_CUDA_BLOCK_K, p.seqlen_k);
    return fm_classify_tile(mm, (fm_causal)p.causal, p.offset, r0, r1, c0, c1);
}

/* First key block at or after kb whose tile with rows [r0, r1) is not fully masked
 * (p.n_kblocks if none): fully masked tiles are skipped before anything is loaded. The 32 lanes
 * of the warp classify 32 consecutive blocks at once and a ballot picks the first live one, so
 * a long run of masked blocks costs one summary load latency per 32 blocks instead of one per
 * block. Call it from warp-uniform control flow (every lane active). */
__device__ __forceinline__ int fm_cuda_next_block(const fm_attn_params &p, const int32_t *summary,
                                                  int kb, int r0, int r1)
{
    const int lane = threadIdx.x & 31;
    for (int base = kb; base < p.n_kblocks; base += 32) {
        const int mine = base + lane;
        const bool live = mine < p.n_kblocks &&
                          fm_cuda_classify(p, summary, mine, r0, r1) != FM_TILE_MASKED;
        const unsigned ballot = __ballot_sync(0xffffffffu, live);
        if (ballot) return base + __ffs(ballot) - 1;
    }
    return p.n_kblocks;
}

/* Is element (row i, key j) masked? `col` = the column's 4 bounds (shared memory); keys past
 * the end of the sequence (a tile's padding) count as masked. */
__device__ __forceinline__ bool fm_cuda_masked(const fm_attn_params &p, const int32_t *col, int i,
                                               int j)
{
    return j >= p.seqlen_k || fm_element_masked(col, (fm_causal)p.causal, p.offset, i, j);
}

/* Stage the bounds of key block kb's columns (zeros past Sk) into shared memory `cols`
 * ([FM_CUDA_BLOCK_K][4]) with 16-byte asynchronous copies, one column per thread. */
__device__ __forceinline__ void fm_cuda_load_cols(int32_t *cols, const int32_t *bounds, int kb,
                                                  int seqlen_k, int tid, int nthreads)
{
    for (int c = tid; c < FM_CUDA_BLOCK_K; c += nthreads) {
        const int j = kb * FM_CUDA_BLOCK_K + c;
        const bool ok = j < seqlen_k;
        fm_cp_async16(cols + c * FM_BOUNDS, bounds + (ok ? (size_t)j * FM_BOUNDS : 0), ok);
    }
}

#endif
