/* masks/mask_internal.h — helpers shared by the mask module's conversions (dense.c,
 * startend.c): a column's masked rows outside the causal part as at most two runs, and the
 * canonical bounds that docs/masks.md documents. Private to masks/; not installed.
 */
#ifndef FM_MASK_INTERNAL_H
#define FM_MASK_INTERNAL_H

#include "flashmask/masks.h"

/* First row at or after which column j is not masked by the causal rule: rows i < j - offset
 * are causally masked (rules.h: j > i + offset), so this is clip(j - offset, 0, Sq); 0 when
 * causal is none. */
int64_t fm_causal_row_end(fm_causal causal, int64_t offset, int64_t seqlen_q, int64_t j);

/* The start of a per-tile view of m (fm_mask_tile_stats, fm_mask_to_flex_blocks; `who` names
 * it in messages): `out` (out_size bytes) non-NULL and zeroed, the query block size `block_q`
 * (called `q_name`) >= 1, and *s = m's block summary at key blocks of block_k (which validates
 * m and block_k; fm_block_summary_free). *n_q = the number of query blocks. */
fm_status fm_tile_view_begin(const char *who, const char *q_name, void *out, size_t out_size,
                             const fm_mask *m, int64_t block_q, int64_t block_k,
                             fm_block_summary *s, int64_t *n_q);

/* A run of masked rows [start, end). */
typedef struct fm_run {
    int64_t start, end;
} fm_run;

/* The masked rows of a (valid) column inside [causal_end, Sq), as disjoint, non-adjacent runs
 * sorted by start; returns their number (0, 1 or 2). */
int fm_column_runs(const int32_t *col, int64_t causal_end, int64_t seqlen_q, fm_run runs[2]);

/* Canonical bounds for `n` (<= 2) sorted, disjoint, non-adjacent runs (docs/masks.md):
 * no run: LT = [Sq, Sq), UT = [0, 0); two runs: UT = the upper, LT = the lower; one run: LT,
 * except without causal a run that starts at row 0 and stops before Sq goes to UT = [0, end). */
void fm_canonical_bounds(const fm_run *runs, int n, fm_causal causal, int64_t seqlen_q,
                         int32_t out[FM_BOUNDS]);

#endif
