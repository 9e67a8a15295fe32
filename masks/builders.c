/* masks/builders.c — fm_mask_build: validates a family's parameters, allocates the mask with the
 * right causal tag and runs the family's builder; plus the builders of the families without
 * documents (full, causal, sliding_window,
 * global_sliding_window, prefix_lm_causal). Document families are in builders_document.c,
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

/* ---------------------------------------------------------------- fm_mask_build */

typedef fm_status (*fm_builder_fn)(const fm_build_ctx *c);

static const fm_builder_fn builders[FM_FAMILY_COUNT] = {
    [FM_FAMILY_FULL] = fm_build_full,
    [FM_FAMILY_CAUSAL] = fm_build_causal,
    [FM_FAMILY_SLIDING_WINDOW] = fm_build_sliding_window,
    [FM_FAMILY_CAUSAL_DOCUMENT] = fm_build_causal_document,
    [FM_FAMILY_DOCUMENT] = fm_build_document,
    [FM_FAMILY_SHARED_QUESTION] = fm_build_shared_question,
    [FM_FAMILY_GLOBAL_SLIDING_WINDOW] = fm_build_global_sliding_window,
    [FM_FAMILY_CAUSAL_BLOCKWISE] = fm_build_causal_blockwise,
    [FM_FAMILY_PREFIX_LM_CAUSAL] = fm_build_prefix_lm_causal,
    [FM_FAMILY_PREFIX_LM_DOCUMENT] = fm_build_prefix_lm_document,
    [FM_FAMILY_QK_SPARSE] = fm_build_qk_sparse,
    [FM_FAMILY_RANDOM_EVICTION] = fm_build_random_eviction,
};

fm_status fm_mask_build(fm_mask *out, const fm_mask_params *p, int64_t batch, int64_t heads,
                        int64_t seqlen_q, int64_t seqlen_k, fm_causal alignment)
{
    if (!out) return fm_fail(FM_ERR_INVALID, "mask build: NULL output mask");
    memset(out, 0, sizeof *out); /* fm_mask_free-safe whatever happens below */
    if (!p) return fm_fail(FM_ERR_INVALID, "mask build: NULL params");
    if ((unsigned)p->family >= FM_FAMILY_COUNT)
        return fm_fail(FM_ERR_INVALID, "mask build: unknown family %d", (int)p->family);
    const char *name = fm_family_name(p->family);
    fm_causal causal = FM_CAUSAL_NONE;
    if (fm_family_is_causal(p->family)) {
        if (alignment != FM_CAUSAL_BOTTOM_RIGHT && alignment != FM_CAUSAL_TOP_LEFT)
            return fm_fail(FM_ERR_INVALID,
                           "%s is a causal family: alignment '%s' refused, use bottom_right or "
                           "top_left",
                           name, fm_causal_name(alignment));
        causal = alignment;
    }
    /* Sizes first (fm_mask_init's words), then the parameters against them. */
    fm_status st = fm_mask_init(out, batch, heads, seqlen_q, seqlen_k, causal);
    if (st) return st;
    st = fm_mask_params_validate(p, seqlen_q, seqlen_k);
    if (st) {
        fm_mask_free(out);
        return st;
    }
    fm_build_ctx ctx = {
        .mask = out, .p = p, .seqlen_q = seqlen_q, .seqlen_k = seqlen_k,
        .off = causal == FM_CAUSAL_NONE ? 0 : fm_causal_offset(causal, seqlen_q, seqlen_k),
    };
    st = builders[p->family](&ctx);
    /* The builders clip every bound, so this cannot fail unless a builder has a bug. */
    if (!st && fm_mask_validate(out) != FM_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", fm_last_error()); /* fm_fail rewrites that buffer */
        st = fm_fail(FM_ERR_INTERNAL, "mask build: %s produced an invalid mask: %s", name, why);
    }
    if (st) fm_mask_free(out);
    return st;
}
