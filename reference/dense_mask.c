/* reference/dense_mask.c — the float64 oracle for an arbitrary dense boolean mask (and hence for
 * Binary Block Masking): forward and backward of docs/spec.md §1 where "allowed" is read from a dense
 * [B, Hm, Sq, Sk] mask instead of column bounds.
 * Layer: reference <- masks <- core. Declared in flashmask/sparse.h.
 *
 * No formula is restated here. The observation that makes reuse possible: one query row of
 * any dense mask is always column-representable — with Sq = 1, column j is either masked
 * (LT = [0, 1)) or not (empty intervals). So row i of the answer is exactly fm_ref_forward /
 * fm_ref_backward (reference/forward.c, backward.c) on the problem restricted to query row i,
 * with that one-row column mask. The total work is the same O(Sq*Sk*D) as the dense oracle;
 * only the kv gradients need summing over rows (each row's call yields its own dK, dV terms).
 */
#include <stdlib.h>
#include <string.h>

#include "flashmask/bbm.h"
#include "flashmask/reference.h"
#include "fm_internal.h"

/* The problem restricted to one query row. */
static fm_problem one_row_problem(const fm_problem *p)
{
    fm_problem r = *p;
    r.seqlen_q = 1;
    return r;
}

/* Row i of the dense mask (values checked to be 0/1 by check_dense) as a one-row column mask
 * (Sq = 1, causal none). `row_mask` was made by fm_mask_init(B, Hm, 1, Sk). */
static void row_to_columns(fm_mask *row_mask, const uint8_t *allowed, const fm_problem *p,
                                int64_t mask_heads, int64_t i)
{
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t m = 0; m < mask_heads; m++) {
            const uint8_t *row =
                allowed + (((size_t)b * (size_t)mask_heads + (size_t)m) * (size_t)Sq + (size_t)i) *
                              (size_t)Sk;
            for (int64_t j = 0; j < Sk; j++) {
                int32_t *col = fm_mask_column(row_mask, b, m, j);
                col[FM_LTS] = row[j] ? 1 : 0; /* masked: rows [0, 1); allowed: [1, 1) empty */
                col[FM_LTE] = 1;
            }
        }
}

/* Copies row i of every (b, head) of a [B, H, S, W] tensor to/from a [B, H, 1, W] one. */
static void gather_row(double *dst, const double *src, int64_t bh, int64_t seqlen, int64_t width,
                       int64_t i)
{
    for (int64_t x = 0; x < bh; x++)
        memcpy(dst + (size_t)x * (size_t)width,
               src + ((size_t)x * (size_t)seqlen + (size_t)i) * (size_t)width,
               (size_t)width * sizeof(double));
}

static void scatter_row(double *dst, const double *src, int64_t bh, int64_t seqlen,
                        int64_t width, int64_t i)
{
    for (int64_t x = 0; x < bh; x++)
        memcpy(dst + ((size_t)x * (size_t)seqlen + (size_t)i) * (size_t)width,
               src + (size_t)x * (size_t)width, (size_t)width * sizeof(double));
}

/* Shape checks shared by forward and backward: the row problem against its mask covers every
 * dimension except Sq, which is checked here with the dense mask's element count. */
static fm_status check_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                             fm_mask *row_mask)
{
    if (!p) return fm_fail(FM_ERR_INVALID, "dense-mask reference: NULL problem");
    if (!allowed) return fm_fail(FM_ERR_INVALID, "dense-mask reference: NULL dense mask");
    if (p->seqlen_q < 1)
        return fm_fail(FM_ERR_INVALID, "problem: seqlen_q = %lld, must be >= 1",
                       (long long)p->seqlen_q);
    if (p->seqlen_q > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW, "problem: seqlen_q = %lld exceeds %d",
                       (long long)p->seqlen_q, INT32_MAX);
    size_t n;
    int64_t dims[] = {p->batch, mask_heads, p->seqlen_q, p->seqlen_k};
    if (mask_heads < 1 || p->batch < 1 || p->seqlen_k < 1 || fm_mul_sizes(&n, 4, dims))
        return fm_fail(FM_ERR_INVALID,
                       "dense mask [B=%lld, Hm=%lld, Sq=%lld, Sk=%lld]: sizes must be >= 1 and "
                       "their product fit size_t",
                       (long long)p->batch, (long long)mask_heads, (long long)p->seqlen_q,
                       (long long)p->seqlen_k);
    fm_status st = fm_dense_check_values("", allowed, p->batch, mask_heads, p->seqlen_q,
                                         p->seqlen_k);
    if (st != FM_OK) return st;
    if ((st = fm_mask_init(row_mask, p->batch, mask_heads, 1, p->seqlen_k, FM_CAUSAL_NONE)) != FM_OK)
        return st;
    fm_problem row = one_row_problem(p);
    if ((st = fm_problem_validate(&row, row_mask)) != FM_OK) fm_mask_free(row_mask);
    return st;
}

fm_status fm_ref_forward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                               const double *q, const double *k, const double *v, double *out,
                               double *lse)
{
    fm_clear_error();
    fm_mask row_mask = {0};
    fm_status st = check_dense(p, allowed, mask_heads, &row_mask);
    if (st != FM_OK) return st;
    if (!q || !k || !v || !out || !lse) {
        fm_mask_free(&row_mask);
        return fm_fail(FM_ERR_INVALID, "dense-mask reference forward: NULL tensor");
    }
    const fm_problem row = one_row_problem(p);
    const int64_t bh = p->batch * p->q_heads, D = p->head_dim;
    double *q1 = fm_alloc((size_t)bh * (size_t)D, sizeof(double), "dense reference q row");
    double *o1 = fm_alloc((size_t)bh * (size_t)D, sizeof(double), "dense reference out row");
    double *l1 = fm_alloc((size_t)bh, sizeof(double), "dense reference lse row");
    if (!q1 || !o1 || !l1) st = FM_ERR_NOMEM;
    for (int64_t i = 0; st == FM_OK && i < p->seqlen_q; i++) {
        row_to_columns(&row_mask, allowed, p, mask_heads, i);
        gather_row(q1, q, bh, p->seqlen_q, D, i);
        if ((st = fm_ref_forward(&row, &row_mask, q1, k, v, o1, l1)) != FM_OK) break;
        scatter_row(out, o1, bh, p->seqlen_q, D, i);
        scatter_row(lse, l1, bh, p->seqlen_q, 1, i);
    }
    free(q1), free(o1), free(l1);
    fm_mask_free(&row_mask);
    return st;
}

fm_status fm_ref_backward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                                const double *q, const double *k, const double *v,
                                const double *out, const double *lse, const double *dout,
                                double *dq, double *dk, double *dv)
{
    fm_clear_error();
    fm_mask row_mask = {0};
    fm_status st = check_dense(p, allowed, mask_heads, &row_mask);
    if (st != FM_OK) return st;
    if (!q || !k || !v || !out || !lse || !dout || !dq || !dk || !dv) {
        fm_mask_free(&row_mask);
        return fm_fail(FM_ERR_INVALID, "dense-mask reference backward: NULL tensor");
    }
    const fm_problem row = one_row_problem(p);
    const int64_t bh = p->batch * p->q_heads, D = p->head_dim;
    const size_t nkv = fm_problem_kv_elems(p), nrow = (size_t)bh * (size_t)D;
    double *q1 = fm_alloc(nrow, sizeof(double), "dense reference q row");
    double *o1 = fm_alloc(nrow, sizeof(double), "dense reference out row");
    double *do1 = fm_alloc(nrow, sizeof(double), "dense reference dout row");
    double *dq1 = fm_alloc(nrow, sizeof(double), "dense reference dq row");
    double *l1 = fm_alloc((size_t)bh, sizeof(double), "dense reference lse row");
    double *dk1 = fm_alloc(nkv, sizeof(double), "dense reference dk of one row");
    double *dv1 = fm_alloc(nkv, sizeof(double), "dense reference dv of one row");
    if (!q1 || !o1 || !do1 || !dq1 || !l1 || !dk1 || !dv1) st = FM_ERR_NOMEM;
    if (st == FM_OK) {
        memset(dk, 0, nkv * sizeof(double));
        memset(dv, 0, nkv * sizeof(double));
    }
    for (int64_t i = 0; st == FM_OK && i < p->seqlen_q; i++) {
        row_to_columns(&row_mask, allowed, p, mask_heads, i);
        gather_row(q1, q, bh, p->seqlen_q, D, i);
        gather_row(o1, out, bh, p->seqlen_q, D, i);
        gather_row(do1, dout, bh, p->seqlen_q, D, i);
        gather_row(l1, lse, bh, p->seqlen_q, 1, i);
        st = fm_ref_backward(&row, &row_mask, q1, k, v, o1, l1, do1, dq1, dk1, dv1);
        if (st != FM_OK) {
            /* the row call names row 0 of its one-row problem: say which row that was */
            st = fm_fail(st, "dense-mask reference backward, query row %lld: %s", (long long)i,
                         fm_last_error());
            break;
        }
        scatter_row(dq, dq1, bh, p->seqlen_q, D, i);
        /* dK and dV are sums over query rows: add this row's terms */
        for (size_t x = 0; x < nkv; x++) dk[x] += dk1[x], dv[x] += dv1[x];
    }
    free(q1), free(o1), free(do1), free(dq1), free(l1), free(dk1), free(dv1);
    fm_mask_free(&row_mask);
    return st;
}

/* The dense [B,Hm,Sq,Sk] form of a BBM mask, after checking it against p; on success the
 * caller frees *dense, on failure *dense is NULL. */
static fm_status bbm_to_checked_dense(const fm_problem *p, const fm_bbm *mask, uint8_t **dense)
{
    *dense = NULL;
    if (!mask || !mask->codes) return fm_fail(FM_ERR_INVALID, "bbm reference: NULL mask");
    size_t n = (size_t)(mask->batch * mask->heads * mask->seqlen_q) * (size_t)mask->seqlen_k;
    uint8_t *d = fm_alloc(n, 1, "bbm reference dense mask");
    if (!d) return FM_ERR_NOMEM;
    fm_status st = fm_bbm_to_dense(mask, d);
    if (st == FM_OK) st = fm_bbm_check_problem(p, mask);
    if (st != FM_OK) {
        free(d);
        return st;
    }
    *dense = d;
    return FM_OK;
}

fm_status fm_ref_forward_bbm(const fm_problem *p, const fm_bbm *mask, const double *q,
                             const double *k, const double *v, double *out, double *lse)
{
    fm_clear_error();
    uint8_t *dense;
    fm_status st = bbm_to_checked_dense(p, mask, &dense);
    if (st == FM_OK) st = fm_ref_forward_dense(p, dense, mask->heads, q, k, v, out, lse);
    free(dense);
    return st;
}

fm_status fm_ref_backward_bbm(const fm_problem *p, const fm_bbm *mask, const double *q,
                              const double *k, const double *v, const double *out,
                              const double *lse, const double *dout, double *dq, double *dk,
                              double *dv)
{
    fm_clear_error();
    uint8_t *dense;
    fm_status st = bbm_to_checked_dense(p, mask, &dense);
    if (st == FM_OK)
        st = fm_ref_backward_dense(p, dense, mask->heads, q, k, v, out, lse, dout, dq, dk, dv);
    free(dense);
    return st;
}
