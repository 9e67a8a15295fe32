/* cpu/backward.c — FlashAttention-2 backward on the CPU in float32, with FlashMask tile skipping,
 * for every mask form: the column form (fm_cpu_backward), Binary Block Masking
 * (fm_cpu_backward_bbm) and the dense baseline (fm_cpu_backward_dense) run the same loop; only
 * the tile plan (cpu_internal.h, the tile contract) differs.
 * Layer: cpu <- masks <- core.
 *
 * Work split: OpenMP over (batch, kv head, key tile), dynamic schedule (in index order: a key
 * tile's work falls with kb under causal masks, so the longest come first already). A task owns
 * the rows of dK and dV of its key tile and accumulates them privately over every query head
 * that reads this kv head (GQA: the sum docs/spec.md §1 asks for) and every query tile:
 *   masked tile   -> counted and skipped: no load, no arithmetic;
 *   otherwise     -> S = (scale log2 e) Q K^T, masked scores -> -inf in a partial tile,
 *                    P = 2^(S - LSE log2 e)            (recomputed from the forward's LSE)
 *                    dV += P^T dO,  dP = dO V^T,  dS = P (dP - Delta)   (Delta = rowsum(dO O))
 *                    dK += scale dS^T Q,  dQ_tile += scale dS K.
 * dQ rows are shared by every key tile of the row, so the dQ contribution is formed in private
 * scratch and added under a per-(b, query head, query tile) OpenMP lock: no races, and the add
 * (Bq x D per tile) is small next to the five tile matmuls (5 Bq Bk D multiply-adds).
 * Why locks and not the alternatives: per-thread dQ copies cost O(B Hq Sq D) per thread here
 * (a task touches every query tile of several heads), and a second pass over query tiles
 * recomputes S and dP (8 tile matmuls instead of 5). With FM_FLAG_DETERMINISTIC the lock order
 * would still vary between runs, so that flag runs the backward on one thread: bitwise
 * reproducible, slower.
 * Runs of consecutive computed query tiles (up to FM_CPU_RUN_TILES) share one set of products.
 * Per-thread memory: 2 R Bk + R D + 2 Bk D floats (R = run rows); shared: Delta [B Hq Sq] and
 * the locks.
 * Rows with LSE = -inf (fully masked) get P = 0, hence no gradient.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "fm_internal.h"
#include "softmax_online.h"

#define FM_LOG2E 1.4426950408889634

typedef struct bwd_scratch {
    float *p;      /* [run rows x Bk] probabilities */
    float *ds;     /* [run rows x Bk] dP, then dS in place */
    float *dq;     /* [run rows x D]  this run's dQ contribution */
    float *dk, *dv; /* [Bk x D]  the task's accumulators */
} bwd_scratch;

typedef struct bwd_args {
    const fm_problem *p;
    const fm_tile_plan *plan;
    const float *q, *k, *v, *lse, *dout, *delta;
    float *dq, *dk, *dv;
    omp_lock_t *dq_locks; /* [B, Hq, n_q_blocks] */
} bwd_args;

/* One run of consecutive computed query tiles [qb0, qb0 + n_tiles) of head hq against key tile
 * kb of kv head hk: all of the backward's products for that block of rows at once. */
static void backward_run(const bwd_args *a, int64_t b, int64_t hq, int64_t qb0, int64_t n_tiles,
                         const unsigned char *partial, int64_t hk, int64_t kb, bwd_scratch *w)
{
    const fm_problem *p = a->p;
    const fm_tile_plan *plan = a->plan;
    const int64_t D = p->head_dim, Sq = p->seqlen_q, Sk = p->seqlen_k;
    const int64_t Bq = plan->block_q, Bk = plan->block_k;
    const int64_t r0 = qb0 * Bq;
    const int64_t r1 = (qb0 + n_tiles) * Bq <= Sq ? (qb0 + n_tiles) * Bq : Sq;
    const int64_t rows = r1 - r0;
    const int64_t c0 = kb * Bk, cols = c0 + Bk <= Sk ? Bk : Sk - c0;
    const float scale = (float)p->scale, alpha = (float)(p->scale * FM_LOG2E);

    const int64_t row_base = (b * p->q_heads + hq) * Sq + r0; /* index of row r0 of (b, hq) */
    const float *q_rows = a->q + row_base * D, *do_rows = a->dout + row_base * D;
    const float *lse = a->lse + row_base, *delta = a->delta + row_base;
    const float *k_tile = a->k + ((b * p->kv_heads + hk) * Sk + c0) * D;
    const float *v_tile = a->v + ((b * p->kv_heads + hk) * Sk + c0) * D;

    /* P = 2^(alpha Q K^T - LSE log2 e); masked elements and fully masked rows give 0. */
    fm_tile_gemm_nt(rows, cols, D, alpha, q_rows, D, k_tile, D, 0.0f, w->p, Bk);
    for (int64_t t = 0; t < n_tiles; t++) /* element rule only inside partial tiles */
        if (partial[t]) {
            const int64_t t0 = r0 + t * Bq, tn = t0 + Bq <= r1 ? Bq : r1 - t0;
            fm_tile_plan_mask_scores(plan, b, hq, t0, tn, c0, cols, w->p + (t * Bq) * Bk, Bk);
        }
    fm_softmax_exp2_rows(w->p, Bk, rows, cols, lse); /* P; rows with lse = -inf -> 0 */
    /* dV += P^T dO */
    fm_tile_gemm_tn(cols, D, rows, 1.0f, w->p, Bk, do_rows, D, 1.0f, w->dv, D);
    /* dP = dO V^T, then dS = P (dP - Delta) in place */
    fm_tile_gemm_nt(rows, cols, D, 1.0f, do_rows, D, v_tile, D, 0.0f, w->ds, Bk);
    fm_softmax_backward_tile(w->ds, w->p, Bk, rows, cols, delta); /* dS = P (dP - Delta) */
    /* dK += scale dS^T Q */
    fm_tile_gemm_tn(cols, D, rows, scale, w->ds, Bk, q_rows, D, 1.0f, w->dk, D);
    /* dQ rows += scale dS K, formed privately, then added tile by tile under each query tile's
     * lock */
    fm_tile_gemm_nn(rows, D, cols, scale, w->ds, Bk, k_tile, D, 0.0f, w->dq, D);
    for (int64_t t = 0; t < n_tiles; t++) {
        const int64_t t0 = t * Bq, tn = r0 + t0 + Bq <= r1 ? Bq : r1 - r0 - t0;
        omp_lock_t *lock = &a->dq_locks[(b * p->q_heads + hq) * plan->n_q_blocks + qb0 + t];
        float *dst = a->dq + (row_base + t0) * D;
        const float *src = w->dq + t0 * D;
        const int64_t n = tn * D;
        omp_set_lock(lock);
#pragma omp simd
        for (int64_t e = 0; e < n; e++) dst[e] += src[e];
        omp_unset_lock(lock);
    }
}

/* One task: key tile kb of (b, hk), over every query head of its group and every query tile.
 * Consecutive computed query tiles form runs of up to FM_CPU_RUN_TILES tiles that share one
 * set of products (as in forward.c); each tile is classified and counted exactly once. */
static void backward_key_tile(const bwd_args *a, int64_t b, int64_t hk, int64_t kb,
                              bwd_scratch *w, fm_tile_stats *stats)
{
    const fm_problem *p = a->p;
    const fm_tile_plan *plan = a->plan;
    const int64_t D = p->head_dim, Sk = p->seqlen_k, Bk = plan->block_k;
    const int64_t c0 = kb * Bk, cols = c0 + Bk <= Sk ? Bk : Sk - c0;
    const int64_t group = p->q_heads / p->kv_heads;

    memset(w->dk, 0, (size_t)(cols * D) * sizeof(float));
    memset(w->dv, 0, (size_t)(cols * D) * sizeof(float));
    for (int64_t hq = hk * group; hq < (hk + 1) * group; hq++) {
        int64_t qb = 0, first, n_tiles;
        unsigned char partial[FM_CPU_RUN_TILES];
        while ((n_tiles = fm_tile_plan_next_run(plan, b, hq, FM_RUN_ALONG_QUERIES, kb, &qb,
                                                &first, partial, stats)) > 0)
            backward_run(a, b, hq, first, n_tiles, partial, hk, kb, w);
    }
    const size_t offset = (size_t)(((b * p->kv_heads + hk) * Sk + c0) * D);
    memcpy(a->dk + offset, w->dk, (size_t)(cols * D) * sizeof(float));
    memcpy(a->dv + offset, w->dv, (size_t)(cols * D) * sizeof(float));
}

/* Every (b, kv head, kb) task of the plan, whatever the mask's form: the one backward loop. */
static fm_status backward_plan(const fm_problem *p, const fm_tile_plan *plan, const float *q,
                               const float *k, const float *v, const float *out,
                               const float *lse, const float *dout, float *dq, float *dk,
                               float *dv, fm_tile_stats *stats)
{
    const int threads = (p->flags & FM_FLAG_DETERMINISTIC) ? 1 : omp_get_max_threads();
    const int64_t Bq = plan->block_q, Bk = plan->block_k, D = p->head_dim;
    const int64_t Rq = FM_CPU_RUN_TILES * Bq; /* rows of one run */
    const size_t per_thread = (size_t)(2 * Rq * Bk + Rq * D + 2 * Bk * D);
    const size_t n_rows = fm_problem_lse_elems(p);
    const size_t n_locks = (size_t)(p->batch * p->q_heads * plan->n_q_blocks);
    const int64_t n_tasks = p->batch * p->kv_heads * plan->n_k_blocks;
    float *scratch = fm_alloc((size_t)threads * per_thread, sizeof(float), "cpu backward scratch");
    float *delta = fm_alloc(n_rows, sizeof(float), "cpu backward Delta");
    omp_lock_t *locks = fm_alloc(n_locks, sizeof(omp_lock_t), "cpu backward dQ locks");
    if (!scratch || !delta || !locks) {
        free(scratch), free(delta), free(locks);
        return FM_ERR_NOMEM;
    }
    for (size_t i = 0; i < n_locks; i++) omp_init_lock(&locks[i]);

    bwd_args args = {p, plan, q, k, v, lse, dout, delta, dq, dk, dv, locks};
    int64_t total = 0, masked = 0, partial = 0, unmasked = 0;
    const int blas_threads = fm_blas_threads_begin_single();
    /* One parallel region: dQ zeroed and Delta computed by rows, then the tasks (one fork and
     * join per call, no serial pass over dQ). */
#pragma omp parallel num_threads(threads) reduction(+ : total, masked, partial, unmasked)
    {
        float *base = scratch + (size_t)omp_get_thread_num() * per_thread;
        bwd_scratch w = {base, base + Rq * Bk, base + 2 * Rq * Bk, base + 2 * Rq * Bk + Rq * D,
                         base + 2 * Rq * Bk + Rq * D + Bk * D};
        fm_tile_stats local = {0, 0, 0, 0};
        /* Delta_i = dO_i . O_i for every (b, hq, row); dQ = 0 */
#pragma omp for schedule(static)
        for (int64_t r = 0; r < (int64_t)n_rows; r++) {
            const float *o = out + r * D, *d = dout + r * D;
            float acc = 0.0f;
#pragma omp simd reduction(+ : acc)
            for (int64_t c = 0; c < D; c++) acc += o[c] * d[c];
            delta[r] = acc;
            memset(dq + r * D, 0, (size_t)D * sizeof(float));
        } /* the barrier here: Delta and dQ ready before any task */
#pragma omp for schedule(dynamic, 1)
        for (int64_t task = 0; task < n_tasks; task++) {
            const int64_t kb = task % plan->n_k_blocks;
            const int64_t bh = task / plan->n_k_blocks;
            backward_key_tile(&args, bh / p->kv_heads, bh % p->kv_heads, kb, &w, &local);
        }
        total += local.total;
        masked += local.masked;
        partial += local.partial;
        unmasked += local.unmasked;
    }
    fm_blas_threads_end_single(blas_threads);

    if (stats) *stats = (fm_tile_stats){total, masked, partial, unmasked};
    for (size_t i = 0; i < n_locks; i++) omp_destroy_lock(&locks[i]);
    free(scratch), free(delta), free(locks);
    return FM_OK;
}

static fm_status check_tensors(const float *q, const float *k, const float *v, const float *out,
                               const float *lse, const float *dout, const float *dq,
                               const float *dk, const float *dv)
{
    if (!q || !k || !v || !out || !lse || !dout || !dq || !dk || !dv)
        return fm_fail(FM_ERR_INVALID,
                       "cpu backward: NULL tensor (q, k, v, out, lse, dout, dq, dk or dv)");
    return FM_OK;
}

fm_status fm_cpu_backward(const fm_problem *p, const fm_mask *mask, const float *q,
                          const float *k, const float *v, const float *out, const float *lse,
                          const float *dout, float *dq, float *dk, float *dv,
                          fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse, dout, dq, dk, dv);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    if ((st = fm_tile_plan_init(&plan, p, mask, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K)) != FM_OK)
        return st;
    st = backward_plan(p, &plan, q, k, v, out, lse, dout, dq, dk, dv, stats);
    fm_tile_plan_free(&plan);
    return st;
}

fm_status fm_cpu_backward_bbm(const fm_problem *p, const fm_bbm *mask, const float *q,
                              const float *k, const float *v, const float *out,
                              const float *lse, const float *dout, float *dq, float *dk,
                              float *dv, fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_bbm_check_problem(p, mask);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse, dout, dq, dk, dv);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    fm_tile_plan_init_bbm(&plan, p, mask);
    return backward_plan(p, &plan, q, k, v, out, lse, dout, dq, dk, dv, stats);
}

fm_status fm_cpu_backward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                                const float *q, const float *k, const float *v,
                                const float *out, const float *lse, const float *dout,
                                float *dq, float *dk, float *dv, fm_tile_stats *stats)
{
    fm_clear_error();
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st == FM_OK) st = check_tensors(q, k, v, out, lse, dout, dq, dk, dv);
    if (st != FM_OK) return st;
    fm_tile_plan plan;
    fm_tile_plan_init_dense(&plan, p, allowed, mask_heads, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K);
    return backward_plan(p, &plan, q, k, v, out, lse, dout, dq, dk, dv, stats);
}
