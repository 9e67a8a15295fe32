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
 * Runs of consecutive computed tiles share one pair of products (see FM_CPU_RUN_TILES): on
 * operands packed once (packed_gemm.c: K and V per key tile of a head by the first task that
 * needs the tile, Q per task; blocks of partial tiles that the mask covers left out, and the
 * row work between the products kept to each row panel's span of keys) where the build has
 * BLIS's micro-kernel, else OpenBLAS sgemm (matmul_tile.c).
 * Per-thread memory: S[Bq x run width] + O[Bq x D] + 2 Bq floats, i.e. O((Sq+Sk) D) at most,
 * never O(Sq Sk). Output: O = o / l and LSE = ln 2 (m + log2 l); rows with no allowed key give
 * O = 0, LSE = -inf.
 */
#include <math.h>
#include <omp.h>
#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_internal.h"
#include "fm_internal.h"
#include "packed_gemm.h"
#include "softmax_online.h"

#define FM_LOG2E 1.4426950408889634

/* Scratch of one thread: scores/probabilities, output accumulator, running max and sum; with
 * packed products also the query tile and the probabilities as A panels (packed_gemm.h). */
typedef struct fwd_scratch {
    float *s, *o, *m, *l, *q_panels, *p_panels;
} fwd_scratch;

/* K and V of every (batch, kv head) packed once per call as B panels (packed_gemm.h), when the
 * build has the micro-kernel: K^T panels [Sk / NR][D][NR] and V panels [D / NR][Sk][NR] per
 * head, head_floats each, packed key tile by key tile when a task first needs the tile
 * (tiles_packed). state[h * n_k_blocks + kb]: TILE_UNPACKED, TILE_PACKING or TILE_PACKED.
 * kernel.mr == 0: none, the products go through OpenBLAS. */
typedef struct fwd_packed {
    fm_packed_kernel kernel;
    float *k, *v;
    size_t head_floats;
    int64_t *state;
} fwd_packed;

enum { TILE_UNPACKED = 0, TILE_PACKING = 1, TILE_PACKED = 2 };

/* Key tiles [first, first + n) of kv head h (h = b Hk + hk) packed, K^T and V, by this thread
 * or another: the first thread to need a tile packs it (so the packing is shared out among the
 * threads as the tasks are, needs no barrier, and each packed tile is used while still in cache).
 * This thread first packs every tile of the run that nobody has claimed, passing over those
 * another thread is packing, and then waits for those. Packing never waits, so this cannot
 * deadlock. */
static void tiles_packed(const fwd_packed *pk, const fm_problem *p, const fm_tile_plan *plan,
                         const float *k, const float *v, int64_t h, int64_t first, int64_t n)
{
    int64_t *state = pk->state + h * plan->n_k_blocks;
    const int64_t D = p->head_dim, Sk = p->seqlen_k, nr = pk->kernel.nr;
    for (int64_t kb = first; kb < first + n; kb++) {
        int64_t expected = TILE_UNPACKED;
        if (__atomic_load_n(&state[kb], __ATOMIC_ACQUIRE) != TILE_UNPACKED ||
            !__atomic_compare_exchange_n(&state[kb], &expected, TILE_PACKING, 0,
                                         __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue; /* packed, or being packed by another thread */
        const int64_t k0 = kb * plan->block_k;
        const int64_t k1 = k0 + plan->block_k < Sk ? k0 + plan->block_k : Sk;
        fm_pack_b_transposed(&pk->kernel, D, Sk, k + h * Sk * D, D, k0 / nr, (k1 + nr - 1) / nr,
                             pk->k + (size_t)h * pk->head_floats);
        fm_pack_b_rows(&pk->kernel, Sk, D, v + h * Sk * D, D, k0, k1,
                       pk->v + (size_t)h * pk->head_floats);
        __atomic_store_n(&state[kb], TILE_PACKED, __ATOMIC_RELEASE);
    }
    for (int64_t kb = first; kb < first + n; kb++)
        for (int spins = 0; __atomic_load_n(&state[kb], __ATOMIC_ACQUIRE) != TILE_PACKED;
             spins++) {
            if (spins < 4096) {
#if defined(__x86_64__) || defined(__i386__)
                __builtin_ia32_pause();
#endif
            } else {
                sched_yield(); /* the packing thread may have lost its core */
            }
        }
}

/* Bounds of the sub-block tables (fm_packed_kernel_get's MR >= 4, NR >= 8). */
enum {
    FWD_MAX_ROW_PANELS = FM_CPU_TILE_Q / 4,
    FWD_MAX_TILE_COL_PANELS = FM_CPU_TILE_K / 8,
    FWD_MAX_RUN_COL_PANELS = FM_CPU_RUN_TILES * FWD_MAX_TILE_COL_PANELS
};

/* The sub-block tables of one run (run_sparsity), on the task's stack. */
typedef struct fwd_sparsity {
    unsigned char skip[FWD_MAX_ROW_PANELS * FWD_MAX_RUN_COL_PANELS];
    int64_t k_span[2 * FWD_MAX_ROW_PANELS];
    fm_packed_sparsity view;
} fwd_sparsity;

/* Where the run's partial tiles have MR x NR blocks masked throughout: skip[ip][jp] for the
 * scores (not computed; masking then writes -inf over them) and, per row panel, the span of
 * keys outside which its probabilities are all zero (P V need not read them). Returns NULL
 * when no block of the run is masked throughout. */
static const fm_packed_sparsity *run_sparsity(const fm_tile_plan *plan, const fwd_packed *pk,
                                              int64_t b, int64_t hq, int64_t r0, int64_t rows,
                                              int64_t c0, int64_t cols, int64_t n_tiles,
                                              const unsigned char *partial, fwd_sparsity *sp)
{
    const int64_t mr = pk->kernel.mr, nr = pk->kernel.nr, Bk = plan->block_k;
    if (!plan->sub.minmax || rows > FM_CPU_TILE_Q || Bk > FM_CPU_TILE_K)
        return NULL; /* no sub-blocks (not the column form), or tiles past the tables' size */
    if (!memchr(partial, 1, (size_t)n_tiles)) return NULL; /* unmasked tiles only */
    const int64_t row_panels = (rows + mr - 1) / mr, col_panels = (cols + nr - 1) / nr;
    const int64_t tile_panels = Bk / nr;
    int64_t masked = 0;
    memset(sp->skip, 0, (size_t)(row_panels * col_panels));
    for (int64_t t = 0; t < n_tiles; t++) {
        if (!partial[t]) continue;
        const int64_t t0 = c0 + t * Bk, tn = t0 + Bk <= c0 + cols ? Bk : c0 + cols - t0;
        unsigned char tile[FWD_MAX_ROW_PANELS * FWD_MAX_TILE_COL_PANELS];
        if (!fm_tile_plan_masked_blocks(plan, b, hq, r0, rows, t0, tn, mr, tile)) continue;
        const int64_t tile_cols = (tn + nr - 1) / nr;
        for (int64_t ip = 0; ip < row_panels; ip++)
            for (int64_t g = 0; g < tile_cols; g++) {
                sp->skip[ip * col_panels + t * tile_panels + g] = tile[ip * tile_cols + g];
                masked += tile[ip * tile_cols + g];
            }
    }
    if (!masked) return NULL;
    for (int64_t ip = 0; ip < row_panels; ip++) {
        int64_t lo = col_panels, hi = -1;
        for (int64_t jp = 0; jp < col_panels; jp++)
            if (!sp->skip[ip * col_panels + jp]) {
                lo = lo < jp ? lo : jp;
                hi = jp;
            }
        sp->k_span[2 * ip] = lo * nr;
        sp->k_span[2 * ip + 1] = (hi + 1) * nr < cols ? (hi + 1) * nr : cols;
    }
    sp->view = (fm_packed_sparsity){sp->skip, sp->k_span};
    return &sp->view;
}

/* S[rows x cols] = alpha Q_tile K[c0, c0 + cols)^T, row stride ld. */
static void tile_scores(const fwd_packed *pk, fwd_scratch *w, int64_t rows, int64_t cols,
                        int64_t D, float alpha, const float *q_tile, const float *k_head,
                        const float *k_packed, int64_t c0, int64_t ld,
                        const fm_packed_sparsity *sparse)
{
    if (!pk->kernel.mr) {
        fm_tile_gemm_nt(rows, cols, D, alpha, q_tile, D, k_head + c0 * D, D, 0.0f, w->s, ld);
        return;
    }
    const int64_t nr = pk->kernel.nr;
    const fm_packed_sparsity skip_only = {sparse ? sparse->skip : NULL, NULL};
    fm_packed_gemm(&pk->kernel, rows, cols, D, alpha, w->q_panels, k_packed + c0 * D, D * nr,
                   0.0f, w->s, ld, &skip_only);
}

/* O[rows x D] += P[rows x cols] V[c0, c0 + cols), P in w->s with row stride ld. */
static void tile_accumulate(const fwd_packed *pk, fwd_scratch *w, int64_t rows, int64_t cols,
                            int64_t D, const float *v_head, const float *v_packed, int64_t c0,
                            int64_t Sk, int64_t ld, const fm_packed_sparsity *sparse)
{
    if (!pk->kernel.mr) {
        fm_tile_gemm_nn(rows, D, cols, 1.0f, w->s, ld, v_head + c0 * D, D, 1.0f, w->o, D);
        return;
    }
    const int64_t nr = pk->kernel.nr;
    const int64_t *k_span = sparse ? sparse->k_span : NULL;
    fm_pack_a(&pk->kernel, rows, cols, w->s, ld, k_span, w->p_panels);
    const fm_packed_sparsity spans_only = {NULL, k_span};
    fm_packed_gemm(&pk->kernel, rows, D, cols, 1.0f, w->p_panels, v_packed + c0 * nr, Sk * nr,
                   1.0f, w->o, D, &spans_only);
}

/* The online softmax of a run, row panel by row panel (mr rows each) over the panel's span of
 * keys [k_span[2 ip], k_span[2 ip + 1]) only; a panel with an empty span is left as it was
 * (all its scores in this run are masked: the step would not move m, l or O). */
static void softmax_in_spans(fwd_scratch *w, int64_t rows, int64_t ld, int64_t D, int64_t mr,
                             const int64_t *k_span)
{
    for (int64_t ip = 0, i0 = 0; i0 < rows; ip++, i0 += mr) {
        const int64_t lo = k_span[2 * ip], hi = k_span[2 * ip + 1];
        if (lo >= hi) continue;
        fm_online_softmax_tile(w->s + i0 * ld + lo, ld, rows - i0 < mr ? rows - i0 : mr, hi - lo,
                               w->m + i0, w->l + i0, w->o + i0 * D, D);
    }
}

/* One (b, hq, qb) task: rows [r0, r0 + rows) of query head hq. */
static void forward_query_tile(const fm_problem *p, const fm_tile_plan *plan,
                               const fwd_packed *pk, int64_t b, int64_t hq, int64_t qb,
                               const float *q, const float *k, const float *v, float *out,
                               float *lse, fwd_scratch *w, fm_tile_stats *stats)
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
    const float *k_packed =
        pk->k ? pk->k + (size_t)(b * p->kv_heads + hk) * pk->head_floats : NULL;
    const float *v_packed =
        pk->v ? pk->v + (size_t)(b * p->kv_heads + hk) * pk->head_floats : NULL;
    if (pk->kernel.mr) fm_pack_a(&pk->kernel, rows, D, q_tile, D, NULL, w->q_panels);

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
        if (pk->kernel.mr)
            tiles_packed(pk, p, plan, k, v, b * p->kv_heads + hk, first, n_tiles);
        fwd_sparsity sp;
        const fm_packed_sparsity *sparse =
            pk->kernel.mr ? run_sparsity(plan, pk, b, hq, r0, rows, c0, cols, n_tiles, partial, &sp)
                          : NULL;
        /* S = alpha * Q_tile K_run^T */
        tile_scores(pk, w, rows, cols, D, alpha, q_tile, k_head, k_packed, c0, ld, sparse);
        /* Masking, softmax and (in tile_accumulate) P's packing read each row panel's span of
         * keys only: outside it every score is masked, so its probabilities are 0 and add
         * nothing to m, l or P V (which reads the span only). */
        for (int64_t t = 0; t < n_tiles; t++) /* element rule only inside partial tiles */
            if (partial[t]) {
                const int64_t t0 = c0 + t * Bk, tn = t0 + Bk <= c1 ? Bk : c1 - t0;
                const fm_row_spans tile_spans = {pk->kernel.mr, sparse ? sparse->k_span : NULL,
                                                 t * Bk}; /* (spans count from the run's c0) */
                fm_tile_plan_mask_scores_in(plan, b, hq, r0, rows, t0, tn, w->s + t * Bk, ld,
                                            sparse ? &tile_spans : NULL);
            }
        if (sparse)
            softmax_in_spans(w, rows, ld, D, pk->kernel.mr, sparse->k_span);
        else
            fm_online_softmax_tile(w->s, ld, rows, cols, w->m, w->l, w->o, D);
        /* O += P V_run */
        tile_accumulate(pk, w, rows, cols, D, v_head, v_packed, c0, Sk, ld, sparse);
    }

    float *out_tile = out + ((b * p->q_heads + hq) * Sq + r0) * D;
    float *lse_tile = lse + (b * p->q_heads + hq) * Sq + r0;
    fm_online_softmax_finish(rows, D, w->m, w->l, w->o, out_tile, lse_tile);
}

/* Floats rounded up to a whole 64-byte line (B panels are read with aligned vector loads by
 * some micro-kernels; the workspace is 64-byte aligned). */
static size_t round_up_floats(size_t n) { return (n + 15) / 16 * 16; }

/* Every (b, hq, qb) task of the plan, whatever the mask's form: the one forward loop. */
static fm_status forward_plan(const fm_problem *p, fm_tile_plan *plan, const float *q,
                              const float *k, const float *v, float *out, float *lse,
                              fm_tile_stats *stats)
{
    /* The packed products where the build has them: K and V of every head packed below. */
    const int threads = omp_get_max_threads();
    const int64_t Bq = plan->block_q, Bk = plan->block_k, D = p->head_dim, Sk = p->seqlen_k;
    fwd_packed pk = {.k = NULL};
    const int packed = fm_packed_kernel_get(&pk.kernel, Bk);
    const int64_t kv_heads = p->batch * p->kv_heads;
    if (packed) {
        /* the mask's summary by NR keys, for the blocks of partial tiles it hides */
        const fm_status st = fm_tile_plan_init_sub_blocks(plan, pk.kernel.nr);
        if (st != FM_OK) return st;
        const size_t kf = fm_packed_b_floats(&pk.kernel, D, Sk);
        const size_t vf = fm_packed_b_floats(&pk.kernel, Sk, D);
        pk.head_floats = round_up_floats(kf > vf ? kf : vf);
    }

    /* Per-thread scratch, allocated once: S [Bq x run width], O [Bq x D], m and l [Bq], and
     * where packed, the query tile's and a run's probabilities' A panels. Each part starts on a
     * 64-byte boundary. */
    const int64_t Bs = Bq * FM_CPU_RUN_TILES * Bk; /* scores of one run */
    const size_t n_s = round_up_floats((size_t)Bs), n_o = round_up_floats((size_t)(Bq * D));
    const size_t n_ml = round_up_floats((size_t)Bq);
    const size_t n_qp = packed ? round_up_floats(fm_packed_a_floats(&pk.kernel, Bq, D)) : 0;
    const size_t n_pp =
        packed ? round_up_floats(fm_packed_a_floats(&pk.kernel, Bq, FM_CPU_RUN_TILES * Bk)) : 0;
    const size_t per_thread = n_s + n_o + 2 * n_ml + n_qp + n_pp;
    const size_t n_packed = (size_t)(packed ? 2 * kv_heads : 0) * pk.head_floats;
    size_t n_all;
    if (__builtin_mul_overflow((size_t)threads, per_thread, &n_all) ||
        __builtin_add_overflow(n_all, n_packed, &n_all))
        return fm_fail(FM_ERR_OVERFLOW, "cpu forward scratch: %d threads x %zu floats + %zu "
                       "overflow size_t", threads, per_thread, n_packed);
    float *scratch = NULL;
    size_t scratch_floats = 0;
    fm_status st = fm_workspace_take(n_all, "cpu forward scratch", &scratch, &scratch_floats);
    if (st != FM_OK) return st;
    if (packed) {
        pk.k = scratch + (size_t)threads * per_thread;
        pk.v = pk.k + (size_t)kv_heads * pk.head_floats;
    }

    /* the order of the tasks (fm_task_order): work, order and the order's scratch; then the
     * packing state of every (kv head, key tile), all TILE_UNPACKED */
    const int64_t n_tasks = p->batch * p->q_heads * plan->n_q_blocks;
    const int64_t n_order = 3 * n_tasks + plan->n_k_blocks + 2 + threads;
    const int64_t n_state = packed ? kv_heads * plan->n_k_blocks : 0;
    int64_t *work = fm_alloc((size_t)(n_order + n_state), sizeof(int64_t),
                             "cpu forward task order");
    if (!work) {
        fm_workspace_give(scratch, scratch_floats);
        return FM_ERR_NOMEM;
    }
    int64_t *order = work + n_tasks, *order_scratch = order + n_tasks;
    if (packed) {
        pk.state = work + n_order;
        memset(pk.state, 0, (size_t)n_state * sizeof *pk.state);
    }
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
        fwd_scratch w = {base,
                         base + n_s,
                         base + n_s + n_o,
                         base + n_s + n_o + n_ml,
                         base + n_s + n_o + 2 * n_ml,
                         base + n_s + n_o + 2 * n_ml + n_qp};
        fm_tile_stats local = {0, 0, 0, 0};
#pragma omp for schedule(dynamic, 1)
        for (int64_t i = 0; i < n_tasks; i++) {
            const int64_t task = order[i];
            const int64_t qb = task % plan->n_q_blocks;
            const int64_t bh = task / plan->n_q_blocks;
            forward_query_tile(p, plan, &pk, bh / p->q_heads, bh % p->q_heads, qb, q, k, v,
                               out, lse, &w, &local);
        }
        total += local.total;
        masked += local.masked;
        partial += local.partial;
        unmasked += local.unmasked;
    }
    fm_blas_threads_end_single(blas_threads);

    if (stats) *stats = (fm_tile_stats){total, masked, partial, unmasked};
    fm_workspace_give(scratch, scratch_floats);
    free(work);
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
