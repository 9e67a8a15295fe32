/* reference/tiled_forward.c — the oracle's tiled forward: the function of forward.c in float64
 * with O((Sq + Sk) D) memory, by query-row blocks, skipping fully masked tiles.
 * Layer: reference <- masks <- core; fm_ref_forward (reference/choose.c) calls it.
 *
 * One OpenMP task per query task (b, h, query block of Bq rows), key blocks walked in order,
 * tiles classified from the masks/ block summaries (fm_classify_tile): a fully masked tile is
 * skipped, an unmasked one computed with no element test, a partial one tested element by
 * element. Two passes over the live tiles of the task (docs/reference.md says why two and not
 * an online softmax):
 *   pass 1   S = s Q K^T (dgemm), masked -> -inf;  m_i = max_j S_ij  (exact: no rounding)
 *   pass 2   S again (the same dgemm, the same bits);  P_ij = exp(S_ij - m_i), 0 if masked;
 *            l_i += P_ij in key order;  Oacc += P V (dgemm, accumulating)
 *   end      O_i = Oacc_i / l_i,  LSE_i = m_i + log(l_i)
 * m_i, every P_ij and l_i are the numbers forward.c computes (l_i summed in the same order:
 * skipped keys add zeros there); only O's products are grouped by tile. A row with no allowed
 * key gets O_i = +0 and LSE_i = -inf; a row whose allowed scores are all infinite or NaN
 * (float64 overflow) gets LSE NaN and the call refuses, as forward.c does.
 * Each task writes only its own rows, each in a fixed order: the result is the same bits for
 * any number of threads and any share (fm_ref_options.part / parts).
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tiled.h"

typedef struct fwd_scratch {
    double *s;              /* [Bq x Bk] scores, then probabilities */
    double *o;              /* [Bq x D] accumulator */
    double *m, *l;          /* [Bq] row max, row sum */
    unsigned char *allowed; /* [Bq] row has an allowed key */
} fwd_scratch;

static void scratch_free(void *scratch)
{
    fwd_scratch *w = scratch;
    if (!w) return;
    free(w->s), free(w->o), free(w->m), free(w->l), free(w->allowed);
    free(w);
}

/* One thread's scratch (fm_ref_pass.alloc); NULL when out of memory. */
static void *scratch_alloc(const fm_ref_tiling *t)
{
    const size_t bq = (size_t)t->bq, bk = (size_t)t->bk, D = (size_t)t->p->head_dim;
    fwd_scratch *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->s = malloc(bq * bk * sizeof(double));
    w->o = malloc(bq * D * sizeof(double));
    w->m = malloc(bq * sizeof(double));
    w->l = malloc(bq * sizeof(double));
    w->allowed = malloc(bq);
    if (w->s && w->o && w->m && w->l && w->allowed) return w;
    scratch_free(w);
    return NULL;
}

typedef struct fwd_args {
    const fm_ref_tiling *t;
    const double *q, *k, *v;
    double *out, *lse;
} fwd_args;

/* Query task `task`: rows [r0, r0 + rows) of (b, h). */
static int64_t forward_task(const void *ctx, int64_t task, void *scratch)
{
    const fwd_args *a = ctx;
    const fm_ref_tiling *t = a->t;
    const double *q = a->q, *k = a->k, *v = a->v;
    double *out = a->out, *lse = a->lse;
    fwd_scratch *w = scratch;
    const fm_problem *p = t->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t bh = task / t->nqb, qb = task % t->nqb;
    const int64_t b = bh / p->q_heads, h = bh % p->q_heads;
    const fm_ref_heads heads = fm_ref_heads_of(p, t->mask, h);
    const int64_t r0 = qb * t->bq, rows = r0 + t->bq <= Sq ? t->bq : Sq - r0;
    const double *qh = q + fm_ref_offset(b, p->q_heads, h, Sq, D);
    const double *kh = k + fm_ref_offset(b, p->kv_heads, heads.kv_head, Sk, D);
    const double *vh = v + fm_ref_offset(b, p->kv_heads, heads.kv_head, Sk, D);
    double *oh = out + fm_ref_offset(b, p->q_heads, h, Sq, D) + (size_t)r0 * (size_t)D;
    double *lh = lse + fm_ref_offset(b, p->q_heads, h, Sq, 1) + r0;
    const int64_t ld = t->bk;
    if (rows <= 0) return -1; /* never: tasks cover existing rows (keeps the compiler informed) */

    for (int64_t i = 0; i < rows; i++) w->m[i] = -INFINITY, w->l[i] = 0.0;
    memset(w->allowed, 0, (size_t)rows);
    memset(w->o, 0, (size_t)rows * (size_t)D * sizeof(double));

    /* pass 1: the exact row max over allowed scores (masked ones are -inf) */
    for (int64_t kb = 0; kb < t->nkb; kb++) {
        const fm_tile_class cls = fm_ref_tile_class(t, b, heads.mask_head, qb, kb);
        if (cls == FM_TILE_MASKED) continue;
        const int64_t c0 = kb * t->bk, cols = c0 + t->bk <= Sk ? t->bk : Sk - c0;
        fm_ref_tile_scores(t, cls, b, heads.mask_head, r0, rows, c0, cols, qh, kh, w->s, ld,
                           w->allowed);
        for (int64_t i = 0; i < rows; i++)
            for (int64_t j = 0; j < cols; j++)
                if (w->s[i * ld + j] > w->m[i]) w->m[i] = w->s[i * ld + j];
    }
    /* rows that take part in pass 2: an allowed key and a finite max */
    int any_live = 0;
    for (int64_t i = 0; i < rows; i++) any_live |= w->allowed[i] && isfinite(w->m[i]);

    /* pass 2: probabilities against the final max, their sums, and P V */
    for (int64_t kb = 0; any_live && kb < t->nkb; kb++) {
        const fm_tile_class cls = fm_ref_tile_class(t, b, heads.mask_head, qb, kb);
        if (cls == FM_TILE_MASKED) continue;
        const int64_t c0 = kb * t->bk, cols = c0 + t->bk <= Sk ? t->bk : Sk - c0;
        fm_ref_tile_scores(t, cls, b, heads.mask_head, r0, rows, c0, cols, qh, kh, w->s, ld,
                           w->allowed);
        for (int64_t i = 0; i < rows; i++) {
            double *srow = w->s + i * ld;
            if (!(w->allowed[i] && isfinite(w->m[i]))) {
                memset(srow, 0, (size_t)cols * sizeof(double));
                continue;
            }
            for (int64_t j = 0; j < cols; j++) {
                srow[j] = srow[j] == -INFINITY ? 0.0 : exp(srow[j] - w->m[i]);
                w->l[i] += srow[j];
            }
        }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)D, (int)cols, 1.0,
                    w->s, (int)ld, vh + (size_t)c0 * (size_t)D, (int)D, 1.0, w->o, (int)D);
    }

    for (int64_t i = 0; i < rows; i++) {
        double *orow = oh + (size_t)i * (size_t)D;
        if (!w->allowed[i]) { /* fully masked row: O = +0, LSE = -inf */
            lh[i] = -INFINITY;
            for (int64_t d = 0; d < D; d++) orow[d] = 0.0;
        } else if (!isfinite(w->m[i])) { /* s q.k overflowed: refused by the caller */
            lh[i] = NAN;
            for (int64_t d = 0; d < D; d++) orow[d] = NAN;
        } else {
            lh[i] = w->m[i] + log(w->l[i]);
            for (int64_t d = 0; d < D; d++) orow[d] = w->o[i * D + d] / w->l[i];
        }
    }
    return -1; /* no row to report */
}

fm_status fm_ref_tiled_forward(const fm_problem *p, const fm_mask *mask,
                               const fm_ref_options *o, const double *q, const double *k,
                               const double *v, double *out, double *lse)
{
    fm_ref_tiling t;
    fm_status st = fm_ref_tiling_init(&t, p, mask, o);
    if (st != FM_OK) return st;
    const fwd_args a = {&t, q, k, v, out, lse};
    const fm_ref_pass pass = {"forward", t.q_task_lo, t.q_task_hi, &a, scratch_alloc,
                              scratch_free, forward_task};
    fm_ref_blas_single_begin();
    const int nomem = fm_ref_run_pass(&t, &pass, NULL);
    fm_ref_blas_single_end();
    const int64_t lo = fm_ref_q_task_row(&t, t.q_task_lo), hi = fm_ref_q_task_row(&t, t.q_task_hi);
    fm_ref_tiling_free(&t);
    if (nomem) return fm_fail(FM_ERR_NOMEM, "reference forward (tiled): cannot allocate tiles");
    const size_t D = (size_t)p->head_dim;
    st = fm_ref_check_range("lse", lse, (size_t)lo, (size_t)hi, 1);
    if (st == FM_OK) st = fm_ref_check_range("out", out, (size_t)lo * D, (size_t)hi * D, 0);
    return st;
}
