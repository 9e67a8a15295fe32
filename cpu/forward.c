/* cpu/forward.c — FlashAttention-2 forward on the CPU in float32, with FlashMask tile skipping,
 * for every mask form: the column form (fm_cpu_forward), Binary Block Masking
 * (fm_cpu_forward_bbm) and the dense baseline that skips nothing (fm_cpu_forward_dense) run the
 * same loop; only the tile plan (cpu_internal.h, the tile contract) differs.
 * Layer: cpu <- masks <- core.
 *
 * Work split: OpenMP over (batch, query head, query tile), dynamic schedule, in the order of
 * fm_task_order (task_order.c: each line of query tiles from last to first, neighbours sharing
 * key tiles in cache, unless longest first balances the threads clearly better). Each task
 * keeps its query tile's output accumulator O[Bq x D], running max m and sum l, and walks the
 * key tiles of its row:
 *   masked tile   -> counted and skipped: no load of K or V, no arithmetic;
 *   unmasked tile -> S = (scale log2 e) Q K^T, online softmax, O += P V;
 *   partial tile  -> the same, with masked scores set to -inf first (fm_column_masked_runs,
 *                    the element rule read down a column).
 * Runs of consecutive computed tiles share one sgemm pair (see FM_CPU_RUN_TILES).
 * Per-thread memory: S[Bq x run width] + O[Bq x D] + 2 Bq floats, i.e. O((Sq+Sk) D) at most,
 * never O(Sq Sk). Output: O = o / l and LSE = ln 2 (m + log2 l); rows with no allowed key give
 * O = 0, LSE = -inf.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "fm_internal.h"
#include "softmax_online.h"

#define FM_LOG2E 1.4426950408889634

/* Scratch of one thread: scores/probabilities, output accumulator, running max and sum. */
typedef struct fwd_scratch {
    float *s, *o, *m, *l;
} fwd_scratch;

/* One (b, hq, qb) task: rows [r0, r0 + rows) of query head hq. */
static void forward_query_tile(const fm_problem *p, const fm_tile_plan *plan, int64_t b,
                               int64_t hq, int64_t qb, const float *q, const float *k,
                               const float *v, float *out, float *lse, fwd_scratch *w,
                               fm_tile_stats *stats)
{
    const int64_t D = p->head_dim, Sq = p->seqlen_q, Sk = p->seqlen_k;
    const int64_t Bk = plan->block_k;
    const int64_t hk = hq / (p->q_heads / p->kv_heads);
    const int64_t r0 = qb * plan->block_q;
    const int64_t rows = r0 + plan->block_q <= Sq ? plan->block_q : Sq - r0;
    const float alpha = (float)(p->scale * FM_LOG2E); /* scores in base 2 */

    const float *q_tile = q + ((b * p->q_heads + hq) * Sq + r0) * D;
    const float *k_head = k + (b * p->kv_heads + hk) * Sk * D;
    const float *v_head = v + (b * p->kv_heads + hk) * Sk * D;

    for (int64_t i = 0; i < rows; i++) {
        w->m[i] = -INFINITY;
        w->l[i] = 0.0f;
    }
    memset(w->o, 0, (size_t)(rows * D) * sizeof(float));

    /* Walk the key tiles; consecutive computed tiles (a "run", up to FM_CPU_RUN_TILES of them)
     * share one wider sgemm pair, which runs closer to the sgemm peak than 128-wide products,
     * while masked tiles are still skipped one 128-wide tile at a time (fm_tile_plan_next_run
     * in tile_plan.c classifies, counts and skips; backward.c walks its lines the same way). */
    const int64_t ld = FM_CPU_RUN_TILES * Bk; /* row stride of the run's scores */
    int64_t kb = 0, first, n_tiles;
    unsigned char partial[FM_CPU_RUN_TILES];
    while ((n_tiles = fm_tile_plan_next_run(plan, b, hq, FM_RUN_ALONG_KEYS, qb, &kb, &first,
                                            partial, stats)) > 0) {
        const int64_t c0 = first * Bk;
        const int64_t c1 = (first + n_tiles) * Bk <= Sk ? (first + n_tiles) * Bk : Sk;
        const int64_t cols = c1 - c0;
        /* S = alpha * Q_tile K_run^T */
        fm_tile_gemm_nt(rows, cols, D, alpha, q_tile, D, k_head + c0 * D, D, 0.0f, w->s, ld);
        for (int64_t t = 0; t < n_tiles; t++) /* element rule only inside partial tiles */
            if (partial[t]) {
                const int64_t t0 = c0 + t * Bk, tn = t0 + Bk <= c1 ? Bk : c1 - t0;
                fm_tile_plan_mask_scores(plan, b, hq, r0, rows, t0, tn, w->s + t * Bk, ld);
            }
        fm_online_softmax_tile(w->s, ld, rows, cols, w->m, w->l, w->o, D);
        /* O += P V_run */
        fm_tile_gemm_nn(rows, D, cols, 1.0f, w->s, ld, v_head + c0 * D, D, 1.0f, w->o, D);
    }

    float *out_tile = out + ((b * p->q_heads + hq) * Sq + r0) * D;
    float *lse_tile = lse + (b * p->q_heads + hq) * Sq + r0;
    fm_online_softmax_finish(rows, D, w->m, w->l, w->o, out_tile, lse_tile);
}

/* Every (b, hq, qb) task of the plan, whatever the mask's form: the one forward loop. */
static fm_status forward_plan(const fm_problem *p, const fm_tile_plan *plan, const float *q,
                              const float *k, const float *v, float *out, float *lse,
                              fm_tile_stats *stats)
{
    /* Per-thread scratch, allocated once: S [Bq x run width], O [Bq x D], m and l [Bq]. */
    const int threads = omp_get_max_threads();
    const int64_t Bq = plan->block_q, Bk = plan->block_k, D = p->head_dim;
    const int64_t Bs = Bq * FM_CPU_RUN_TILES * Bk; /* scores of one run */
    const size_t per_thread = (size_t)(Bs + Bq * D + 2 * Bq);
    float *scratch = fm_alloc((size_t)threads * per_thread, sizeof(float), "cpu forward scratch");
    if (!scratch) return FM_ERR_NOMEM;

    /* the order of the tasks (fm_task_order): work, order and the order's scratch */
    const int64_t n_tasks = p->batch * p->q_heads * plan->n_q_blocks;
    int64_t *work = fm_alloc((size_t)(3 * n_tasks + plan->n_k_blocks + 2 + threads),
                             sizeof(int64_t), "cpu forward task order");
    if (!work) {
        free(scratch);
        return FM_ERR_NOMEM;
    }
    int64_t *order = work + n_tasks, *order_scratch = order + n_tasks;
    /* before the parallel region, not in it: a barrier there costs more than these classifier
     * calls (one per tile) on a loaded machine */
    for (int64_t task = 0; task < n_tasks; task++) {
        const int64_t bh = task / plan->n_q_blocks;
        work[task] = fm_tile_plan_line_tiles(plan, bh / p->q_heads, bh % p->q_heads,
                                             FM_RUN_ALONG_KEYS, task % plan->n_q_blocks);
    }
    fm_task_order(work, n_tasks, plan->n_q_blocks, plan->n_k_blocks, threads, order_scratch,
                  order);
    int64_t total = 0, masked = 0, partial = 0, unmasked = 0;
    const int blas_threads = fm_blas_threads_begin_single();
#pragma omp parallel num_threads(threads) reduction(+ : total, masked, partial, unmasked)
    {
        float *base = scratch + (size_t)omp_get_thread_num() * per_thread;
        fwd_scratch w = {base, base + Bs, base + Bs + Bq * D, base + Bs + Bq * D + Bq};
        fm_tile_stats local = {0, 0, 0, 0};
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < n_tasks; i++) {
            const int64_t task = order[i];
            const int64_t qb = task % plan->n_q_blocks;
            const int64_t bh = task / plan->n_q_blocks;
            forward_query_tile(p, plan, bh / p->q_heads, bh % p->q_heads, qb, q, k, v, out,
                               lse, &w, &local);
        }
        total += local.total;
        masked += local.masked;
        partial += local.partial;
        unmasked += local.unmasked;
    }
    fm_blas_threads_end_single(blas_threads);

    if (stats) *stats = (fm_tile_stats){total, masked, partial, unmasked};
    free(scratch), free(work);
    return FM_OK;
}

static fm_status check_tensors(const float *q, const float *k, const float *v, const float *out,
                               const float *lse)
{
    if (!q || !k || !v || !out || !lse)
        return fm_fail(FM_ERR_INVALID, "cpu forward: NULL tensor (q, k, v, out or lse)");
    return FM_OK;
}

fm_status fm_cpu_forward(const fm_problem *p, const fm_mask *mask, const float *q,
                         const float *k, const float *v, float *out, float *lse,
                         fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    if ((st = fm_tile_plan_init(&plan, p, mask, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K)) != FM_OK)
        return st;
    st = forward_plan(p, &plan, q, k, v, out, lse, stats);
    fm_tile_plan_free(&plan);
    return st;
}

fm_status fm_cpu_forward_bbm(const fm_problem *p, const fm_bbm *mask, const float *q,
                             const float *k, const float *v, float *out, float *lse,
                             fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_bbm_check_problem(p, mask);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    fm_tile_plan_init_bbm(&plan, p, mask);
    return forward_plan(p, &plan, q, k, v, out, lse, stats);
}

fm_status fm_cpu_forward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                               const float *q, const float *k, const float *v, float *out,
                               float *lse, fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    fm_tile_plan_init_dense(&plan, p, allowed, mask_heads, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K);
    return forward_plan(p, &plan, q, k, v, out, lse, stats);
}
