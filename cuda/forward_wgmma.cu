/* cuda/forward_wgmma.cu — the FlashMask forward on Hopper (sm_90a), D = 64 and 128: the same
 * function as forward.cu's mma.sync kernel, which it replaces there when built and the plan says
 * so (cuda/heuristics.cu: at D = 128 by default, at 64 when asked for).
 * Layer: cuda <- masks (rules.h, through tile.cuh).
 *
 * Warp-specialised, in FlashAttention-3's manner: the block shape, the TMA producer warp and
 * the live-block walk are forward_sm90.cuh's (shared with forward_pingpong.cu). Here are the
 * consumers: warps 0-3 and 4-7, one warpgroup per 64 query rows, keep Q in shared memory and
 * O, the row maxima and sums in registers, and per stage compute
 *       S = Q K^T                          wgmma.m64n64k16, both operands from shared memory
 *       partial tile: S = -inf where masked (per-column row bits, tile.cuh)
 *       online softmax, P to T in registers (softmax.cuh, shared with forward.cu)
 *       O += P V                           wgmma.m64n{D}k16, A = P from registers
 * and then release the stage (one arrival per warp on its "empty" mbarrier). The two
 * warpgroups share the SM's tensor cores, but nothing schedules them against each other, and a
 * warpgroup waits for S before its softmax: forward_pingpong.cu is the variant that orders
 * both (FlashAttention-3's ping-pong and intra-warpgroup overlap), with the same results.
 */
#include "forward_sm90.cuh"
#include "softmax.cuh"

namespace {

using namespace fm_sm90_fwd;

template <typename T, int D>
__global__ void __launch_bounds__(NT, 1)
    fm_forward_wgmma_kernel(const fm_attn_params p, const __grid_constant__ CUtensorMap map_q,
                            const __grid_constant__ CUtensorMap map_k,
                            const __grid_constant__ CUtensorMap map_v,
                            const __grid_constant__ CUtensorMap map_bounds)
{
#ifdef FM_WGMMA_DEVICE
    extern __shared__ unsigned char smem_raw[];
    unsigned char *smem_p = fm_smem_align1024(smem_raw);
    const block_smem<D> sm{(uint32_t)__cvta_generic_to_shared(smem_p)};

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int h = blockIdx.y, b = blockIdx.z;
    /* Last query block first (forward.cu: the causal tail). */
    const int r0 = (gridDim.x - 1 - blockIdx.x) * BR, r1 = min(r0 + BR, p.seqlen_q);
    const int hk = h / (p.q_heads / p.kv_heads), hm = h / (p.q_heads / p.mask_heads);

    if (tid == 0) init_barriers(sm);
    __syncthreads();

    const int32_t *summary =
        p.summary + ((size_t)b * p.mask_heads + hm) * p.n_kblocks * FM_SUMMARY_WIDTH;
    if (warp == 8) {
        produce(p, summary, sm, &map_q, &map_k, &map_v, &map_bounds, r0, r1, h, hk, hm, b);
        return;
    }

    /* A consumer: warpgroup wg, warp ww of it, rows w0 .. w0 + 15 of this warp. */
    const int wg = warp >> 2, ww = warp & 3, g = lane >> 2, t = lane & 3;
    const int w0 = r0 + wg * WG_ROWS + ww * 16;
    const float scale_log2 = p.scale * 1.4426950408889634f;
    const uint32_t aQ = sm.q(wg);

    float acc_o[1][D / 8][4], row_max[1][2], row_sum[1][2], row_sum_lse[1][2];
    fm_rows_start<1, D>(acc_o, row_max, row_sum, row_sum_lse);

    fm_mbar_wait(sm.q_full(wg), 0);
    int stage = 0;
    uint32_t phase = 0;
    for (int first = 0; first < p.n_kblocks; first += 32) {
        uint32_t cls_all;
        for (unsigned todo = live_blocks32(p, summary, first, r0, r1, &cls_all); todo;
             todo &= todo - 1) {
            const int j = __ffs(todo) - 1, c0 = (first + j) * BC;
            const fm_tile_class cls = class_of(cls_all, j, wg);
            fm_mbar_wait(sm.full(stage), phase);
            if (cls != FM_TILE_MASKED) {
                /* Keys past Sk (zero-filled K rows) must get P = 0: their columns mask all rows. */
                const bool partial = cls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k;
                uint32_t col_bits[2] = {0u, 0u};
                if (partial)
                    fm_cuda_column_bits(p, reinterpret_cast<const int32_t *>(
                                               smem_p + smem<D>::OFF_COLS + stage * COLS),
                                        c0, w0, lane, col_bits);
                const uint32_t aK = sm.k(stage), aV = sm.v(stage);

                float s[1][BC / 8][4];
#pragma unroll
                for (int n = 0; n < BC / 8; n++)
#pragma unroll
                    for (int e = 0; e < 4; e++) s[0][n][e] = 0.f;
                fm_wg_fence();
#pragma unroll
                for (int kk = 0; kk < D / 16; kk++)
                    fm_wg_ss<T, 64, 0, 0>(s[0], fm_wg_kmajor(aQ, 64, kk), fm_wg_kmajor(aK, 64, kk),
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
                    fm_wg_rs<T, D>(acc_o[0], a, fm_wg_mnmajor(aV, 64, kk));
                }
                fm_wg_commit();
                fm_wg_wait<0>();
            }
            __syncwarp();
            if (lane == 0) fm_mbar_arrive(sm.empty(stage)); /* this warp is done with the stage */
            if (++stage == NSTAGE) stage = 0, phase ^= 1u;
        }
    }
    fm_store_o_lse<T, 1, D>(p, acc_o, row_max, row_sum, row_sum_lse, b, h, w0, g, t);
#endif
}

/* This file's kernel for launch() (forward_sm90.cuh). */
struct wgmma_kernel {
    template <typename T, int D> static kernel_launch get()
    {
        return {fm_forward_wgmma_kernel<T, D>, NT, smem<D>::BYTES};
    }
};

} /* namespace */

cudaError_t fm_cuda_launch_forward_wgmma(const fm_attn_params &p, fm_dtype dtype,
                                         cudaStream_t stream)
{
    return launch<wgmma_kernel>(p, dtype, stream);
}
