/* cuda/tile.cuh — how a kernel asks "what kind of tile is this?" on the GPU: it reads the key
 * block's eight summary values (summary.cu wrote them) and calls fm_classify_tile from
 * flashmask/rules.h, the one home of the rule; the list of a query block's live key blocks,
 * made ahead of the main loop; and the element rule of a partial tile, rules.h's 32-rows-at-once
 * form of fm_element_masked, on the column's bounds staged in shared memory.
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

/* One key block as a dK/dV kernel sees it: its eight summary values, read once, after which
 * classifying any query block against it is arithmetic. A block index past the last key
 * block (the second half of a kernel's last, partial pair) classifies everything as masked. */
struct fm_cuda_key_block {
    int32_t mm[FM_SUMMARY_WIDTH];
    int c0, c1; /* its columns, clipped at Sk; c0 >= c1 when it lies past the end */
    fm_cuda_key_block() = default;
    __device__ __forceinline__ fm_cuda_key_block(const fm_attn_params &p, const int32_t *summary,
                                                 int kb)
    {
        c0 = kb * FM_CUDA_BLOCK_K, c1 = min(c0 + (int)FM_CUDA_BLOCK_K, p.seqlen_k);
        for (int i = 0; i < FM_SUMMARY_WIDTH; i++) mm[i] = 0;
        if (kb < p.n_kblocks) {
            const int4 *v = reinterpret_cast<const int4 *>(summary + kb * FM_SUMMARY_WIDTH);
            const int4 a = __ldg(v), b = __ldg(v + 1);
            mm[0] = a.x, mm[1] = a.y, mm[2] = a.z, mm[3] = a.w;
            mm[4] = b.x, mm[5] = b.y, mm[6] = b.z, mm[7] = b.w;
        }
    }
    /* Class of query rows [r0, r1) against this block. */
    __device__ __forceinline__ fm_tile_class classify(const fm_attn_params &p, int r0,
                                                      int r1) const
    {
        if (c0 >= c1) return FM_TILE_MASKED;
        return fm_classify_tile(mm, (fm_causal)p.causal, p.offset, r0, r1, c0, c1);
    }
    /* The first query block at or after qb (blocks of block_q rows) whose tile with this
     * block is not fully masked, and its class in *cls; ceil(Sq / block_q) if none. Block qb
     * itself is classified first, as a block-by-block walk would (on dense masks it is live,
     * and this is all the walk costs); past a masked one, fm_next_live_qblock (rules.h) jumps
     * over the rest of the masked run instead of classifying each block. */
    __device__ __forceinline__ int next_live(const fm_attn_params &p, int qb, int block_q,
                                             fm_tile_class *cls) const
    {
        const int n = (p.seqlen_q + block_q - 1) / block_q;
        *cls = FM_TILE_MASKED;
        if (qb >= n || c0 >= c1) return n;
        *cls = classify(p, qb * block_q, min(qb * block_q + block_q, p.seqlen_q));
        if (*cls != FM_TILE_MASKED) return qb;
        return (int)fm_next_live_qblock(mm, (fm_causal)p.causal, p.offset, qb + 1, block_q,
                                        p.seqlen_q, c0, c1, cls);
    }
};

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

/* The live key blocks of a query block, listed ahead in shared memory so that the main loop
 * never waits on a summary load or classifies between its barriers. Each of the NT threads
 * classifies one key block for each of the NW warps' row ranges ([r0 + w WR, + WR) clipped
 * to r1); a block is live when some warp's tile is (a warp whose rows it fully masks skips its
 * arithmetic). The live ones are compacted, in key order, into list_kb (block index) and
 * list_cls (2 bits per warp: warp w's fm_tile_class at bits 2w..2w+1). Scans NT blocks at a
 * time from *from (advanced past what was scanned) until it finds a live one or reaches the
 * end; returns how many it listed (0: none left). Every thread of the block must call it, and
 * every thread must be done reading the previous list. scratch: NW ints of shared memory. */
template <int NW, int WR>
__device__ int fm_cuda_list_live(const fm_attn_params &p, const int32_t *summary, int *from,
                                 int r0, int r1, int *list_kb, uint32_t *list_cls, int *scratch)
{
    constexpr int NT = NW * 32;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    while (*from < p.n_kblocks) {
        const int kb = *from + tid;
        uint32_t cls = 0;
        bool live = false;
        if (kb < p.n_kblocks) {
#pragma unroll
            for (int w = 0; w < NW; w++) {
                const int w0 = r0 + w * WR, w1 = min(w0 + WR, r1);
                const fm_tile_class c =
                    w0 < w1 ? fm_cuda_classify(p, summary, kb, w0, w1) : FM_TILE_MASKED;
                cls |= (uint32_t)c << (2 * w);
                live |= c != FM_TILE_MASKED;
            }
        }
        const unsigned ballot = __ballot_sync(0xffffffffu, live);
        if (lane == 0) scratch[warp] = __popc(ballot);
        __syncthreads();
        int before = 0, total = 0;
#pragma unroll
        for (int w = 0; w < NW; w++) {
            before += w < warp ? scratch[w] : 0;
            total += scratch[w];
        }
        if (live) {
            const int at = before + __popc(ballot & ((1u << lane) - 1u));
            list_kb[at] = kb;
            list_cls[at] = cls;
        }
        *from += NT;
        __syncthreads(); /* the list is written; scratch may be reused */
        if (total) return total;
    }
    return 0;
}

/* One key column of a partial tile, as the kernels' inner loops read it: its four bounds (16
 * bytes in shared memory) and its causal row bound, read once; bits32(w0) gives the rows
 * w0 .. w0 + 31 it masks (fm_column_masked_bits32, rules.h). Keys past the end of the sequence
 * (a tile's padding) mask every row. */
struct fm_cuda_column {
    int32_t lts, lte, uts, ute, causal_end;

    __device__ __forceinline__ fm_cuda_column(const fm_attn_params &p, const int32_t *col, int j)
    {
        const int4 v = *reinterpret_cast<const int4 *>(__builtin_assume_aligned(col, 16));
        lts = v.x, lte = v.y, uts = v.z, ute = v.w;
        causal_end = j < p.seqlen_k ? fm_causal_row_end_i32((fm_causal)p.causal, p.offset, j)
                                    : INT32_MAX;
    }
    /* Rows w0 .. w0 + 31 at once: bit r set iff row w0 + r is masked. */
    __device__ __forceinline__ uint32_t bits32(int w0) const
    {
        return fm_column_masked_bits32(lts, lte, uts, ute, causal_end, w0);
    }
};

/* A partial tile's element rule for one warp, column by column: lane l returns in bits[k] the
 * rows w0 .. w0 + 31 that key c0 + l + 32 k masks (bit r: row w0 + r; keys past Sk mask all),
 * from fm_column_masked_bits32 (rules.h) on the column's bounds in shared memory. A thread
 * then fetches the words of its own columns with __shfl_sync and tests one bit per element.
 * Two columns per lane cover a 64-key block. */
__device__ __forceinline__ void fm_cuda_column_bits(const fm_attn_params &p, const int32_t *cols,
                                                    int c0, int w0, int lane, uint32_t bits[2])
{
#pragma unroll
    for (int k = 0; k < 2; k++) {
        const int c = lane + 32 * k;
        const fm_cuda_column cm(p, cols + c * FM_BOUNDS, c0 + c);
        bits[k] = cm.bits32(w0);
    }
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
