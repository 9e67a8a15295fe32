/* reference/tiled_backward.c — the oracle's tiled backward: the gradients of backward.c in
 * float64 with O((Sq + Sk) D) memory, recomputing each live tile's probabilities from the
 * forward's LSE (as FlashAttention-2 does), skipping fully masked tiles.
 * Layer: reference <- masks <- core; fm_ref_backward (reference/choose.c) calls it.
 *
 * Per live tile (rows of query head h, keys of its kv head; masked scores -inf):
 *     S = s Q K^T,  P_ij = exp(S_ij - LSE_i) (0 if masked or LSE_i is not finite),
 *     dP = dO V^T,  dS_ij = P_ij (dP_ij - Delta_i),  Delta_i = dO_i . O_i
 * Two passes, so that every output row has one owner that sums its terms in a fixed order
 * (bit-identical results for any number of threads or shares, no locks, no atomics):
 *   key pass    one task per (b, kv head, key block): for each query head of the group in
 *               order, each live query block in order (fm_next_live_qblock):
 *               dV += P^T dO,  dK += s dS^T Q            (4 tile dgemms with S and dP)
 *   query pass  one task per (b, query head, query block): each live key block in order:
 *               dQ += s dS K                             (3 tile dgemms)
 * The price is recomputing S, P and dP in both passes: 7 tile products instead of 5.
 * A row whose P is all zero (fully masked) gets dQ_i = +0 and gives nothing to dK, dV; a row
 * with an allowed key and a non-finite LSE is refused, naming it, as backward.c does.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tiled.h"

typedef struct bwd_scratch {
    double *p;              /* [Bq x Bk] scores, then P */
    double *ds;             /* [Bq x Bk] dP, then dS */
    unsigned char *allowed; /* [Bq] row has an allowed key (in the tiles seen so far) */
    unsigned char *nonzero; /* [Bq] row has a nonzero P */
} bwd_scratch;

typedef struct bwd_args {
    const fm_ref_tiling *t;
    const double *q, *k, *v, *lse, *dout, *delta;
    double *dq, *dk, *dv;
} bwd_args;

static void scratch_free(void *scratch)
{
    bwd_scratch *w = scratch;
    if (!w) return;
    free(w->p), free(w->ds), free(w->allowed), free(w->nonzero);
    free(w);
}

/* One thread's scratch (fm_ref_pass.alloc); NULL when out of memory. */
static void *scratch_alloc(const fm_ref_tiling *t)
{
    const size_t bq = (size_t)t->bq, bk = (size_t)t->bk;
    bwd_scratch *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->p = malloc(bq * bk * sizeof(double));
    w->ds = malloc(bq * bk * sizeof(double));
    w->allowed = calloc(bq, 1);
    w->nonzero = calloc(bq, 1);
    if (w->p && w->ds && w->allowed && w->nonzero) return w;
    scratch_free(w);
    return NULL;
}

/* P and dS of the tile (query block qb of (b, h)) x (key block kb) into w->p and w->ds. */
static void tile_ds(const bwd_args *a, fm_tile_class cls, int64_t b, int64_t h, int64_t qb,
                    int64_t kb, bwd_scratch *w, int64_t *rows_out, int64_t *cols_out)
{
    const fm_ref_tiling *t = a->t;
    const fm_problem *p = t->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim, ld = t->bk;
    const fm_ref_heads heads = fm_ref_heads_of(p, t->mask, h);
    const int64_t r0 = qb * t->bq, rows = r0 + t->bq <= Sq ? t->bq : Sq - r0;
    const int64_t c0 = kb * t->bk, cols = c0 + t->bk <= Sk ? t->bk : Sk - c0;
    const size_t q_at = fm_ref_offset(b, p->q_heads, h, Sq, D);
    const double *qh = a->q + q_at, *doh = a->dout + q_at + (size_t)r0 * (size_t)D;
    const double *kh = a->k + fm_ref_offset(b, p->kv_heads, heads.kv_head, Sk, D);
    const double *vh = a->v + fm_ref_offset(b, p->kv_heads, heads.kv_head, Sk, D);
    const double *lh = a->lse + fm_ref_offset(b, p->q_heads, h, Sq, 1) + r0;
    const double *dh = a->delta + fm_ref_offset(b, p->q_heads, h, Sq, 1) + r0;

    fm_ref_tile_scores(t, cls, b, heads.mask_head, r0, rows, c0, cols, qh, kh, w->p, ld,
                       w->allowed);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)D, 1.0, doh,
                (int)D, vh + (size_t)c0 * (size_t)D, (int)D, 0.0, w->ds, (int)ld);
    for (int64_t i = 0; i < rows; i++) {
        double *prow = w->p + i * ld, *drow = w->ds + i * ld;
        if (!isfinite(lh[i])) { /* fully masked (or refused by the query pass) */
            memset(prow, 0, (size_t)cols * sizeof(double));
            memset(drow, 0, (size_t)cols * sizeof(double));
            continue;
        }
        for (int64_t j = 0; j < cols; j++) {
            prow[j] = prow[j] == -INFINITY ? 0.0 : exp(prow[j] - lh[i]);
            w->nonzero[i] |= prow[j] != 0.0;
            drow[j] = prow[j] * (drow[j] - dh[i]);
        }
    }
    *rows_out = rows, *cols_out = cols;
}

/* Key task: rows [c0, c0 + cols) of dK and dV of (b, hk). */
static void key_task(const bwd_args *a, int64_t task, bwd_scratch *w)
{
    const fm_ref_tiling *t = a->t;
    const fm_problem *p = t->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim, ld = t->bk;
    const int64_t bh = task / t->nkb, kb = task % t->nkb;
    const int64_t b = bh / p->kv_heads, hk = bh % p->kv_heads, group = p->q_heads / p->kv_heads;
    const int64_t c0 = kb * t->bk, c1 = c0 + t->bk < Sk ? c0 + t->bk : Sk;
    const size_t kv_at = fm_ref_offset(b, p->kv_heads, hk, Sk, D) + (size_t)c0 * (size_t)D;
    double *dkb = a->dk + kv_at, *dvb = a->dv + kv_at;
    memset(dkb, 0, (size_t)(c1 - c0) * (size_t)D * sizeof(double));
    memset(dvb, 0, (size_t)(c1 - c0) * (size_t)D * sizeof(double));

    for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
        const fm_ref_heads heads = fm_ref_heads_of(p, t->mask, h);
        const int32_t *mm = fm_block_summary_at(&t->sum, b, heads.mask_head, kb);
        const size_t q_at = fm_ref_offset(b, p->q_heads, h, Sq, D);
        fm_tile_class cls;
        for (int64_t qb = fm_next_live_qblock(mm, t->mask->causal, t->offset, 0, t->bq, Sq, c0,
                                              c1, &cls);
             qb < t->nqb;
             qb = fm_next_live_qblock(mm, t->mask->causal, t->offset, qb + 1, t->bq, Sq, c0, c1,
                                      &cls)) {
            int64_t rows, cols;
            tile_ds(a, cls, b, h, qb, kb, w, &rows, &cols);
            const size_t r0 = (size_t)(qb * t->bq) * (size_t)D;
            /* dV += P^T dO,  dK += s dS^T Q */
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, (int)D, (int)rows,
                        1.0, w->p, (int)ld, a->dout + q_at + r0, (int)D, 1.0, dvb, (int)D);
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)cols, (int)D, (int)rows,
                        p->scale, w->ds, (int)ld, a->q + q_at + r0, (int)D, 1.0, dkb, (int)D);
        }
    }
}

/* Query task: rows [r0, r0 + rows) of dQ of (b, h). Returns the first refused row (flat
 * [B*Hq*Sq] index) or -1. */
static int64_t query_task(const bwd_args *a, int64_t task, bwd_scratch *w)
{
    const fm_ref_tiling *t = a->t;
    const fm_problem *p = t->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim, ld = t->bk;
    const int64_t bh = task / t->nqb, qb = task % t->nqb;
    const int64_t b = bh / p->q_heads, h = bh % p->q_heads;
    const fm_ref_heads heads = fm_ref_heads_of(p, t->mask, h);
    const int64_t r0 = qb * t->bq, rows = r0 + t->bq <= Sq ? t->bq : Sq - r0;
    const double *kh = a->k + fm_ref_offset(b, p->kv_heads, heads.kv_head, Sk, D);
    double *dqb = a->dq + fm_ref_offset(b, p->q_heads, h, Sq, D) + (size_t)r0 * (size_t)D;
    const double *lh = a->lse + fm_ref_offset(b, p->q_heads, h, Sq, 1) + r0;

    memset(dqb, 0, (size_t)rows * (size_t)D * sizeof(double));
    memset(w->allowed, 0, (size_t)rows);
    memset(w->nonzero, 0, (size_t)rows);
    for (int64_t kb = 0; kb < t->nkb; kb++) {
        const fm_tile_class cls = fm_ref_tile_class(t, b, heads.mask_head, qb, kb);
        if (cls == FM_TILE_MASKED) continue;
        int64_t r, cols;
        tile_ds(a, cls, b, h, qb, kb, w, &r, &cols);
        /* dQ += s dS K */
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)D, (int)cols,
                    p->scale, w->ds, (int)ld, kh + (size_t)(kb * t->bk) * (size_t)D, (int)D, 1.0,
                    dqb, (int)D);
    }
    int64_t bad = -1;
    for (int64_t i = 0; i < rows; i++) {
        if (!w->nonzero[i]) /* a zero P row gives a zero dQ row: store +0.0, not -0.0 */
            for (int64_t d = 0; d < D; d++) dqb[(size_t)i * (size_t)D + d] = 0.0;
        if (w->allowed[i] && !isfinite(lh[i]) && bad < 0) bad = bh * Sq + r0 + i;
    }
    return bad;
}

/* Delta_i = dO_i . O_i for every row, summed over d in order (as backward.c does). */
static void compute_delta(const fm_problem *p, const double *out, const double *dout,
                          double *delta)
{
    const int64_t n = (int64_t)fm_problem_lse_elems(p), D = p->head_dim;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        double acc = 0.0;
        for (int64_t d = 0; d < D; d++)
            acc += dout[(size_t)r * (size_t)D + d] * out[(size_t)r * (size_t)D + d];
        delta[r] = acc;
    }
}

/* key_task and query_task as fm_ref_pass tasks. */
static int64_t key_pass_task(const void *ctx, int64_t task, void *scratch)
{
    key_task(ctx, task, scratch);
    return -1; /* no row to report */
}

static int64_t query_pass_task(const void *ctx, int64_t task, void *scratch)
{
    return query_task(ctx, task, scratch);
}

fm_status fm_ref_tiled_backward(const fm_problem *p, const fm_mask *mask,
                                const fm_ref_options *o, const double *q, const double *k,
                                const double *v, const double *out, const double *lse,
                                const double *dout, double *dq, double *dk, double *dv)
{
    fm_ref_tiling t;
    fm_status st = fm_ref_tiling_init(&t, p, mask, o);
    if (st != FM_OK) return st;
    double *delta = fm_alloc(fm_problem_lse_elems(p), sizeof(double), "reference backward Delta");
    if (!delta) {
        fm_ref_tiling_free(&t);
        return FM_ERR_NOMEM;
    }
    compute_delta(p, out, dout, delta);
    const bwd_args a = {&t, q, k, v, lse, dout, delta, dq, dk, dv};
    const fm_ref_pass keys = {"backward dK dV", t.kv_task_lo, t.kv_task_hi, &a, scratch_alloc,
                              scratch_free, key_pass_task};
    const fm_ref_pass queries = {"backward dQ", t.q_task_lo, t.q_task_hi, &a, scratch_alloc,
                                 scratch_free, query_pass_task};
    int64_t bad_row = INT64_MAX;
    fm_ref_blas_single_begin();
    int nomem = fm_ref_run_pass(&t, &keys, NULL);
    nomem |= fm_ref_run_pass(&t, &queries, &bad_row);
    fm_ref_blas_single_end();
    free(delta);
    const size_t D = (size_t)p->head_dim;
    const size_t qlo = (size_t)fm_ref_q_task_row(&t, t.q_task_lo) * D;
    const size_t qhi = (size_t)fm_ref_q_task_row(&t, t.q_task_hi) * D;
    const size_t klo = (size_t)fm_ref_kv_task_row(&t, t.kv_task_lo) * D;
    const size_t khi = (size_t)fm_ref_kv_task_row(&t, t.kv_task_hi) * D;
    fm_ref_tiling_free(&t);
    if (nomem) return fm_fail(FM_ERR_NOMEM, "reference backward (tiled): cannot allocate tiles");
    if (bad_row != INT64_MAX) {
        const int64_t Sq = p->seqlen_q, bh = bad_row / Sq;
        return fm_fail(FM_ERR_INVALID,
                       "reference backward: lse[b=%lld, h=%lld, row %lld] = %g but the row has "
                       "allowed keys (pass the forward's lse)",
                       (long long)(bh / p->q_heads), (long long)(bh % p->q_heads),
                       (long long)(bad_row % Sq), lse[bad_row]);
    }
    st = fm_ref_check_range("dq", dq, qlo, qhi, 0);
    if (st == FM_OK) st = fm_ref_check_range("dk", dk, klo, khi, 0);
    if (st == FM_OK) st = fm_ref_check_range("dv", dv, klo, khi, 0);
    return st;
}
