/* masks/build_columns.c — the column writer every family builder shares (families_internal.h):
 * one column's bounds from key positions, clipped and put in canonical empty form, and the copy
 * of batch 0 / head 0 to every other (b, head) for families that do not vary per head. Its own
 * file so that builders.c (fm_mask_build, which calls every builder) and the builder files that
 * call these helpers form no cycle.
 * Layer: masks <- core.
 */
#include <string.h>

#include "families_internal.h"

void fm_build_set_column(const fm_build_ctx *c, int64_t b, int64_t h, int64_t j, int64_t lts,
                         int64_t lte, int64_t uts, int64_t ute)
{
    int32_t *col = fm_mask_column(c->mask, b, h, j);
    int32_t sq = (int32_t)c->seqlen_q;
    int32_t r0 = fm_pos_to_row(c, lts), r1 = fm_pos_to_row(c, lte);
    /* An empty interval gets the canonical form, so that equal masks have equal vectors. */
    col[FM_LTS] = r1 > r0 ? r0 : sq;
    col[FM_LTE] = r1 > r0 ? r1 : sq;
    r0 = fm_pos_to_row(c, uts);
    r1 = fm_pos_to_row(c, ute);
    col[FM_UTS] = r1 > r0 ? r0 : 0;
    col[FM_UTE] = r1 > r0 ? r1 : 0;
}

void fm_build_broadcast(const fm_build_ctx *c)
{
    const fm_mask *m = c->mask;
    size_t column_values = (size_t)m->seqlen_k * FM_BOUNDS;
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            if (b || h)
                memcpy(fm_mask_column(m, b, h, 0), fm_mask_column(m, 0, 0, 0),
                       column_values * sizeof(int32_t));
}
