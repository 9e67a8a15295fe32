/* masks/summary.c — per-key-block min/max summaries of the four bound vectors and the tile
 * statistics built on them (docs/spec.md §3): the data a block-sparse kernel reads to decide, per tile,
 * skip / run without element tests / run with element tests.
 *
 * Layer: masks <- core. The tile rule itself is fm_classify_tile (flashmask/rules.h); this file
 * only gathers its inputs and calls it.
 */
#include <stdlib.h>
#include <string.h>

#include "flashmask/masks.h"
#include "fm_internal.h"
#include "mask_internal.h"

/* Folds one column's bounds into a key block's summary `mm` (started at the identities: Sq for
 * each min, 0 for each max). Empty intervals (start >= end) are treated per reader, so that
 * they neither make a tile look masked nor cost a tile its "unmasked" call:
 *  - the values the fully-masked test reads (max LTS, min LTE, max UTS, min UTE: the
 *    intersection of the columns' intervals) see an empty LT as [Sq, Sq) and an empty UT as
 *    [0, 0), which empties the intersection;
 *  - the values only the unmasked test reads (min LTS, max LTE, min UTS, max UTE: the hull of
 *    the columns' intervals) skip empty intervals altogether. Counting an empty LT as [Sq, Sq)
 *    there would push max LTE to Sq, and an empty UT as [0, 0) would pull min UTS to 0, so no
 *    tile below an LT interval (or above a UT interval) of the block could be called unmasked.
 * cuda/summary.cu makes the same fold on the GPU. */
static void fm_summary_add_column(int32_t *mm, const int32_t *col, int32_t sq)
{
    const int lt_empty = col[FM_LTS] >= col[FM_LTE], ut_empty = col[FM_UTS] >= col[FM_UTE];
    const int32_t lts = lt_empty ? sq : col[FM_LTS], lte = lt_empty ? sq : col[FM_LTE];
    const int32_t uts = ut_empty ? 0 : col[FM_UTS], ute = ut_empty ? 0 : col[FM_UTE];
    /* intersection (fully-masked test) */
    if (lts > mm[FM_MAX_LTS]) mm[FM_MAX_LTS] = lts;
    if (lte < mm[FM_MIN_LTE]) mm[FM_MIN_LTE] = lte;
    if (uts > mm[FM_MAX_UTS]) mm[FM_MAX_UTS] = uts;
    if (ute < mm[FM_MIN_UTE]) mm[FM_MIN_UTE] = ute;
    /* hull of the non-empty intervals (unmasked test) */
    if (!lt_empty) {
        if (col[FM_LTS] < mm[FM_MIN_LTS]) mm[FM_MIN_LTS] = col[FM_LTS];
        if (col[FM_LTE] > mm[FM_MAX_LTE]) mm[FM_MAX_LTE] = col[FM_LTE];
    }
    if (!ut_empty) {
        if (col[FM_UTS] < mm[FM_MIN_UTS]) mm[FM_MIN_UTS] = col[FM_UTS];
        if (col[FM_UTE] > mm[FM_MAX_UTE]) mm[FM_MAX_UTE] = col[FM_UTE];
    }
}

fm_status fm_block_summary_build(const fm_mask *m, int64_t block_k, fm_block_summary *out)
{
    if (!out) return fm_fail(FM_ERR_INVALID, "block summary: NULL output");
    memset(out, 0, sizeof *out);
    fm_status st = fm_mask_validate(m);
    if (st != FM_OK) return st;
    if (block_k < 1)
        return fm_fail(FM_ERR_INVALID, "block summary: block_k = %lld, must be >= 1",
                       (long long)block_k);
    const int64_t sq = m->seqlen_q, sk = m->seqlen_k;
    /* ceil(Sk / block_k), written so that a huge block_k cannot overflow int64;
     * the last block may be narrower */
    const int64_t n_blocks = (sk - 1) / block_k + 1;
    int64_t shape[] = {m->batch, m->heads, n_blocks, FM_SUMMARY_WIDTH};
    size_t n;
    if (fm_mul_sizes(&n, 4, shape))
        return fm_fail(FM_ERR_OVERFLOW, "block summary: B*Hm*blocks*8 overflows size_t");
    int32_t *minmax = fm_alloc(n, sizeof(int32_t), "block summary");
    if (!minmax) return FM_ERR_NOMEM;

    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            for (int64_t kb = 0; kb < n_blocks; kb++) {
                int32_t *mm = minmax + ((b * m->heads + h) * n_blocks + kb) * FM_SUMMARY_WIDTH;
                /* Start from the identities of min (Sq is the largest bound) and max (0). */
                for (int k = 0; k < FM_BOUNDS; k++) {
                    mm[2 * k] = (int32_t)sq;
                    mm[2 * k + 1] = 0;
                }
                int64_t c1 = block_k < sk - kb * block_k ? (kb + 1) * block_k : sk;
                for (int64_t j = kb * block_k; j < c1; j++)
                    fm_summary_add_column(mm, fm_mask_column(m, b, h, j), (int32_t)sq);
            }
    out->batch = m->batch;
    out->heads = m->heads;
    out->seqlen_q = sq;
    out->seqlen_k = sk;
    out->block_k = block_k;
    out->n_blocks = n_blocks;
    out->causal = m->causal;
    out->minmax = minmax;
    return FM_OK;
}

void fm_block_summary_free(fm_block_summary *s)
{
    if (!s) return;
    free(s->minmax);
    s->minmax = NULL;
}

fm_tile_class fm_block_summary_classify(const fm_block_summary *s, int64_t b, int64_t h,
                                        int64_t block_q, int64_t qb, int64_t kb)
{
    /* The tile's row and column ranges, clipped at the sequence ends (compared as
     * "block < what is left" so that a block size near INT64_MAX cannot overflow). */
    int64_t r0 = qb * block_q, r1 = block_q < s->seqlen_q - r0 ? r0 + block_q : s->seqlen_q;
    int64_t c0 = kb * s->block_k;
    int64_t c1 = s->block_k < s->seqlen_k - c0 ? c0 + s->block_k : s->seqlen_k;
    int64_t offset = fm_causal_offset(s->causal, s->seqlen_q, s->seqlen_k);
    return fm_classify_tile(fm_block_summary_at(s, b, h, kb), s->causal, offset, r0, r1, c0, c1);
}

fm_status fm_tile_view_begin(const char *who, const char *q_name, void *out, size_t out_size,
                             const fm_mask *m, int64_t block_q, int64_t block_k,
                             fm_block_summary *s, int64_t *n_q)
{
    if (!out) return fm_fail(FM_ERR_INVALID, "%s: NULL output", who);
    memset(out, 0, out_size);
    if (block_q < 1)
        return fm_fail(FM_ERR_INVALID, "%s: %s = %lld, must be >= 1", who, q_name,
                       (long long)block_q);
    fm_status st = fm_block_summary_build(m, block_k, s);
    if (st == FM_OK) *n_q = (m->seqlen_q - 1) / block_q + 1; /* no overflow for huge blocks */
    return st;
}

fm_status fm_mask_tile_stats(const fm_mask *m, int64_t block_q, int64_t block_k,
                             fm_tile_stats *out)
{
    fm_block_summary s;
    int64_t n_q_blocks;
    fm_status st = fm_tile_view_begin("tile stats", "block_q", out, sizeof *out, m, block_q,
                                      block_k, &s, &n_q_blocks);
    if (st != FM_OK) return st;
    const int64_t offset = fm_causal_offset(s.causal, s.seqlen_q, s.seqlen_k);
    /* Down each key block's column of tiles, live tiles only (fm_next_live_qblock jumps over
     * masked runs, as the dK/dV kernels walk): the rest are masked. */
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            for (int64_t kb = 0; kb < s.n_blocks; kb++) {
                const int32_t *mm = fm_block_summary_at(&s, b, h, kb);
                const int64_t c0 = kb * s.block_k;
                const int64_t c1 = s.block_k < s.seqlen_k - c0 ? c0 + s.block_k : s.seqlen_k;
                fm_tile_class cls = FM_TILE_MASKED;
                int64_t live = 0;
                for (int64_t qb = fm_next_live_qblock(mm, s.causal, offset, 0, block_q,
                                                      s.seqlen_q, c0, c1, &cls);
                     qb < n_q_blocks; qb = fm_next_live_qblock(mm, s.causal, offset, qb + 1,
                                                               block_q, s.seqlen_q, c0, c1, &cls)) {
                    live++;
                    if (cls == FM_TILE_PARTIAL) out->partial++;
                    else out->unmasked++;
                }
                out->total += n_q_blocks;
                out->masked += n_q_blocks - live;
            }
    fm_block_summary_free(&s);
    return FM_OK;
}

double fm_tile_density(const fm_tile_stats *s)
{
    if (!s || s->total <= 0) return 0.0;
    return (double)(s->partial + s->unmasked) / (double)s->total;
}
