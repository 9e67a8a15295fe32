/* sparse/gather.h — the pipeline shared by QK-sparse and Hash-sparse (arXiv 2306.01160):
 * gather each (batch, head)'s query and key rows into a new order, attend there under a
 * column-wise FlashMask mask with any implementation, scatter the results back.
 * Layer: sparse (private header) <- masks <- core; the attention is called back through an
 * fm_attend (sparse_run.h) that the API layer provides.
 *
 * Per (b, query head) a list maps compact query row i' to its original row (-1: padding, a
 * row that attends nothing); per (b, kv head) a list does the same for keys. Original rows
 * that no list names were dropped: they output 0, lse -inf, and get and pass no gradient.
 */
#ifndef FM_SPARSE_GATHER_H
#define FM_SPARSE_GATHER_H

#include "flashmask/sparse.h"
#include "sparse_run.h"

typedef struct fm_gather_plan {
    fm_problem compact;  /* the problem in the compact order (seqlen_q, seqlen_k replaced) */
    int32_t *q_index;    /* [B, Hq, compact Sq]: original query row, or -1 */
    int32_t *k_index;    /* [B, Hk, compact Sk]: original key row, or -1 */
    fm_any_mask mask;    /* [B, Hm, compact Sq, compact Sk], built by the method: the column
                            form (QK-, Hash-sparse, Hm = Hq) or either form (RCM) */
} fm_gather_plan;

/* The problem's own checks (sizes, Hk | Hq, scale), with mask heads = Hq. */
fm_status fm_sparse_check_problem(const fm_problem *p);

/* The dense mask [B, Hq, Sq, Sk] of a row selection (QK-sparse, Hash-sparse), for a checked
 * problem: (i, j) of (b, h) is allowed when pair(ctx, qrow, krow) is non-zero and the causal rule
 * of `alignment` does not mask it; qrow indexes query row i of (b, h) in a [B, Hq, Sq] array,
 * krow key row j of (b, h's kv head) in a [B, Hk, Sk] one. */
void fm_sparse_dense_mask(const fm_problem *p, fm_causal alignment,
                          int (*pair)(const void *ctx, int64_t qrow, int64_t krow), const void *ctx,
                          uint8_t *allowed);

/* Allocates the index lists (filled with -1) for compact lengths sq, sk >= 1. */
fm_status fm_gather_plan_init(fm_gather_plan *g, const fm_problem *p, int64_t sq, int64_t sk);
void fm_gather_plan_free(fm_gather_plan *g);

static inline int32_t *fm_gather_q_list(const fm_gather_plan *g, int64_t b, int64_t hq)
{
    return g->q_index + (b * g->compact.q_heads + hq) * g->compact.seqlen_q;
}
static inline int32_t *fm_gather_k_list(const fm_gather_plan *g, int64_t b, int64_t hk)
{
    return g->k_index + (b * g->compact.kv_heads + hk) * g->compact.seqlen_k;
}

/* Forward (backward = 0) or backward (1) of the attention `a` in the compact order, results
 * scattered to t (original order). */
fm_status fm_gather_run(const fm_attend *a, int backward, const fm_problem *p,
                        const fm_gather_plan *g, fm_tensors *t);

/* Row splitting (sparse/rowsplit.c): the greedy block ends (ends[n_blocks - 1] = Sq; `ends`
 * has Sq entries) and the plan of one block — its rows in order, every key, and the column form
 * of the mask restricted to its rows (mask heads = `heads`). */
fm_status fm_rowsplit_ends(const fm_problem *p, const uint8_t *allowed, int64_t heads,
                           int32_t *ends, int64_t *n_blocks);
fm_status fm_rowsplit_block_plan(fm_gather_plan *g, const fm_problem *p, const uint8_t *allowed,
                                 int64_t heads, int64_t r0, int64_t r1);

#endif
