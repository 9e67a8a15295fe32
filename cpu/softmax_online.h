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
 */
#ifndef FM_CPU_SOFTMAX_ONLINE_H
#define FM_CPU_SOFTMAX_ONLINE_H

#include <math.h>
#include <stdint.h>

#include "exp_fast.h"

#define FM_LN2 0.6931471805599453 /* ln 2: LSE = (m + log2 l) * ln 2 */

/* Largest value of x[0..n) (-inf if all are -inf). */
static inline float fm_row_max(const float *x, int64_t n)
{
    float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < n; j++) mx = x[j] > mx ? x[j] : mx;
    return mx;
}

/* x[j] = 2^(x[j] - m) in place; returns the sum. m must be finite (x[j] = -inf gives 0). */
static inline float fm_row_exp2_sum(float *x, int64_t n, float m)
{
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < n; j++) {
        float p = fm_exp2f_fast(x[j] - m);
        x[j] = p;
        sum += p;
    }
    return sum;
}

/* x[j] = 2^(x[j] - m) in place, no sum (backward: m is the row's saved LSE in base 2). */
static inline void fm_row_exp2(float *x, int64_t n, float m)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) x[j] = fm_exp2f_fast(x[j] - m);
}

/* x[j] *= a */
static inline void fm_row_scale(float *x, int64_t n, float a)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) x[j] *= a;
}

/* x[j] = 0 */
static inline void fm_row_zero(float *x, int64_t n)
{
#pragma omp simd
    for (int64_t j = 0; j < n; j++) x[j] = 0.0f;
}

/* One online-softmax step for one row: turns the row's scores s[0..n) into p (in place),
 * updates the running max *m and sum *l, and returns the factor by which the row's output
 * accumulator must be multiplied before p.V is added (0 when it was empty, 1 when m did not
 * move). */
static inline float fm_online_softmax_step(float *s, int64_t n, float *m, float *l)
{
    float m_new = fm_row_max(s, n);
    if (m_new < *m) m_new = *m;
    if (m_new == -INFINITY) { /* every key so far is masked for this row */
        fm_row_zero(s, n);
        return 1.0f;
    }
    /* m == -inf maps to 2^(-inf) = 0 in fm_exp2f_fast: the empty accumulator is dropped. */
    float correction = fm_exp2f_fast(*m - m_new);
    *l = *l * correction + fm_row_exp2_sum(s, n, m_new);
    *m = m_new;
    return correction;
}

/* One key tile (or run of tiles) for a block of `rows` query rows: each row of scores
 * s[i*ld .. i*ld + cols) becomes p, its running m[i], l[i] are updated, and its output
 * accumulator o[i*D .. i*D + D) is rescaled; the caller then adds P.V. */
static inline void fm_online_softmax_tile(float *s, int64_t ld, int64_t rows, int64_t cols,
                                          float *m, float *l, float *o, int64_t D)
{
    for (int64_t i = 0; i < rows; i++) {
        float corr = fm_online_softmax_step(s + i * ld, cols, &m[i], &l[i]);
        if (corr != 1.0f) fm_row_scale(o + i * D, D, corr);
    }
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
    for (int64_t i = 0; i < rows; i++) {
        float *ds_row = ds + i * ld;
        const float *p_row = p + i * ld, di = delta[i];
#pragma omp simd
        for (int64_t j = 0; j < cols; j++) ds_row[j] = p_row[j] * (ds_row[j] - di);
    }
}

#endif
