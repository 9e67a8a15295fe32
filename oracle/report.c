/* oracle/report.c — the check's table as a person reads it: one line per tensor with the
 * statistics of docs/spec.md §5 (max abs, mean abs, relative Frobenius error) beside the bound that
 * decides, then the reason of each failure and the overall verdict. The naive error column is
 * "-" where the derived rule left the naive computation out (fm_check_options.naive).
 * Layer: oracle (used by tools/cmd_check.c and tests/cuda).
 */
#include <stdio.h>

#include "flashmask/oracle.h"

void fm_check_report_print(const fm_check_report *report, FILE *out)
{
    const fm_check_options *o = &report->options;
    fprintf(out, "candidate dtype %s, rule %s%s%s; fully masked rows: %lld\n",
            fm_dtype_name(o->dtype), fm_check_rule_name((fm_check_rule)o->rule),
            o->forward_only ? ", forward only" : "",
            o->allow_fa2_inf_lse ? ", +inf lse accepted for fully masked rows" : "",
            (long long)report->masked_rows);
    /* bound: the FA rule's bound, or under the derived rule the bound of the element with the
     * largest err/bound (that ratio must stay <= 1) */
    fprintf(out, "%-6s %10s %10s %10s %10s %10s %10s %9s  %s\n", "tensor", "max_abs", "mean_abs",
            "rel_fro", "naive_err", "atol", "bound", "err/bound", "verdict");
    int skipped = 0;
    for (int i = 0; i < report->n_tensors; i++) {
        const fm_tensor_check *t = &report->tensor[i];
        char naive[16] = "-";
        if (t->naive_computed) snprintf(naive, sizeof naive, "%10.3e", t->naive_max_abs);
        else skipped = 1;
        fprintf(out, "%-6s %10.3e %10.3e %10.3e %10s %10.3e %10.3e %9.3g  %s\n", t->name,
                t->max_abs, t->mean_abs, t->rel_fro, naive, t->atol, t->bound, t->ratio,
                t->pass ? "pass" : "FAIL");
    }
    if (skipped)
        fprintf(out, "naive_err -: not computed (derived rule, no overflow possible in %s; "
                     "--naive computes it)\n", fm_dtype_name(o->dtype));
    for (int i = 0; i < report->n_tensors; i++) {
        const fm_tensor_check *t = &report->tensor[i];
        if (!t->pass) fprintf(out, "  %s: %s\n", t->name, t->why);
    }
    fprintf(out, "verdict: %s\n", report->pass ? "PASS" : "FAIL");
}
