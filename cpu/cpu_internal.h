/* cpu/cpu_internal.h — what the CPU layer's files share: the tile plan (the one tile contract:
 * column summaries, BBM codes or a dense mask -> per-tile decisions), the tile matmuls and the
 * per-thread scratch layout.
 * Layer: cpu (private header) <- masks <- core. Nothing here restates a mask rule: tile classes
 * come from fm_block_summary_classify and element tests from fm_column_masked_runs (rules.h:
 * fm_element_masked read down a column).
 */
#ifndef FM_CPU_INTERNAL_H
#define FM_CPU_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "flashmask/bbm.h"
#include "flashmask/cpu.h"

/* ---------------------------------------------------------------- the tile plan */

/* Consecutive computed (partial or unmasked) key tiles of one query tile are multiplied in one
 * sgemm pair of up to this many tiles: 128 x 512 products run nearer the sgemm peak than
 * 128 x 128 ones (docs/performance.md), and skipping stays per 128-wide tile. */
#ifndef FM_CPU_RUN_TILES
#define FM_CPU_RUN_TILES 4 /* build-time override (-DFM_CPU_RUN_TILES=...) for studies */
#endif

/* The tile contract: everything a worker needs to decide what to do with tile (b, query head,
 * qb, kb) — its class (skip, run unmasked, or run with element tests) and how to mask a partial
 * one — whatever form the mask is held in. Exactly one form is set:
 *   mask:  the column form, classified by its per-key-block summaries (fm_block_summary);
 *   bbm:   Binary Block Masking codes (empty / partial / full) and packed bits per tile, with
 *          the query tile's contiguous run of full tiles answered without reading codes;
 *   dense: a dense boolean mask [B, Hm, Sq, Sk], every tile partial (the baseline that skips
 *          nothing, what a mask-unaware kernel costs).
 * forward.c and backward.c run one loop for all three. */
typedef struct fm_tile_plan {
    const fm_mask *mask;
    fm_block_summary summary; /* column form: per (b, mask head, key block) min/max of bounds */
    fm_block_summary sub;     /* column form, when asked for: the same by sub-blocks of keys */
    const fm_bbm *bbm;
    const uint8_t *dense;
    int64_t mask_heads, seqlen_q, seqlen_k;
    int64_t block_q, block_k;
    int64_t n_q_blocks, n_k_blocks;
    int64_t q_per_mask_head;  /* Hq / Hm: query head h uses mask head h / q_per_mask_head */
    int64_t offset;           /* column form: fm_causal_offset of the mask */
} fm_tile_plan;

/* The three forms; the caller has validated the problem against the mask. */
fm_status fm_tile_plan_init(fm_tile_plan *plan, const fm_problem *p, const fm_mask *mask,
                            int64_t block_q, int64_t block_k);
void fm_tile_plan_init_bbm(fm_tile_plan *plan, const fm_problem *p, const fm_bbm *bbm);
void fm_tile_plan_init_dense(fm_tile_plan *plan, const fm_problem *p, const uint8_t *allowed,
                             int64_t mask_heads, int64_t block_q, int64_t block_k);
void fm_tile_plan_free(fm_tile_plan *plan);

/* Class of the tile (query rows of block qb) x (keys of block kb) for query head hq. */
fm_tile_class fm_tile_plan_classify(const fm_tile_plan *plan, int64_t b, int64_t hq, int64_t qb,
                                    int64_t kb);

/* The computed tiles of one line of tiles, gathered in runs: the line is query tile `qb` across
 * key tiles (forward, along = FM_RUN_ALONG_KEYS) or key tile `kb` across query tiles (backward,
 * FM_RUN_ALONG_QUERIES). From position *pos, counts and skips fully masked tiles (no load, no
 * arithmetic), then gathers up to FM_CPU_RUN_TILES consecutive computed tiles into one run:
 * *first is its first tile, partial[t] says whether tile first + t needs element tests.
 * Returns the run's length, 0 once the line is done. Every tile is counted exactly once. */
typedef enum { FM_RUN_ALONG_KEYS = 0, FM_RUN_ALONG_QUERIES = 1 } fm_run_axis;

int64_t fm_tile_plan_next_run(const fm_tile_plan *plan, int64_t b, int64_t hq, fm_run_axis along,
                              int64_t fixed, int64_t *pos, int64_t *first,
                              unsigned char partial[FM_CPU_RUN_TILES], fm_tile_stats *stats);

/* The number of computed tiles on one line of tiles (the work of the forward's task (b, hq, qb)
 * with along = FM_RUN_ALONG_KEYS, fixed = qb). */
int64_t fm_tile_plan_line_tiles(const fm_tile_plan *plan, int64_t b, int64_t hq, fm_run_axis along,
                                int64_t fixed);

/* ---------------------------------------------------------------- task order (task_order.c) */

/* The order in which the forward's OpenMP loop (schedule dynamic) takes its tasks. Tasks come in
 * lines of line_len (the query tiles of one (b, hq); n_tasks a multiple of line_len); work[t] in
 * [0, max_work] is task t's count of computed key tiles. order receives a permutation of the
 * tasks: the lines reversed (each line from its last task to its first: neighbouring query
 * tiles share key and value tiles in cache), unless a model of the schedule on `threads`
 * workers says that ends more than 2% later than longest first (then longest first, ties in
 * index order). scratch: n_tasks + max_work + 2 + threads slots. Returns the order chosen.
 * forward.c computes it before its parallel region (one classifier call per tile), not in it:
 * a barrier there cost more than it saved on the loaded build machine. */
typedef enum { FM_ORDER_LINES_REVERSED = 0, FM_ORDER_LONGEST_FIRST = 1 } fm_task_order_kind;

fm_task_order_kind fm_task_order(const int64_t *work, int64_t n_tasks, int64_t line_len,
                                 int64_t max_work, int64_t threads, int64_t *scratch,
                                 int64_t *order);

/* The model: each of `threads` workers takes the next task of `order` when it is free; a task
 * costs 2 work + 1 (its tiles plus half a tile of fixed cost, in half tiles). Returns when the
 * last worker ends. heap: threads slots of scratch. */
int64_t fm_task_order_makespan(const int64_t *work, const int64_t *order, int64_t n_tasks,
                               int64_t threads, int64_t *heap);

/* In a partial tile, overwrite the scores of masked elements with -inf. `scores` is rows
 * [r0, r0 + m) x keys [c0, c0 + n) of one tile (r0, c0 on tile boundaries, m <= block_q,
 * n <= block_k), row stride ld. Column form: fm_column_masked_runs (rules.h); BBM: the tile's
 * packed bits; dense: the mask's bytes. */
void fm_tile_plan_mask_scores(const fm_tile_plan *plan, int64_t b, int64_t hq, int64_t r0,
                              int64_t m, int64_t c0, int64_t n, float *scores, int64_t ld);

/* The columns that groups of rows of a tile need: rows [g row_step, (g + 1) row_step) of the
 * tile need its keys [span[2 g] - origin, span[2 g + 1] - origin) only, clipped to the tile
 * (empty when the first is not below the second). */
typedef struct fm_row_spans {
    int64_t row_step;
    const int64_t *span;
    int64_t origin;
} fm_row_spans;

/* fm_tile_plan_mask_scores where the caller reads only each group's span of the scores
 * (spans NULL: all of them): for the column form the element rule is applied inside the spans
 * only, the scores outside left as they are; the other forms mask the whole tile. */
void fm_tile_plan_mask_scores_in(const fm_tile_plan *plan, int64_t b, int64_t hq, int64_t r0,
                                 int64_t m, int64_t c0, int64_t n, float *scores, int64_t ld,
                                 const fm_row_spans *spans);

/* Sub-blocks of tiles (the forward's packed products leave out those the mask hides): for the
 * column form, a second summary of the mask by blocks of col_step keys (col_step dividing
 * block_k), built once; a no-op for the BBM and dense forms, which have no finer summary. */
fm_status fm_tile_plan_init_sub_blocks(fm_tile_plan *plan, int64_t col_step);

/* Which sub-blocks of a partial tile are fully masked: the tile's rows [r0, r0 + m) and keys
 * [c0, c0 + n) (c0 on a tile boundary) in groups of row_step rows by the sub-block width,
 * masked[gi * ceil(n / width) + gj] = 1 for group (gi, gj) when fm_classify_tile (rules.h, the
 * tiles' own rule) calls it masked from the fine summary, so that masking then sets it to -inf
 * throughout. Without sub-blocks (none built, BBM, dense) it writes nothing and returns 0;
 * otherwise it returns the count of masked groups. */
int64_t fm_tile_plan_masked_blocks(const fm_tile_plan *plan, int64_t b, int64_t hq, int64_t r0,
                                   int64_t m, int64_t c0, int64_t n, int64_t row_step,
                                   unsigned char *masked);

/* Adds one tile's class to the counters. */
static inline void fm_tile_stats_count(fm_tile_stats *s, fm_tile_class c)
{
    s->total++;
    if (c == FM_TILE_MASKED) s->masked++;
    else if (c == FM_TILE_PARTIAL) s->partial++;
    else s->unmasked++;
}

/* ---------------------------------------------------------------- tile matmuls */

/* Row-major single-precision products on tiles (see matmul_tile.c for why OpenBLAS):
 *   nt: C[m x n] = alpha * A[m x k] * B[n x k]^T + beta * C
 *   nn: C[m x n] = alpha * A[m x k] * B[k x n]   + beta * C
 *   tn: C[m x n] = alpha * A[k x m]^T * B[k x n] + beta * C                         */
void fm_tile_gemm_nt(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void fm_tile_gemm_nn(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc);
void fm_tile_gemm_tn(int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                     const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* ---------------------------------------------------------------- working memory (workspace.c) */

/* A 64-byte aligned block of at least `floats` floats (*got: its size, to give back), the one
 * kept from an earlier call where it is large enough, else a new one. Give it back when done:
 * one block of up to 64 MiB is kept for the next call, anything else freed. */
fm_status fm_workspace_take(size_t floats, const char *what, float **out, size_t *got);
void fm_workspace_give(float *block, size_t floats);

/* OpenBLAS must run single-threaded inside our OpenMP regions (each OpenMP thread calls sgemm
 * on its own tile; a threaded sgemm there would oversubscribe the cores). Begin sets it to one
 * thread and returns the count it had; end restores that count once the last concurrent call of
 * the layer has ended (calls from several caller threads at once are counted). */
int fm_blas_threads_begin_single(void);
void fm_blas_threads_end_single(int previous);

#endif
