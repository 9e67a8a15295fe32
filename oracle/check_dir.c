/* oracle/check_dir.c — the pass rule on files: a case directory (BRIEF 6, read by io/) and a
 * candidate's result directory, judged by fm_check_case. This is what `flashmask check`,
 * `flashmask check-suite` and the Python binding call.
 * Layer: oracle <- io, reference, masks <- core.
 */
#include <stdio.h>
#include <string.h>

#include "flashmask/io.h"
#include "flashmask/oracle.h"
#include "fm_internal.h"

static void describe(const fm_case *c, char *summary, size_t len)
{
    const fm_problem *p = &c->problem;
    snprintf(summary, len,
             "B=%lld Hq=%lld Hk=%lld Hm=%lld Sq=%lld Sk=%lld D=%lld scale=%.6g dtype=%s "
             "mask=%s causal=%s",
             (long long)p->batch, (long long)p->q_heads, (long long)p->kv_heads,
             (long long)c->mask.heads, (long long)p->seqlen_q, (long long)p->seqlen_k,
             (long long)p->head_dim, p->scale, fm_dtype_name(p->dtype), c->mask_kind,
             fm_causal_name(c->mask.causal));
}

fm_status fm_check_dirs(const char *case_dir, const char *candidate_dir,
                        const fm_check_options *opt, fm_check_report *report, char *summary,
                        size_t summary_len)
{
    fm_clear_error();
    if (!case_dir || !candidate_dir || !opt || !report)
        return fm_fail(FM_ERR_INVALID, "check: NULL directory, options or report");
    if (summary && summary_len) summary[0] = '\0';
    fm_case c;
    fm_case_init(&c);
    fm_results r = {0};
    fm_status st = fm_case_load(case_dir, &c);
    if (st != FM_OK) goto done;
    if (summary && summary_len) describe(&c, summary, summary_len);

    fm_check_options o = *opt;
    if (o.dtype == FM_FLOAT64) {
        if (c.problem.dtype == FM_FLOAT64) {
            st = fm_fail(FM_ERR_INVALID,
                         "case %s has dtype float64: say which precision the candidate computed "
                         "in (float32, float16 or bfloat16)", case_dir);
            goto done;
        }
        o.dtype = c.problem.dtype;
    }
    if ((st = fm_results_load(candidate_dir, &c.problem, &r)) != FM_OK) goto done;
    /* Every tensor the mode judges must be there: a missing file is invalid input. */
    const char *files[5] = {"out.npy", "lse.npy", "dq.npy", "dk.npy", "dv.npy"};
    double *have[5] = {r.out, r.lse, r.dq, r.dk, r.dv};
    for (int t = 0; t < (o.forward_only ? 2 : 5); t++)
        if (!have[t]) {
            st = fm_fail(FM_ERR_IO, "candidate %s: %s is missing%s", candidate_dir, files[t],
                         t >= 2 ? " (--forward-only judges out and lse alone)" : "");
            goto done;
        }
    /* The case's expected outputs, when complete for the mode; else the reference runs. */
    fm_tensors ref = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout};
    if (c.out && c.lse && !o.recompute && !fm_case_is_small(&c.problem)) {
        ref.out = c.out, ref.lse = c.lse;
        if (!o.forward_only && c.dq && c.dk && c.dv) ref.dq = c.dq, ref.dk = c.dk, ref.dv = c.dv;
    }
    fm_tensors cand = {.out = r.out, .lse = r.lse, .dq = r.dq, .dk = r.dk, .dv = r.dv};
    st = fm_check_case(&c.problem, &c.mask, &ref, &cand, &o, report);
done:
    fm_results_free(&r);
    fm_case_free(&c);
    return st;
}
