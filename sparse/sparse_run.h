/* sparse/sparse_run.h — the internal entry points of sparse/'s pipelines, for the API layer
 * (api/sparse.c) to bind: each transforms the problem (gathers, reorders, splits rows), calls
 * back the attention it is given, and transforms the results back. sparse/ calls nothing above
 * itself: the attention arrives as an fm_attend, which api/ fills with fm_forward_any /
 * fm_backward_any. Arguments are those of the public calls in flashmask/api.h; these functions
 * check what only they know (keep flags, buckets, the dense mask) and leave the tensors' checks
 * to the attention they call.
 * Layer: sparse (private header, exported to api/ only: tests/tree/check_layering.py).
 */
#ifndef FM_SPARSE_RUN_H
#define FM_SPARSE_RUN_H

#include "flashmask/bbm.h"

/* The attention a pipeline runs on its transformed problem: run(impl, backward, ...). */
typedef struct fm_attend {
    fm_status (*run)(fm_impl impl, int backward, const fm_problem *p, const fm_any_mask *mask,
                     fm_tensors *t);
    fm_impl impl;
} fm_attend;

fm_status fm_qk_sparse_run(const fm_attend *a, int backward, const fm_problem *p,
                           fm_causal alignment, const uint8_t *q_keep, const uint8_t *k_keep,
                           fm_tensors *t);
fm_status fm_hash_sparse_run(const fm_attend *a, int backward, const fm_problem *p,
                             fm_causal alignment, const int32_t *q_buckets,
                             const int32_t *k_buckets, int64_t n_buckets, fm_tensors *t);
fm_status fm_rcm_run(const fm_attend *a, int backward, const fm_problem *p,
                     const uint8_t *allowed, int64_t mask_heads, int64_t block_q,
                     int64_t block_k, fm_tensors *t);
fm_status fm_rowsplit_run(const fm_attend *a, int backward, const fm_problem *p,
                          const uint8_t *allowed, int64_t mask_heads, fm_tensors *t);

#endif
