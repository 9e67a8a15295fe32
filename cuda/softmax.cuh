/* cuda/softmax.cuh — the forward pass's per-tile steps on the accumulator layout every kernel
 * here shares (mma.sync's C fragment; wgmma's is the same per warp, wgmma.cuh): mask a partial
 * tile from its columns' row bits, the online softmax that turns S into P and updates each row's
 * running max and sums, the rescale of O, and the epilogue that writes O and the LSE. Used by
 * forward.cu (mma.sync) and the Hopper forwards (forward_wgmma.cu, forward_pingpong.cu,
 * forward_wide.cu), so that all compute the same numbers up to the order of float32 sums.
 * Layer: cuda (private header, device code).
 *
 * A thread holds, for each 16-row slice m of its warp and each 8-column block n, s[m][n][e]:
 * rows g (e = 0, 1) and g + 8 (e = 2, 3), columns n * 8 + 2t + (e & 1), g = lane / 4, t = lane % 4.
 */
#ifndef FM_CUDA_SOFTMAX_CUH
#define FM_CUDA_SOFTMAX_CUH

#include <math.h>

#include "kernels.h"
#include "tc.cuh"

/* The start of a block of rows: O = 0, no maximum yet (-inf), sums 0. */
template <int MI, int D>
__device__ __forceinline__ void fm_rows_start(float (&acc_o)[MI][D / 8][4], float (&row_max)[MI][2],
                                              float (&row_sum)[MI][2], float (&row_sum_lse)[MI][2])
{
#pragma unroll
    for (int m = 0; m < MI; m++) {
#pragma unroll
        for (int n = 0; n < D / 8; n++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc_o[m][n][e] = 0.f;
#pragma unroll
        for (int hr = 0; hr < 2; hr++)
            row_max[m][hr] = -INFINITY, row_sum[m][hr] = 0.f, row_sum_lse[m][hr] = 0.f;
    }
}

/* Partial tile: S = -inf where the column's bit for the row is set. col_bits: lane l holds in
 * col_bits[k] the rows w0 .. w0 + 31 that key l + 32 k masks (fm_cuda_column_bits); slice m
 * covers rows w0 + 16 m .. + 15. */
template <int MI, int NB>
__device__ __forceinline__ void fm_mask_tile(float (&s)[MI][NB][4], const uint32_t col_bits[2],
                                             int g, int t)
{
#pragma unroll
    for (int n = 0; n < NB; n++)
#pragma unroll
        for (int c = 0; c < 2; c++) {
            const uint32_t rows =
                __shfl_sync(0xffffffffu, col_bits[n / 4], (n % 4) * 8 + 2 * t + c) >> g;
#pragma unroll
            for (int m = 0; m < MI; m++)
#pragma unroll
                for (int hr = 0; hr < 2; hr++)
                    if ((rows >> (m * 16 + hr * 8)) & 1u) s[m][n][2 * hr + c] = -INFINITY;
        }
}

/* The first half of a row's online-softmax step: its maximum over the tile (rows g or g + 8 by
 * hr; the row's four threads together), the correction corr = exp(row_max - row_max') of its
 * old sums (*rescale set when it is not 1), and the bias that P's exponent subtracts. */
template <int NB>
__device__ __forceinline__ float fm_softmax_row_max(const float (&s)[NB][4], int hr,
                                                    float &row_max, float &corr, bool *rescale,
                                                    float scale_log2)
{
    /* a tree, not a chain: the same maximum, in log2(NB) dependent steps instead of NB */
    float mx[NB];
#pragma unroll
    for (int n = 0; n < NB; n++) mx[n] = fmaxf(s[n][2 * hr], s[n][2 * hr + 1]);
#pragma unroll
    for (int w = 1; w < NB; w *= 2)
#pragma unroll
        for (int n = 0; n + w < NB; n += 2 * w) mx[n] = fmaxf(mx[n], mx[n + w]);
    const float m_new = fmaxf(row_max, fm_quad_max(mx[0]));
    /* Nothing allowed yet in this row: subtract 0 so exp(-inf - 0) = 0. */
    const float m_use = m_new == -INFINITY ? 0.f : m_new;
    corr = fm_exp2((row_max - m_use) * scale_log2);
    *rescale |= corr != 1.f;
    row_max = m_new;
    return m_use * scale_log2;
}

/* Online softmax of one tile: row_max' = max(row_max, rowmax S), corr = exp(row_max -
 * row_max'), P = exp(S - row_max') rounded to T, row sums updated; keep(m, n, hr, p0, p1) keeps
 * each pair of P where its caller wants it and returns it rounded. Returns whether some corr of
 * this thread is not 1 (the caller rescales O when any lane's is). */
template <typename T, int MI, int NB, typename Keep>
__device__ __forceinline__ bool fm_softmax_step(const float (&s)[MI][NB][4],
                                                float (&row_max)[MI][2], float (&row_sum)[MI][2],
                                                float (&row_sum_lse)[MI][2],
                                                float (&corr)[MI][2], float scale_log2, Keep keep)
{
    bool rescale = false;
#pragma unroll
    for (int m = 0; m < MI; m++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const float bias = fm_softmax_row_max<NB>(s[m], hr, row_max[m][hr], corr[m][hr],
                                                      &rescale, scale_log2);
            /* P is rounded to T here, once: P V multiplies the rounded values, and the row sum
             * adds the same rounded values, so O = sum P v / sum P is an exact weighted mean of
             * V rows. (Summing the float32 P instead biases a row of O by sum(round(P) - P) /
             * sum P, and through Delta = dO . O the backward turns that bias into dQ error:
             * 0.080 against the oracle's bound 0.065 on one bfloat16 case, 0.037 with this.)
             * The LSE, though, is a float32 output judged at float32 accuracy: it takes the sum
             * of the float32 P (from the rounded one it was off by up to 2.2x the oracle's bound
             * on rows of two or three keys in float16). */
            float sum = 0.f, sum_lse = 0.f;
#pragma unroll
            for (int n = 0; n < NB; n++) {
                const float p0 = fm_exp2(fmaf(s[m][n][2 * hr], scale_log2, -bias));
                const float p1 = fm_exp2(fmaf(s[m][n][2 * hr + 1], scale_log2, -bias));
                const float2 pr = keep(m, n, hr, p0, p1);
                sum += pr.x + pr.y;
                sum_lse += p0 + p1;
            }
            row_sum[m][hr] = row_sum[m][hr] * corr[m][hr] + sum;
            row_sum_lse[m][hr] = row_sum_lse[m][hr] * corr[m][hr] + sum_lse;
        }
    return rescale;
}

/* The step with P packed to T in p_tc (two adjacent C blocks of P form one A fragment of P V). */
template <typename T, int MI, int NB>
__device__ __forceinline__ bool fm_online_softmax(const float (&s)[MI][NB][4],
                                                  uint32_t (&p_tc)[MI][NB][2],
                                                  float (&row_max)[MI][2], float (&row_sum)[MI][2],
                                                  float (&row_sum_lse)[MI][2],
                                                  float (&corr)[MI][2], float scale_log2)
{
    return fm_softmax_step<T>(s, row_max, row_sum, row_sum_lse, corr, scale_log2,
                              [&](int m, int n, int hr, float p0, float p1) {
                                  p_tc[m][n][hr] = fm_tc_type<T>::pack(p0, p1);
                                  return fm_tc_type<T>::unpack(p_tc[m][n][hr]);
                              });
}

/* The step for a kernel whose P V forms the row sums of the rounded P itself (forward_wide.cu:
 * V carries eight columns of ones, so O's accumulator ends with sum round(P) per row, rescaled
 * with O): only the float32 sum the LSE takes is kept here, and P stays in s as float32, rounded
 * to T once, when fm_pack_p packs it (the values fm_online_softmax packs), after the P V that
 * still reads the previous P is done: packing into fresh registers while it runs made ptxas
 * serialise the products (C7513), and FlashAttention-3 converts its P after that wait too. */
template <int MI, int NB>
__device__ __forceinline__ bool
fm_online_softmax_lse_in_place(float (&s)[MI][NB][4], float (&row_max)[MI][2],
                               float (&row_sum_lse)[MI][2], float (&corr)[MI][2], float scale_log2)
{
    bool rescale = false;
#pragma unroll
    for (int m = 0; m < MI; m++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const float bias = fm_softmax_row_max<NB>(s[m], hr, row_max[m][hr], corr[m][hr],
                                                      &rescale, scale_log2);
            float sum_lse = 0.f;
#pragma unroll
            for (int n = 0; n < NB; n++) {
                const float p0 = fm_exp2(fmaf(s[m][n][2 * hr], scale_log2, -bias));
                const float p1 = fm_exp2(fmaf(s[m][n][2 * hr + 1], scale_log2, -bias));
                s[m][n][2 * hr] = p0, s[m][n][2 * hr + 1] = p1;
                sum_lse += p0 + p1;
            }
            row_sum_lse[m][hr] = row_sum_lse[m][hr] * corr[m][hr] + sum_lse;
        }
    return rescale;
}

/* P left in s (fm_online_softmax_lse_in_place) packed to T, rounded as fm_online_softmax rounds
 * it. */
template <typename T, int MI, int NB>
__device__ __forceinline__ void fm_pack_p(const float (&s)[MI][NB][4],
                                          uint32_t (&p_tc)[MI][NB][2])
{
#pragma unroll
    for (int m = 0; m < MI; m++)
#pragma unroll
        for (int n = 0; n < NB; n++)
#pragma unroll
            for (int hr = 0; hr < 2; hr++)
                p_tc[m][n][hr] = fm_tc_type<T>::pack(s[m][n][2 * hr], s[m][n][2 * hr + 1]);
}

/* O *= corr, row by row. */
template <int MI, int ND>
__device__ __forceinline__ void fm_rescale_o(float (&acc_o)[MI][ND][4], const float (&corr)[MI][2])
{
#pragma unroll
    for (int m = 0; m < MI; m++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++)
#pragma unroll
            for (int n = 0; n < ND; n++)
                acc_o[m][n][2 * hr] *= corr[m][hr], acc_o[m][n][2 * hr + 1] *= corr[m][hr];
}

/* Epilogue of rows w0 .. w0 + 16 MI - 1 of (b, h), from each row's whole sums (l: of the rounded
 * P that O summed, l_lse: of the float32 P): O / l and LSE = m * scale + log l_lse; a row with
 * l = 0 has nothing allowed (O = 0, LSE = -inf, docs/spec.md §1); rows past Sq are not written.
 * acc_o may have more 8-column blocks than D / 8 (forward_wide.cu's row-sum columns): the first
 * D / 8 are O. */
template <typename T, int MI, int D, int ND>
__device__ __forceinline__ void fm_store_o_lse_rows(const fm_attn_params &p,
                                                    const float (&acc_o)[MI][ND][4],
                                                    const float (&row_max)[MI][2],
                                                    const float (&l_rows)[MI][2],
                                                    const float (&l_lse_rows)[MI][2], int b, int h,
                                                    int w0, int g, int t)
{
    static_assert(ND >= D / 8, "O has D / 8 column blocks");
#pragma unroll
    for (int m = 0; m < MI; m++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++) {
            const int i = w0 + m * 16 + g + hr * 8;
            const float l = l_rows[m][hr], l_lse = l_lse_rows[m][hr];
            if (i >= p.seqlen_q) continue;
            const float inv = l > 0.f ? 1.f / l : 0.f;
            T *o = static_cast<T *>(p.out) + (((size_t)b * p.q_heads + h) * p.seqlen_q + i) * D;
#pragma unroll
            for (int n = 0; n < D / 8; n++)
                *reinterpret_cast<uint32_t *>(o + n * 8 + 2 * t) = fm_tc_type<T>::pack(
                    acc_o[m][n][2 * hr] * inv, acc_o[m][n][2 * hr + 1] * inv);
            if (t == 0)
                p.lse[((size_t)b * p.q_heads + h) * p.seqlen_q + i] =
                    l > 0.f ? row_max[m][hr] * p.scale + logf(l_lse) : -INFINITY;
        }
}

/* The epilogue from each thread's part of the row sums (the quad adds them up). */
template <typename T, int MI, int D>
__device__ __forceinline__ void fm_store_o_lse(const fm_attn_params &p, const float (&acc_o)[MI][D / 8][4],
                                               const float (&row_max)[MI][2],
                                               const float (&row_sum)[MI][2],
                                               const float (&row_sum_lse)[MI][2], int b, int h,
                                               int w0, int g, int t)
{
    float l[MI][2], l_lse[MI][2];
#pragma unroll
    for (int m = 0; m < MI; m++)
#pragma unroll
        for (int hr = 0; hr < 2; hr++)
            l[m][hr] = fm_quad_sum(row_sum[m][hr]), l_lse[m][hr] = fm_quad_sum(row_sum_lse[m][hr]);
    fm_store_o_lse_rows<T, MI, D>(p, acc_o, row_max, l, l_lse, b, h, w0, g, t);
}

#endif
