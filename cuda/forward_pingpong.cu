/* cuda/forward_pingpong.cu — the Hopper forward (sm_90a, D = 64, 128) with its products scheduled
 * as FlashAttention-3 schedules them (its sections 3.1 and 3.2): the same blocks, producer,
 * live-block walk and tile rules as forward_wgmma.cu (forward_sm90.cuh), the same arithmetic in
 * the same order, so the same bits out; only when each product is issued and waited for
 * differs. Chosen by the kernel options (fwd=pingpong; cuda/heuristics.cu).
 * Layer: cuda <- masks (rules.h, through tile.cuh).
 *
 * Intra-warpgroup overlap. forward_wgmma.cu computes a tile as S = Q K^T, wait, softmax,
 * O += P V, wait, so a warpgroup's tensor-core work and its softmax never overlap. Here, at
 * live block j, a warpgroup issues S_j = Q K_j^T and then O += P_{j-1} V_{j-1} (the previous
 * tile's P, kept in registers), waits for S_j alone, and runs the softmax of tile j while
 * P_{j-1} V_{j-1} is still being multiplied; then it waits for that product, releases the
 * previous stage and corrects O for tile j's new row maxima, so that O goes through exactly
 * forward_wgmma.cu's sequence O = O * corr_j + P_j V_j. After the last block the pending P V is
 * issued on its own. Each product is waited for on the code path that issued it: ptxas
 * serialises wgmma whose waits it cannot place (warning C7518), which the first version of
 * this loop, with the products issued and waited for under separate conditions, triggered.
 *
 * Ping-pong. The two warpgroups take turns at issuing their products, passed on named
 * barriers: warpgroup w waits on barrier TURN + w (bar.sync, 256 threads: its own 128 and the
 * other's 128 arrivals), issues its products, and hands the turn over (bar.arrive on the
 * other's barrier) before it waits for them. So one warpgroup's products run while the other
 * does its softmax, instead of both contending for the tensor cores at once and then both
 * doing softmax. Warpgroup 1 gives warpgroup 0 the first turn; every live block is one turn
 * for each (also a block masked for one of them, which then just passes the turn on), and
 * warpgroup 0 takes one last turn before it exits, so every arrival is matched by a wait.
 *
 * A warpgroup holds at most two stages (the pending tile's V and the current tile's K); at a
 * block whose tile is fully masked for it, it finishes the pending P V at once and releases
 * both, so it never holds a stage across more blocks than that (with NSTAGE = 4 stages, the
 * producer could otherwise wait for a stage the consumer waits to release).
 */
#include "forward_sm90.cuh"
#include "softmax.cuh"

namespace {

using namespace fm_sm90_fwd;

constexpr int TURN = 1;           /* named barrier ids TURN, TURN + 1 (0 is __syncthreads) */
constexpr int TURN_THREADS = 256; /* both consumer warpgroups take part in each */

#ifdef FM_WGMMA_DEVICE
/* Issues S = Q K^T (one commit group): Q of the warpgroup at aQ, K of the stage at aK. */
template <typename T, int D>
__device__ __forceinline__ void issue_qk(float (&s)[BC / 8][4], uint32_t aQ, uint32_t aK)
{
#pragma unroll
    for (int n = 0; n < BC / 8; n++)
#pragma unroll
        for (int e = 0; e < 4; e++) s[n][e] = 0.f;
    fm_wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        fm_wg_ss<T, 64, 0, 0>(s, fm_wg_kmajor(aQ, 64, kk), fm_wg_kmajor(aK, 64, kk), 1);
    fm_wg_commit();
}

/* Issues O += P V (one commit group): P in registers, V of the stage at aV. */
template <typename T, int D>
__device__ __forceinline__ void issue_pv(float (&acc_o)[D / 8][4],
                                         const uint32_t (&p_tc)[BC / 8][2], uint32_t aV)
{
    fm_wg_fence();
#pragma unroll
    for (int kk = 0; kk < BC / 16; kk++) {
        const uint32_t a[4] = {p_tc[2 * kk][0], p_tc[2 * kk][1], p_tc[2 * kk + 1][0],
                               p_tc[2 * kk + 1][1]};
        fm_wg_rs<T, D>(acc_o, a, fm_wg_mnmajor(aV, 64, kk));
    }
    fm_wg_commit();
}
#endif

template <typename T, int D>
__global__ void __launch_bounds__(NT, 1)
    fm_forward_pingpong_kernel(const fm_attn_params p, const __grid_constant__ CUtensorMap map_q,
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

    /* The pending tile: its P and its stage (whose V its P V reads); held < 0 when there is
     * none. O is already corrected for the pending tile's row maxima. */
    uint32_t p_tc[1][BC / 8][2];
    int held = -1;
    auto release = [&](int s) {
        __syncwarp();
        if (lane == 0) fm_mbar_arrive(sm.empty(s)); /* this warp is done with stage s */
    };
    /* Mask and softmax of a tile whose S has landed: P into p_out, O corrected for the new row
     * maxima (no product that writes O may be in flight). */
    auto softmax = [&](float(&s)[1][BC / 8][4], bool partial, const uint32_t(&col_bits)[2],
                       uint32_t(&p_out)[1][BC / 8][2], float(&corr)[1][2]) {
        if (partial) fm_mask_tile<1, BC / 8>(s, col_bits, g, t);
        return fm_online_softmax<T, 1, BC / 8>(s, p_out, row_max, row_sum, row_sum_lse, corr,
                                               scale_log2);
    };

    if (wg == 1) fm_bar_arrive(TURN, TURN_THREADS); /* warpgroup 0 has the first turn */
    fm_mbar_wait(sm.q_full(wg), 0);
    int stage = 0;
    uint32_t phase = 0;
    for (int first = 0; first < p.n_kblocks; first += 32) {
        uint32_t cls_all;
        for (unsigned todo = live_blocks32(p, summary, first, r0, r1, &cls_all); todo;
             todo &= todo - 1) {
            const int j = __ffs(todo) - 1, c0 = (first + j) * BC;
            const fm_tile_class cls = class_of(cls_all, j, wg);
            const bool live = cls != FM_TILE_MASKED;
            /* Keys past Sk (zero-filled K rows) must get P = 0: their columns mask all rows. */
            const bool partial = live && (cls == FM_TILE_PARTIAL || c0 + BC > p.seqlen_k);
            fm_mbar_wait(sm.full(stage), phase);
            uint32_t col_bits[2] = {0u, 0u};
            if (partial)
                fm_cuda_column_bits(p, reinterpret_cast<const int32_t *>(
                                           smem_p + smem<D>::OFF_COLS + stage * COLS),
                                    c0, w0, lane, col_bits);
            /* Four straight paths, so that every product is waited for on the path that
             * issued it (ptxas serialises products whose wait it cannot place otherwise). */
            float s[1][BC / 8][4], corr[1][2];
            if (live && held >= 0) { /* S of this tile and P V of the pending one */
                fm_bar_sync(TURN + wg, TURN_THREADS);
                issue_qk<T, D>(s[0], aQ, sm.k(stage));
                issue_pv<T, D>(acc_o[0], p_tc[0], sm.v(held));
                fm_bar_arrive(TURN + (wg ^ 1), TURN_THREADS);
                fm_wg_wait<1>(); /* S has landed; P V may still run */
                fm_wg_hold(s[0]);
                uint32_t p_next[1][BC / 8][2];
                const bool rescale = softmax(s, partial, col_bits, p_next, corr);
                fm_wg_wait<0>();
                fm_wg_hold(acc_o[0]);
                fm_wg_hold(p_tc[0]);
                release(held);
#pragma unroll
                for (int n = 0; n < BC / 8; n++)
                    p_tc[0][n][0] = p_next[0][n][0], p_tc[0][n][1] = p_next[0][n][1];
                if (__any_sync(0xffffffffu, rescale)) fm_rescale_o<1, D / 8>(acc_o, corr);
                held = stage;
            } else if (live) { /* S of this tile; nothing pending */
                fm_bar_sync(TURN + wg, TURN_THREADS);
                issue_qk<T, D>(s[0], aQ, sm.k(stage));
                fm_bar_arrive(TURN + (wg ^ 1), TURN_THREADS);
                fm_wg_wait<0>();
                fm_wg_hold(s[0]);
                const bool rescale = softmax(s, partial, col_bits, p_tc, corr);
                if (__any_sync(0xffffffffu, rescale)) fm_rescale_o<1, D / 8>(acc_o, corr);
                held = stage;
            } else if (held >= 0) { /* masked for this warpgroup: finish the pending P V */
                fm_bar_sync(TURN + wg, TURN_THREADS);
                issue_pv<T, D>(acc_o[0], p_tc[0], sm.v(held));
                fm_bar_arrive(TURN + (wg ^ 1), TURN_THREADS);
                fm_wg_wait<0>();
                fm_wg_hold(acc_o[0]);
                release(held), release(stage);
                held = -1;
            } else { /* masked for this warpgroup, nothing pending: pass the turn on */
                fm_bar_sync(TURN + wg, TURN_THREADS);
                fm_bar_arrive(TURN + (wg ^ 1), TURN_THREADS);
                release(stage);
            }
            if (++stage == NSTAGE) stage = 0, phase ^= 1u;
        }
    }
    if (held >= 0) { /* the last tile's P V, outside the turns */
        issue_pv<T, D>(acc_o[0], p_tc[0], sm.v(held));
        fm_wg_wait<0>();
        fm_wg_hold(acc_o[0]);
        release(held);
    }
    fm_store_o_lse<T, 1, D>(p, acc_o, row_max, row_sum, row_sum_lse, b, h, w0, g, t);
    end_turns(wg, TURN, TURN_THREADS);
#endif
}

/* This file's kernel for launch() (forward_sm90.cuh). */
struct pingpong_kernel {
    template <typename T, int D> static kernel_launch get()
    {
        return {fm_forward_pingpong_kernel<T, D>, NT, smem<D>::BYTES};
    }
};

} /* namespace */

cudaError_t fm_cuda_launch_forward_pingpong(const fm_attn_params &p, fm_dtype dtype,
                                            cudaStream_t stream)
{
    return launch<pingpong_kernel>(p, dtype, stream);
}
