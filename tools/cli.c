/* tools/cli.c — the helpers of tools/cli.h: one error format for the whole CLI, option
 * matching and strict number parsing. Layer: tools CLI. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <signal.h>
#include <sys/resource.h>

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

int cli_parse_string_options(const char *cmd, int argc, char **argv, const cli_string_opt *table,
                             int n, cli_problem_opts *problem, int (*usage)(void),
                             int *exit_code)
{
    *exit_code = 2;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            *exit_code = usage();
            return 0;
        }
        int r = problem ? cli_problem_option(cmd, argc, argv, &i, problem) : 0;
        for (int k = 0; k < n && r == 0; k++) r = cli_option(cmd, argc, argv, &i, table[k].flag,
                                                             table[k].value);
        if (r < 0) return 0;
        if (r == 0) {
            cli_fail(cmd, FM_ERR_INVALID, "unexpected argument '%s' (see %s --help)", argv[i],
                     cmd);
            return 0;
        }
    }
    for (int k = 0; k < n; k++)
        if (table[k].required && !*table[k].value) {
            cli_fail(cmd, FM_ERR_INVALID, "%s is required (see %s --help)", table[k].required,
                     cmd);
            return 0;
        }
    return 1;
}

fm_status cli_int64(const char *cmd, const char *flag, const char *text, int64_t min,
                    int64_t max, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    /* strtoll skips leading white space: refuse it too (" 7" is not a strict integer) */
    if (text[0] == '\0' || isspace((unsigned char)text[0]) || *end != '\0' || errno == ERANGE) {
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
    if (text[0] == '\0' || text[0] == '-' || text[0] == '+' || isspace((unsigned char)text[0])) {
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

int cli_check_option(const char *cmd, int argc, char **argv, int *i, fm_check_options *opt,
                     const char **dtype_name, const char **json_path)
{
    int m;
    if ((m = cli_option(cmd, argc, argv, i, "--dtype", dtype_name)) != 0) {
        if (m > 0 && strcmp(*dtype_name, "float64") == 0) {
            cli_fail(cmd, FM_ERR_INVALID,
                     "--dtype float64: the rule judges float32, float16 or bfloat16");
            return -1;
        }
        return m;
    }
    /* the options that are plain flags of fm_check_options */
    int *const flag_field[] = {&opt->recompute, &opt->naive, &opt->allow_fa2_inf_lse,
                               &opt->forward_only};
    static const char *const flag_name[] = {"--recompute", "--naive", "--allow-fa2-inf-lse",
                                            "--forward-only"};
    for (size_t f = 0; f < sizeof flag_name / sizeof flag_name[0]; f++)
        if (strcmp(argv[*i], flag_name[f]) == 0) {
            *flag_field[f] = 1;
            return 1;
        }
    if ((m = cli_option(cmd, argc, argv, i, "--json", json_path)) != 0) return m;
    const char *rule = NULL;
    if ((m = cli_option(cmd, argc, argv, i, "--rule", &rule)) != 0) {
        fm_check_rule r;
        if (m < 0) return m;
        if (fm_check_rule_from_name(rule, &r) != FM_OK) {
            cli_fail(cmd, FM_ERR_INVALID, "--rule %s: expected derived (default) or fa", rule);
            return -1;
        }
        opt->rule = (int)r;
        return 1;
    }
    return 0;
}

int cli_check_parse(const char *cmd, int argc, char **argv, cli_check_args *a,
                    void (*usage)(FILE *out),
                    int (*extra)(void *ctx, const char *cmd, int argc, char **argv, int *i),
                    void *ctx, int *exit_code)
{
    *exit_code = 2;
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            usage(stdout);
            *exit_code = 0;
            return 0;
        }
        int m = cli_option(cmd, argc, argv, &i, a->dir_flag, &a->dir);
        if (m == 0) m = cli_option(cmd, argc, argv, &i, a->cand_flag, &a->cand);
        if (m == 0) m = cli_check_option(cmd, argc, argv, &i, &a->opt, &a->dtype_name,
                                         &a->json_path);
        if (m == 0 && extra) m = extra(ctx, cmd, argc, argv, &i);
        if (m < 0) return 0;
        if (m == 0) {
            usage(stderr);
            *exit_code = cli_fail(cmd, FM_ERR_INVALID, "unexpected argument '%s'", argv[i]);
            return 0;
        }
    }
    if (!a->dir || !a->cand) {
        usage(stderr);
        *exit_code = cli_fail(cmd, FM_ERR_INVALID, "%s and %s are required", a->dir_flag,
                              a->cand_flag);
        return 0;
    }
    fm_status st = a->dtype_name ? fm_dtype_from_name(a->dtype_name, &a->opt.dtype) : FM_OK;
    if (st != FM_OK) {
        *exit_code = cli_report(cmd, st);
        return 0;
    }
    return 1;
}

int cli_write_text(const char *path, const char *text)
{
    /* atomic and never over an existing file: the text goes to a new temporary file beside
     * `path`, which link(2) then gives its name; link fails with EEXIST where a file (a
     * candidate's out.npy, a FIFO, a device) already has it, and the temporary is removed */
    if (!text || !path || !*path) {
        errno = EINVAL;
        return 0;
    }
    size_t n = strlen(path);
    char *tmp = malloc(n + 32);
    if (!tmp) return 0;
    const char *slash = strrchr(path, '/');
    size_t dir = slash ? (size_t)(slash - path) + 1 : 0;
    snprintf(tmp, n + 32, "%.*s.flashmask-tmp-%ld", (int)dir, path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0644);
    if (fd < 0) {
        free(tmp);
        return 0;
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && fputs(text, f) >= 0 && fputc('\n', f) != EOF && fflush(f) == 0 &&
             fsync(fd) == 0;
    int saved = errno;
    if (f) ok = fclose(f) == 0 && ok;
    else close(fd);
    if (ok && link(tmp, path) != 0) ok = 0, saved = errno;
    unlink(tmp);
    free(tmp);
    errno = saved;
    return ok;
}

char *cli_read_small_file(const char *path, size_t max_bytes)
{
    /* non-blocking: a FIFO must not block the reader; only regular files; a size cap checked
     * before reading, and no more than that many bytes read even if the file grows */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > max_bytes) {
        int e = fstat(fd, &sb) != 0 ? errno : !S_ISREG(sb.st_mode) ? ENODEV : EFBIG;
        close(fd);
        errno = e;
        return NULL;
    }
    size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    size_t got = 0;
    ssize_t r = 1;
    while (buf && got < size && (r = read(fd, buf + got, size - got)) > 0) got += (size_t)r;
    close(fd);
    if (!buf || r < 0) {
        free(buf);
        return NULL;
    }
    buf[got] = '\0';
    return buf;
}

/* ---------------------------------------------------------------- problem options */

const char cli_problem_usage[] =
    "  --batch B          batch size\n"
    "  --q-heads H        query heads\n"
    "  --kv-heads H       key/value heads, divides --q-heads (default: = q-heads)\n"
    "  --mask-heads H     mask heads, divides --q-heads (default 1)\n"
    "  --seqlen-q S       query length;  --seqlen-k S  key length (default: = seqlen-q);\n"
    "  --seqlen S         both\n"
    "  --head-dim D       head dimension\n"
    "  --causal A         bottom_right (default) or top_left: alignment of causal families\n"
    "  --dtype T          float64, float32, float16 or bfloat16 (default: above)\n"
    "  --seed N           seed of the inputs (0 .. 2^53)\n";

int cli_problem_option(const char *cmd, int argc, char **argv, int *i, cli_problem_opts *o)
{
    static const struct {
        const char *flag;
        size_t offset;
    } ints[] = {
        {"--batch", offsetof(cli_problem_opts, batch)},
        {"--q-heads", offsetof(cli_problem_opts, q_heads)},
        {"--kv-heads", offsetof(cli_problem_opts, kv_heads)},
        {"--mask-heads", offsetof(cli_problem_opts, mask_heads)},
        {"--seqlen-q", offsetof(cli_problem_opts, seqlen_q)},
        {"--seqlen-k", offsetof(cli_problem_opts, seqlen_k)},
        {"--head-dim", offsetof(cli_problem_opts, head_dim)},
    };
    const char *val;
    int r;
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        if ((r = cli_option(cmd, argc, argv, i, ints[k].flag, &val)) == 0) continue;
        if (r < 0) return -1;
        int64_t *field = (int64_t *)((char *)o + ints[k].offset);
        return cli_int64(cmd, ints[k].flag, val, 1, INT32_MAX, field) == FM_OK ? 1 : -1;
    }
    if ((r = cli_option(cmd, argc, argv, i, "--seqlen", &val)) != 0) {
        if (r < 0 || cli_int64(cmd, "--seqlen", val, 1, INT32_MAX, &o->seqlen_q) != FM_OK)
            return -1;
        o->seqlen_k = o->seqlen_q;
        return 1;
    }
    if ((r = cli_option(cmd, argc, argv, i, "--causal", &val)) != 0) {
        if (r < 0) return -1;
        if (fm_causal_from_name(val, &o->causal) != FM_OK || o->causal == FM_CAUSAL_NONE) {
            cli_fail(cmd, FM_ERR_INVALID, "--causal '%s': expected bottom_right or top_left (the "
                     "alignment causal families use; the others are never causal)", val);
            return -1;
        }
        return 1;
    }
    if ((r = cli_option(cmd, argc, argv, i, "--dtype", &val)) != 0) {
        if (r < 0) return -1;
        if (fm_dtype_from_name(val, &o->dtype) != FM_OK) {
            cli_report(cmd, FM_ERR_INVALID);
            return -1;
        }
        o->dtype_given = 1;
        return 1;
    }
    if ((r = cli_option(cmd, argc, argv, i, "--seed", &val)) != 0) {
        if (r < 0 || cli_uint64(cmd, "--seed", val, &o->seed) != FM_OK) return -1;
        if (o->seed > (1ull << 53)) {
            cli_fail(cmd, FM_ERR_INVALID, "--seed %s: must be <= 2^53 (JSON integers)", val);
            return -1;
        }
        return 1;
    }
    return 0;
}

fm_status cli_problem_finish(const char *cmd, cli_problem_opts *o, const cli_problem_opts *defaults)
{
    if (!o->batch) o->batch = defaults->batch;
    if (!o->q_heads) o->q_heads = defaults->q_heads;
    if (!o->seqlen_q) o->seqlen_q = defaults->seqlen_q;
    if (!o->head_dim) o->head_dim = defaults->head_dim;
    if (!o->dtype_given) o->dtype = defaults->dtype;
    if (!o->kv_heads) o->kv_heads = o->q_heads;
    if (!o->seqlen_k) o->seqlen_k = o->seqlen_q;
    if (!o->mask_heads) o->mask_heads = 1;
    if (o->causal == FM_CAUSAL_NONE) o->causal = FM_CAUSAL_BOTTOM_RIGHT;
    if (o->q_heads % o->kv_heads != 0) {
        cli_fail(cmd, FM_ERR_INVALID, "--kv-heads %lld does not divide --q-heads %lld",
                 (long long)o->kv_heads, (long long)o->q_heads);
        return FM_ERR_INVALID;
    }
    if (o->q_heads % o->mask_heads != 0) {
        cli_fail(cmd, FM_ERR_INVALID, "--mask-heads %lld does not divide --q-heads %lld",
                 (long long)o->mask_heads, (long long)o->q_heads);
        return FM_ERR_INVALID;
    }
    return FM_OK;
}

void cli_json_add_sizes(cJSON *o, const int64_t sizes[7])
{
    static const char *const names[7] = {"batch",    "q_heads",  "kv_heads", "mask_heads",
                                         "seqlen_q", "seqlen_k", "head_dim"};
    for (int k = 0; k < 7; k++) cJSON_AddNumberToObject(o, names[k], (double)sizes[k]);
}

static void fill_normal(fm_rng *rng, double *x, size_t n, fm_dtype dtype)
{
    for (size_t i = 0; i < n; i++) x[i] = fm_round_to_dtype(fm_rng_normal(rng), dtype);
}

void cli_random_inputs(const fm_problem *p, uint64_t seed, double *q, double *k, double *v,
                       double *dout)
{
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    fill_normal(&rng, q, nq, p->dtype);
    fill_normal(&rng, k, nkv, p->dtype);
    fill_normal(&rng, v, nkv, p->dtype);
    fill_normal(&rng, dout, nq, p->dtype);
}

int cli_results_alloc(const fm_problem *p, fm_results *r)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    r->out = calloc(nq, sizeof(double));
    r->lse = calloc(fm_problem_lse_elems(p), sizeof(double));
    r->dq = calloc(nq, sizeof(double));
    r->dk = calloc(nkv, sizeof(double));
    r->dv = calloc(nkv, sizeof(double));
    return r->out && r->lse && r->dq && r->dk && r->dv;
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---------------------------------------------------------------- start-up */

/* OpenBLAS 0.3.21 (Debian 12) loops forever in blas_memory_alloc when it cannot map its work
 * buffer (128 MiB here), which happens under an address-space limit (ulimit -v) once the
 * process has used the room (fixed upstream after 0.3.21). Two steps keep the CLI out of it:
 * cli_blas_reexec runs the tool again with OPENBLAS_NUM_THREADS=1 under such a limit (read
 * when OpenBLAS loads: no worker threads, their stacks and malloc arenas, and one buffer serves
 * every call, since the oracle calls BLAS from one thread), and blas_guard, for the commands
 * that compute, checks that the buffer fits and maps it at once with a first small product;
 * later calls reuse it, so a shortage shows as malloc failing (out of memory, exit 1). */
static int memory_limited(void)
{
    struct rlimit as, data;
    return (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) ||
           (getrlimit(RLIMIT_DATA, &data) == 0 && data.rlim_cur != RLIM_INFINITY);
}

void cli_blas_reexec(char **argv)
{
    const char *threads = getenv("OPENBLAS_NUM_THREADS");
    if (!memory_limited() || (threads && strcmp(threads, "1") == 0)) return;
    if (setenv("OPENBLAS_NUM_THREADS", "1", 1) != 0) return;
    execv("/proc/self/exe", argv); /* on failure: carry on, as before */
}

enum { BLAS_BUFFER_BYTES = 128 << 20 }; /* OpenBLAS's BUFFER_SIZE in Debian's build */

static int blas_guard(const char *cmd)
{
    if (!memory_limited()) return 0;
    /* room for the buffer (and a little more), or a clear error now */
    size_t probe = (size_t)BLAS_BUFFER_BYTES + (8u << 20);
    void *room = mmap(NULL, probe, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (room == MAP_FAILED)
        return cli_fail(cmd, FM_ERR_NOMEM, "the memory limit (ulimit -v) leaves less than %d MiB "
                        "of address space: OpenBLAS needs a %d MiB work buffer (and would wait "
                        "forever for it)", (int)(probe >> 20), BLAS_BUFFER_BYTES >> 20);
    munmap(room, probe);
    openblas_set_num_threads(1);
    enum { N = 192 }; /* above OpenBLAS's small-matrix path: the packing buffer is mapped */
    double *a = calloc((size_t)3 * N * N, sizeof(double));
    if (!a) return cli_fail(cmd, FM_ERR_NOMEM, "cannot allocate 1 MiB");
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0, a, N, a + N * N, N, 0.0,
                a + 2 * N * N, N);
    free(a);
    return 0;
}

int cli_startup(const char *cmd, int argc, char **argv)
{
    /* a file growing past ulimit -f: write(2) fails with EFBIG and the command reports an
     * input/output error, instead of SIGXFSZ killing it (exit 153) */
    signal(SIGXFSZ, SIG_IGN);
    /* a flag given twice is a mistake to report, not "the last one wins"; the flags that
     * collect a list repeat: gen/show --param, demo --family and --impl */
    int is_demo = strcmp(cmd, "demo") == 0;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0 || strncmp(argv[i], "--param", 7) == 0) continue;
        if (is_demo && (strncmp(argv[i], "--family", 8) == 0 || strncmp(argv[i], "--impl", 6) == 0))
            continue;
        size_t n = strcspn(argv[i], "=");
        for (int j = 1; j < i; j++)
            if (strncmp(argv[j], "--", 2) == 0 && strcspn(argv[j], "=") == n &&
                strncmp(argv[i], argv[j], n) == 0)
                return cli_fail(cmd, FM_ERR_INVALID, "option %.*s is given twice", (int)n,
                                argv[i]);
    }
    /* the commands that compute (the others never call BLAS) */
    static const char *const computing[] = {"gen", "gen-suite", "gen_suite", "gen-dense",
                                            "gen_dense", "run", "run-dense", "run_dense",
                                            "check", "check-suite", "check_suite", "demo",
                                            "bench"};
    for (size_t k = 0; k < sizeof computing / sizeof computing[0]; k++)
        if (strcmp(cmd, computing[k]) == 0) return blas_guard(cmd);
    return 0;
}
