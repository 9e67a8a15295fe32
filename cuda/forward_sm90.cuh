/* cuda/forward_sm90.cuh — what the two Hopper forwards share (forward_wgmma.cu, and
 * forward_pingpong.cu, which reorders the same products): the block shape, the shared-memory
 * layout, the live-block walk, the TMA producer warp, and the tensor maps it copies through,
 * for head dimensions D = 64 and 128. The consumer warpgroups (products, mask, softmax) are each
 * kernel's own.
 * Layer: cuda <- masks (rules.h, through tile.cuh); private header, device and host code.
 *
 * One block per (128 query rows, query head, batch), 288 threads: warps 0-3 and 4-7 are two
 * consumer warpgroups of 64 query rows each, warp 8 the producer. For every key block live for
 * either warpgroup the producer waits for a free stage and has the copy engine bring K and V
 * (64 keys x D, SW128, wgmma.cuh) and the 64 columns' bounds into it; the stage's "full"
 * mbarrier completes when the bytes land, its "empty" one when all eight consumer warps have
 * released it. Fully masked tiles are never loaded. Every warp walks the same live blocks
 * (live_blocks32), so no list passes between them.
 */
#ifndef FM_CUDA_FORWARD_SM90_CUH
#define FM_CUDA_FORWARD_SM90_CUH

#include <type_traits>

#include "kernels.h"
#include "tile.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace fm_sm90_fwd {

constexpr int BC = FM_CUDA_BLOCK_K, WG_ROWS = 64, BR = 2 * WG_ROWS;
constexpr int NSTAGE = 4;
constexpr int NT = 2 * 128 + 32;         /* two consumer warpgroups + the producer */
constexpr int COLS = BC * FM_BOUNDS * 4; /* bytes of a key block's bounds */
constexpr int BLOCK64 = 64 * 128;        /* bytes of one 64-column block of 64 rows (SW128) */

/* Shared memory, in bytes from a 1024-aligned base: Q [2 warpgroups][64][D], K and V
 * [NSTAGE][64][D] (all SW128), bounds [NSTAGE][64][4], and the mbarriers: full[NSTAGE] (the
 * stage's data is in), empty[NSTAGE] (all eight consumer warps are done with it), q_full[2]. */
template <int D> struct smem {
    static_assert(D == 64 || D == 128, "the Hopper forwards serve D = 64 and 128");
    static constexpr int TILE = 64 * D * 2;             /* bytes of 64 rows of Q, K or V */
    static constexpr int STAGE_BYTES = 2 * TILE + COLS; /* what one stage's copies deliver */
    static constexpr int OFF_Q = 0, OFF_K = 2 * TILE, OFF_V = OFF_K + NSTAGE * TILE;
    static constexpr int OFF_COLS = OFF_V + NSTAGE * TILE, OFF_BAR = OFF_COLS + NSTAGE * COLS;
    static constexpr int BYTES = 1024 + OFF_BAR + (2 * NSTAGE + 2) * 8;
};

/* Shared-memory addresses of one block's buffers and barriers (base: the aligned start). */
template <int D> struct block_smem {
    using L = smem<D>;
    static constexpr int TILE = L::TILE;
    uint32_t base;
    __device__ __forceinline__ uint32_t q(int w) const { return base + L::OFF_Q + w * TILE; }
    __device__ __forceinline__ uint32_t k(int s) const { return base + L::OFF_K + s * TILE; }
    __device__ __forceinline__ uint32_t v(int s) const { return base + L::OFF_V + s * TILE; }
    __device__ __forceinline__ uint32_t cols(int s) const
    {
        return base + L::OFF_COLS + s * COLS;
    }
    __device__ __forceinline__ uint32_t full(int s) const { return base + L::OFF_BAR + 8 * s; }
    __device__ __forceinline__ uint32_t empty(int s) const
    {
        return base + L::OFF_BAR + 8 * (NSTAGE + s);
    }
    __device__ __forceinline__ uint32_t q_full(int w) const
    {
        return base + L::OFF_BAR + 8 * (2 * NSTAGE + w);
    }
};

/* Which of the key blocks first .. first + 31 are live for this block's rows [r0, r1): lane l
 * classifies block first + l against each warpgroup's 64 rows (fm_classify_tile on the
 * summary) and keeps the two classes in *cls (bits 2w, 2w + 1: warpgroup w); bit l of the
 * result says that block is live for one of them. The producer and every consumer warp call
 * it on the same blocks, so they walk the same list without passing it through shared memory.
 * Every lane of the warp must call it. */
__device__ __forceinline__ unsigned live_blocks32(const fm_attn_params &p, const int32_t *summary,
                                                  int first, int r0, int r1, uint32_t *cls)
{
    const int kb = first + (threadIdx.x & 31);
    *cls = 0;
    if (kb < p.n_kblocks) {
        const fm_cuda_key_block blk(p, summary, kb);
#pragma unroll
        for (int w = 0; w < 2; w++) {
            const int w0 = r0 + w * WG_ROWS, w1 = min(w0 + WG_ROWS, r1);
            const fm_tile_class c = w0 < w1 ? blk.classify(p, w0, w1) : FM_TILE_MASKED;
            *cls |= (uint32_t)c << (2 * w);
        }
    }
    const bool live = kb < p.n_kblocks && ((*cls & 3u) != FM_TILE_MASKED ||
                                           (*cls >> 2) != FM_TILE_MASKED);
    return __ballot_sync(0xffffffffu, live);
}

/* The end of the turns the two warpgroups of a ping-pong kernel pass on named barriers turn
 * and turn + 1 (forward_pingpong.cu, forward_wide.cu): warpgroup 1's arrivals on barrier turn
 * outnumber warpgroup 0's turns by the first one it gave; warpgroup 0 takes it, so that no
 * barrier is left with arrivals nobody waits for. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
__device__ __forceinline__ void end_turns(int wg, int turn, int threads)
{
    if (wg == 0) fm_bar_sync(turn, threads);
}
#endif

/* The warpgroup's class of the live block at bit j of a live_blocks32 result. */
__device__ __forceinline__ fm_tile_class class_of(uint32_t cls_all, int j, int wg)
{
    return (fm_tile_class)((__shfl_sync(0xffffffffu, cls_all, j) >> (2 * wg)) & 3u);
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
/* Thread 0 initialises the barriers; the caller then synchronises the block. */
template <int D> __device__ __forceinline__ void init_barriers(const block_smem<D> &sm)
{
    for (int s = 0; s < NSTAGE; s++) fm_mbar_init(sm.full(s), 1), fm_mbar_init(sm.empty(s), 8);
    fm_mbar_init(sm.q_full(0), 1), fm_mbar_init(sm.q_full(1), 1);
    fm_mbar_init_fence();
}

/* The producer's first copies (lane 0): the tensor maps of K, V and the bounds into the
 * cache, and Q of both warpgroups (rows past Sq read as zeros) to q[w] on barrier q_full[w],
 * each tile as D / 64 copies of 64 columns. */
template <int D>
__device__ __forceinline__ void produce_q(const CUtensorMap *map_q, const CUtensorMap *map_k,
                                          const CUtensorMap *map_v,
                                          const CUtensorMap *map_bounds, const uint32_t (&q)[2],
                                          const uint32_t (&q_full)[2], int r0, int head_q)
{
    fm_tma_prefetch_map(map_k), fm_tma_prefetch_map(map_v);
    fm_tma_prefetch_map(map_bounds);
    for (int w = 0; w < 2; w++) {
        fm_mbar_arrive_expect_tx(q_full[w], WG_ROWS * D * 2);
        for (int c = 0; c < D; c += 64)
            fm_tma_load_3d(q[w] + c / 64 * BLOCK64, map_q, q_full[w], c, r0 + w * WG_ROWS,
                           head_q);
    }
}

/* The producer warp: Q of both warpgroups, then K, V and the bounds of every live key block
 * into the stages in turn, each tile as D / 64 copies of 64 columns. r0, r1: the block's query
 * rows; h, hk, hm, b: its query, key/value and mask head and batch. */
template <int D>
__device__ __forceinline__ void produce(const fm_attn_params &p, const int32_t *summary,
                                        const block_smem<D> &sm, const CUtensorMap *map_q,
                                        const CUtensorMap *map_k, const CUtensorMap *map_v,
                                        const CUtensorMap *map_bounds, int r0, int r1, int h,
                                        int hk, int hm, int b)
{
    const int lane = threadIdx.x & 31;
    const int head_q = b * p.q_heads + h, head_k = b * p.kv_heads + hk;
    const int head_m = b * p.mask_heads + hm;
    if (lane == 0)
        produce_q<D>(map_q, map_k, map_v, map_bounds, {sm.q(0), sm.q(1)},
                     {sm.q_full(0), sm.q_full(1)}, r0, head_q);
    int stage = 0;
    uint32_t phase = 0;
    for (int first = 0; first < p.n_kblocks; first += 32) {
        uint32_t cls;
        for (unsigned todo = live_blocks32(p, summary, first, r0, r1, &cls); todo;
             todo &= todo - 1) {
            if (lane == 0) {
                const int c0 = (first + __ffs(todo) - 1) * BC;
                fm_mbar_wait(sm.empty(stage), phase ^ 1u);
                fm_mbar_arrive_expect_tx(sm.full(stage), smem<D>::STAGE_BYTES);
                for (int c = 0; c < D; c += 64) {
                    fm_tma_load_3d(sm.k(stage) + c / 64 * BLOCK64, map_k, sm.full(stage), c, c0,
                                   head_k);
                    fm_tma_load_3d(sm.v(stage) + c / 64 * BLOCK64, map_v, sm.full(stage), c, c0,
                                   head_k);
                }
                fm_tma_load_3d(sm.cols(stage), map_bounds, sm.full(stage), 0, c0, head_m);
            }
            __syncwarp();
            if (++stage == NSTAGE) stage = 0, phase ^= 1u;
        }
    }
}
#endif

/* The copy engine's descriptions of q, k, v (SW128 boxes of 64 x 64) and the bounds (boxes of
 * one key block's columns). cudaErrorNotSupported when one cannot be made (the caller then
 * runs forward.cu's kernel). */
struct maps {
    CUtensorMap q, k, v, bounds;
};
template <typename T, int D> inline cudaError_t make_maps(const fm_attn_params &p, maps *m)
{
    const fm_tma_elem elem = std::is_same<T, __half>::value ? FM_TMA_F16 : FM_TMA_BF16;
    const uint64_t hq = (uint64_t)p.batch * p.q_heads, hk = (uint64_t)p.batch * p.kv_heads;
    const uint64_t hm = (uint64_t)p.batch * p.mask_heads;
    if (fm_tma_map_3d(&m->q, p.q, elem, D, p.seqlen_q, hq, 64, 64, true) != cudaSuccess ||
        fm_tma_map_3d(&m->k, p.k, elem, D, p.seqlen_k, hk, 64, BC, true) != cudaSuccess ||
        fm_tma_map_3d(&m->v, p.v, elem, D, p.seqlen_k, hk, 64, BC, true) != cudaSuccess ||
        fm_tma_map_3d(&m->bounds, p.bounds, FM_TMA_I32, FM_BOUNDS, p.seqlen_k, hm, FM_BOUNDS, BC,
                      false) != cudaSuccess)
        return cudaErrorNotSupported;
    return cudaSuccess;
}

/* Launching a Hopper forward: every one takes the problem and the four maps, runs one block per
 * (128 query rows, query head, batch), and is built for bfloat16 and float16 at D = 64 and 128.
 * launch<K>() picks the instance for the call: K::get<T, D>() returns it with its block size and
 * shared memory. cudaErrorNotSupported for another D, or when the maps cannot be made. */
using kernel_fn = void (*)(fm_attn_params, CUtensorMap, CUtensorMap, CUtensorMap, CUtensorMap);
struct kernel_launch {
    kernel_fn fn;
    int threads, smem_bytes;
};
template <typename T, int D>
inline cudaError_t launch_with_maps(const fm_attn_params &p, const kernel_launch &k,
                                    cudaStream_t stream)
{
    maps m;
    if (make_maps<T, D>(p, &m) != cudaSuccess) return cudaErrorNotSupported;
    cudaError_t err =
        cudaFuncSetAttribute(k.fn, cudaFuncAttributeMaxDynamicSharedMemorySize, k.smem_bytes);
    if (err != cudaSuccess) return err;
    dim3 grid((p.seqlen_q + BR - 1) / BR, p.q_heads, p.batch);
    k.fn<<<grid, k.threads, k.smem_bytes, stream>>>(p, m.q, m.k, m.v, m.bounds);
    return cudaGetLastError();
}
template <typename K>
inline cudaError_t launch(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream)
{
    using bf16 = __nv_bfloat16;
    const bool b = dtype == FM_BFLOAT16;
    switch (p.head_dim) {
    case 64:
        return b ? launch_with_maps<bf16, 64>(p, K::template get<bf16, 64>(), stream)
                 : launch_with_maps<__half, 64>(p, K::template get<__half, 64>(), stream);
    case 128:
        return b ? launch_with_maps<bf16, 128>(p, K::template get<bf16, 128>(), stream)
                 : launch_with_maps<__half, 128>(p, K::template get<__half, 128>(), stream);
    default: return cudaErrorNotSupported;
    }
}

} /* namespace fm_sm90_fwd */

#endif
