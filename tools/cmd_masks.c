/* tools/cmd_masks.c — `flashmask masks`: the twelve mask families (docs/spec.md §4), whether each uses
 * the causal rule, its parameters (fm_family_help) and, with --seqlen, its default parameters
 * as the JSON that case.json's mask_params and `gen --param` use; --json prints the same as one
 * JSON document. Layer: tools CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

static int usage(void)
{
    printf("usage: flashmask masks [--seqlen S] [--json]\n"
           "Lists the mask families, their parameters (as `gen --param key=value` takes them)\n"
           "and, for sequence length S (default 1024, at most 2^20), the default parameters as\n"
           "JSON. --json: all of it as one JSON document on stdout ({\"seqlen\", \"families\":\n"
           "[{\"name\", \"causal\", \"help\", \"defaults\"}]}).\n");
    return 0;
}

int cmd_masks(int argc, char **argv)
{
    const char *cmd = "masks";
    int64_t seqlen = 1024;
    int as_json = 0;
    for (int i = 1; i < argc; i++) {
        const char *val;
        int r;
        if (cli_is_help(argv[i])) return usage();
        if ((r = cli_option(cmd, argc, argv, &i, "--seqlen", &val)) != 0) {
            if (r < 0) return 2;
            /* capped: the defaults are printed as JSON, and qk_sparse's hold S/16 spans (at
             * S = 2^31 that was minutes of work and gigabytes of text) */
            if (cli_int64(cmd, "--seqlen", val, 1, 1 << 20, &seqlen) != FM_OK) return 2;
            continue;
        }
        if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
            continue;
        }
        return cli_fail(cmd, FM_ERR_INVALID, "unexpected argument '%s'", argv[i]);
    }
    cJSON *root = as_json ? cJSON_CreateObject() : NULL;
    cJSON *fams = root ? cJSON_AddArrayToObject(root, "families") : NULL;
    if (root) cJSON_AddNumberToObject(root, "seqlen", (double)seqlen);
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        fm_mask_params params;
        char *json = NULL;
        fm_status st = fm_mask_params_default(&params, (fm_family)f, seqlen);
        if (st == FM_OK) st = fm_mask_params_to_json(&params, &json);
        fm_mask_params_free(&params);
        if (st != FM_OK) {
            cJSON_Delete(root);
            return cli_report(cmd, st);
        }
        if (root) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", fm_family_name((fm_family)f));
            cJSON_AddBoolToObject(o, "causal", fm_family_is_causal((fm_family)f));
            cJSON_AddStringToObject(o, "help", fm_family_help((fm_family)f));
            cJSON_AddItemToObject(o, "defaults", cJSON_Parse(json));
            cJSON_AddItemToArray(fams, o);
            free(json);
            continue;
        }
        printf("%-22s causal: %s\n  %s\n  default (S=%lld): %s\n\n", fm_family_name((fm_family)f),
               fm_family_is_causal((fm_family)f) ? "yes" : "no ",
               fm_family_help((fm_family)f), (long long)seqlen, json);
        free(json);
    }
    if (root) {
        char *text = cJSON_Print(root);
        cJSON_Delete(root);
        if (!text) return cli_fail(cmd, FM_ERR_NOMEM, "cannot format the JSON output");
        printf("%s\n", text);
        free(text);
        return 0;
    }
    printf("Causal families take --causal bottom_right (default) or top_left; the others use "
           "causal = none.\n");
    return 0;
}
