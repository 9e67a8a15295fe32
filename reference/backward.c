/* reference/backward.c — the oracle's dense backward: O(Sq*Sk) gradients in float64 of
 * L = sum(O * dO), exactly docs/spec.md §1. Layer: reference <- masks <- core; fm_ref_backward
 * (reference/choose.c) calls it, problem and pointers checked, with the forward's out and lse.
 *
 * For every batch b and query head h (kv head h/(Hq/Hk), mask head h/(Hq/Hm)):
 *     S       = s * Q K^T                               (recomputed, cblas_dgemm)
 *     P_ij    = exp(S_ij - LSE_i) for allowed j, else 0 (from the forward's LSE, as FA2 does)
 *     dV     += P^T dO                                  (cblas_dgemm, accumulates)
 *     dP      = dO V^T                                  (cblas_dgemm)
 *     Delta_i = dO_i . O_i                              (= sum_j P_ij dP_ij)
 *     dS_ij   = P_ij (dP_ij - Delta_i)                  (softmax Jacobian; 0 where masked)
 *     dQ      = s dS K                                  (cblas_dgemm)
 *     dK     += s dS^T Q                                (cblas_dgemm, accumulates)
 * "+=": dK and dV of a kv head are summed over the Hq/Hk query heads that read it (GQA/MQA).
 * A fully masked row has P row = 0, hence dS row = 0: dQ_i = 0 and nothing reaches dK/dV,
 * whatever its LSE holds (-inf here, +inf from FlashAttention-2: both are accepted).
 * A row that has an allowed key but a non-finite LSE is refused: its P would be meaningless.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/reference.h"
#include "ref_internal.h"

/* Fills row i of P from the scores and LSE_i; returns 0 if the LSE does not fit the row. */
static int probability_row(double *row, const fm_mask *mask, int64_t b, int64_t mh,
                           int64_t offset, int64_t i, int64_t seqlen_k, double lse_i)
{
    int any_allowed = 0;
    for (int64_t j = 0; j < seqlen_k; j++) {
        if (fm_ref_masked(mask, b, mh, offset, i, j)) {
            row[j] = 0.0;
        } else {
            any_allowed = 1;
            row[j] = exp(row[j] - lse_i);
        }
    }
    if (!any_allowed) return 1; /* fully masked: the row is all zeros, lse_i is not used */
    return isfinite(lse_i);
}

/* dS = P o (dP - Delta) in place of dP, row by row; Delta_i = dO_i . O_i. */
static void softmax_backward(const fm_problem *p, const double *prob, double *dprob,
                             const double *oh, const double *doh)
{
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
#pragma omp parallel for schedule(static) if (Sq * Sk >= FM_REF_PARALLEL_MIN_ELEMS)
    for (int64_t i = 0; i < Sq; i++) {
        double delta = 0.0;
        for (int64_t d = 0; d < D; d++)
            delta += doh[(size_t)i * (size_t)D + d] * oh[(size_t)i * (size_t)D + d];
        const double *prow = prob + (size_t)i * (size_t)Sk;
        double *drow = dprob + (size_t)i * (size_t)Sk;
        for (int64_t j = 0; j < Sk; j++) drow[j] = prow[j] * (drow[j] - delta);
    }
}

fm_status fm_ref_dense_backward(const fm_problem *p, const fm_mask *mask,
                                const fm_ref_options *o, const double *q, const double *k,
                                const double *v, const double *out, const double *lse,
                                const double *dout, double *dq, double *dk, double *dv)
{
    (void)o; /* the dense backend has no options */
    fm_status st;
    double *prob = fm_ref_alloc_matrix(p, "reference backward P", &st);
    if (!prob) return st;
    double *dprob = fm_ref_alloc_matrix(p, "reference backward dP", &st);
    if (!dprob) {
        free(prob);
        return st;
    }

    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t offset = fm_causal_offset(mask->causal, Sq, Sk);
    /* dK and dV accumulate over the query heads of each kv head: start from zero. */
    memset(dk, 0, fm_problem_kv_elems(p) * sizeof(double));
    memset(dv, 0, fm_problem_kv_elems(p) * sizeof(double));

    for (int64_t b = 0; b < p->batch; b++) {
        for (int64_t h = 0; h < p->q_heads; h++) {
            fm_ref_heads heads = fm_ref_heads_of(p, mask, h);
            size_t q_at = fm_ref_offset(b, p->q_heads, h, Sq, D);
            size_t kv_at = fm_ref_offset(b, p->kv_heads, heads.kv_head, Sk, D);
            const double *qh = q + q_at, *oh = out + q_at, *doh = dout + q_at;
            const double *kh = k + kv_at, *vh = v + kv_at;
            const double *lh = lse + fm_ref_offset(b, p->q_heads, h, Sq, 1);
            double *dqh = dq + q_at, *dkh = dk + kv_at, *dvh = dv + kv_at;

            fm_ref_scores(p, qh, kh, prob);
            /* Rows are independent; remember the first row whose LSE does not fit. */
            int64_t bad_row = Sq;
#pragma omp parallel for schedule(static) reduction(min : bad_row) \
    if (Sq * Sk >= FM_REF_PARALLEL_MIN_ELEMS)
            for (int64_t i = 0; i < Sq; i++)
                if (!probability_row(prob + (size_t)i * (size_t)Sk, mask, b, heads.mask_head,
                                     offset, i, Sk, lh[i]) && i < bad_row)
                    bad_row = i;
            if (bad_row < Sq) {
                free(prob), free(dprob);
                return fm_fail(FM_ERR_INVALID,
                               "reference backward: lse[b=%lld, h=%lld, row %lld] = %g but the "
                               "row has allowed keys (pass the forward's lse)",
                               (long long)b, (long long)h, (long long)bad_row, lh[bad_row]);
            }
            /* dV += P^T dO */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Sk, (int)D, (int)Sq, 1.0,
                        prob, (int)Sk, doh, (int)D, 1.0, dvh, (int)D);
            /* dP = dO V^T, then dS = P o (dP - Delta) in its place */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Sq, (int)Sk, (int)D, 1.0,
                        doh, (int)D, vh, (int)D, 0.0, dprob, (int)Sk);
            softmax_backward(p, prob, dprob, oh, doh);
            /* dQ = s dS K */
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Sq, (int)D, (int)Sk,
                        p->scale, dprob, (int)Sk, kh, (int)D, 0.0, dqh, (int)D);
            /* dK += s dS^T Q */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)Sk, (int)D, (int)Sq,
                        p->scale, dprob, (int)Sk, qh, (int)D, 1.0, dkh, (int)D);
            /* A zero P row (fully masked) gives a zero dS row: dQ_i = 0; store +0.0, not -0.0. */
            for (int64_t i = 0; i < Sq; i++) {
                const double *prow = prob + (size_t)i * (size_t)Sk;
                int64_t j = 0;
                while (j < Sk && prow[j] == 0.0) j++;
                if (j == Sk)
                    for (int64_t d = 0; d < D; d++) dqh[(size_t)i * (size_t)D + d] = 0.0;
            }
        }
    }
    free(prob);
    free(dprob);
    st = fm_ref_check_result("dq", dq, fm_problem_q_elems(p), 0);
    if (st == FM_OK) st = fm_ref_check_result("dk", dk, fm_problem_kv_elems(p), 0);
    if (st == FM_OK) st = fm_ref_check_result("dv", dv, fm_problem_kv_elems(p), 0);
    return st;
}
