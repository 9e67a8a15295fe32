/* cuda/ladder/fwd3_mma.cu — ladder step 3 (forward): step 2 on tensor cores. The loop is the
 * same (key blocks of 64, a fully masked tile skipped before its loads, element tests only on
 * a partial tile); what changes is who multiplies:
 *
 *   - four warps, each owning 16 query rows (a 64-row block); S = Q K^T and O += P V are
 *     mma.sync m16n8k16 instructions (float16/bfloat16 in, float32 accumulate), each a 16x8x16
 *     product per warp, about 16 times the CUDA cores' rate;
 *   - operands reach the tensor cores through ldmatrix from shared tiles padded to D + 8
 *     elements per row (the 8 rows one ldmatrix reads then fall in distinct banks); Q is staged
 *     once per block, K and V once per key block;
 *   - S stays in registers in the accumulator layout (tc.cuh); the online softmax works there
 *     (softmax.cuh, shared with step 4 so both compute the same numbers), and P is packed to
 *     float16/bfloat16 in registers to become the A operand of P V with no trip through memory;
 *   - a partial tile's element rule is evaluated 32 rows at a time per column
 *     (fm_column_masked_bits32, rules.h) and applied as -inf.
 *
 * Left out on purpose, and what step 4 (cuda/forward.cu) adds: cp.async copies that fetch the
 * next K while P V of this block runs; a list of the live key blocks made ahead of the loop
 * (32 blocks classified per warp instruction instead of one per iteration); tile classes per
 * warp (a warp whose 16-32 rows a live tile fully masks skips its arithmetic); 32 rows per
 * warp, so that each K/V fragment read from shared memory serves two row slices.
 * D a multiple of 16 (all of 32, 64, 96, 128, 256). Layer: cuda <- masks (rules.h).
 */
#include "ladder.h"
#include "common.cuh"
#include "../softmax.cuh"
#include "../tile.cuh"

template <typename T, int D> struct fwd3 {
    static constexpr int NW = 4, NT = NW * 32, BR = 16 * NW, BC = FM_CUDA_BLOCK_K, LD = D + 8;
    static constexpr size_t SMEM = (size_t)(BR + 2 * BC) * LD * sizeof(T) +
                                   BC * FM_BOUNDS * sizeof(int32_t);
    static_assert(D % 16 == 0, "mma.sync steps of 16 along D");
};

template <typename T, int D>
__global__ void __launch_bounds__(128) fm_fwd3_kernel(const fm_attn_params p)
{
    using C = fwd3<T, D>;
    constexpr int BR = C::BR, BC = C::BC, LD = C::LD, NT = C::NT;
    extern __shared__ __align__(16) unsigned char smem[];
    T *sQ = reinterpret_cast<T *>(smem), *sK = sQ + BR * LD, *sV = sK + BC * LD;
    int32_t *sCols = reinterpret_cast<int32_t *>(sV + BC * LD);

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, g = lane >> 2, t = lane & 3;
    const int h = blockIdx.y, b = blockIdx.z;
    const int r0 = blockIdx.x * BR, r1 = min(r0 + BR, p.seqlen_q), w0 = r0 + warp * 16;
    const fm_ladder_head hd(p, b, h);
    const T *K = static_cast<const T *>(p.k) + hd.kv_base * D;
    const T *V = static_cast<const T *>(p.v) + hd.kv_base * D;
    const float scale_log2 = p.scale * FM_LADDER_LOG2E;

    fm_ladder_load_tile<D, LD, NT>(sQ, static_cast<const T *>(p.q) + (hd.row_base + r0) * D, BR,
                                   r1 - r0, tid);
    float acc_o[1][D / 8][4];
#pragma unroll
    for (int n = 0; n < D / 8; n++)
        for (int e = 0; e < 4; e++) acc_o[0][n][e] = 0.f;
    float row_max[1][2] = {{-INFINITY, -INFINITY}}, row_sum[1][2] = {{0.f, 0.f}};
    float row_sum_lse[1][2] = {{0.f, 0.f}};

    for (int kb = 0; kb < p.n_kblocks; kb++) {
        const fm_tile_class cls = fm_cuda_classify(p, hd.summary, kb, r0, r1);
        if (cls == FM_TILE_MASKED) continue;
        const int c0 = kb * BC, valid = min(BC, p.seqlen_k - c0);
        const bool partial = cls == FM_TILE_PARTIAL || valid < BC;
        __syncthreads(); /* every warp is done with the previous K and V (and Q is written) */
        fm_ladder_load_tile<D, LD, NT>(sK, K + (size_t)c0 * D, BC, valid, tid);
        fm_ladder_load_tile<D, LD, NT>(sV, V + (size_t)c0 * D, BC, valid, tid);
        if (partial)
            for (int c = tid; c < BC * FM_BOUNDS; c += NT)
                sCols[c] = c < valid * FM_BOUNDS ? hd.bounds[(size_t)c0 * FM_BOUNDS + c] : 0;
        __syncthreads();

        /* S = Q K^T: this warp's 16 rows x 64 keys, 8 accumulator blocks of 16 x 8. */
        float s[1][BC / 8][4];
#pragma unroll
        for (int n = 0; n < BC / 8; n++)
            for (int e = 0; e < 4; e++) s[0][n][e] = 0.f;
#pragma unroll
        for (int kk = 0; kk < D / 16; kk++) {
            uint32_t a[4];
            fm_ldsm_x4(a, fm_a_addr<LD>(sQ, warp * 16, kk * 16, lane));
#pragma unroll
            for (int n2 = 0; n2 < BC / 16; n2++) {
                uint32_t bf[4]; /* K rows n2*16 .. +15 as two 8-key B operands */
                fm_ldsm_x4(bf, fm_bt_addr<LD>(sK, n2 * 16, kk * 16, lane));
                fm_mma(s[0][2 * n2], a, bf[0], bf[1], T());
                fm_mma(s[0][2 * n2 + 1], a, bf[2], bf[3], T());
            }
        }
        if (partial) { /* keys past Sk mask every row (fm_cuda_column) */
            uint32_t col_bits[2];
            fm_cuda_column_bits(p, sCols, c0, w0, lane, col_bits);
            fm_mask_tile<1, BC / 8>(s, col_bits, g, t);
        }

        uint32_t p_tc[1][BC / 8][2];
        float corr[1][2];
        fm_online_softmax<T, 1, BC / 8>(s, p_tc, row_max, row_sum, row_sum_lse, corr,
                                        scale_log2);
        fm_rescale_o<1, D / 8>(acc_o, corr);

        /* O += P V: two adjacent 16x8 blocks of P are one A fragment; V through ldmatrix.trans. */
#pragma unroll
        for (int kk = 0; kk < BC / 16; kk++) {
            const uint32_t a[4] = {p_tc[0][2 * kk][0], p_tc[0][2 * kk][1], p_tc[0][2 * kk + 1][0],
                                   p_tc[0][2 * kk + 1][1]};
#pragma unroll
            for (int n2 = 0; n2 < D / 16; n2++) {
                uint32_t bf[4];
                fm_ldsm_x4_trans(bf, fm_b_addr<LD>(sV, kk * 16, n2 * 16, lane));
                fm_mma(acc_o[0][2 * n2], a, bf[0], bf[1], T());
                fm_mma(acc_o[0][2 * n2 + 1], a, bf[2], bf[3], T());
            }
        }
    }
    fm_store_o_lse<T, 1, D>(p, acc_o, row_max, row_sum, row_sum_lse, b, h, w0, g, t);
}

template <typename T, int D> struct fwd3_launch {
    static cudaError_t run(const fm_attn_params &p, cudaStream_t stream)
    {
        using C = fwd3<T, D>;
        cudaError_t err = fm_ladder_smem(fm_fwd3_kernel<T, D>, C::SMEM);
        if (err != cudaSuccess) return err;
        dim3 grid((p.seqlen_q + C::BR - 1) / C::BR, p.q_heads, p.batch);
        fm_fwd3_kernel<T, D><<<grid, C::NT, C::SMEM, stream>>>(p);
        return cudaGetLastError();
    }
};

cudaError_t fm_ladder_fwd3(const fm_attn_params &p, fm_dtype dtype, cudaStream_t stream)
{
    return fm_ladder_dispatch<fwd3_launch>(p, dtype, stream);
}
