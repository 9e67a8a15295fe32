/* tools/main.c — `flashmask`, the command-line tool: looks the subcommand up in the table of
 * tools/commands.h and runs it. Layer: tools CLI, the top of the stack
 * (core <- masks <- reference/cpu/cuda <- io/oracle <- tools).
 *
 * Exit codes (every subcommand): 0 ok, 2 invalid input (bad flag, malformed or mismatched case),
 * 3 implementation unavailable here (not built, no device), 1 anything else.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "flashmask.h"
#include "commands.h"

/* The table: one entry per FM_COMMAND line of commands.h. */
#define FM_COMMAND(name, help) {#name, help, cmd_##name},
static const fm_command commands[] = {FM_COMMANDS};
#undef FM_COMMAND

static const size_t n_commands = sizeof commands / sizeof commands[0];

/* Table names are C identifiers (gen_suite); users type them with dashes (gen-suite). */
static int same_command(const char *typed, const char *name)
{
    for (; *typed && *name; typed++, name++)
        if (*typed != *name && !(*typed == '-' && *name == '_')) return 0;
    return *typed == *name;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: flashmask <command> [options]    (flashmask <command> --help for its options)\n"
            "\n"
            "libflashmask %s: the FlashMask float64 oracle, a tiled CPU layer and CUDA kernels.\n"
            "\n"
            "commands:\n",
            FM_VERSION_STRING);
    for (size_t i = 0; i < n_commands; i++) {
        char shown[32];
        snprintf(shown, sizeof shown, "%s", commands[i].name);
        for (char *c = shown; *c; c++) *c = *c == '_' ? '-' : *c; /* gen_suite -> gen-suite */
        fprintf(out, "  %-13s %s\n", shown, commands[i].help);
    }
    fprintf(out, "  %-13s %s\n", "help", "this list");
    fprintf(out, "\nexit codes: 0 ok, 2 invalid input, 3 implementation unavailable, "
                 "1 other failure\n");
}

int main(int argc, char **argv)
{
    cli_blas_reexec(argv); /* OpenBLAS under ulimit -v (tools/cli.c) */
    /* FM_CPU_ISA=portable|avx2|avx512 forces the cpu layer's row kernels (measurements) */
    const char *isa = getenv("FM_CPU_ISA");
    if (isa && *isa && fm_cpu_set_isa(isa) != FM_OK) {
        fprintf(stderr, "flashmask: FM_CPU_ISA=%s: %s\n", isa, fm_last_error());
        return 2;
    }
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || cli_is_help(name)) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0) name = "version";
    for (size_t i = 0; i < n_commands; i++)
        if (same_command(name, commands[i].name)) {
            int rc = cli_startup(name, argc - 1, argv + 1);
            return rc ? rc : commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "flashmask: %s: unknown command '%s' (try: flashmask help)\n",
            fm_status_string(FM_ERR_INVALID), name);
    return fm_status_exit_code(FM_ERR_INVALID);
}
