/* tools/cmd_version.c — `flashmask version [--json]`: the library version and, for each
 * implementation, whether it can run here (and if not, why); --json prints the same as one JSON
 * object on stdout ({"version", "headers_version", "implementations": {name: {"available",
 * "reason"}}}). Layer: tools CLI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "cli.h"

static int print_json(void)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", fm_version());
    cJSON_AddStringToObject(root, "headers_version", FM_VERSION_STRING);
    cJSON *impls = cJSON_AddObjectToObject(root, "implementations");
    for (int impl = 0; impl < FM_IMPL_COUNT; impl++) {
        fm_status st = fm_impl_available((fm_impl)impl);
        cJSON *o = cJSON_AddObjectToObject(impls, fm_impl_name((fm_impl)impl));
        cJSON_AddBoolToObject(o, "available", st == FM_OK);
        cJSON_AddStringToObject(o, "reason", st == FM_OK ? "" : fm_last_error());
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text)
        return cli_fail("version", FM_ERR_NOMEM, "cannot format the JSON output");
    printf("%s\n", text);
    free(text);
    return 0;
}

int cmd_version(int argc, char **argv)
{
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("usage: flashmask version [--json]\n"
                   "Prints the version and, per implementation, 'available' or why not;\n"
                   "--json: the same as one JSON object on stdout.\n");
            return 0;
        }
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
            continue;
        }
        return cli_fail("version", FM_ERR_INVALID, "unexpected argument '%s'", argv[i]);
    }
    if (json)
        return print_json();
    printf("libflashmask %s\n", fm_version());
    for (int impl = 0; impl < FM_IMPL_COUNT; impl++) {
        fm_status st = fm_impl_available((fm_impl)impl);
        printf("  %-14s %s%s%s\n", fm_impl_name((fm_impl)impl),
               st == FM_OK ? "available" : fm_status_string(st), st == FM_OK ? "" : ": ",
               st == FM_OK ? "" : fm_last_error());
    }
    return 0;
}
