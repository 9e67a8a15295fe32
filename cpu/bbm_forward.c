/* cpu/bbm_forward.c — the CPU layer's FlashAttention-2 forward (float32, OpenMP) for masks held
 * densely: Binary Block Masking (skip empty tiles, no element test in full tiles, packed-bit
 * test in partial tiles) and the plain dense-mask baseline that computes every tile.
 * Layer: cpu <- masks (bbm) <- core. Declared in flashmask/sparse.h.
 *
 * The arithmetic is the CPU layer's own: tile sgemms (fm_tile_gemm_*, matmul_tile.c) and the
 * online softmax step (softmax_online.h); the same work split as cpu/forward.c — one OpenMP
 * task per (batch, query head, query tile), walking its key tiles. Only the tile decision
 * differs (cpu/bbm_plan.h instead of the column mask's block summaries).
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "bbm_plan.h"
#include "flashmask/cpu.h"
#include "fm_internal.h"
#include "softmax_online.h"

#define FM_LOG2E 1.4426950408889634

typedef struct bbm_fwd_scratch {
    float *s, *o, *m, *l; /* scores [Bq x Bk], output accumulator [Bq x D], max, sum [Bq] */
} bbm_fwd_scratch;

/* One task: rows [r0, r0 + rows) of query head hq of batch b. */
static void forward_query_tile(const fm_problem *p, const fm_bbm_plan *plan, int64_t b,
                               int64_t hq, int64_t qb, const float *q, const float *k,
                               const float *v, float *out, float *lse, bbm_fwd_scratch *w,
                               fm_tile_stats *stats)
{
    const int64_t D = p->head_dim, Sq = p->seqlen_q, Sk = p->seqlen_k, Bk = plan->block_k;
    const int64_t hk = hq / (p->q_heads / p->kv_heads);
    const int64_t r0 = qb * plan->block_q;
    const int64_t rows = r0 + plan->block_q <= Sq ? plan->block_q : Sq - r0;
    const float alpha = (float)(p->scale * FM_LOG2E); /* scores in base 2 */
    const float *q_tile = q + ((b * p->q_heads + hq) * Sq + r0) * D;
    const float *k_head = k + (b * p->kv_heads + hk) * Sk * D;
    const float *v_head = v + (b * p->kv_heads + hk) * Sk * D;

    for (int64_t i = 0; i < rows; i++) w->m[i] = -INFINITY, w->l[i] = 0.0f;
    memset(w->o, 0, (size_t)(rows * D) * sizeof(float));

    for (int64_t kb = 0; kb < plan->n_k_blocks; kb++) {
        fm_tile_class cls = fm_bbm_plan_classify(plan, b, hq, qb, kb);
        fm_tile_stats_count(stats, cls);
        if (cls == FM_TILE_MASKED) continue; /* empty tile: no load, no arithmetic */
        const int64_t c0 = kb * Bk, cols = c0 + Bk <= Sk ? Bk : Sk - c0;
        fm_tile_gemm_nt(rows, cols, D, alpha, q_tile, D, k_head + c0 * D, D, 0.0f, w->s, Bk);
        if (cls == FM_TILE_PARTIAL)
            fm_bbm_plan_mask_scores(plan, b, hq, qb, kb, rows, cols, w->s, Bk);
        fm_online_softmax_tile(w->s, Bk, rows, cols, w->m, w->l, w->o, D);
        fm_tile_gemm_nn(rows, D, cols, 1.0f, w->s, Bk, v_head + c0 * D, D, 1.0f, w->o, D);
    }

    float *out_tile = out + ((b * p->q_heads + hq) * Sq + r0) * D;
    float *lse_tile = lse + (b * p->q_heads + hq) * Sq + r0;
    fm_online_softmax_finish(rows, D, w->m, w->l, w->o, out_tile, lse_tile);
}

/* Runs every (b, hq, qb) task of the plan. */
static fm_status forward_plan(const fm_problem *p, const fm_bbm_plan *plan, const float *q,
                              const float *k, const float *v, float *out, float *lse,
                              fm_tile_stats *stats)
{
    if (!q || !k || !v || !out || !lse)
        return fm_fail(FM_ERR_INVALID, "cpu bbm forward: NULL tensor (q, k, v, out or lse)");
    const int threads = omp_get_max_threads();
    const int64_t Bq = plan->block_q, Bk = plan->block_k, D = p->head_dim;
    const size_t per_thread = (size_t)(Bq * Bk + Bq * D + 2 * Bq);
    float *scratch = fm_alloc((size_t)threads * per_thread, sizeof(float), "cpu bbm scratch");
    if (!scratch) return FM_ERR_NOMEM;

    const int64_t n_tasks = p->batch * p->q_heads * plan->n_q_blocks;
    int64_t total = 0, masked = 0, partial = 0, unmasked = 0;
    const int blas_threads = fm_blas_threads_begin_single();
#pragma omp parallel num_threads(threads) reduction(+ : total, masked, partial, unmasked)
    {
        float *base = scratch + (size_t)omp_get_thread_num() * per_thread;
        bbm_fwd_scratch w = {base, base + Bq * Bk, base + Bq * Bk + Bq * D,
                             base + Bq * Bk + Bq * D + Bq};
        fm_tile_stats local = {0, 0, 0, 0};
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; task++) {
            const int64_t qb = task % plan->n_q_blocks, bh = task / plan->n_q_blocks;
            forward_query_tile(p, plan, bh / p->q_heads, bh % p->q_heads, qb, q, k, v, out, lse,
                               &w, &local);
        }
        total += local.total, masked += local.masked;
        partial += local.partial, unmasked += local.unmasked;
    }
    fm_blas_threads_end_single(blas_threads);
    if (stats) *stats = (fm_tile_stats){total, masked, partial, unmasked};
    free(scratch);
    return FM_OK;
}

fm_status fm_cpu_forward_bbm(const fm_problem *p, const fm_bbm *mask, const float *q,
                             const float *k, const float *v, float *out, float *lse,
                             fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_bbm_check_problem(p, mask);
    if (st != FM_OK) return st;
    fm_bbm_plan plan;
    fm_bbm_plan_init(&plan, p, mask, NULL, 0, 0, 0);
    return forward_plan(p, &plan, q, k, v, out, lse, stats);
}

fm_status fm_cpu_forward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                               const float *q, const float *k, const float *v, float *out,
                               float *lse, fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st != FM_OK) return st;
    fm_bbm_plan plan;
    fm_bbm_plan_init(&plan, p, NULL, allowed, mask_heads, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K);
    return forward_plan(p, &plan, q, k, v, out, lse, stats);
}
