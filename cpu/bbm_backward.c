/* cpu/bbm_backward.c — the CPU layer's FlashAttention-2 backward (float32, OpenMP) for masks held
 * densely: Binary Block Masking (empty tiles skipped, full tiles unmasked, partial tiles
 * bit-tested) and the plain dense-mask baseline that computes every tile.
 * Layer: cpu <- masks (bbm) <- core. Declared in flashmask/sparse.h.
 *
 * Same arithmetic and work split as cpu/backward.c, through the layer's tile kernels: one task
 * per (batch, kv head, key tile) owns its rows of dK and dV and walks every query head of its
 * group and every query tile; per tile
 *     P = 2^(alpha Q K^T - LSE log2 e)   (masked elements and rows with LSE = -inf give 0)
 *     dV += P^T dO,  dP = dO V^T,  dS = P (dP - Delta),  dK += s dS^T Q,  dQ += s dS K,
 * the dQ contribution added under a per-(b, query head, query tile) lock. FM_FLAG_DETERMINISTIC
 * runs it on one thread.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "bbm_plan.h"
#include "flashmask/sparse.h"
#include "fm_internal.h"
#include "softmax_online.h"

#define FM_LOG2E 1.4426950408889634

typedef struct bbm_bwd_scratch {
    float *p, *ds, *dq, *dk, *dv; /* [Bq x Bk] x 2, [Bq x D], [Bk x D] x 2 */
} bbm_bwd_scratch;

typedef struct bbm_bwd_args {
    const fm_problem *p;
    const fm_bbm_plan *plan;
    const float *q, *k, *v, *lse, *dout, *delta;
    float *dq, *dk, *dv;
    omp_lock_t *dq_locks; /* [B, Hq, n_q_blocks] */
} bbm_bwd_args;

/* One non-empty tile: query tile qb of head hq x key tile kb of kv head hk. */
static void backward_tile(const bbm_bwd_args *a, int64_t b, int64_t hq, int64_t qb, int64_t hk,
                          int64_t kb, fm_tile_class cls, bbm_bwd_scratch *w)
{
    const fm_problem *p = a->p;
    const fm_bbm_plan *plan = a->plan;
    const int64_t D = p->head_dim, Sq = p->seqlen_q, Sk = p->seqlen_k;
    const int64_t Bq = plan->block_q, Bk = plan->block_k;
    const int64_t r0 = qb * Bq, rows = r0 + Bq <= Sq ? Bq : Sq - r0;
    const int64_t c0 = kb * Bk, cols = c0 + Bk <= Sk ? Bk : Sk - c0;
    const float scale = (float)p->scale, alpha = (float)(p->scale * FM_LOG2E);
    const int64_t row_base = (b * p->q_heads + hq) * Sq + r0;
    const float *q_tile = a->q + row_base * D, *do_tile = a->dout + row_base * D;
    const float *lse = a->lse + row_base, *delta = a->delta + row_base;
    const float *k_tile = a->k + ((b * p->kv_heads + hk) * Sk + c0) * D;
    const float *v_tile = a->v + ((b * p->kv_heads + hk) * Sk + c0) * D;

    fm_tile_gemm_nt(rows, cols, D, alpha, q_tile, D, k_tile, D, 0.0f, w->p, Bk);
    if (cls == FM_TILE_PARTIAL) fm_bbm_plan_mask_scores(plan, b, hq, qb, kb, rows, cols, w->p, Bk);
    fm_softmax_exp2_rows(w->p, Bk, rows, cols, lse); /* P; rows with lse = -inf -> 0 */
    fm_tile_gemm_tn(cols, D, rows, 1.0f, w->p, Bk, do_tile, D, 1.0f, w->dv, D);    /* dV */
    fm_tile_gemm_nt(rows, cols, D, 1.0f, do_tile, D, v_tile, D, 0.0f, w->ds, Bk);  /* dP */
    fm_softmax_backward_tile(w->ds, w->p, Bk, rows, cols, delta);             /* dS */
    fm_tile_gemm_tn(cols, D, rows, scale, w->ds, Bk, q_tile, D, 1.0f, w->dk, D);  /* dK */
    fm_tile_gemm_nn(rows, D, cols, scale, w->ds, Bk, k_tile, D, 0.0f, w->dq, D);  /* dQ part */
    omp_lock_t *lock = &a->dq_locks[(b * p->q_heads + hq) * plan->n_q_blocks + qb];
    float *dq_tile = a->dq + row_base * D;
    omp_set_lock(lock);
    for (int64_t e = 0; e < rows * D; e++) dq_tile[e] += w->dq[e];
    omp_unset_lock(lock);
}

/* One task: key tile kb of (b, hk) over the query heads of its group and all query tiles. */
static void backward_key_tile(const bbm_bwd_args *a, int64_t b, int64_t hk, int64_t kb,
                              bbm_bwd_scratch *w, fm_tile_stats *stats)
{
    const fm_problem *p = a->p;
    const fm_bbm_plan *plan = a->plan;
    const int64_t D = p->head_dim, Sk = p->seqlen_k, Bk = plan->block_k;
    const int64_t c0 = kb * Bk, cols = c0 + Bk <= Sk ? Bk : Sk - c0;
    const int64_t group = p->q_heads / p->kv_heads;
    memset(w->dk, 0, (size_t)(cols * D) * sizeof(float));
    memset(w->dv, 0, (size_t)(cols * D) * sizeof(float));
    for (int64_t hq = hk * group; hq < (hk + 1) * group; hq++)
        for (int64_t qb = 0; qb < plan->n_q_blocks; qb++) {
            fm_tile_class cls = fm_bbm_plan_classify(plan, b, hq, qb, kb);
            fm_tile_stats_count(stats, cls);
            if (cls == FM_TILE_MASKED) continue; /* empty tile: skipped */
            backward_tile(a, b, hq, qb, hk, kb, cls, w);
        }
    const size_t at = (size_t)(((b * p->kv_heads + hk) * Sk + c0) * D);
    memcpy(a->dk + at, w->dk, (size_t)(cols * D) * sizeof(float));
    memcpy(a->dv + at, w->dv, (size_t)(cols * D) * sizeof(float));
}

static fm_status backward_plan(const fm_problem *p, const fm_bbm_plan *plan, const float *q,
                               const float *k, const float *v, const float *out,
                               const float *lse, const float *dout, float *dq, float *dk,
                               float *dv, fm_tile_stats *stats)
{
    if (!q || !k || !v || !out || !lse || !dout || !dq || !dk || !dv)
        return fm_fail(FM_ERR_INVALID, "cpu bbm backward: NULL tensor");
    const int threads = (p->flags & FM_FLAG_DETERMINISTIC) ? 1 : omp_get_max_threads();
    const int64_t Bq = plan->block_q, Bk = plan->block_k, D = p->head_dim;
    const size_t per_thread = (size_t)(2 * Bq * Bk + Bq * D + 2 * Bk * D);
    const size_t n_rows = fm_problem_lse_elems(p);
    const size_t n_locks = (size_t)(p->batch * p->q_heads * plan->n_q_blocks);
    float *scratch = fm_alloc((size_t)threads * per_thread, sizeof(float), "cpu bbm scratch");
    float *delta = fm_alloc(n_rows, sizeof(float), "cpu bbm Delta");
    omp_lock_t *locks = fm_alloc(n_locks, sizeof(omp_lock_t), "cpu bbm dQ locks");
    if (!scratch || !delta || !locks) {
        free(scratch), free(delta), free(locks);
        return FM_ERR_NOMEM;
    }
    for (size_t i = 0; i < n_locks; i++) omp_init_lock(&locks[i]);
    memset(dq, 0, fm_problem_q_elems(p) * sizeof(float));
    /* Delta_i = dO_i . O_i */
    for (size_t r = 0; r < n_rows; r++) {
        float acc = 0.0f;
        for (int64_t d = 0; d < D; d++) acc += out[r * D + d] * dout[r * D + d];
        delta[r] = acc;
    }

    bbm_bwd_args args = {p, plan, q, k, v, lse, dout, delta, dq, dk, dv, locks};
    const int64_t n_tasks = p->batch * p->kv_heads * plan->n_k_blocks;
    int64_t total = 0, masked = 0, partial = 0, unmasked = 0;
    const int blas_threads = fm_blas_threads_begin_single();
#pragma omp parallel num_threads(threads) reduction(+ : total, masked, partial, unmasked)
    {
        float *base = scratch + (size_t)omp_get_thread_num() * per_thread;
        bbm_bwd_scratch w = {base, base + Bq * Bk, base + 2 * Bq * Bk,
                             base + 2 * Bq * Bk + Bq * D, base + 2 * Bq * Bk + Bq * D + Bk * D};
        fm_tile_stats local = {0, 0, 0, 0};
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; task++) {
            const int64_t kb = task % plan->n_k_blocks, bh = task / plan->n_k_blocks;
            backward_key_tile(&args, bh / p->kv_heads, bh % p->kv_heads, kb, &w, &local);
        }
        total += local.total, masked += local.masked;
        partial += local.partial, unmasked += local.unmasked;
    }
    fm_blas_threads_end_single(blas_threads);
    if (stats) *stats = (fm_tile_stats){total, masked, partial, unmasked};
    for (size_t i = 0; i < n_locks; i++) omp_destroy_lock(&locks[i]);
    free(scratch), free(delta), free(locks);
    return FM_OK;
}

fm_status fm_cpu_backward_bbm(const fm_problem *p, const fm_bbm *mask, const float *q,
                              const float *k, const float *v, const float *out,
                              const float *lse, const float *dout, float *dq, float *dk,
                              float *dv, fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_bbm_check_problem(p, mask);
    if (st != FM_OK) return st;
    fm_bbm_plan plan;
    fm_bbm_plan_init(&plan, p, mask, NULL, 0, 0, 0);
    return backward_plan(p, &plan, q, k, v, out, lse, dout, dq, dk, dv, stats);
}

fm_status fm_cpu_backward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                                const float *q, const float *k, const float *v,
                                const float *out, const float *lse, const float *dout,
                                float *dq, float *dk, float *dv, fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st != FM_OK) return st;
    fm_bbm_plan plan;
    fm_bbm_plan_init(&plan, p, NULL, allowed, mask_heads, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K);
    return backward_plan(p, &plan, q, k, v, out, lse, dout, dq, dk, dv, stats);
}
