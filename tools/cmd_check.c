/* tools/cmd_check.c — `flashmask check --case DIR --candidate DIR`: the oracle's verdict on a
 * third party's results for one case (BRIEF 5 and 6), a table per tensor, exit 0 pass, 1 fail,
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
            "usage: flashmask check --case DIR --candidate DIR [--dtype X]\n"
            "                       [--allow-fa2-inf-lse] [--forward-only] [--recompute]\n"
            "                       [--json FILE]\n"
            "\n"
            "Judges a candidate's out/lse/dq/dk/dv.npy against a case directory by the rule\n"
            "  max|cand - ref| <= 2 * max|naive_X - ref| + atol_X\n"
            "(naive_X: naive attention in the candidate's precision X, emulated here).\n"
            "  --dtype X             precision the candidate computed in: float16, bfloat16,\n"
            "                        float32 (default: the case's dtype)\n"
            "  --allow-fa2-inf-lse   accept +inf lse on fully masked rows (FlashAttention-2)\n"
            "  --forward-only        judge out and lse only\n"
            "  --json FILE           also write the report as JSON to FILE (a new file)\n"
            "  --recompute           judge against the reference recomputed from the inputs,\n"
            "                        not the case's stored outputs (the default for a small\n"
            "                        case, B*Hq*Sq*Sk*D <= 2^28, and one without a digest)\n"
            "exit: 0 pass, 1 fail, 2 invalid input\n");
}

int cmd_check(int argc, char **argv)
{
    const char *cmd = "check", *case_dir = NULL, *cand_dir = NULL, *dtype_name = NULL;
    const char *json_path = NULL;
    fm_check_options opt = fm_check_options_default(FM_FLOAT64); /* float64: the case's */
    for (int i = 1; i < argc; i++) {
        int m;
        if (cli_is_help(argv[i])) {
            usage(stdout);
            return 0;
        }
        if ((m = cli_option(cmd, argc, argv, &i, "--case", &case_dir)) != 0) {
            if (m < 0) return 2;
        } else if ((m = cli_option(cmd, argc, argv, &i, "--candidate", &cand_dir)) != 0) {
            if (m < 0) return 2;
        } else if ((m = cli_check_option(cmd, argc, argv, &i, &opt, &dtype_name,
                                         &json_path)) != 0) {
            if (m < 0) return 2;
        } else {
            usage(stderr);
            return cli_fail(cmd, FM_ERR_INVALID, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!case_dir || !cand_dir) {
        usage(stderr);
        return cli_fail(cmd, FM_ERR_INVALID, "--case and --candidate are required");
    }
    if (dtype_name) {
        fm_status st = fm_dtype_from_name(dtype_name, &opt.dtype);
        if (st != FM_OK) return cli_report(cmd, st);
        if (opt.dtype == FM_FLOAT64)
            return cli_fail(cmd, FM_ERR_INVALID,
                            "--dtype float64: the rule judges float32, float16 or bfloat16");
    }
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
