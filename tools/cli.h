/* tools/cli.h — small helpers shared by the `flashmask` subcommands: reporting errors in the
 * one format the CLI uses, reading "--flag value" / "--flag=value" options and parsing numbers
 * strictly. Layer: tools CLI (uses only the public API, flashmask.h).
 */
#ifndef FM_TOOLS_CLI_H
#define FM_TOOLS_CLI_H

#include <stdint.h>

#include "flashmask.h"

/* Prints "flashmask <cmd>: <fm_status_string(st)>: <message>" to stderr and returns the exit
 * code of `st` (fm_status_exit_code): 2 for invalid input, 3 for unavailable, ... */
int cli_fail(const char *cmd, fm_status st, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* The same, with the library's message (fm_last_error()). Returns 0 when st == FM_OK. */
int cli_report(const char *cmd, fm_status st);

/* Option matching. If argv[*i] is `flag` ("--case"), *value = argv[*i + 1] and *i advances;
 * if argv[*i] is "--case=VALUE", *value = "VALUE". Returns 1 when it matched, 0 when argv[*i]
 * is another argument, -1 (after printing an error for `cmd`) when the value is missing. */
int cli_option(const char *cmd, int argc, char **argv, int *i, const char *flag,
               const char **value);

/* Strict decimal integer in [min, max]: no trailing characters, no overflow. On failure prints
 * an error naming `flag` and the text and returns FM_ERR_INVALID. */
fm_status cli_int64(const char *cmd, const char *flag, const char *text, int64_t min,
                    int64_t max, int64_t *out);
fm_status cli_uint64(const char *cmd, const char *flag, const char *text, uint64_t *out);

/* True when argv[*i] is -h or --help. */
int cli_is_help(const char *arg);

#endif
