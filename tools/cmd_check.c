/* tools/cmd_check.c — `flashmask check --case DIR --candidate DIR`: the oracle's verdict on a
 * third party's results for one case (docs/spec.md §5 and 6), a table per tensor, exit 0 pass, 1 fail,
 * 2 invalid input (missing file, wrong shape or dtype, broken case).
 * Layer: tools CLI over oracle/ (fm_check_dirs).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flashmask/io.h"
#include "flashmask/oracle.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: flashmask check --case DIR --candidate DIR [--dtype X] [--rule R]\n"
            "                       [--allow-fa2-inf-lse] [--forward-only] [--recompute]\n"
            "                       [--naive] [--json FILE]\n"
            "\n"
            "Judges a candidate's out/lse/dq/dk/dv.npy against a case directory.\n"
            "  --rule derived        (default) |cand - ref| <= B[e] at every element, B the\n"
            "                        error any FlashAttention-style kernel in X can make\n"
            "                        (forward error analysis; docs/oracle.md section 2)\n"
            "  --rule fa             FlashAttention's test rule, per tensor:\n"
            "                        max|cand - ref| <= 2 * max|naive_X - ref| + atol_X\n"
            "  --dtype X             precision the candidate computed in: float16, bfloat16,\n"
            "                        float32 (default: the case's dtype)\n"
            "  --allow-fa2-inf-lse   accept +inf lse on fully masked rows (FlashAttention-2)\n"
            "  --forward-only        judge out and lse only\n"
            "  --json FILE           also write the report as JSON to FILE (a new file)\n"
            "  --recompute           judge against the reference recomputed from the inputs,\n"
            "                        not the case's stored outputs (the default for a small\n"
            "                        case, B*Hq*Sq*Sk*D <= 2^28, and one without a digest)\n"
            "  --naive               under the derived rule, run the naive computation in X\n"
            "                        even where no overflow is possible, to fill the naive_err\n"
            "                        column (otherwise \"-\"; --rule fa always runs it)\n"
            "exit: 0 pass, 1 fail, 2 invalid input\n");
}

int cmd_check(int argc, char **argv)
{
    const char *cmd = "check";
    cli_check_args a = {.dir_flag = "--case", .cand_flag = "--candidate",
                        .opt = fm_check_options_default(FM_FLOAT64)}; /* float64: the case's */
    int rc;
    if (!cli_check_parse(cmd, argc, argv, &a, usage, NULL, NULL, &rc)) return rc;
    const char *case_dir = a.dir, *cand_dir = a.cand, *json_path = a.json_path;
    const fm_check_options opt = a.opt;
    fm_check_report rep;
    char summary[256];
    /* a dense-mask case without mask.npy (docs/sparse.md): the same rule, dense mask */
    fm_status st = (fm_dense_case_detect(case_dir) ? fm_dense_check_dirs : fm_check_dirs)(
        case_dir, cand_dir, &opt, &rep, summary, sizeof summary);
    if (st != FM_OK) return cli_report(cmd, st);
    int sealed = 1; /* a case without a digest: say that its stored outputs were not used */
    if (fm_case_verify_digest(case_dir, &sealed) == FM_OK && !sealed)
        fprintf(stderr, "flashmask check: note: %s has no digest (written before digests): "
                "judged against the reference recomputed from its inputs\n", case_dir);
    printf("case %s: %s\ncandidate %s\n", case_dir, summary, cand_dir);
    fm_check_report_print(&rep, stdout);
    if (json_path) {
        char *json = NULL;
        if ((st = fm_check_report_to_json(&rep, &json)) != FM_OK) return cli_report(cmd, st);
        int ok = cli_write_text(json_path, json);
        free(json);
        if (!ok) return cli_fail(cmd, FM_ERR_IO, "--json %s: %s", json_path,
                                 errno == EEXIST ? "exists; remove it first" : strerror(errno));
    }
    return rep.pass ? 0 : 1;
}
