/* sparse/rowsplit.c — any dense mask on any FlashMask implementation (the CUDA kernels
 * included), by splitting the query rows into blocks over which the mask *is* column-wise.
 * Layer: sparse <- masks <- core; the attention is called back (sparse_run.h, bound by api/).
 *
 * Rows are independent in attention: row i's output needs only row i of the mask. So the rows
 * can be cut into blocks [r0, r1) and each block run as its own problem (Sq = r1 - r0, the
 * same K and V) under the mask restricted to its rows; dK and dV are the sums of the blocks'.
 * A block fits the column form when, restricted to its rows, every key column has at most two
 * masked runs. The split is greedy: grow the block row by row while that holds (one pass over
 * the mask, counting runs per column). One row always fits (a column of one row has at most
 * one run), so the split always exists — docs/spec.md §2's one-row observation, used a block at a time.
 * Structured masks give few, tall blocks (four interleaved documents of 64 rows at S = 2048:
 * rows split where a column would get its third run); an i.i.d. random mask gives blocks of
 * two or three rows, correct but slow: BBM (cpu) or RCM are the tools for those.
 */
#include <stdlib.h>
#include <string.h>

#include "fm_internal.h"
#include "gather.h"

/* Greedy block ends: ends[0..*n_blocks) with ends[last] = Sq. `ends` has Sq entries. */
fm_status fm_rowsplit_ends(const fm_problem *p, const uint8_t *allowed, int64_t heads,
                           int32_t *ends, int64_t *n_blocks)
{
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, cols = p->batch * heads * Sk;
    /* per (b, head, column): masked runs so far in the block, and whether the last row was
     * masked */
    uint8_t *runs = fm_calloc((size_t)cols, 1, "rowsplit run counts");
    uint8_t *last_masked = fm_calloc((size_t)cols, 1, "rowsplit last row");
    if (!runs || !last_masked) {
        free(runs), free(last_masked);
        return FM_ERR_NOMEM;
    }
    const size_t plane = (size_t)Sq * (size_t)Sk;
    int64_t n = 0, start = 0;
    for (int64_t i = 0; i < Sq; i++) {
        /* does row i still fit the block [start, i]? */
        int fits = 1;
        for (int64_t bh = 0; bh < p->batch * heads && fits; bh++) {
            const uint8_t *row = allowed + (size_t)bh * plane + (size_t)i * (size_t)Sk;
            const uint8_t *r = runs + bh * Sk, *lm = last_masked + bh * Sk;
            for (int64_t j = 0; j < Sk; j++)
                if (!row[j] && !lm[j] && r[j] == 2) { fits = 0; break; } /* a third run */
        }
        if (!fits) { /* close the block before row i; row i starts the next one */
            ends[n++] = (int32_t)i;
            start = i;
            memset(runs, 0, (size_t)cols), memset(last_masked, 0, (size_t)cols);
        }
        for (int64_t bh = 0; bh < p->batch * heads; bh++) {
            const uint8_t *row = allowed + (size_t)bh * plane + (size_t)i * (size_t)Sk;
            uint8_t *r = runs + bh * Sk, *lm = last_masked + bh * Sk;
            for (int64_t j = 0; j < Sk; j++) {
                if (!row[j] && !lm[j]) r[j]++; /* a masked run begins at row i */
                lm[j] = !row[j];
            }
        }
    }
    (void)start;
    ends[n++] = (int32_t)Sq;
    *n_blocks = n;
    free(runs), free(last_masked);
    return FM_OK;
}

fm_status fm_rowsplit_blocks(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                             int64_t *n_blocks)
{
    fm_clear_error();
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st != FM_OK) return st;
    int32_t *ends = fm_alloc((size_t)p->seqlen_q, sizeof(int32_t), "rowsplit block ends");
    if (!ends) return FM_ERR_NOMEM;
    st = fm_rowsplit_ends(p, allowed, mask_heads, ends, n_blocks);
    free(ends);
    return st;
}

/* One block: the gather plan of rows [r0, r1) (every key kept, in order) and the column form
 * of the mask restricted to those rows. */
fm_status fm_rowsplit_block_plan(fm_gather_plan *g, const fm_problem *p, const uint8_t *allowed,
                                 int64_t heads, int64_t r0, int64_t r1)
{
    const int64_t rows = r1 - r0, Sq = p->seqlen_q, Sk = p->seqlen_k;
    fm_status st = fm_gather_plan_init(g, p, rows, Sk);
    if (st != FM_OK) return st;
    for (int64_t b = 0; b < p->batch; b++) {
        for (int64_t h = 0; h < p->q_heads; h++) {
            int32_t *list = fm_gather_q_list(g, b, h);
            for (int64_t i = 0; i < rows; i++) list[i] = (int32_t)(r0 + i);
        }
        for (int64_t h = 0; h < p->kv_heads; h++) {
            int32_t *list = fm_gather_k_list(g, b, h);
            for (int64_t j = 0; j < Sk; j++) list[j] = (int32_t)j;
        }
    }
    /* the block's rows of every (b, head) plane, contiguous */
    const size_t block = (size_t)rows * (size_t)Sk;
    uint8_t *sub = fm_alloc((size_t)(p->batch * heads) * block, 1, "rowsplit block mask");
    if (!sub) {
        fm_gather_plan_free(g);
        return FM_ERR_NOMEM;
    }
    for (int64_t bh = 0; bh < p->batch * heads; bh++)
        memcpy(sub + (size_t)bh * block,
               allowed + ((size_t)bh * (size_t)Sq + (size_t)r0) * (size_t)Sk, block);
    g->mask.form = FM_FORM_COLUMNS;
    st = fm_mask_from_dense(&g->mask.columns, sub, p->batch, heads, rows, Sk, FM_CAUSAL_NONE);
    free(sub);
    if (st != FM_OK) { /* the split guarantees the column form: anything else is a bug */
        fm_gather_plan_free(g);
        return fm_fail(FM_ERR_INTERNAL, "rowsplit: rows [%lld, %lld) do not fit the column "
                       "form: %s", (long long)r0, (long long)r1, fm_last_error());
    }
    return FM_OK;
}

/* Internal entry point (sparse_run.h): checks the problem against the dense mask; the tensors
 * are checked by the attention `a` on each block's problem. */
fm_status fm_rowsplit_run(const fm_attend *a, int backward, const fm_problem *p,
                          const uint8_t *allowed, int64_t mask_heads, fm_tensors *t)
{
    fm_clear_error();
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st != FM_OK) return st;
    if (!t) return fm_fail(FM_ERR_INVALID, "rowsplit: NULL tensors");
    int64_t n_blocks;
    const size_t nkv = fm_problem_kv_elems(p);
    int32_t *ends = fm_alloc((size_t)p->seqlen_q, sizeof(int32_t), "rowsplit block ends");
    double *dk = backward ? fm_calloc(nkv, sizeof(double), "rowsplit dk sum") : NULL;
    double *dv = backward ? fm_calloc(nkv, sizeof(double), "rowsplit dv sum") : NULL;
    if (!ends || (backward && (!dk || !dv))) st = FM_ERR_NOMEM;
    if (st == FM_OK) st = fm_rowsplit_ends(p, allowed, mask_heads, ends, &n_blocks);
    /* Each block writes its rows of out/lse/dq through a scatter that fills the other rows
     * with 0 / -inf: run it into scratch tensors and copy the block's rows over. */
    const size_t nq = fm_problem_q_elems(p), nl = fm_problem_lse_elems(p);
    double *out = NULL, *lse = NULL, *dq = NULL;
    if (st == FM_OK) {
        out = fm_alloc(nq, sizeof(double), "rowsplit out"), lse = fm_alloc(nl, 8, "rowsplit lse");
        dq = backward ? fm_alloc(nq, sizeof(double), "rowsplit dq") : NULL;
        if (!out || !lse || (backward && !dq)) st = FM_ERR_NOMEM;
    }
    const int64_t bh = p->batch * p->q_heads, Sq = p->seqlen_q, D = p->head_dim;
    for (int64_t blk = 0, r0 = 0; st == FM_OK && blk < n_blocks; r0 = ends[blk++]) {
        const int64_t r1 = ends[blk];
        fm_gather_plan g;
        if ((st = fm_rowsplit_block_plan(&g, p, allowed, mask_heads, r0, r1)) != FM_OK) break;
        fm_tensors bt = *t;
        if (backward) {
            bt.dq = dq, bt.dk = t->dk, bt.dv = t->dv; /* block's dk/dv, summed below */
            st = fm_gather_run(a, 1, p, &g, &bt);
            for (size_t e = 0; st == FM_OK && e < nkv; e++) dk[e] += t->dk[e], dv[e] += t->dv[e];
        } else {
            bt.out = out, bt.lse = lse;
            st = fm_gather_run(a, 0, p, &g, &bt);
        }
        fm_gather_plan_free(&g);
        if (st != FM_OK) break;
        /* the block's rows [r0, r1) of every (b, query head) */
        for (int64_t x = 0; x < bh; x++) {
            const size_t row0 = (size_t)x * (size_t)Sq + (size_t)r0, n = (size_t)(r1 - r0);
            if (backward) {
                memcpy(t->dq + row0 * (size_t)D, dq + row0 * (size_t)D, n * (size_t)D * 8);
            } else {
                memcpy(t->out + row0 * (size_t)D, out + row0 * (size_t)D, n * (size_t)D * 8);
                memcpy(t->lse + row0, lse + row0, n * 8);
            }
        }
    }
    if (st == FM_OK && backward) {
        memcpy(t->dk, dk, nkv * sizeof(double));
        memcpy(t->dv, dv, nkv * sizeof(double));
    }
    free(ends), free(dk), free(dv), free(out), free(lse), free(dq);
    return st;
}
