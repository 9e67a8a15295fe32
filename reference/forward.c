/* reference/forward.c — the oracle's dense forward: O(Sq*Sk) attention in float64, exactly
 * docs/spec.md §1. Layer: reference <- masks <- core; fm_ref_forward (reference/choose.c) calls it with
 * the problem already validated.
 *
 * For every batch b and query head h (kv head h/(Hq/Hk), mask head h/(Hq/Hm)):
 *     S      = s * Q K^T                              (cblas_dgemm, Sq x Sk)
 *     m_i    = max over allowed j of S_ij              (subtracting it keeps exp() <= 1)
 *     l_i    = sum over allowed j of exp(S_ij - m_i)   (>= 1: the max term contributes 1)
 *     LSE_i  = m_i + log(l_i)
 *     P_ij   = exp(S_ij - m_i) / l_i  for allowed j, 0 for masked j
 *     O      = P V                                     (cblas_dgemm, Sq x D)
 * A row with no allowed key is "fully masked": P row = 0, so O_i = 0, and LSE_i = -inf
 * (FlexAttention / FlashAttention-3 convention; FlashAttention-2 writes +inf instead).
 * Which (i, j) are allowed comes only from fm_element_masked (flashmask/rules.h).
 */
#include <math.h>
#include <stdlib.h>

#include "flashmask/reference.h"
#include "ref_internal.h"

/* Turns row i of the scores into probabilities in place and returns its LSE (or -inf). */
static double softmax_row(double *row, const fm_mask *mask, int64_t b, int64_t mh,
                          int64_t offset, int64_t i, int64_t seqlen_k)
{
    double row_max = -INFINITY;
    int any_allowed = 0;
    for (int64_t j = 0; j < seqlen_k; j++) {
        if (fm_ref_masked(mask, b, mh, offset, i, j)) {
            row[j] = -INFINITY; /* marks "masked" for the two loops below */
        } else {
            any_allowed = 1;
            if (row[j] > row_max) row_max = row[j];
        }
    }
    if (!any_allowed) { /* fully masked row */
        for (int64_t j = 0; j < seqlen_k; j++) row[j] = 0.0;
        return -INFINITY;
    }
    if (!isfinite(row_max)) return NAN; /* s * q.k overflowed: the caller refuses the result */
    double sum = 0.0;
    for (int64_t j = 0; j < seqlen_k; j++) {
        row[j] = row[j] == -INFINITY ? 0.0 : exp(row[j] - row_max);
        sum += row[j];
    }
    for (int64_t j = 0; j < seqlen_k; j++) row[j] /= sum;
    return row_max + log(sum);
}

fm_status fm_ref_dense_forward(const fm_problem *p, const fm_mask *mask,
                               const fm_ref_options *o, const double *q, const double *k,
                               const double *v, double *out, double *lse)
{
    (void)o; /* the dense backend has no options */
    fm_status st;
    double *scores = fm_ref_alloc_matrix(p, "reference forward scores", &st);
    if (!scores) return st;

    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t offset = fm_causal_offset(mask->causal, Sq, Sk);
    for (int64_t b = 0; b < p->batch; b++) {
        for (int64_t h = 0; h < p->q_heads; h++) {
            fm_ref_heads heads = fm_ref_heads_of(p, mask, h);
            const double *qh = q + fm_ref_offset(b, p->q_heads, h, Sq, D);
            const double *kh = k + fm_ref_offset(b, p->kv_heads, heads.kv_head, Sk, D);
            const double *vh = v + fm_ref_offset(b, p->kv_heads, heads.kv_head, Sk, D);
            double *oh = out + fm_ref_offset(b, p->q_heads, h, Sq, D);
            double *lh = lse + fm_ref_offset(b, p->q_heads, h, Sq, 1);

            fm_ref_scores(p, qh, kh, scores);
            /* Rows are independent: each thread turns whole rows into probabilities. */
#pragma omp parallel for schedule(static) if (Sq * Sk >= FM_REF_PARALLEL_MIN_ELEMS)
            for (int64_t i = 0; i < Sq; i++)
                lh[i] = softmax_row(scores + (size_t)i * (size_t)Sk, mask, b, heads.mask_head,
                                    offset, i, Sk);
            /* O = P V: fully masked rows of P are zero, so their O rows come out zero ... */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Sq, (int)D, (int)Sk,
                        1.0, scores, (int)Sk, vh, (int)D, 0.0, oh, (int)D);
            /* ... but BLAS may write -0.0 there (0 * negative v); store a plain +0.0. */
            for (int64_t i = 0; i < Sq; i++)
                if (lh[i] == -INFINITY)
                    for (int64_t d = 0; d < D; d++) oh[(size_t)i * (size_t)D + d] = 0.0;
        }
    }
    free(scores);
    st = fm_ref_check_result("lse", lse, fm_problem_lse_elems(p), 1);
    if (st == FM_OK) st = fm_ref_check_result("out", out, fm_problem_q_elems(p), 0);
    return st;
}
