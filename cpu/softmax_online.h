/* cpu/softmax_online.h — the row operations of FlashAttention's online softmax, on float32
 * tiles whose scores are already in the base-2 domain (score * log2(e)).
 * Layer: cpu (private header), used by forward.c (running max and sum over key tiles) and
 * backward.c (P recomputed from the saved log-sum-exp).
 *
 * Online softmax, per query row, over key tiles t = 1, 2, ...:
 *     m_t = max(m_{t-1}, max_j s_j)              running maximum (base 2)
 *     p_j = 2^(s_j - m_t)                        this tile's unnormalised probabilities
 *     l_t = l_{t-1} * 2^(m_{t-1} - m_t) + sum_j p_j
 *     o_t = o_{t-1} * 2^(m_{t-1} - m_t) + sum_j p_j v_j
 * and at the end O = o / l, LSE = (m + log2 l) * ln 2 (natural log, as docs/spec.md §1 defines it).
 * A row whose scores are all -inf so far keeps m = -inf, l = 0, o = 0 (no NaN from -inf - -inf).
 * The tile loops themselves are in row_kernels_body.h, compiled per instruction set.
 */
#ifndef FM_CPU_SOFTMAX_ONLINE_H
#define FM_CPU_SOFTMAX_ONLINE_H

#include <math.h>
#include <stdint.h>

#include "row_kernels.h"

#define FM_LN2 0.6931471805599453 /* ln 2: LSE = (m + log2 l) * ln 2 */

/* x[j] = 0 */
static inline void fm_row_zero(float *x, int64_t n)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) x[j] = 0.0f;
}

/* One key tile (or run of tiles) for a block of `rows` query rows: each row of scores
 * s[i*ld .. i*ld + cols) becomes p, its running m[i], l[i] are updated, and its output
 * accumulator o[i*D .. i*D + D) is rescaled by 2^(m_old - m_new) (skipped when m did not move;
 * a row whose keys so far are all masked keeps m = -inf, l = 0 and gets p = 0); the caller then
 * adds P.V. Runs in the widest vectors the processor has (row_kernels.h). */
static inline void fm_online_softmax_tile(float *s, int64_t ld, int64_t rows, int64_t cols,
                                          float *m, float *l, float *o, int64_t D)
{
    fm_row_kernels_get()->softmax_tile(s, ld, rows, cols, m, l, o, D);
}

/* The backward's P from the forward's log-sum-exp (natural log): s = 2^(s - lse log2 e) row by
 * row, zeros for a row whose lse is -inf. */
static inline void fm_softmax_exp2_rows(float *s, int64_t ld, int64_t rows, int64_t cols,
                                        const float *lse)
{
    fm_row_kernels_get()->exp2_rows(s, ld, rows, cols, lse);
}

/* The end of the forward for a block of rows: out = o / l and lse = (m + log2 l) ln 2 (natural
 * log); a row that saw no allowed key (l = 0) gets out = 0 and lse = -inf (docs/spec.md §1). */
static inline void fm_online_softmax_finish(int64_t rows, int64_t D, const float *m,
                                            const float *l, const float *o, float *out,
                                            float *lse)
{
    for (int64_t i = 0; i < rows; i++) {
        if (l[i] == 0.0f) { /* fully masked row */
            fm_row_zero(out + i * D, D);
            lse[i] = -INFINITY;
            continue;
        }
        const float inv = 1.0f / l[i];
        const float *o_row = o + i * D;
        float *dst = out + i * D;
#pragma omp simd
        for (int64_t d = 0; d < D; d++) dst[d] = o_row[d] * inv;
        lse[i] = (float)(FM_LN2 * ((double)m[i] + log2((double)l[i])));
    }
}

/* The softmax backward for a block of rows: dS = P * (dP - Delta) element-wise, with dP given
 * in ds (row stride ld) and overwritten by dS; delta[i] = rowsum(dO * O) of row i. */
static inline void fm_softmax_backward_tile(float *ds, const float *p, int64_t ld, int64_t rows,
                                            int64_t cols, const float *delta)
{
    fm_row_kernels_get()->softmax_bwd_tile(ds, p, ld, rows, cols, delta);
}

#endif
