/* sparse/qk_sparse.c — QK-sparse attention (Pagliardini et al., arXiv 2306.01160, "Sparse Flash
 * Attention"): some queries and keys of each (batch, head) are dropped; the kept ones are
 * compacted, attend iff original query index (+ causal offset) >= original key index, and the
 * results are scattered back. Dropped queries output 0 (lse -inf) and get no gradient; dropped
 * keys get no gradient.
 * Layer: sparse <- masks <- core; the attention is called back (sparse_run.h, bound by api/).
 *
 * Why this is exact with FlashMask: the kept indices are increasing, so for compact key j'
 * (original kj) the compact rows it must not see — original qi with qi + off < kj — are a
 * prefix [0, first) of the compact rows: one UT interval (UTS = 0, UTE = first). Padding rows
 * (a head that kept fewer queries than the longest) are masked by LT = [kept, Sq'), padding keys
 * by LT = [0, Sq'). Mask heads = Hq, since the lists differ per head.
 */
#include <stdlib.h>
#include <string.h>

#include "fm_internal.h"
#include "gather.h"

/* Checks the flag arrays (0/1 only) and reports the longest kept query and key lists. */
static fm_status check_keep(const fm_problem *p, const uint8_t *q_keep, const uint8_t *k_keep,
                            int64_t *max_q, int64_t *max_k)
{
    if (!q_keep || !k_keep) return fm_fail(FM_ERR_INVALID, "qk-sparse: NULL keep flags");
    *max_q = *max_k = 0;
    for (int pass = 0; pass < 2; pass++) {
        const uint8_t *flags = pass ? k_keep : q_keep;
        const int64_t heads = pass ? p->kv_heads : p->q_heads;
        const int64_t len = pass ? p->seqlen_k : p->seqlen_q;
        for (int64_t bh = 0; bh < p->batch * heads; bh++) {
            int64_t kept = 0;
            for (int64_t i = 0; i < len; i++) {
                uint8_t f = flags[bh * len + i];
                if (f > 1)
                    return fm_fail(FM_ERR_INVALID,
                                   "qk-sparse: %s keep flag %u at b=%lld head=%lld pos=%lld; "
                                   "expected 0 (drop) or 1 (keep)",
                                   pass ? "key" : "query", (unsigned)f, (long long)(bh / heads),
                                   (long long)(bh % heads), (long long)i);
                kept += f;
            }
            int64_t *mx = pass ? max_k : max_q;
            if (kept > *mx) *mx = kept;
        }
    }
    return FM_OK;
}

static fm_status qk_plan(fm_gather_plan *g, const fm_problem *p, fm_causal alignment,
                         const uint8_t *q_keep, const uint8_t *k_keep)
{
    int64_t max_q, max_k;
    fm_status st = check_keep(p, q_keep, k_keep, &max_q, &max_k);
    if (st != FM_OK) return st;
    /* Compact lengths: the longest kept list (at least 1; a padding row attends nothing). */
    const int64_t sq = max_q ? max_q : 1, sk = max_k ? max_k : 1;
    if ((st = fm_gather_plan_init(g, p, sq, sk)) != FM_OK) return st;
    for (int64_t b = 0; b < p->batch; b++) {
        for (int64_t h = 0; h < p->q_heads; h++) {
            int32_t *list = fm_gather_q_list(g, b, h);
            int64_t n = 0;
            for (int64_t i = 0; i < p->seqlen_q; i++)
                if (q_keep[(b * p->q_heads + h) * p->seqlen_q + i]) list[n++] = (int32_t)i;
        }
        for (int64_t h = 0; h < p->kv_heads; h++) {
            int32_t *list = fm_gather_k_list(g, b, h);
            int64_t n = 0;
            for (int64_t j = 0; j < p->seqlen_k; j++)
                if (k_keep[(b * p->kv_heads + h) * p->seqlen_k + j]) list[n++] = (int32_t)j;
        }
    }
    st = fm_mask_init(&g->mask.columns, p->batch, p->q_heads, sq, sk, FM_CAUSAL_NONE);
    if (st != FM_OK) {
        fm_gather_plan_free(g);
        return st;
    }
    const int64_t off = fm_causal_offset(alignment, p->seqlen_q, p->seqlen_k);
    const int64_t group = p->q_heads / p->kv_heads;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++) {
            const int32_t *qs = fm_gather_q_list(g, b, h), *ks = fm_gather_k_list(g, b, h / group);
            int64_t kept_q = 0;
            while (kept_q < sq && qs[kept_q] >= 0) kept_q++;
            int64_t first = 0; /* first compact row allowed to see the current key */
            for (int64_t j = 0; j < sk; j++) {
                int32_t *col = fm_mask_column(&g->mask.columns, b, h, j);
                if (ks[j] < 0) { /* padding key: masked for every row */
                    col[FM_LTS] = 0, col[FM_LTE] = (int32_t)sq;
                    continue;
                }
                col[FM_LTS] = (int32_t)kept_q, col[FM_LTE] = (int32_t)sq; /* padding rows */
                if (alignment == FM_CAUSAL_NONE) continue;
                /* keys ascend, so `first` only moves forward */
                while (first < kept_q && qs[first] + off < ks[j]) first++;
                col[FM_UTS] = 0, col[FM_UTE] = (int32_t)first;
            }
        }
    return FM_OK;
}

/* Internal entry point (sparse_run.h): checks the problem and the keep flags; the tensors are
 * checked by the attention `a` on the compact problem. */
fm_status fm_qk_sparse_run(const fm_attend *a, int backward, const fm_problem *p,
                           fm_causal alignment, const uint8_t *q_keep, const uint8_t *k_keep,
                           fm_tensors *t)
{
    fm_clear_error();
    fm_status st = fm_sparse_check_problem(p);
    if (st != FM_OK) return st;
    if (!t) return fm_fail(FM_ERR_INVALID, "qk-sparse: NULL tensors");
    fm_gather_plan g;
    st = qk_plan(&g, p, alignment, q_keep, k_keep);
    if (st != FM_OK) return st;
    st = fm_gather_run(a, backward, p, &g, t);
    fm_gather_plan_free(&g);
    return st;
}

/* fm_sparse_dense_mask's pair test: the query and the key rows are both kept. */
static int both_kept(const void *ctx, int64_t qrow, int64_t krow)
{
    const uint8_t *const *keep = ctx;
    return keep[0][qrow] && keep[1][krow];
}

fm_status fm_qk_sparse_dense_mask(const fm_problem *p, fm_causal alignment,
                                  const uint8_t *q_keep, const uint8_t *k_keep,
                                  uint8_t *allowed)
{
    fm_clear_error();
    int64_t max_q, max_k;
    fm_status st = fm_sparse_check_problem(p);
    if (st != FM_OK) return st;
    if (!allowed) return fm_fail(FM_ERR_INVALID, "qk-sparse dense mask: NULL output");
    st = check_keep(p, q_keep, k_keep, &max_q, &max_k);
    if (st != FM_OK) return st;
    const uint8_t *const keep[2] = {q_keep, k_keep};
    fm_sparse_dense_mask(p, alignment, both_kept, keep, allowed);
    return FM_OK;
}
