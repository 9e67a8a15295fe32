/* tools/cli.c — the helpers of tools/cli.h: one error format for the whole CLI, option
 * matching and strict number parsing. Layer: tools CLI. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cli_fail(const char *cmd, fm_status st, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "flashmask %s: %s: ", cmd, fm_status_string(st));
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return fm_status_exit_code(st);
}

int cli_report(const char *cmd, fm_status st)
{
    if (st == FM_OK) return 0;
    return cli_fail(cmd, st, "%s", fm_last_error());
}

int cli_option(const char *cmd, int argc, char **argv, int *i, const char *flag,
               const char **value)
{
    const char *arg = argv[*i];
    size_t n = strlen(flag);
    if (strncmp(arg, flag, n) != 0) return 0;
    if (arg[n] == '=') { /* --flag=value */
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0') return 0; /* a longer flag that merely starts the same way */
    if (*i + 1 >= argc) {
        cli_fail(cmd, FM_ERR_INVALID, "option %s needs a value", flag);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

fm_status cli_int64(const char *cmd, const char *flag, const char *text, int64_t min,
                    int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (text[0] == '\0' || *end != '\0' || errno == ERANGE) {
        cli_fail(cmd, FM_ERR_INVALID, "%s: '%s' is not an integer", flag, text);
        return FM_ERR_INVALID;
    }
    if (v < min || v > max) {
        cli_fail(cmd, FM_ERR_INVALID, "%s = %lld is outside [%" PRId64 ", %" PRId64 "]", flag, v,
                 min, max);
        return FM_ERR_INVALID;
    }
    *out = (int64_t)v;
    return FM_OK;
}

fm_status cli_uint64(const char *cmd, const char *flag, const char *text, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    /* strtoull accepts "-1" (wrapping it); refuse any sign explicitly */
    if (text[0] == '\0' || text[0] == '-' || text[0] == '+') {
        cli_fail(cmd, FM_ERR_INVALID, "%s: '%s' is not a non-negative integer", flag, text);
        return FM_ERR_INVALID;
    }
    unsigned long long v = strtoull(text, &end, 10);
    if (*end != '\0' || errno == ERANGE) {
        cli_fail(cmd, FM_ERR_INVALID, "%s: '%s' is not a non-negative integer", flag, text);
        return FM_ERR_INVALID;
    }
    *out = (uint64_t)v;
    return FM_OK;
}

int cli_is_help(const char *arg) { return strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0; }
