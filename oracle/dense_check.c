/* oracle/dense_check.c — the oracle's pass rule (docs/spec.md §5) for dense-mask cases: a candidate's
 * out/lse/dq/dk/dv judged tensor by tensor with oracle/'s fm_check_tensor, against the dense
 * oracle's results and the naive same-precision computation under the dense mask.
 * Layer: oracle <- io, reference, sparse (row splitting) <- masks <- core;
 * `flashmask check` hands dense-only cases here (fm_dense_check_dirs).
 *
 * The naive computation is oracle/'s own (fm_naive_forward / fm_naive_backward), run on the
 * row blocks of sparse/rowsplit.c, over which the mask is column-wise. Forward quantities and
 * dQ are per row, so they are exactly the naive computation of the whole problem. dK and dV
 * sum over rows: each block's naive dK, dV (float32 accumulation, rounded to X) are added in
 * float64 and rounded to X once more — for a mask that is one block, exactly the naive
 * computation; otherwise a naive computation with one extra rounding per block, which only
 * moves the yardstick (2 * |naive - ref|) by about a unit of X per block.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sparse/gather.h"
#include "flashmask/io.h"
#include "flashmask/oracle.h"
#include "flashmask/reference.h"
#include "fm_internal.h"
#include "oracle_internal.h"

/* Rows [r0, r1) of every (b, head) of a [B*H, S, W] tensor into a [B*H, r1 - r0, W] block,
 * and back. */
static void rows_to_block(double *block, const double *full, int64_t bh, int64_t seqlen,
                          int64_t r0, int64_t r1, int64_t width)
{
    const size_t n = (size_t)(r1 - r0) * (size_t)width;
    for (int64_t x = 0; x < bh; x++)
        memcpy(block + (size_t)x * n,
               full + ((size_t)x * (size_t)seqlen + (size_t)r0) * (size_t)width,
               n * sizeof(double));
}

static void rows_from_block(double *full, const double *block, int64_t bh, int64_t seqlen,
                            int64_t r0, int64_t r1, int64_t width)
{
    const size_t n = (size_t)(r1 - r0) * (size_t)width;
    for (int64_t x = 0; x < bh; x++)
        memcpy(full + ((size_t)x * (size_t)seqlen + (size_t)r0) * (size_t)width,
               block + (size_t)x * n, n * sizeof(double));
}

/* The naive same-precision out, lse (and dq, dk, dv) under the dense mask, block by block. */
static fm_status naive_dense(const fm_problem *p, const uint8_t *allowed, int64_t heads,
                             fm_dtype x, const fm_tensors *in, int backward, double *out,
                             double *lse, double *dq, double *dk, double *dv)
{
    int32_t *ends = fm_alloc((size_t)p->seqlen_q, sizeof(int32_t), "naive block ends");
    if (!ends) return FM_ERR_NOMEM;
    int64_t n_blocks;
    fm_status st = fm_rowsplit_ends(p, allowed, heads, ends, &n_blocks);
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const int64_t bh = p->batch * p->q_heads, Sq = p->seqlen_q, D = p->head_dim;
    /* block-sized scratch, big enough for the tallest block */
    double *bq = fm_alloc(nq, 8, "naive q rows"), *bo = fm_alloc(nq, 8, "naive out rows");
    double *bl = fm_alloc((size_t)bh * (size_t)Sq, 8, "naive lse rows");
    double *bdo = backward ? fm_alloc(nq, 8, "naive dout rows") : NULL;
    double *bdq = backward ? fm_alloc(nq, 8, "naive dq rows") : NULL;
    double *bdk = backward ? fm_alloc(nkv, 8, "naive dk") : NULL;
    double *bdv = backward ? fm_alloc(nkv, 8, "naive dv") : NULL;
    if (st == FM_OK && (!bq || !bo || !bl || (backward && (!bdo || !bdq || !bdk || !bdv))))
        st = FM_ERR_NOMEM;
    if (st == FM_OK && backward) memset(dk, 0, nkv * 8), memset(dv, 0, nkv * 8);
    for (int64_t blk = 0, r0 = 0; st == FM_OK && blk < n_blocks; r0 = ends[blk++]) {
        const int64_t r1 = ends[blk];
        fm_gather_plan g; /* only its compact problem and column mask are used here */
        if ((st = fm_rowsplit_block_plan(&g, p, allowed, heads, r0, r1)) != FM_OK) break;
        const fm_problem *cp = &g.compact;
        const fm_mask *m = &g.mask.columns;
        rows_to_block(bq, in->q, bh, Sq, r0, r1, D);
        st = fm_naive_forward(cp, m, x, bq, in->k, in->v, bo, bl);
        if (st == FM_OK && backward) {
            rows_to_block(bdo, in->dout, bh, Sq, r0, r1, D);
            st = fm_naive_backward(cp, m, x, bq, in->k, in->v, bo, bl, bdo, bdq, bdk, bdv);
            if (st == FM_OK) {
                rows_from_block(dq, bdq, bh, Sq, r0, r1, D);
                for (size_t e = 0; e < nkv; e++) dk[e] += bdk[e], dv[e] += bdv[e];
            }
        }
        if (st == FM_OK) {
            rows_from_block(out, bo, bh, Sq, r0, r1, D);
            rows_from_block(lse, bl, bh, Sq, r0, r1, 1);
        }
        fm_gather_plan_free(&g);
    }
    if (st == FM_OK && backward && n_blocks > 1) {
        fm_oracle_round_array(dk, nkv, x); /* the sums of rounded block results, rounded */
        fm_oracle_round_array(dv, nkv, x);
    }
    free(ends), free(bq), free(bo), free(bl), free(bdo), free(bdq), free(bdk), free(bdv);
    return st;
}

fm_status fm_check_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                         const fm_tensors *ref, const fm_tensors *cand,
                         const fm_check_options *opt, fm_check_report *report)
{
    fm_clear_error();
    if (!report) return fm_fail(FM_ERR_INVALID, "check: NULL report");
    memset(report, 0, sizeof *report);
    fm_status st = fm_dense_check_problem(p, allowed, mask_heads);
    if (st != FM_OK) return st;
    if (!ref || !cand || !opt) return fm_fail(FM_ERR_INVALID, "check: NULL tensors or options");
    const fm_dtype x = opt->dtype;
    if (x != FM_FLOAT32 && x != FM_FLOAT16 && x != FM_BFLOAT16)
        return fm_fail(FM_ERR_INVALID, "check: candidate dtype %s; expected float32, float16 "
                       "or bfloat16", fm_dtype_name(x));
    const int bwd = !opt->forward_only;
    if (!ref->q || !ref->k || !ref->v || (bwd && !ref->dout) || !cand->out || !cand->lse ||
        (bwd && (!cand->dq || !cand->dk || !cand->dv)))
        return fm_fail(FM_ERR_INVALID, "check: NULL input or candidate tensor");
    report->options = *opt;
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p), D = (size_t)p->head_dim;

    /* reference: the case's, or the dense oracle's on the inputs as given */
    double *buf[15] = {0}; /* ref out lse dq dk dv, naive out lse dq dk dv, bounds (same) */
    const size_t sizes[15] = {nq, nl, nq, nkv, nkv, nq, nl, nq, nkv, nkv,
                              nq, nl, nq, nkv, nkv};
    uint8_t *rows = fm_alloc(nl, 1, "check masked rows");
    st = rows ? FM_OK : FM_ERR_NOMEM;
    for (int i = 0; i < 15 && st == FM_OK; i++)
        if (!(buf[i] = fm_alloc(sizes[i], sizeof(double), "check scratch"))) st = FM_ERR_NOMEM;
    fm_tensors r = *ref;
    if (st == FM_OK && !(ref->out && ref->lse)) {
        r.out = buf[0], r.lse = buf[1];
        st = fm_ref_forward_dense(p, allowed, mask_heads, ref->q, ref->k, ref->v, r.out, r.lse);
    }
    if (st == FM_OK && bwd && !(ref->dq && ref->dk && ref->dv)) {
        r.dq = buf[2], r.dk = buf[3], r.dv = buf[4];
        st = fm_ref_backward_dense(p, allowed, mask_heads, ref->q, ref->k, ref->v, r.out, r.lse,
                                   ref->dout, r.dq, r.dk, r.dv);
    }
    /* the naive computation: always under the FA rule, under the derived rule only where it
     * could overflow (and must then refuse) or when asked for (fm_check_options.naive) */
    const int naive = opt->rule == FM_RULE_FA || opt->naive ||
                      !fm_naive_cannot_overflow(p, x, ref, bwd);
    double *nv[5] = {NULL, NULL, NULL, NULL, NULL};
    for (int i = 0; naive && i < 5; i++) nv[i] = buf[5 + i];
    if (st == FM_OK && naive)
        st = naive_dense(p, allowed, mask_heads, x, ref, bwd, buf[5], buf[6], buf[7], buf[8],
                         buf[9]);
    /* the derived rule's per-element bounds (flashmask/oracle.h); NULL under the FA rule */
    double *bd[5] = {NULL, NULL, NULL, NULL, NULL};
    if (st == FM_OK && opt->rule == FM_RULE_DERIVED) {
        fm_tensors bt = r;
        bt.q = ref->q, bt.k = ref->k, bt.v = ref->v, bt.dout = ref->dout;
        for (int i = 0; i < 5; i++) bd[i] = buf[10 + i];
        fm_oracle_bound_args g = {.p = p, .dtype = x, .t = &bt, .dense = allowed,
                                  .mask_heads = mask_heads, .b_out = bd[0], .b_lse = bd[1],
                                  .b_dq = bwd ? bd[2] : NULL, .b_dk = bd[3], .b_dv = bd[4]};
        st = fm_oracle_bounds_with(&g);
    }
    /* fully masked rows (b, query head, i): no allowed key in the row of its mask head */
    if (st == FM_OK) {
        const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, g = p->q_heads / mask_heads;
        for (size_t row = 0; row < nl; row++) {
            const int64_t i = (int64_t)(row % (size_t)Sq), bh = (int64_t)(row / (size_t)Sq);
            const int64_t b = bh / p->q_heads, m = bh % p->q_heads / g;
            const uint8_t *a = allowed + (((size_t)b * (size_t)mask_heads + (size_t)m) *
                                              (size_t)Sq + (size_t)i) * (size_t)Sk;
            rows[row] = memchr(a, 1, (size_t)Sk) == NULL;
            report->masked_rows += rows[row];
        }
    }
    const fm_masked_rule lse_rule = opt->allow_fa2_inf_lse ? FM_MASKED_ANY_INF : FM_MASKED_NEG_INF;
    fm_tensor_check *t = report->tensor;
    if (st == FM_OK)
        st = fm_check_tensor_bounded("out", x, nq, cand->out, r.out, nv[0], bd[0], rows, D, FM_MASKED_ZERO,
                             &t[FM_CHECK_OUT]);
    if (st == FM_OK)
        st = fm_check_tensor_bounded("lse", x, nl, cand->lse, r.lse, nv[1], bd[1], rows, 1, lse_rule,
                             &t[FM_CHECK_LSE]);
    report->n_tensors = 2;
    if (st == FM_OK && bwd) {
        st = fm_check_tensor_bounded("dq", x, nq, cand->dq, r.dq, nv[2], bd[2], rows, D, FM_MASKED_FREE,
                             &t[FM_CHECK_DQ]);
        if (st == FM_OK)
            st = fm_check_tensor_bounded("dk", x, nkv, cand->dk, r.dk, nv[3], bd[3], NULL, 0, FM_MASKED_FREE,
                                 &t[FM_CHECK_DK]);
        if (st == FM_OK)
            st = fm_check_tensor_bounded("dv", x, nkv, cand->dv, r.dv, nv[4], bd[4], NULL, 0, FM_MASKED_FREE,
                                 &t[FM_CHECK_DV]);
        report->n_tensors = 5;
    }
    if (st == FM_OK) fm_check_report_finish(p, bwd, report);
    for (int i = 0; i < 15; i++) free(buf[i]);
    free(rows);
    return st;
}

fm_status fm_dense_check_dirs(const char *case_dir, const char *candidate_dir,
                              const fm_check_options *opt, fm_check_report *report,
                              char *summary, size_t summary_len)
{
    fm_clear_error();
    if (!case_dir || !candidate_dir || !opt || !report)
        return fm_fail(FM_ERR_INVALID, "check: NULL directory, options or report");
    if (summary && summary_len) summary[0] = '\0';
    fm_dense_case c;
    fm_results r = {0};
    fm_status st = fm_dense_case_load(case_dir, &c);
    if (st != FM_OK) return st;
    const fm_problem *p = &c.problem;
    if (summary && summary_len)
        snprintf(summary, summary_len,
                 "B=%lld Hq=%lld Hk=%lld Hm=%lld Sq=%lld Sk=%lld D=%lld scale=%g dtype=%s "
                 "mask dense (%s)", (long long)p->batch, (long long)p->q_heads,
                 (long long)p->kv_heads, (long long)c.mask_heads, (long long)p->seqlen_q,
                 (long long)p->seqlen_k, (long long)p->head_dim, p->scale,
                 fm_dtype_name(p->dtype), fm_dense_pattern_name(c.pattern));
    fm_check_options o = *opt;
    if (o.dtype == FM_FLOAT64) {
        if (p->dtype == FM_FLOAT64) {
            st = fm_fail(FM_ERR_INVALID, "case %s has dtype float64: say which precision the "
                         "candidate computed in (float32, float16 or bfloat16)", case_dir);
            goto done;
        }
        o.dtype = p->dtype;
    }
    if ((st = fm_results_load(candidate_dir, p, &r)) != FM_OK) goto done;
    const char *files[5] = {"out.npy", "lse.npy", "dq.npy", "dk.npy", "dv.npy"};
    double *have[5] = {r.out, r.lse, r.dq, r.dk, r.dv};
    for (int t = 0; t < (o.forward_only ? 2 : 5); t++)
        if (!have[t]) {
            st = fm_fail(FM_ERR_IO, "candidate %s: %s is missing", candidate_dir, files[t]);
            goto done;
        }
    fm_tensors ref = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout, .out = c.out, .lse = c.lse,
                      .dq = c.dq, .dk = c.dk, .dv = c.dv};
    if (o.recompute || fm_case_is_small(p)) /* the reference from the inputs (io.h) */
        ref.out = ref.lse = ref.dq = ref.dk = ref.dv = NULL;
    fm_tensors cand = {.out = r.out, .lse = r.lse, .dq = r.dq, .dk = r.dk, .dv = r.dv};
    st = fm_check_dense(p, c.allowed, c.mask_heads, &ref, &cand, &o, report);
done:
    fm_results_free(&r);
    fm_dense_case_free(&c);
    return st;
}
