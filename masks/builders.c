/* masks/builders.c — the builders of the families without documents (full, causal,
 * sliding_window, global_sliding_window, prefix_lm_causal), each named by its row in
 * masks/families.c (whose fm_mask_build validates the parameters, allocates the mask with the
 * right causal tag and runs the builder). Document families are in builders_document.c,
 * qk_sparse and random_eviction in builders_sparse.c.
 *
 * Every builder follows the table of docs/spec.md §4, written in key positions (families_internal.h):
 * row i stands at position i + off, and bounds are shifted by off and clipped to [0, Sq].
 *
 * Layer: masks <- core.
 */
#include <stdio.h>
#include <string.h>

#include "families_internal.h"
#include "fm_internal.h"

/* ---------------------------------------------------------------- simple families */

/* full and causal: no interval; the causal tag of the mask does the work. fm_mask_init left
 * every column empty already. */
fm_status fm_build_full(const fm_build_ctx *c)
{
    (void)c;
    return FM_OK;
}

fm_status fm_build_causal(const fm_build_ctx *c)
{
    (void)c;
    return FM_OK;
}

/* sliding_window(w): LTS = j + w. With the causal rule, key j is seen by rows at positions
 * j .. j+w-1: each row sees w keys, itself included. */
fm_status fm_build_sliding_window(const fm_build_ctx *c)
{
    int64_t w = c->p->window;
    if (w > c->seqlen_k + c->seqlen_q) w = c->seqlen_k + c->seqlen_q; /* same mask, no overflow */
    for (int64_t j = 0; j < c->seqlen_k; j++)
        fm_build_set_column(c, 0, 0, j, j + w, FM_POS_END, FM_POS_BEGIN, FM_POS_BEGIN);
    fm_build_broadcast(c);
    return FM_OK;
}

/* global_sliding_window(g, wl, wr), no causal rule. Keys j < g are global: no interval. For
 * the others: LT = [j + wl + 1, end) hides key j from rows more than wl after it; UT = [g, j - wr)
 * hides it from non-global rows more than wr before it (empty when j - wr <= g). Rows x < g are
 * in neither interval: global rows see every key. */
fm_status fm_build_global_sliding_window(const fm_build_ctx *c)
{
    const int64_t cap = c->seqlen_k + c->seqlen_q; /* larger values give the same mask */
    int64_t g = c->p->global_tokens, wl = c->p->left_window, wr = c->p->right_window;
    if (g > cap) g = cap;
    if (wl > cap) wl = cap;
    if (wr > cap) wr = cap;
    for (int64_t j = 0; j < c->seqlen_k; j++) {
        if (j < g)
            fm_build_set_column(c, 0, 0, j, FM_POS_END, FM_POS_END, FM_POS_BEGIN, FM_POS_BEGIN);
        else
            fm_build_set_column(c, 0, 0, j, j + wl + 1, FM_POS_END, g, j - wr);
    }
    fm_build_broadcast(c);
    return FM_OK;
}

/* prefix_lm_causal(p), no causal rule: keys j < p are seen by every row (the bidirectional
 * prefix); a later key j is hidden from the rows before it, UT = [0, j). */
fm_status fm_build_prefix_lm_causal(const fm_build_ctx *c)
{
    for (int64_t j = 0; j < c->seqlen_k; j++) {
        int64_t ute = j < c->p->prefix ? FM_POS_BEGIN : j;
        fm_build_set_column(c, 0, 0, j, FM_POS_END, FM_POS_END, FM_POS_BEGIN, ute);
    }
    fm_build_broadcast(c);
    return FM_OK;
}
