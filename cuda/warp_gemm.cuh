/* cuda/warp_gemm.cuh — the two shapes of matrix product a warp runs on a 16-row slice in the
 * backward kernels, written once: 16 x N tiles from mma.sync (tc.cuh) with float32 results.
 *   fm_warp_mma_abt: C  = A B^T, A = 16 rows of a [row][k] shared tile, B a [n][k] tile
 *                    (S = Q K^T, dP = dO V^T, and transposed: S^T = K Q^T, dP^T = V dO^T);
 *   fm_warp_mma_pb:  C += P B,  P = 16 x KR values in registers (C layout of a previous
 *                    product, rounded to T here), B a [k][n] tile read with ldmatrix.trans
 *                    (dV += P^T dO, dK += dS^T Q, dQ += dS K).
 * Layer: cuda (private header, device code). Tiles use tc.cuh's addressing (padded or
 * swizzled by LD). */
#ifndef FM_CUDA_WARP_GEMM_CUH
#define FM_CUDA_WARP_GEMM_CUH

#include "tc.cuh"

/* c[N/8][4] = A[a_row .. a_row + 16)[0 .. K) * B[0 .. N)[0 .. K)^T */
template <typename T, int LD, int K, int N>
__device__ __forceinline__ void fm_warp_mma_abt(float (&c)[N / 8][4], const T *sA, int a_row,
                                                const T *sB, int lane)
{
#pragma unroll
    for (int n = 0; n < N / 8; n++)
        for (int e = 0; e < 4; e++) c[n][e] = 0.f;
#pragma unroll
    for (int kk = 0; kk < K / 16; kk++) {
        uint32_t a[4];
        fm_ldsm_x4(a, fm_a_addr<LD>(sA, a_row, kk * 16, lane));
#pragma unroll
        for (int n2 = 0; n2 < N / 16; n2++) {
            uint32_t bf[4];
            fm_ldsm_x4(bf, fm_bt_addr<LD>(sB, n2 * 16, kk * 16, lane));
            fm_mma(c[2 * n2], a, bf[0], bf[1], T());
            fm_mma(c[2 * n2 + 1], a, bf[2], bf[3], T());
        }
    }
}

/* c[N/8][4] += P * B[0 .. KR)[0 .. N), P = p[KR/8][4] in the C fragment layout: two adjacent
 * 16 x 8 blocks of P, packed to T, are one A fragment. */
template <typename T, int LD, int KR, int N>
__device__ __forceinline__ void fm_warp_mma_pb(float (&c)[N / 8][4], const float (&p)[KR / 8][4],
                                               const T *sB, int lane)
{
#pragma unroll
    for (int kk = 0; kk < KR / 16; kk++) {
        uint32_t a[4];
        a[0] = fm_tc_type<T>::pack(p[2 * kk][0], p[2 * kk][1]);
        a[1] = fm_tc_type<T>::pack(p[2 * kk][2], p[2 * kk][3]);
        a[2] = fm_tc_type<T>::pack(p[2 * kk + 1][0], p[2 * kk + 1][1]);
        a[3] = fm_tc_type<T>::pack(p[2 * kk + 1][2], p[2 * kk + 1][3]);
#pragma unroll
        for (int n2 = 0; n2 < N / 16; n2++) {
            uint32_t bf[4];
            fm_ldsm_x4_trans(bf, fm_b_addr<LD>(sB, kk * 16, n2 * 16, lane));
            fm_mma(c[2 * n2], a, bf[0], bf[1], T());
            fm_mma(c[2 * n2 + 1], a, bf[2], bf[3], T());
        }
    }
}

#endif
