/* reference/tiled_common.c — the tiled backend's shared pieces (reference/tiled.h): tiling and
 * shares, the scores of one tile, the OpenBLAS thread guard and progress reports.
 * Layer: reference <- masks <- core.
 */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tiled.h"

static int64_t n_q_tasks(const fm_ref_tiling *t)
{
    return t->p->batch * t->p->q_heads * t->nqb;
}

static int64_t n_kv_tasks(const fm_ref_tiling *t)
{
    return t->p->batch * t->p->kv_heads * t->nkb;
}

int64_t fm_ref_q_task_row(const fm_ref_tiling *t, int64_t task)
{
    if (task >= n_q_tasks(t)) return t->p->batch * t->p->q_heads * t->p->seqlen_q;
    return (task / t->nqb) * t->p->seqlen_q + (task % t->nqb) * t->bq;
}

int64_t fm_ref_kv_task_row(const fm_ref_tiling *t, int64_t task)
{
    if (task >= n_kv_tasks(t)) return t->p->batch * t->p->kv_heads * t->p->seqlen_k;
    return (task / t->nkb) * t->p->seqlen_k + (task % t->nkb) * t->bk;
}

/* Work of query task `task`: 1 + its tiles that are not fully masked. */
static int64_t q_task_weight(const fm_ref_tiling *t, int64_t task)
{
    const int64_t bh = task / t->nqb, qb = task % t->nqb;
    const int64_t b = bh / t->p->q_heads, h = bh % t->p->q_heads;
    const int64_t mh = h / (t->p->q_heads / t->mask->heads);
    int64_t w = 1;
    for (int64_t kb = 0; kb < t->nkb; kb++)
        w += fm_ref_tile_class(t, b, mh, qb, kb) != FM_TILE_MASKED;
    return w;
}

/* Work of key task `task`: 1 + the live tiles of its key block over every query head reading
 * its kv head (the walk tiled_backward.c makes). */
static int64_t kv_task_weight(const fm_ref_tiling *t, int64_t task)
{
    const fm_problem *p = t->p;
    const int64_t bh = task / t->nkb, kb = task % t->nkb;
    const int64_t b = bh / p->kv_heads, hk = bh % p->kv_heads, group = p->q_heads / p->kv_heads;
    const int64_t c0 = kb * t->bk, c1 = c0 + t->bk < p->seqlen_k ? c0 + t->bk : p->seqlen_k;
    int64_t w = 1;
    for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
        const int32_t *mm = fm_block_summary_at(&t->sum, b, h / (p->q_heads / t->mask->heads), kb);
        fm_tile_class cls;
        for (int64_t qb = fm_next_live_qblock(mm, t->mask->causal, t->offset, 0, t->bq,
                                              p->seqlen_q, c0, c1, &cls);
             qb < t->nqb;
             qb = fm_next_live_qblock(mm, t->mask->causal, t->offset, qb + 1, t->bq, p->seqlen_q,
                                      c0, c1, &cls))
            w++;
    }
    return w;
}

/* Share `part` of `parts` of n weighted tasks, contiguous: task i belongs to share
 * floor(W_before(i) * parts / W), which never decreases with i. The weights are recomputed
 * rather than stored (they are cheap: tile classifications), so this cannot fail. */
static void split(const fm_ref_tiling *t, int64_t n,
                  int64_t (*weight)(const fm_ref_tiling *, int64_t), int part, int parts,
                  int64_t *lo, int64_t *hi)
{
    double total = 0, before = 0;
    for (int64_t i = 0; i < n; i++) total += (double)weight(t, i);
    *lo = *hi = n;
    for (int64_t i = 0; i < n; i++) {
        const int share = (int)floor(before * parts / total);
        if (share >= part && *lo == n) *lo = i;
        if (share >= part + 1) {
            *hi = i;
            break;
        }
        before += (double)weight(t, i);
    }
    if (*lo > *hi) *lo = *hi;
}

fm_status fm_ref_tiling_init(fm_ref_tiling *t, const fm_problem *p, const fm_mask *mask,
                             const fm_ref_options *o)
{
    memset(t, 0, sizeof *t);
    t->p = p, t->mask = mask, t->o = o;
    t->bq = o->block_q > 0 ? o->block_q : FM_REF_TILE;
    t->bk = o->block_k > 0 ? o->block_k : FM_REF_TILE;
    if (t->bq > p->seqlen_q) t->bq = p->seqlen_q;
    if (t->bk > p->seqlen_k) t->bk = p->seqlen_k;
    t->nqb = (p->seqlen_q + t->bq - 1) / t->bq;
    t->nkb = (p->seqlen_k + t->bk - 1) / t->bk;
    t->offset = fm_causal_offset(mask->causal, p->seqlen_q, p->seqlen_k);
    fm_status st = fm_block_summary_build(mask, t->bk, &t->sum);
    if (st != FM_OK) return st;
    t->q_task_lo = 0, t->q_task_hi = n_q_tasks(t);
    t->kv_task_lo = 0, t->kv_task_hi = n_kv_tasks(t);
    if (o->parts > 1) {
        split(t, n_q_tasks(t), q_task_weight, o->part, o->parts, &t->q_task_lo, &t->q_task_hi);
        split(t, n_kv_tasks(t), kv_task_weight, o->part, o->parts, &t->kv_task_lo,
              &t->kv_task_hi);
    }
    return FM_OK;
}

void fm_ref_tiling_free(fm_ref_tiling *t)
{
    fm_block_summary_free(&t->sum);
}

fm_status fm_ref_share_of(const fm_problem *p, const fm_mask *mask, const fm_ref_options *o,
                          fm_ref_share *out)
{
    fm_clear_error();
    const fm_ref_options defaults = {0};
    if (!o) o = &defaults;
    if (!out) return fm_fail(FM_ERR_INVALID, "reference share: NULL result");
    fm_status st = fm_ref_check_options("share", p, mask, o);
    if (st != FM_OK) return st;
    fm_ref_tiling t;
    if ((st = fm_ref_tiling_init(&t, p, mask, o)) != FM_OK) return st;
    out->q_lo = fm_ref_q_task_row(&t, t.q_task_lo);
    out->q_hi = fm_ref_q_task_row(&t, t.q_task_hi);
    out->kv_lo = fm_ref_kv_task_row(&t, t.kv_task_lo);
    out->kv_hi = fm_ref_kv_task_row(&t, t.kv_task_hi);
    fm_ref_tiling_free(&t);
    return FM_OK;
}

void fm_ref_tile_scores(const fm_ref_tiling *t, fm_tile_class cls, int64_t b, int64_t mh,
                        int64_t r0, int64_t rows, int64_t c0, int64_t cols, const double *qh,
                        const double *kh, double *s, int64_t ldS, unsigned char *allowed)
{
    const int64_t D = t->p->head_dim;
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)cols, (int)D,
                t->p->scale, qh + (size_t)r0 * (size_t)D, (int)D, kh + (size_t)c0 * (size_t)D,
                (int)D, 0.0, s, (int)ldS);
    if (cls == FM_TILE_UNMASKED) {
        memset(allowed, 1, (size_t)rows);
        return;
    }
    for (int64_t jj = 0; jj < cols; jj++) {
        const int32_t *col = fm_mask_column(t->mask, b, mh, c0 + jj);
        for (int64_t ii = 0; ii < rows; ii++) {
            if (fm_element_masked(col, t->mask->causal, t->offset, r0 + ii, c0 + jj))
                s[ii * ldS + jj] = -INFINITY;
            else
                allowed[ii] = 1;
        }
    }
}

/* The OpenBLAS thread count is process-wide: the first caller in saves and lowers it, the
 * last one out restores it. */
static int blas_active = 0, blas_saved = 1;

void fm_ref_blas_single_begin(void)
{
#pragma omp critical(fm_ref_blas_threads)
    {
        if (blas_active++ == 0) {
            blas_saved = openblas_get_num_threads();
            if (blas_saved != 1) openblas_set_num_threads(1);
        }
    }
}

void fm_ref_blas_single_end(void)
{
#pragma omp critical(fm_ref_blas_threads)
    {
        if (--blas_active == 0 && blas_saved != 1) openblas_set_num_threads(blas_saved);
    }
}

void fm_ref_progress_start(fm_ref_progress *g, const fm_ref_options *o, const char *pass,
                           int64_t total)
{
    g->o = o, g->pass = pass, g->done = 0, g->total = total;
    g->next_report = total / 100 > 0 ? total / 100 : 1;
    if (o->progress) o->progress(o->progress_ctx, pass, 0, total);
}

void fm_ref_progress_step(fm_ref_progress *g)
{
    if (!g->o->progress) return;
#pragma omp critical(fm_ref_progress)
    {
        if (++g->done >= g->next_report || g->done == g->total) {
            g->o->progress(g->o->progress_ctx, g->pass, g->done, g->total);
            g->next_report = g->done + (g->total / 100 > 0 ? g->total / 100 : 1);
        }
    }
}

int fm_ref_run_pass(const fm_ref_tiling *t, const fm_ref_pass *pass, int64_t *first_row)
{
    fm_ref_progress prog;
    fm_ref_progress_start(&prog, t->o, pass->name, pass->hi - pass->lo);
    int nomem = 0;
    int64_t first = INT64_MAX;
#pragma omp parallel reduction(|| : nomem) reduction(min : first) if (fm_ref_tiled_parallel(t->p))
    {
        void *scratch = pass->alloc(t);
        if (!scratch) nomem = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t x = pass->lo; x < pass->hi; x++) {
            if (nomem) continue;
            const int64_t row = pass->task(pass->ctx, x, scratch);
            if (row >= 0 && row < first) first = row;
            fm_ref_progress_step(&prog);
        }
        pass->release(scratch);
    }
    if (first_row) *first_row = first;
    return nomem;
}
