/* sparse/gather.c — gather -> attend -> scatter, the execution half of QK-sparse and
 * Hash-sparse, and of RCM reordering (sparse/gather.h). The attention itself is the fm_attend the
 * caller passes (the API layer's fm_forward_any / fm_backward_any on the compact problem);
 * nothing here computes it. Layer: sparse <- masks <- core.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fm_internal.h"
#include "gather.h"

fm_status fm_sparse_check_problem(const fm_problem *p)
{
    if (!p) return fm_fail(FM_ERR_INVALID, "problem: NULL descriptor");
    if (p->batch < 1 || p->q_heads < 1 || p->seqlen_q < 1 || p->seqlen_k < 1)
        return fm_fail(FM_ERR_INVALID, "problem: batch, q_heads, seqlen_q, seqlen_k must be >= 1");
    /* fm_problem_validate with an empty mask of the problem's shape checks everything else */
    return fm_problem_validate_shape(p, p->batch, p->q_heads, p->seqlen_q, p->seqlen_k);
}

void fm_sparse_dense_mask(const fm_problem *p, fm_causal alignment,
                          int (*pair)(const void *ctx, int64_t qrow, int64_t krow), const void *ctx,
                          uint8_t *allowed)
{
    const int64_t off = fm_causal_offset(alignment, p->seqlen_q, p->seqlen_k);
    const int64_t group = p->q_heads / p->kv_heads;
    size_t x = 0;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++)
            for (int64_t i = 0; i < p->seqlen_q; i++)
                for (int64_t j = 0; j < p->seqlen_k; j++, x++) {
                    const int64_t qrow = (b * p->q_heads + h) * p->seqlen_q + i;
                    const int64_t krow = (b * p->kv_heads + h / group) * p->seqlen_k + j;
                    allowed[x] = (uint8_t)(pair(ctx, qrow, krow) &&
                                           !fm_causal_masked(alignment, off, i, j));
                }
}

fm_status fm_gather_plan_init(fm_gather_plan *g, const fm_problem *p, int64_t sq, int64_t sk)
{
    memset(g, 0, sizeof *g);
    g->compact = *p;
    g->compact.seqlen_q = sq;
    g->compact.seqlen_k = sk;
    size_t nq, nk;
    int64_t qd[] = {p->batch, p->q_heads, sq}, kd[] = {p->batch, p->kv_heads, sk};
    if (fm_mul_sizes(&nq, 3, qd) || fm_mul_sizes(&nk, 3, kd))
        return fm_fail(FM_ERR_OVERFLOW, "sparse: index list sizes overflow");
    g->q_index = fm_alloc(nq, sizeof(int32_t), "sparse query index");
    g->k_index = fm_alloc(nk, sizeof(int32_t), "sparse key index");
    if (!g->q_index || !g->k_index) {
        fm_gather_plan_free(g);
        return FM_ERR_NOMEM;
    }
    for (size_t x = 0; x < nq; x++) g->q_index[x] = -1;
    for (size_t x = 0; x < nk; x++) g->k_index[x] = -1;
    return FM_OK;
}

void fm_gather_plan_free(fm_gather_plan *g)
{
    free(g->q_index);
    free(g->k_index);
    fm_any_mask_free(&g->mask);
    g->q_index = g->k_index = NULL;
}

/* dst[b, h, i', :] = src[b, h, index[i'], :] (zero-filled where index is -1, or `fill` for
 * width-1 rows such as lse). `heads` and the two lengths describe both tensors. */
static void gather_rows(double *dst, const double *src, const int32_t *index, int64_t bh,
                        int64_t compact_len, int64_t orig_len, int64_t width, double fill)
{
    for (int64_t x = 0; x < bh; x++)
        for (int64_t i = 0; i < compact_len; i++) {
            double *d = dst + ((size_t)x * (size_t)compact_len + (size_t)i) * (size_t)width;
            int32_t o = index[x * compact_len + i];
            if (o < 0) {
                for (int64_t c = 0; c < width; c++) d[c] = fill;
                continue;
            }
            memcpy(d, src + ((size_t)x * (size_t)orig_len + (size_t)o) * (size_t)width,
                   (size_t)width * sizeof(double));
        }
}

/* The inverse: dst (original order) first set to `fill` everywhere, then dst[index[i']] =
 * src[i']. Rows no list names (dropped) keep `fill`. */
static void scatter_rows(double *dst, const double *src, const int32_t *index, int64_t bh,
                         int64_t compact_len, int64_t orig_len, int64_t width, double fill)
{
    size_t n = (size_t)bh * (size_t)orig_len * (size_t)width;
    for (size_t e = 0; e < n; e++) dst[e] = fill;
    for (int64_t x = 0; x < bh; x++)
        for (int64_t i = 0; i < compact_len; i++) {
            int32_t o = index[x * compact_len + i];
            if (o < 0) continue;
            memcpy(dst + ((size_t)x * (size_t)orig_len + (size_t)o) * (size_t)width,
                   src + ((size_t)x * (size_t)compact_len + (size_t)i) * (size_t)width,
                   (size_t)width * sizeof(double));
        }
}

/* Compact-order buffers, one allocation each. */
typedef struct compact_buffers {
    double *q, *k, *v, *out, *lse, *dout, *dq, *dk, *dv;
} compact_buffers;

static void free_buffers(compact_buffers *c)
{
    free(c->q), free(c->k), free(c->v), free(c->out), free(c->lse);
    free(c->dout), free(c->dq), free(c->dk), free(c->dv);
}

static fm_status alloc_buffers(compact_buffers *c, const fm_problem *cp, int backward)
{
    memset(c, 0, sizeof *c);
    size_t nq = fm_problem_q_elems(cp), nk = fm_problem_kv_elems(cp);
    size_t nl = fm_problem_lse_elems(cp);
    c->q = fm_alloc(nq, sizeof(double), "sparse compact q");
    c->k = fm_alloc(nk, sizeof(double), "sparse compact k");
    c->v = fm_alloc(nk, sizeof(double), "sparse compact v");
    c->out = fm_alloc(nq, sizeof(double), "sparse compact out");
    c->lse = fm_alloc(nl, sizeof(double), "sparse compact lse");
    int ok = c->q && c->k && c->v && c->out && c->lse;
    if (backward) {
        c->dout = fm_alloc(nq, sizeof(double), "sparse compact dout");
        c->dq = fm_alloc(nq, sizeof(double), "sparse compact dq");
        c->dk = fm_alloc(nk, sizeof(double), "sparse compact dk");
        c->dv = fm_alloc(nk, sizeof(double), "sparse compact dv");
        ok = ok && c->dout && c->dq && c->dk && c->dv;
    }
    if (!ok) {
        free_buffers(c);
        return FM_ERR_NOMEM;
    }
    return FM_OK;
}

/* Gathers q, k, v (and for backward out, lse, dout) into the compact order. */
static void gather_inputs(compact_buffers *c, const fm_problem *p, const fm_gather_plan *g,
                          const fm_tensors *t, int backward)
{
    const fm_problem *cp = &g->compact;
    const int64_t bq = p->batch * p->q_heads, bk = p->batch * p->kv_heads, D = p->head_dim;
    gather_rows(c->q, t->q, g->q_index, bq, cp->seqlen_q, p->seqlen_q, D, 0.0);
    gather_rows(c->k, t->k, g->k_index, bk, cp->seqlen_k, p->seqlen_k, D, 0.0);
    gather_rows(c->v, t->v, g->k_index, bk, cp->seqlen_k, p->seqlen_k, D, 0.0);
    if (!backward) return;
    gather_rows(c->out, t->out, g->q_index, bq, cp->seqlen_q, p->seqlen_q, D, 0.0);
    gather_rows(c->lse, t->lse, g->q_index, bq, cp->seqlen_q, p->seqlen_q, 1, -INFINITY);
    gather_rows(c->dout, t->dout, g->q_index, bq, cp->seqlen_q, p->seqlen_q, D, 0.0);
}

fm_status fm_gather_run(const fm_attend *a, int backward, const fm_problem *p,
                        const fm_gather_plan *g, fm_tensors *t)
{
    compact_buffers c;
    fm_status st = alloc_buffers(&c, &g->compact, backward);
    if (st != FM_OK) return st;
    gather_inputs(&c, p, g, t, backward);
    fm_tensors ct = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout, .out = c.out,
                     .lse = c.lse, .dq = c.dq, .dk = c.dk, .dv = c.dv};
    st = a->run(a->impl, backward, &g->compact, &g->mask, &ct);
    const int64_t bq = p->batch * p->q_heads, bk = p->batch * p->kv_heads;
    const int64_t D = p->head_dim, csq = g->compact.seqlen_q, csk = g->compact.seqlen_k;
    if (st == FM_OK && !backward) {
        /* dropped queries: out 0 and lse -inf, as a row with no allowed key */
        scatter_rows(t->out, c.out, g->q_index, bq, csq, p->seqlen_q, D, 0.0);
        scatter_rows(t->lse, c.lse, g->q_index, bq, csq, p->seqlen_q, 1, -INFINITY);
    } else if (st == FM_OK) {
        /* dropped queries and keys receive no gradient: 0 */
        scatter_rows(t->dq, c.dq, g->q_index, bq, csq, p->seqlen_q, D, 0.0);
        scatter_rows(t->dk, c.dk, g->k_index, bk, csk, p->seqlen_k, D, 0.0);
        scatter_rows(t->dv, c.dv, g->k_index, bk, csk, p->seqlen_k, D, 0.0);
    }
    free_buffers(&c);
    return st;
}
