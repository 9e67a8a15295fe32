/* flashmask/sparse.h — the transforms beyond column-wise masks: Reverse Cuthill-McKee tile
 * reports, row splitting of a dense mask, and the masks of Sparse Flash Attention's QK-sparse and
 * Hash-sparse (Pagliardini et al., arXiv 2306.01160) with Hash-sparse's bucketing. Running
 * attention through them (gather -> FlashMask -> scatter) is flashmask/api.h's; dense and BBM
 * masks in the reference and the CPU layer are reference.h's and cpu.h's.
 * Layer: sparse <- masks <- core.
 * Tensors and conventions are those of flashmask/core.h (docs/spec.md §1): a fully masked row has
 * out = 0, lse = -inf and passes no gradient.
 */
#ifndef FLASHMASK_SPARSE_H
#define FLASHMASK_SPARSE_H

#include "flashmask/bbm.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- RCM reordering */

/* Tile counts (tiles of block_q x block_k over every (b, h)) of a dense mask before and after
 * Reverse Cuthill-McKee reordering (masks/rcm.c). */
typedef struct fm_rcm_report {
    fm_tile_stats before, after;
} fm_rcm_report;

fm_status fm_rcm_tile_report(const uint8_t *allowed, int64_t batch, int64_t heads,
                             int64_t seqlen_q, int64_t seqlen_k, int64_t block_q,
                             int64_t block_k, fm_rcm_report *report);

/* ---------------------------------------------------------------- row splitting */

/* Any dense mask on any implementation (cuda included), exactly: the query rows are cut
 * greedily into blocks over which every key column has at most two masked runs, each block runs
 * as its own problem under the column form of its rows (sparse/rowsplit.c), dK and dV are
 * summed over blocks. n_blocks = 1 iff the whole mask is column-representable (causal none). */
fm_status fm_rowsplit_blocks(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                             int64_t *n_blocks);
/* ---------------------------------------------------------------- Sparse Flash Attention */

/* QK-sparse's dense mask [B, Hq, Sq, Sk] (1 = allowed), for checking and for the CLI: q_keep
 * [B, Hq, Sq] and k_keep [B, Hk, Sk] are 0/1 flags; a kept query attends a kept key of its kv
 * head iff (alignment != none) original i + offset >= original j. The attention itself:
 * fm_qk_sparse_forward (flashmask/api.h). */
fm_status fm_qk_sparse_dense_mask(const fm_problem *p, fm_causal alignment,
                                  const uint8_t *q_keep, const uint8_t *k_keep,
                                  uint8_t *allowed);

/* Hash-sparse bucket ids: bucket = argmax([x R, -x R]) (first maximum on ties) with R [D,
 * n_buckets/2] standard normal from fm_rng seeded with `seed`, the same R for queries
 * [B, Hq, Sq] and keys [B, Hk, Sk]. n_buckets even, >= 2. */
fm_status fm_hash_buckets(const fm_problem *p, const double *q, const double *k,
                          int64_t n_buckets, uint64_t seed, int32_t *q_buckets,
                          int32_t *k_buckets);

/* Hash-sparse's dense mask (same bucket and causal), as fm_qk_sparse_dense_mask. */
fm_status fm_hash_sparse_dense_mask(const fm_problem *p, fm_causal alignment,
                                    const int32_t *q_buckets, const int32_t *k_buckets,
                                    int64_t n_buckets, uint8_t *allowed);

#ifdef __cplusplus
}
#endif
#endif
