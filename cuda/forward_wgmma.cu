/* cuda/forward_wgmma.cu — the FlashMask forward on Hopper (sm_90a), D = 128: the same function
 * as forward.cu's mma.sync kernel, which it replaces there when built (fm_cuda_use_wgmma).
 * Layer: cuda <- masks (rules.h, through tile.cuh).
 *
 * Warp-specialised, in FlashAttention-3's manner. One block per (128 query rows, query head,
 * batch), 288 threads:
 *   - warp 8, the producer, walks the key blocks, classifies each against the rows of both
 *     consumer warpgroups (fm_classify_tile on the summary, 32 blocks per ballot), and for each
 *     block live for one of them waits for a free stage and has the copy engine (TMA, tma.cuh)
 *     bring in K, V (64 keys x 128, SW128) and the 64 columns' bounds; the stage's mbarrier
 *     completes when the bytes land. Fully masked tiles are never loaded. Every consumer warp
 *     makes the same walk (live_blocks32), so no list passes between them.
 *   - warps 0-3 and 4-7, the consumers, one warpgroup per 64 query rows, keep Q in shared
 *     memory and O, the row maxima and sums in registers, and per stage compute
 *       S = Q K^T                          wgmma.m64n64k16, both operands from shared memory
 *       partial tile: S = -inf where masked (per-column row bits, tile.cuh)
 *       online softmax, P to T in registers (softmax.cuh, shared with forward.cu)
 *       O += P V                           wgmma.m64n128k16, A = P from registers
 *     and then release the stage (one arrival per warp on its "empty" mbarrier).
 * NSTAGE stages let the producer run ahead of the products by up to NSTAGE key blocks. The two
 * warpgroups share the SM's tensor cores, but nothing schedules them against each other: there
 * is no ping-pong on named barriers (FlashAttention-3 has one; here it is not built), so whether
 * one's softmax fills the other's products' gaps is left to the warp schedulers. Nor does a
 * warpgroup overlap its next S = Q K^T with this tile's softmax (it waits for S first).
 */
#include <stdlib.h>
#include <string.h>

#include "kernels.h"
#include "softmax.cuh"
#include "tile.cuh"
#include "tma.cuh"
#include "wgmma.cuh"

namespace {

constexpr int D = 128, BC = FM_CUDA_BLOCK_K, WG_ROWS = 64, BR = 2 * WG_ROWS;
constexpr int NSTAGE = 4;
constexpr int NT = 2 * 128 + 32;                     /* two consumer warpgroups + the producer */
constexpr int TILE = 64 * D * 2;                     /* bytes of 64 rows of Q, K or V (SW128) */
constexpr int COLS = BC * FM_BOUNDS * 4;             /* bytes of a key block's bounds */
constexpr int STAGE_BYTES = 2 * TILE + COLS;         /* what one stage's copies deliver */

/* Shared memory, in bytes from a 1024-aligned base: Q [2 warpgroups][64][128], K and V
 * [NSTAGE][64][128] (all SW128), bounds [NSTAGE][64][4], and the mbarriers: full[NSTAGE] (the
 * stage's data is in), empty[NSTAGE] (all eight consumer warps are done with it), q_full[2]. */
struct fwd_smem {
    static constexpr int OFF_Q = 0, OFF_K = 2 * TILE, OFF_V = OFF_K + NSTAGE * TILE;
    static constexpr int OFF_COLS = OFF_V + NSTAGE * TILE, OFF_BAR = OFF_COLS + NSTAGE * COLS;
    static constexpr int BYTES = 1024 + OFF_BAR + (2 * NSTAGE + 2) * 8;
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

template <typename T>
__global__ void __launch_bounds__(NT, 1)
    fm_forward_wgmma_kernel(const fm_attn_params p, const __grid_constant__ CUtensorMap map_q,
                            const __grid_constant__ CUtensorMap map_k,
                            const __grid_constant__ CUtensorMap map_v,
                            const __grid_constant__ CUtensorMap map_bounds)
{
#ifdef FM_WGMMA_DEVICE
    using L = fwd_smem;
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem = reinterpret_cast<unsigned char *>(
        (reinterpret_cast<uintptr_t>(smem_raw) + 1023) & ~static_cast<uintptr_t>(1023));
    const uint32_t base = (uint32_t)__cvta_generic_to_shared(smem);
    auto full = [&](int s) { return base + L::OFF_BAR + 8 * s; };
    auto empty = [&](int s) { return base + L::OFF_BAR + 8 * (NSTAGE + s); };
    auto q_full = [&](int w) { return base + L::OFF_BAR + 8 * (2 * NSTAGE + w); };

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, b = blockIdx.z;
    /* Last query block first (forward.cu: the causal tail). */
    const int r0 = (gridDim.x - 1 - blockIdx.x) * BR, r1 = min(r0 + BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);

    if (tid == 0) {
        for (int s = 0; s < NSTAGE; s++) fm_mbar_init(full(s), 1), fm_mbar_init(empty(s), 8);
        fm_mbar_init(q_full(0), 1), fm_mbar_init(q_full(1), 1);
        fm_mbar_init_fence();
    }
    __syncthreads();

    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    if (warp == 8) { /* the producer */
        const int head_q = b * p.q_heads + h, head_k = b * p.kv_heads + hk;
        const int head_m = b * p.mask_heads + hm;
        if (lane == 0) {
            fm_tma_prefetch_map(&map_k), fm_tma_prefetch_map(&map_v);
            fm_tma_prefetch_map(&map_bounds);
            /* Q of both warpgroups (rows past Sq read as zeros). */
            for (int w = 0; w < 2; w++) {
                const uint32_t dst = base + L::OFF_Q + w * TILE;
                fm_mbar_arrive_expect_tx(q_full(w), TILE);
                fm_tma_load_3d(dst, &map_q, q_full(w), 0, r0 + w * WG_ROWS, head_q);
                fm_tma_load_3d(dst + TILE / 2, &map_q, q_full(w), 64, r0 + w * WG_ROWS, head_q);
            }
        }
        int stage = 0;
        uint32_t phase = 0;
        for (int first = 0; first < p.n_kblocks; first += 32) {
            uint32_t cls;
            for (unsigned todo = live_blocks32(p, summary, first, r0, r1, &cls); todo;
                 todo &= todo - 1) {
                if (lane == 0) {
                    const int c0 = (first + __ffs(todo) - 1) * BC;
                    const uint32_t k = base + L::OFF_K + stage * TILE;
                    const uint32_t v = base + L::OFF_V + stage * TILE;
                    fm_mbar_wait(empty(stage), phase ^ 1u);
                    fm_mbar_arrive_expect_tx(full(stage), STAGE_BYTES);
                    fm_tma_load_3d(k, &map_k, full(stage), 0, c0, head_k);
                    fm_tma_load_3d(k + TILE / 2, &map_k, full(stage), 64, c0, head_k);
                    fm_tma_load_3d(v, &map_v, full(stage), 0, c0, head_k);
                    fm_tma_load_3d(v + TILE / 2, &map_v, full(stage), 64, c0, head_k);
                    fm_tma_load_3d(base + L::OFF_COLS + stage * COLS, &map_bounds, full(stage),
                                   0, c0, head_m);
                }
                __syncwarp();
                if (++stage == NSTAGE) stage = 0, phase ^= 1u;
            }
        }
        return;
    }

    /* A consumer: warpgroup wg, warp ww of it, rows w0 .. w0 + 15 of this warp. */
    const int wg = warp >> 2, ww = warp & 3, g = lane >> 2, t = lane & 3;
    const int w0 = r0 + wg * WG_ROWS + ww * 16;
    const float scale_log2 = p.scale * 1.4426950408889634f;
    const uint32_t aQ = base + L::OFF_Q + wg * TILE;

    float acc_o[1][D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) acc_o[0][n][e] = 0.f;
    float row_max[1][2] = {{-INFINITY, -INFINITY}}, row_sum[1][2] = {{0.f, 0.f}};
    float row_sum_lse[1][2] = {{0.f, 0.f}};

    fm_mbar_wait(q_full(wg), 0);
    int stage = 0;
    uint32_t phase = 0;
    for (int first = 0; first < p.n_kblocks; first += 32) {
        uint32_t cls_all;
        for (unsigned todo = live_blocks32(p, summary, first, r0, r1, &cls_all); todo;
             todo &= todo - 1) {
            const int j = __ffs(todo) - 1, c0 = (first + j) * BC;
            const fm_tile_class cls =
                (fm_tile_class)((__shfl_sync(0xffffffffu, cls_all, j) >> (2 * wg)) & 3u);
            fm_mbar_wait(full(stage), phase);
            if (cls != FM_TILE_MASKED) {
                /* Keys past Sk (zero-filled K rows) must get P = 0: their columns mask all rows. */
                const bool partial = cls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k;
                uint32_t col_bits[2] = {0u, 0u};
                if (partial)
                    fm_cuda_column_bits(p, reinterpret_cast<const int32_t *>(
                                               smem + L::OFF_COLS + stage * COLS),
                                        c0, w0, lane, col_bits);
                const uint32_t aK = base + L::OFF_K + stage * TILE;
                const uint32_t aV = base + L::OFF_V + stage * TILE;

                float s[1][BC / 8][4];
#pragma unroll
                for (int n = 0; n < BC / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[0][n][e] = 0.f;
                fm_wg_fence();
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++)
                    fm_wg_ss64<T, 0, 0>(s[0], fm_wg_kmajor(aQ, 64, kk), fm_wg_kmajor(aK, 64, kk),
                                        1);
                fm_wg_commit();
                fm_wg_wait<0>();

                if (partial) fm_mask_tile<1, BC / 8>(s, col_bits, g, t);
                uint32_t p_tc[1][BC / 8][2];
                float corr[1][2];
                const bool rescale = fm_online_softmax<T, 1, BC / 8>(
                    s, p_tc, row_max, row_sum, row_sum_lse, corr, scale_log2);
                if (__any_sync(0xffffffffu, rescale)) fm_rescale_o<1, D / 8>(acc_o, corr);

                fm_wg_fence();
#pragma unroll
                for (int kk = 0; kk < BC / 16; kk++) {
                    const uint32_t a[4] = {p_tc[0][2 * kk][0], p_tc[0][2 * kk][1],
                                           p_tc[0][2 * kk + 1][0], p_tc[0][2 * kk + 1][1]};
                    fm_wg_rs128<T>(acc_o[0], a, fm_wg_mnmajor(aV, 64, kk));
                }
                fm_wg_commit();
                fm_wg_wait<0>();
            }
            __syncwarp();
            if (lane == 0) fm_mbar_arrive(empty(stage)); /* this warp is done with the stage */
            if (++stage == NSTAGE) stage = 0, phase ^= 1u;
        }
    }
    fm_store_o_lse<T, 1, D>(p, acc_o, row_max, row_sum, row_sum_lse, b, h, w0, g, t);
#endif
}

template <typename T> cudaError_t launch(const fm_attn_params &p, cudaStream_t stream)
{
    const fm_tma_elem elem = std::is_same<T, __half>::value ? FM_TMA_F16 : FM_TMA_BF16;
    CUtensorMap mq, mk, mv, mb;
    const uint64_t hq = (uint64_t)p.batch * p.q_heads, hk = (uint64_t)p.batch * p.kv_heads;
    const uint64_t hm = (uint64_t)p.batch * p.mask_heads;
    if (fm_tma_map_3d(&mq, p.q, elem, D, p.seqlen_q, hq, 64, 64, true) != cudaSuccess ||
        fm_tma_map_3d(&mk, p.k, elem, D, p.seqlen_k, hk, 64, BC, true) != cudaSuccess ||
        fm_tma_map_3d(&mv, p.v, elem, D, p.seqlen_k, hk, 64, BC, true) != cudaSuccess ||
        fm_tma_map_3d(&mb, p.bounds, FM_TMA_I32, FM_BOUNDS, p.seqlen_k, hm, FM_BOUNDS, BC,
                      false) != cudaSuccess)
        return cudaErrorNotSupported;
    cudaError_t err = cudaFuncSetAttribute(fm_forward_wgmma_kernel<T>,
                                           cudaFuncAttributeMaxDynamicSharedMemorySize,
                                           fwd_smem::BYTES);
    if (err != cudaSuccess) return err;
    dim3 grid((p.seqlen_q + BR - 1) / BR, p.q_heads, p.batch);
    fm_forward_wgmma_kernel<T><<<grid, NT, fwd_smem::BYTES, stream>>>(p, mq, mk, mv, mb);
    return cudaGetLastError();
}

} /* namespace */

cudaError_t fm_cuda_launch_forward_wgmma(const fm_attn_params &p, fm_dtype dtype,
                                         cudaStream_t stream)
{
    if (p.head_dim != D) return cudaErrorNotSupported;
    /* FM_CUDA_FWD_WGMMA=0 (read per call: tests and the benchmark switch it) keeps the
     * mma.sync forward for comparison. */
    const char *off = getenv("FM_CUDA_FWD_WGMMA");
    if (off && !strcmp(off, "0")) return cudaErrorNotSupported;
    return dtype == FM_BFLOAT16 ? launch<__nv_bfloat16>(p, stream) : launch<__half>(p, stream);
}
