/* tools/cli.h — small helpers shared by the `flashmask` subcommands: reporting errors in the
 * one format the CLI uses, reading "--flag value" / "--flag=value" options and parsing numbers
 * strictly. Layer: tools CLI (uses only the public API, flashmask.h).
 */
#ifndef FM_TOOLS_CLI_H
#define FM_TOOLS_CLI_H

#include <stdint.h>

#include "flashmask.h"
#include "flashmask/oracle.h" /* fm_check_options, for cli_check_option */

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

/* Table-driven reading of a subcommand whose options all take a value: argv[1 .. argc) must
 * be options of `table` ("--flag VALUE" or "--flag=VALUE", the text into *value), problem
 * options (cli_problem_option, when `problem` is not NULL) or -h/--help. An option whose
 * `required` is set (the name to print, e.g. "--case DIR") must be given. Returns 1 when the
 * command goes on; 0 when it must return *exit_code: usage()'s for -h/--help, 2 after an error
 * naming `cmd` was printed (an unknown argument, a missing value, a required option absent). */
typedef struct cli_string_opt {
    const char *flag;
    const char **value;
    const char *required;
} cli_string_opt;

typedef struct cli_problem_opts cli_problem_opts;
int cli_parse_string_options(const char *cmd, int argc, char **argv, const cli_string_opt *table,
                             int n, cli_problem_opts *problem, int (*usage)(void),
                             int *exit_code);

/* Strict decimal integer in [min, max]: no trailing characters, no overflow. On failure prints
 * an error naming `flag` and the text and returns FM_ERR_INVALID. */
fm_status cli_int64(const char *cmd, const char *flag, const char *text, int64_t min,
                    int64_t max, int64_t *out);
fm_status cli_uint64(const char *cmd, const char *flag, const char *text, uint64_t *out);

/* True when argv[*i] is -h or --help. */
int cli_is_help(const char *arg);

/* The judging options that `check` and `check-suite` share, at argv[*i]: --dtype X (its name
 * into *dtype_name; float64 refused), --json FILE (into *json_path), --allow-fa2-inf-lse,
 * --forward-only, --recompute and --naive (set in *opt). 1 matched, 0 not ours, -1 error (already printed). */
int cli_check_option(const char *cmd, int argc, char **argv, int *i, fm_check_options *opt,
                     const char **dtype_name, const char **json_path);

/* The command line of `check` and `check-suite`: the directory judged against (`dir_flag`:
 * --case, --suite) and the candidates (`cand_flag`), both required; the judging options
 * (cli_check_option, --dtype parsed into opt.dtype); and the command's own options through
 * `extra` (NULL: none; 1 matched, 0 not ours, -1 error already printed). -h/--help prints
 * usage(stdout); an unexpected argument or a missing directory prints usage(stderr) and an
 * error. Returns 1 when the command goes on, 0 when it must return *exit_code. */
typedef struct cli_check_args {
    const char *dir_flag, *cand_flag; /* set by the command */
    const char *dir, *cand, *dtype_name, *json_path;
    fm_check_options opt;
} cli_check_args;

int cli_check_parse(const char *cmd, int argc, char **argv, cli_check_args *a,
                    void (*usage)(FILE *out),
                    int (*extra)(void *ctx, const char *cmd, int argc, char **argv, int *i),
                    void *ctx, int *exit_code);

/* Writes `text` and a newline to `path` atomically (a temporary file beside it, then link(2)):
 * `path` appears complete or not at all, and an existing file is never replaced. Returns 1 on
 * success, 0 with errno set (EEXIST when path exists) otherwise. */
int cli_write_text(const char *path, const char *text);

/* The whole of a regular file of at most max_bytes, NUL-terminated (free()); NULL with errno
 * set otherwise (ENODEV: a FIFO, device or directory, never blocked on; EFBIG: too large). */
char *cli_read_small_file(const char *path, size_t max_bytes);

/* ---------------------------------------------------------------- problem options */

/* The shape options that gen and demo share. Zero means "not given": cli_problem_finish fills
 * kv_heads = q_heads, seqlen_k = seqlen_q and the caller's defaults for the rest. */
typedef struct cli_problem_opts {
    int64_t batch, q_heads, kv_heads, mask_heads, seqlen_q, seqlen_k, head_dim;
    fm_causal causal; /* alignment for causal families; default bottom_right */
    fm_dtype dtype;
    uint64_t seed;
    int dtype_given;
} cli_problem_opts;

/* Matches one of --batch --q-heads --kv-heads --mask-heads --seqlen-q --seqlen-k --seqlen
 * (both) --head-dim --causal --dtype --seed at argv[*i]. 1 matched, 0 not ours, -1 error. */
int cli_problem_option(const char *cmd, int argc, char **argv, int *i, cli_problem_opts *o);

/* Fills unset fields: batch, q_heads, seqlen_q, head_dim and (without --dtype) dtype from the
 * command's `defaults`, then kv_heads = q_heads, seqlen_k = seqlen_q, mask_heads = 1, causal
 * bottom_right; checks divisibility (message names both values). */
fm_status cli_problem_finish(const char *cmd, cli_problem_opts *o,
                             const cli_problem_opts *defaults);

/* The seven sizes of a problem and its mask, {batch, q_heads, kv_heads, mask_heads, seqlen_q,
 * seqlen_k, head_dim} in that order, as number members of the JSON object `o` under those names
 * (the reports of demo, show_dense and the gen-suite manifest). */
struct cJSON;
void cli_json_add_sizes(struct cJSON *o, const int64_t sizes[7]);

/* Text of the problem options for usage messages. */
extern const char cli_problem_usage[];

/* Standard normal inputs of problem p from `seed`, drawn in the order q, k, v, dout and
 * rounded to p->dtype, so that one seed gives the same case everywhere. */
void cli_random_inputs(const fm_problem *p, uint64_t seed, double *q, double *k, double *v,
                       double *dout);

/* Zeroed float64 buffers for every output of problem p (out, lse, dq, dk, dv). Returns 1 on
 * success, 0 when one could not be allocated; either way fm_results_free(r) releases them. */
int cli_results_alloc(const fm_problem *p, fm_results *r);

/* Under a memory limit (ulimit -v / -d), runs the tool again (execv of /proc/self/exe with the
 * same argv) with OPENBLAS_NUM_THREADS=1, unless it already is; tools/main.c calls it first. */
void cli_blas_reexec(char **argv);

/* What every subcommand does first (tools/main.c): ignores SIGXFSZ (a write past ulimit -f
 * becomes an error), refuses an option given twice (exit 2; --param may repeat) and, under a
 * memory limit, keeps OpenBLAS from spinning forever on a failed buffer allocation. Returns 0,
 * or the exit code after printing an error for `cmd`. */
int cli_startup(const char *cmd, int argc, char **argv);

/* Monotonic wall-clock seconds. */
double cli_now(void);

#endif
