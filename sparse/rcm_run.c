/* sparse/rcm_run.c — attention under a very sparse dense mask through Reverse Cuthill-McKee
 * reordering (masks/rcm.c): permute the mask's rows and columns, Q with the rows, K and V with
 * the columns, run any implementation on the reordered problem (column form if the reordered
 * mask fits it, BBM otherwise), and undo the permutation on out, lse, dQ, dK and dV. Reports
 * the non-empty tile counts before and after.
 * Layer: sparse <- masks (rcm, bbm) <- core; execution through sparse/gather.c.
 */
#include <stdlib.h>
#include <string.h>

#include "fm_internal.h"
#include "gather.h"

fm_status fm_rcm_tile_report(const uint8_t *allowed, int64_t batch, int64_t heads,
                             int64_t seqlen_q, int64_t seqlen_k, int64_t block_q,
                             int64_t block_k, fm_rcm_report *report)
{
    fm_clear_error();
    if (!report) return fm_fail(FM_ERR_INVALID, "rcm report: NULL output");
    memset(report, 0, sizeof *report);
    fm_rcm r;
    fm_status st = fm_rcm_build(&r, allowed, batch, heads, seqlen_q, seqlen_k);
    if (st != FM_OK) return st;
    size_t n = (size_t)(batch * heads) * (size_t)seqlen_q * (size_t)seqlen_k;
    uint8_t *permuted = fm_alloc(n, 1, "rcm permuted mask");
    fm_bbm before = {0}, after = {0};
    if (!permuted) st = FM_ERR_NOMEM;
    if (st == FM_OK) st = fm_rcm_apply_mask(&r, allowed, heads, permuted);
    if (st == FM_OK)
        st = fm_bbm_from_dense(&before, allowed, batch, heads, seqlen_q, seqlen_k, block_q,
                               block_k);
    if (st == FM_OK)
        st = fm_bbm_from_dense(&after, permuted, batch, heads, seqlen_q, seqlen_k, block_q,
                               block_k);
    if (st == FM_OK) st = fm_bbm_tile_stats(&before, &report->before);
    if (st == FM_OK) st = fm_bbm_tile_stats(&after, &report->after);
    fm_bbm_free(&before), fm_bbm_free(&after);
    free(permuted);
    fm_rcm_free(&r);
    return st;
}

/* The gather plan: every (b, query head) takes the batch's row permutation, every (b, kv head)
 * its column permutation; the mask is the reordered dense mask in whichever form fits. */
static fm_status rcm_plan(fm_gather_plan *g, const fm_problem *p, const uint8_t *allowed,
                          int64_t mask_heads, int64_t block_q, int64_t block_k)
{
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st != FM_OK) return st;
    fm_rcm r;
    if ((st = fm_rcm_build(&r, allowed, p->batch, mask_heads, p->seqlen_q, p->seqlen_k)))
        return st;
    if ((st = fm_gather_plan_init(g, p, p->seqlen_q, p->seqlen_k)) != FM_OK) {
        fm_rcm_free(&r);
        return st;
    }
    for (int64_t b = 0; b < p->batch; b++) {
        for (int64_t h = 0; h < p->q_heads; h++)
            memcpy(fm_gather_q_list(g, b, h), r.row_perm + b * p->seqlen_q,
                   (size_t)p->seqlen_q * sizeof(int32_t));
        for (int64_t h = 0; h < p->kv_heads; h++)
            memcpy(fm_gather_k_list(g, b, h), r.col_perm + b * p->seqlen_k,
                   (size_t)p->seqlen_k * sizeof(int32_t));
    }
    size_t n = (size_t)(p->batch * mask_heads) * (size_t)p->seqlen_q * (size_t)p->seqlen_k;
    uint8_t *permuted = fm_alloc(n, 1, "rcm permuted mask");
    st = permuted ? fm_rcm_apply_mask(&r, allowed, mask_heads, permuted) : FM_ERR_NOMEM;
    if (st == FM_OK)
        st = fm_mask_from_dense_auto(&g->mask, permuted, p->batch, mask_heads, p->seqlen_q,
                                     p->seqlen_k, FM_CAUSAL_NONE, block_q, block_k);
    free(permuted);
    fm_rcm_free(&r);
    if (st != FM_OK) fm_gather_plan_free(g);
    return st;
}

/* Internal entry point (sparse_run.h): checks the problem against the dense mask; the tensors
 * are checked by the attention `a` on the reordered problem. */
fm_status fm_rcm_run(const fm_attend *a, int backward, const fm_problem *p,
                     const uint8_t *allowed, int64_t mask_heads, int64_t block_q,
                     int64_t block_k, fm_tensors *t)
{
    fm_clear_error();
    if (!t) return fm_fail(FM_ERR_INVALID, "rcm: NULL tensors");
    fm_gather_plan g;
    fm_status st = rcm_plan(&g, p, allowed, mask_heads, block_q, block_k);
    if (st != FM_OK) return st;
    st = fm_gather_run(a, backward, p, &g, t);
    fm_gather_plan_free(&g);
    return st;
}
