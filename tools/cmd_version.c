/* tools/cmd_version.c — `flashmask version`: the library version and, for each implementation,
 * whether it can run here (and if not, why). Layer: tools CLI. */
#include <stdio.h>

#include "cli.h"

int cmd_version(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            printf("usage: flashmask version\n"
                   "Prints the version and, per implementation, 'available' or why not.\n");
            return 0;
        }
        return cli_fail("version", FM_ERR_INVALID, "unexpected argument '%s'", argv[i]);
    }
    printf("libflashmask %s\n", FM_VERSION_STRING);
    for (int impl = 0; impl < FM_IMPL_COUNT; impl++) {
        fm_status st = fm_impl_available((fm_impl)impl);
        printf("  %-14s %s%s%s\n", fm_impl_name((fm_impl)impl),
               st == FM_OK ? "available" : fm_status_string(st), st == FM_OK ? "" : ": ",
               st == FM_OK ? "" : fm_last_error());
    }
    return 0;
}
