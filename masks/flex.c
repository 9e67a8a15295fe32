/* masks/flex.c — FlexAttention's BlockMask arrays from the column-wise mask: per (b, head,
 * query block) the key blocks that need the element mask (kv_num_blocks / kv_indices) and the
 * key blocks that need none (full_kv_num_blocks / full_kv_indices). Fully masked blocks appear
 * in neither list, which is how FlexAttention skips them.
 *
 * Layer: masks <- core. Tile decisions come from the block summaries and fm_classify_tile
 * (summary.c, flashmask/rules.h): sound, so the arrays are a valid BlockMask (a "partial"
 * block applies mask_mod, so calling a block partial is never wrong, only slower).
 */
#include <stdlib.h>
#include <string.h>

#include "flashmask/masks.h"
#include "fm_internal.h"
#include "mask_internal.h"

void fm_flex_block_mask_free(fm_flex_block_mask *fb)
{
    if (!fb) return;
    free(fb->kv_num_blocks);
    free(fb->kv_indices);
    free(fb->full_kv_num_blocks);
    free(fb->full_kv_indices);
    fb->kv_num_blocks = fb->kv_indices = fb->full_kv_num_blocks = fb->full_kv_indices = NULL;
}

fm_status fm_mask_to_flex_blocks(const fm_mask *m, int64_t q_block, int64_t kv_block,
                                 fm_flex_block_mask *out)
{
    fm_block_summary s;
    int64_t n_q;
    fm_status st = fm_tile_view_begin("to_flex_blocks", "q_block", out, sizeof *out, m, q_block,
                                      kv_block, &s, &n_q);
    if (st != FM_OK) return st;
    const int64_t n_kv = s.n_blocks;
    int64_t row_shape[] = {m->batch, m->heads, n_q}, idx_shape[] = {m->batch, m->heads, n_q, n_kv};
    size_t n_rows, n_idx;
    if (fm_mul_sizes(&n_rows, 3, row_shape) || fm_mul_sizes(&n_idx, 4, idx_shape)) {
        fm_block_summary_free(&s);
        return fm_fail(FM_ERR_OVERFLOW, "to_flex_blocks: B*Hm*q_blocks*kv_blocks overflows");
    }
    out->kv_num_blocks = fm_calloc(n_rows, sizeof(int32_t), "flex kv_num_blocks");
    out->full_kv_num_blocks = fm_calloc(n_rows, sizeof(int32_t), "flex full_kv_num_blocks");
    out->kv_indices = fm_calloc(n_idx, sizeof(int32_t), "flex kv_indices");
    out->full_kv_indices = fm_calloc(n_idx, sizeof(int32_t), "flex full_kv_indices");
    if (!out->kv_num_blocks || !out->full_kv_num_blocks || !out->kv_indices ||
        !out->full_kv_indices) {
        fm_flex_block_mask_free(out);
        fm_block_summary_free(&s);
        return FM_ERR_NOMEM;
    }
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            for (int64_t qb = 0; qb < n_q; qb++) {
                const size_t row = (size_t)((b * m->heads + h) * n_q + qb);
                int32_t *partial = out->kv_indices + row * (size_t)n_kv;
                int32_t *full = out->full_kv_indices + row * (size_t)n_kv;
                int32_t n_partial = 0, n_full = 0;
                /* Indices in increasing key-block order, zero padding after the count (the
                 * calloc), as FlexAttention's create_block_mask lays them out. */
                for (int64_t kb = 0; kb < n_kv; kb++) {
                    fm_tile_class c = fm_block_summary_classify(&s, b, h, q_block, qb, kb);
                    if (c == FM_TILE_PARTIAL) partial[n_partial++] = (int32_t)kb;
                    else if (c == FM_TILE_UNMASKED) full[n_full++] = (int32_t)kb;
                }
                out->kv_num_blocks[row] = n_partial;
                out->full_kv_num_blocks[row] = n_full;
            }
    out->batch = m->batch;
    out->heads = m->heads;
    out->n_q_blocks = n_q;
    out->n_kv_blocks = n_kv;
    out->q_block = q_block;
    out->kv_block = kv_block;
    fm_block_summary_free(&s);
    return FM_OK;
}
