/* reference/tiled.h — what the tiled backend's forward (tiled_forward.c) and backward
 * (tiled_backward.c) share: the tiling of a problem (tile sizes, the masks/ block summaries,
 * the task numbering and this share's task ranges), the scores of one tile, and the OpenBLAS
 * thread guard. docs/reference.md ("The tiled backend") describes the algorithm.
 * Layer: reference <- masks <- core. Private to reference/.
 *
 * Tasks. A query task is (b, query head h, query block qb): rows [qb Bq, min((qb+1) Bq, Sq))
 * of head h; it owns those rows of out, lse and dq. A key task is (b, kv head hk, key block
 * kb); it owns rows [kb Bk, ...) of dk and dv. Tasks are numbered in the tensors' memory
 * order, so a range of task numbers is a contiguous range of rows (fm_ref_share).
 */
#ifndef FM_REF_TILED_H
#define FM_REF_TILED_H

#include <stdint.h>

#include "flashmask/reference.h"
#include "ref_internal.h"

typedef struct fm_ref_tiling {
    const fm_problem *p;
    const fm_mask *mask;
    int64_t bq, bk;          /* tile sizes */
    int64_t nqb, nkb;        /* query blocks per head, key blocks per head */
    int64_t offset;          /* fm_causal_offset of the mask */
    fm_block_summary sum;    /* per (b, mask head, key block of bk columns) */
    int64_t q_task_lo, q_task_hi;   /* this share's query tasks */
    int64_t kv_task_lo, kv_task_hi; /* this share's key tasks */
    const fm_ref_options *o;
} fm_ref_tiling;

/* Builds the summaries and this share's task ranges (o->part of o->parts). */
fm_status fm_ref_tiling_init(fm_ref_tiling *t, const fm_problem *p, const fm_mask *mask,
                             const fm_ref_options *o);
void fm_ref_tiling_free(fm_ref_tiling *t);

/* First flat row ([B*H*S] rows) of query task / key task number `task`; n tasks -> all rows. */
int64_t fm_ref_q_task_row(const fm_ref_tiling *t, int64_t task);
int64_t fm_ref_kv_task_row(const fm_ref_tiling *t, int64_t task);

/* Class of tile (query block qb, key block kb) for batch b and mask head mh. */
static inline fm_tile_class fm_ref_tile_class(const fm_ref_tiling *t, int64_t b, int64_t mh,
                                              int64_t qb, int64_t kb)
{
    const int64_t r0 = qb * t->bq, c0 = kb * t->bk;
    const int64_t r1 = r0 + t->bq < t->p->seqlen_q ? r0 + t->bq : t->p->seqlen_q;
    const int64_t c1 = c0 + t->bk < t->p->seqlen_k ? c0 + t->bk : t->p->seqlen_k;
    return fm_classify_tile(fm_block_summary_at(&t->sum, b, mh, kb), t->mask->causal, t->offset,
                            r0, r1, c0, c1);
}

/* The scores of one live tile, s[i * ldS + j] = scale * q_i . k_j for rows [r0, r0 + rows)
 * and keys [c0, c0 + cols) of one (b, h), through one dgemm (qh, kh point at row 0 of the
 * head). In a partial tile every element is tested (fm_element_masked) and a masked one set to
 * -inf; `allowed[i]` is set to 1 for each row with an allowed element in the tile (every row
 * of an unmasked tile). */
void fm_ref_tile_scores(const fm_ref_tiling *t, fm_tile_class cls, int64_t b, int64_t mh,
                        int64_t r0, int64_t rows, int64_t c0, int64_t cols, const double *qh,
                        const double *kh, double *s, int64_t ldS, unsigned char *allowed);

/* Whether a pass runs on OpenMP threads: only for B*Hq*Sq*Sk >= FM_REF_PARALLEL_MIN_ELEMS
 * (ref_internal.h says why). The result is the same bits either way. */
static inline int fm_ref_tiled_parallel(const fm_problem *p)
{
    return (double)p->batch * (double)p->q_heads * (double)p->seqlen_q * (double)p->seqlen_k >=
           (double)FM_REF_PARALLEL_MIN_ELEMS;
}

/* OpenBLAS runs single-threaded while tiles run on OpenMP threads (one dgemm per thread);
 * begin saves the process-wide count, end restores it (nested and concurrent calls counted). */
void fm_ref_blas_single_begin(void);
void fm_ref_blas_single_end(void);

/* Progress of a pass: counts finished tasks, reports about every 1% when o->progress is set. */
typedef struct fm_ref_progress {
    const fm_ref_options *o;
    const char *pass;
    int64_t done, total, next_report;
} fm_ref_progress;

void fm_ref_progress_start(fm_ref_progress *g, const fm_ref_options *o, const char *pass,
                           int64_t total);
void fm_ref_progress_step(fm_ref_progress *g); /* call once per finished task, any thread */

/* One parallel pass of the tiled backend: tasks [lo, hi) handed out one at a time (schedule
 * dynamic) to the OpenMP threads when fm_ref_tiled_parallel says so. Each thread allocates its
 * scratch with alloc (NULL: out of memory, and that thread runs no task), runs
 * task(ctx, x, scratch) and gives the scratch back with release. A task returns a flat row index
 * to report (the backward's rows whose LSE does not fit) or -1. Progress is counted under
 * `name`. */
typedef struct fm_ref_pass {
    const char *name;
    int64_t lo, hi;
    const void *ctx;
    void *(*alloc)(const fm_ref_tiling *t);
    void (*release)(void *scratch);
    int64_t (*task)(const void *ctx, int64_t x, void *scratch);
} fm_ref_pass;

/* Runs the pass (tiled_common.c); *first_row (when not NULL) receives the smallest row a task
 * returned, INT64_MAX for none. Returns 1 when a thread could not allocate its scratch, else 0. */
int fm_ref_run_pass(const fm_ref_tiling *t, const fm_ref_pass *pass, int64_t *first_row);

#endif
