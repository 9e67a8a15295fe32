/* cuda/backward_tile_sm90.cuh — one warpgroup's work on one live (64 keys x 64 queries) tile of
 * the Hopper dK/dV kernels (backward_wgmma.cu and backward_pipelined.cu): the products and the
 * register steps both kernels run in the same order, so that one text serves both. What differs
 * between them — where Q, dO, LSE and Delta come from, and how LSE reaches log2 units — stays in
 * the kernels, which compute a partial tile's row bits and P^T between these steps (the row
 * bits written here once made ptxas schedule the pipelined kernel differently):
 *   issue_s_dp    S^T = K Q^T and dP^T = V dO^T, two commit groups (wgmma, SW128 operands);
 *   dv_product    dV += P^T dO, P^T from registers, dO read transposed;
 *   ds_dk         dS^T = P^T (dP^T - Delta) packed to T, then dK += dS^T Q;
 *   store_ds      dS^T into shared memory ([key][query], SW128) for dQ = dS K.
 * Layer: cuda (private header, device code of the sm_90a pass only).
 */
#ifndef FM_CUDA_BACKWARD_TILE_SM90_CUH
#define FM_CUDA_BACKWARD_TILE_SM90_CUH

#include "backward_sm90.cuh"
#include "tc.cuh"
#include "wgmma.cuh"

namespace fm_sm90_bwd {
#ifdef FM_WGMMA_DEVICE

/* S^T = K Q^T and dP^T = V dO^T (64 keys x 64 queries each, k = D) in two groups, so that P^T
 * can be computed from S^T, and dV += P^T dO issued, while dP^T still runs. aKw / aVw: this
 * warpgroup's 64 keys in K and V tiles of KEYS rows. */
template <typename T, int D, int KEYS>
__device__ __forceinline__ void issue_s_dp(float (&s)[8][4], float (&dp)[8][4], uint32_t aKw,
                                           uint32_t aVw, uint32_t aQ, uint32_t adO)
{
    fm_wg_fence();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        fm_wg_ss<T, 64, 0, 0>(s, fm_wg_kmajor(aKw, KEYS, kk), fm_wg_kmajor(aQ, BR, kk), kk);
    fm_wg_commit();
#pragma unroll
    for (int kk = 0; kk < D / 16; kk++)
        fm_wg_ss<T, 64, 0, 0>(dp, fm_wg_kmajor(aVw, KEYS, kk), fm_wg_kmajor(adO, BR, kk), kk);
    fm_wg_commit();
}

/* dV += P^T dO: k = the 64 queries, N = D, dO read transposed. */
template <typename T, int D>
__device__ __forceinline__ void dv_product(float (&acc_dv)[D / 8][4], const uint32_t (&pa)[4][4],
                                           uint32_t adO)
{
    fm_wg_fence();
#pragma unroll
    for (int kk = 0; kk < BR / 16; kk++)
        fm_wg_rs<T, D>(acc_dv, pa[kk], fm_wg_mnmajor(adO, BR, kk));
    fm_wg_commit();
}

/* dS^T = P^T (dP^T - Delta), packed as A fragments the way P^T is; dK += dS^T Q (Q read
 * transposed). p: P^T in float, delta: the query block's 64 values. */
template <typename T, int D>
__device__ __forceinline__ void ds_dk(float (&acc_dk)[D / 8][4], uint32_t (&dsa)[4][4],
                                      const float (&p)[8][4], const float (&dp)[8][4],
                                      const float *delta, int t, uint32_t aQ)
{
#pragma unroll
    for (int n = 0; n < 8; n++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const float d0 = delta[n * 8 + 2 * t], d1 = delta[n * 8 + 2 * t + 1];
            dsa[n / 2][(n % 2) * 2 + hr] =
                fm_tc_type<T>::pack(p[n][2 * hr] * (dp[n][2 * hr] - d0),
                                    p[n][2 * hr + 1] * (dp[n][2 * hr + 1] - d1));
        }
    fm_wg_fence();
#pragma unroll
    for (int kk = 0; kk < BR / 16; kk++)
        fm_wg_rs<T, D>(acc_dk, dsa[kk], fm_wg_mnmajor(aQ, BR, kk));
    fm_wg_commit();
}

/* dS^T into sdS ([KEYS keys][64 queries], SW128): this thread's keys kr0 and kr0 + 8. */
template <int KEYS>
__device__ __forceinline__ void store_ds(unsigned char *sdS, const uint32_t (&dsa)[4][4], int kr0,
                                         int t)
{
#pragma unroll
    for (int kk = 0; kk < 4; kk++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int kr = kr0 + (j & 1) * 8;
            const int qc = kk * 16 + (j >> 1) * 8 + 2 * t;
            *reinterpret_cast<uint32_t *>(sdS + fm_sw128(kr, qc, KEYS)) = dsa[kk][j];
        }
}

#endif /* FM_WGMMA_DEVICE */
} /* namespace fm_sm90_bwd */

#endif
