/* tools/cmd_check_suite.c — `flashmask check-suite --suite DIR --candidates DIR`: the oracle's
 * verdict on every case of a suite (manifest.json from gen-suite), reading the candidate's
 * results from CANDIDATES/<case name>/. One line per case (verdict, the tensor closest to or
 * furthest past its bound as max_abs/bound, failing tensors and why) and the totals.
 * --only/--skip PATTERN (shell globs, repeatable) select the cases a kernel supports: a pattern
 * matches a case when it matches its name, its mask kind or its dtype, so `--only causal`
 * judges the causal cases alone and `--skip '*-f32'` leaves the float32 ones out.
 * Exit: 0 every selected case passed; 1 a case failed or its results were missing or invalid;
 * 2 the suite itself is unreadable, or no case was selected.
 * Layer: tools CLI over oracle/ (fm_check_dirs).
 */
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "flashmask/oracle.h"
#include "junit.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: flashmask check-suite --suite DIR --candidates DIR [--dtype X] [--rule R]\n"
            "                             [--only PATTERN]... [--skip PATTERN]...\n"
            "                             [--allow-fa2-inf-lse] [--forward-only] [--recompute]\n"
            "                             [--naive] [--verbose]\n"
            "                             [--json FILE] [--junit FILE]\n"
            "Judges CANDIDATES/<name>/{out,lse,dq,dk,dv}.npy for every case <name> listed in\n"
            "SUITE/manifest.json (flashmask gen-suite). --dtype overrides every case's dtype;\n"
            "--rule derived (default) or fa, --naive (see `flashmask check --help`);\n"
            "--only/--skip PATTERN: shell globs matched against each case's name, mask kind\n"
            "and dtype (--only causal: the causal cases; --skip '*-f32'); repeatable;\n"
            "--verbose prints each case's full table; --json FILE writes every verdict as JSON;\n"
            "--junit FILE as JUnit XML (one testcase per case) for CI test reporters.\n"
            "exit: 0 every selected case passes, 1 a case failed or has missing/invalid\n"
            "results, 2 bad suite (a manifest that is not a regular file or lists no case, a\n"
            "case changed after it was written) or no case selected\n");
}

/* The tensor with the largest error / bound: how close the case came to failing. */
static void worst_tensor(const fm_check_report *r, const char **name, double *ratio)
{
    *name = "-";
    *ratio = 0.0;
    for (int t = 0; t < r->n_tensors; t++) {
        const fm_tensor_check *c = &r->tensor[t];
        double q = c->ratio;
        if (c->nan_count) q = 1e300;
        if (q >= *ratio) *ratio = q, *name = c->name;
    }
}

/* Does any of the n patterns match the case's name, mask kind or dtype? */
static int matches(const char *const *pat, int n, const cJSON *entry)
{
    static const char *const fields[3] = {"name", "mask_kind", "dtype"};
    for (int p = 0; p < n; p++)
        for (int f = 0; f < 3; f++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(entry, fields[f]);
            if (cJSON_IsString(v) && fnmatch(pat[p], v->valuestring, 0) == 0) return 1;
        }
    return 0;
}

/* The options of check-suite besides check's (cli_check_parse's `extra`). */
enum { MAX_PATTERNS = 64 };
typedef struct suite_opts {
    const char *junit_path;
    int verbose, n_only, n_skip;
    const char *only[MAX_PATTERNS], *skip[MAX_PATTERNS];
} suite_opts;

static int suite_option(void *ctx, const char *cmd, int argc, char **argv, int *i)
{
    suite_opts *s = ctx;
    int m;
    if ((m = cli_option(cmd, argc, argv, i, "--junit", &s->junit_path)) != 0) return m;
    if (strcmp(argv[*i], "--verbose") == 0) {
        s->verbose = 1;
        return 1;
    }
    if (strcmp(argv[*i], "--only") != 0 && strcmp(argv[*i], "--skip") != 0) return 0;
    const int is_only = argv[*i][2] == 'o';
    const char *pat = NULL;
    if (cli_option(cmd, argc, argv, i, is_only ? "--only" : "--skip", &pat) < 0) return -1;
    if ((is_only ? s->n_only : s->n_skip) >= MAX_PATTERNS) {
        cli_fail(cmd, FM_ERR_INVALID, "more than %d --only/--skip patterns", MAX_PATTERNS);
        return -1;
    }
    if (is_only) s->only[s->n_only++] = pat;
    else s->skip[s->n_skip++] = pat;
    return 1;
}

int cmd_check_suite(int argc, char **argv)
{
    const char *cmd = "check-suite";
    cli_check_args a = {.dir_flag = "--suite", .cand_flag = "--candidates",
                        .opt = fm_check_options_default(FM_FLOAT64)}; /* float64: each case's */
    suite_opts so = {0};
    int rc;
    if (!cli_check_parse(cmd, argc, argv, &a, usage, suite_option, &so, &rc)) return rc;
    const char *suite = a.dir, *cands = a.cand, *json_path = a.json_path;
    const char *junit_path = so.junit_path;
    const int verbose = so.verbose, n_only = so.n_only, n_skip = so.n_skip;
    const char *const *only = so.only, *const *skip = so.skip;
    const fm_check_options opt = a.opt;

    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/manifest.json", suite) >= sizeof path)
        return cli_fail(cmd, FM_ERR_INVALID, "--suite %s: path too long", suite);
    char *text = cli_read_small_file(path, 64u << 20); /* FIFOs and /dev/zero refused */
    if (!text) return cli_fail(cmd, FM_ERR_IO, "cannot read %s: %s", path,
                               errno == ENODEV ? "not a regular file" :
                               errno == EFBIG ? "larger than 64 MiB" : strerror(errno));
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *format = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
    if (!root || !cJSON_IsString(format) || strcmp(format->valuestring, "flashmask-suite") != 0 ||
        !cJSON_IsArray(cases) || cJSON_GetArraySize(cases) == 0) {
        cJSON_Delete(root);
        return cli_fail(cmd, FM_ERR_FORMAT,
                        "%s: not a flashmask suite manifest (need \"format\": "
                        "\"flashmask-suite\" and a non-empty \"cases\" array)", path);
    }

    int passed = 0, failed = 0, invalid = 0, changed = 0, skipped = 0;
    cJSON *out_json = cJSON_CreateObject(); /* what --json writes */
    cJSON_AddStringToObject(out_json, "suite", suite);
    cJSON_AddStringToObject(out_json, "candidates", cands);
    cJSON *out_cases = cJSON_AddArrayToObject(out_json, "cases");
    printf("%-40s %-9s %-7s %-6s %10s  %s\n", "case", "dtype", "verdict", "worst",
           "err/bound", "details");
    const cJSON *entry;
    cJSON_ArrayForEach(entry, cases) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "name");
        if ((n_only && !matches(only, n_only, entry)) || matches(skip, n_skip, entry)) {
            skipped++;
            continue;
        }
        char case_dir[4096], cand_dir[4096], summary[256];
        int rc_bad = 0; /* a manifest entry this command cannot use: the suite is broken */
        if (!cJSON_IsString(name) || strchr(name->valuestring, '/') ||
            name->valuestring[0] == '.')
            rc_bad = cli_fail(cmd, FM_ERR_FORMAT, "%s: a case without a plain \"name\"", path);
        else if ((size_t)snprintf(case_dir, sizeof case_dir, "%s/%s", suite,
                                  name->valuestring) >= sizeof case_dir ||
                 (size_t)snprintf(cand_dir, sizeof cand_dir, "%s/%s", cands,
                                  name->valuestring) >= sizeof cand_dir)
            rc_bad = cli_fail(cmd, FM_ERR_INVALID, "case %s: path too long", name->valuestring);
        if (rc_bad) {
            cJSON_Delete(root);
            cJSON_Delete(out_json);
            return rc_bad;
        }
        fm_check_report rep;
        fm_status st = fm_check_dirs(case_dir, cand_dir, &opt, &rep, summary, sizeof summary);
        cJSON *jc = cJSON_CreateObject();
        cJSON_AddStringToObject(jc, "name", name->valuestring);
        cJSON_AddItemToArray(out_cases, jc);
        if (st != FM_OK) {
            cJSON_AddStringToObject(jc, "verdict", "invalid");
            cJSON_AddStringToObject(jc, "error", fm_last_error());
            invalid++;
            printf("%-40s %-9s %-7s %-6s %10s  %s: %s\n", name->valuestring, "-", "INVALID", "-",
                   "-", fm_status_string(st), fm_last_error());
            changed += fm_case_verify_digest(case_dir, NULL) != FM_OK; /* a broken suite */
            continue;
        }
        const char *wname;
        double ratio;
        worst_tensor(&rep, &wname, &ratio);
        /* details: the failing tensors, then the first one's reason */
        char details[512] = "";
        size_t used = 0;
        int first = -1;
        for (int t = 0; t < rep.n_tensors && used < sizeof details; t++)
            if (!rep.tensor[t].pass) {
                if (first < 0) first = t;
                used += (size_t)snprintf(details + used, sizeof details - used, "%s%s",
                                         used ? "," : "fails ", rep.tensor[t].name);
            }
        if (first >= 0 && used < sizeof details)
            snprintf(details + used, sizeof details - used, "; %s: %s", rep.tensor[first].name,
                     rep.tensor[first].why);
        rep.pass ? passed++ : failed++;
        cJSON_AddStringToObject(jc, "verdict", rep.pass ? "pass" : "fail");
        char *rj = NULL;
        if (fm_check_report_to_json(&rep, &rj) == FM_OK) {
            cJSON_AddItemToObject(jc, "report", cJSON_Parse(rj));
            free(rj);
        }
        printf("%-40s %-9s %-7s %-6s %10.3g  %s\n", name->valuestring,
               fm_dtype_name(rep.options.dtype), rep.pass ? "pass" : "FAIL", wname, ratio,
               details);
        if (verbose) {
            printf("  %s\n", summary);
            fm_check_report_print(&rep, stdout);
        }
    }
    cJSON_Delete(root);
    printf("suite %s, candidates %s: %d cases: %d pass, %d FAIL, %d invalid or missing"
           "%s%d skipped by --only/--skip\n", suite, cands, passed + failed + invalid, passed,
           failed, invalid, ", ", skipped);
    cJSON_AddNumberToObject(out_json, "pass", passed);
    cJSON_AddNumberToObject(out_json, "fail", failed);
    cJSON_AddNumberToObject(out_json, "invalid", invalid);
    cJSON_AddNumberToObject(out_json, "skipped", skipped);
    cJSON_AddStringToObject(out_json, "rule", fm_check_rule_name((fm_check_rule)opt.rule));
    rc = changed ? 2 : (failed || invalid) ? 1 : 0; /* a changed case: exit 2 */
    if (changed)
        fprintf(stderr, "flashmask check-suite: malformed file: %d case(s) of %s changed after "
                "they were written (see above)\n", changed, suite);
    else if (passed + failed + invalid == 0)
        rc = cli_fail(cmd, FM_ERR_INVALID, "no case of %s selected by --only/--skip", suite);
    if (json_path) {
        char *text = cJSON_Print(out_json);
        int ok = cli_write_text(json_path, text);
        free(text);
        if (!ok) rc = cli_fail(cmd, FM_ERR_IO, "--json %s: %s", json_path,
                               errno == EEXIST ? "exists; remove it first" : strerror(errno));
    }
    if (junit_path && !junit_write_suite(junit_path, out_json))
        rc = cli_fail(cmd, FM_ERR_IO, "cannot write %s", junit_path);
    cJSON_Delete(out_json);
    return rc;
}
