/* tools/cmd_bench.c — `flashmask bench`: the CPU layer's benchmark. Layer: tools CLI, on top of
 * cpu/ (and reference/ for the naive column). Also built into the meson benchmark target
 * (bench/meson.build), so there is one benchmark implementation.
 *
 * For each mask family (docs/spec.md §4, default parameters of masks/params.c) at one shape it measures,
 * in the same process and at the same thread count:
 *   - OpenBLAS sgemm (N x N x N, default N = 2048) right before and right after each family's
 *     repetition (their mean is that repetition's rate), so the ratio compares kernels measured
 *     within a second of each other on the same (possibly shared) machine;
 *   - fm_cpu_forward and fm_cpu_backward, GFLOP/s from allowed pairs (fm_problem_flops);
 *   - the ratio kernel / sgemm per repetition, reported as median [min, max] (the spread);
 *   - the tile density (fm_tile_density at the CPU layer's tile sizes) and the time relative to
 *     the full mask divided by the density (1.0 = time exactly proportional to tiles computed),
 *     per repetition, median [min, max]; each repetition sweeps every family once, so a family
 *     and the full mask are compared within one sweep (the full mask must be in the run);
 *   - where it fits (Sq*Sk doubles under --naive-mb), the float64 dense reference forward, which
 *     pays for every (i, j) pair whatever the mask.
 * The last line reports the process's peak resident memory (getrusage), for the memory target.
 * --json FILE and --svg FILE write the same results as JSON and as a plot of time against tile
 * density per family (tools/bench_report.c).
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_report.h"
#include "cli.h"

#define MAX_REPS 100

typedef struct bench_opts {
    int64_t batch, heads, seqlen, head_dim, threads, reps, gemm_n, naive_mb;
    int backward;
    int want[FM_FAMILY_COUNT]; /* families to run */
    const char *json_path, *svg_path; /* NULL: not written */
} bench_opts;

static double now_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Lets spinning worker threads go to sleep before the next timed kernel: OpenBLAS's pthreads
 * busy-wait for a while after each threaded sgemm (and OpenMP's after a parallel region); a
 * kernel timed right after would share the cores with them and look slow. */
static void settle(void)
{
    struct timespec pause = {0, 150 * 1000 * 1000};
    nanosleep(&pause, NULL);
}

/* Back-to-back calls needed for a timing of >= 20 ms, given one call's duration. */
static int calls_for(double seconds)
{
    if (!(seconds > 0.0)) return 1;
    double n = ceil(0.02 / seconds);
    return n < 1.0 ? 1 : n > 1000.0 ? 1000 : (int)n;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of x[0..n) (sorts a copy). */
static double median(const double *x, int n)
{
    double s[MAX_REPS];
    memcpy(s, x, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_double);
    return n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

static double min_of(const double *x, int n)
{
    double m = x[0];
    for (int i = 1; i < n; i++) m = x[i] < m ? x[i] : m;
    return m;
}

static double max_of(const double *x, int n)
{
    double m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    return m;
}

/* ---------------------------------------------------------------- sgemm */

typedef struct gemm_bench {
    int64_t n;
    float *a, *b, *c;
} gemm_bench;

static fm_status gemm_init(gemm_bench *g, int64_t n, fm_rng *rng)
{
    g->n = n;
    size_t e = (size_t)(n * n);
    g->a = malloc(e * sizeof(float)), g->b = malloc(e * sizeof(float));
    g->c = malloc(e * sizeof(float));
    if (!g->a || !g->b || !g->c) return FM_ERR_NOMEM;
    for (size_t i = 0; i < e; i++) {
        g->a[i] = (float)fm_rng_normal(rng);
        g->b[i] = (float)fm_rng_normal(rng);
    }
    return FM_OK;
}

static void gemm_free(gemm_bench *g)
{
    free(g->a), free(g->b), free(g->c);
}

/* GFLOP/s of one n^3 sgemm with OpenBLAS at `threads` threads. */
static double gemm_rate(const gemm_bench *g, int threads)
{
    const blasint n = (blasint)g->n;
    openblas_set_num_threads(threads);
    double t = now_seconds();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, n, n, 1.0f, g->a, n, g->b, n, 0.0f,
                g->c, n);
    t = now_seconds() - t;
    return 2.0 * (double)g->n * (double)g->n * (double)g->n / t * 1e-9;
}

/* ---------------------------------------------------------------- one family */

typedef struct bench_tensors {
    float *q, *k, *v, *out, *lse, *dout, *dq, *dk, *dv;
} bench_tensors;

/* One family's mask, its counts, and its timings per repetition. */
typedef struct family_run {
    fm_family family;
    fm_mask mask;
    double density, pair_fraction, fwd_flops, bwd_flops;
    double fwd[MAX_REPS], bwd[MAX_REPS], gemm[MAX_REPS]; /* seconds per call; GFLOP/s */
    double naive_s;
} family_run;

static fm_status family_prepare(const bench_opts *o, const fm_problem *p, fm_family f,
                                family_run *r)
{
    *r = (family_run){.family = f, .naive_s = NAN};
    fm_mask_params params;
    fm_status st = fm_mask_params_default(&params, f, o->seqlen);
    if (st != FM_OK) return st;
    st = fm_mask_build(&r->mask, &params, o->batch, 1, o->seqlen, o->seqlen,
                       FM_CAUSAL_BOTTOM_RIGHT);
    fm_mask_params_free(&params);
    if (st != FM_OK) return st;
    fm_tile_stats ts;
    if ((st = fm_mask_tile_stats(&r->mask, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K, &ts)) != FM_OK)
        return st;
    r->density = fm_tile_density(&ts);
    r->pair_fraction = (double)fm_mask_total_allowed_pairs(&r->mask) /
                       ((double)o->batch * (double)o->seqlen * (double)o->seqlen);
    r->fwd_flops = fm_problem_flops(p, &r->mask, 0);
    r->bwd_flops = fm_problem_flops(p, &r->mask, 1);
    return FM_OK;
}

/* One call of the forward (backward = 0) or the backward. */
static fm_status pass_call(const fm_problem *p, const fm_mask *m, const bench_tensors *t,
                           int backward)
{
    return backward ? fm_cpu_backward(p, m, t->q, t->k, t->v, t->out, t->lse, t->dout, t->dq,
                                      t->dk, t->dv, NULL)
                    : fm_cpu_forward(p, m, t->q, t->k, t->v, t->out, t->lse, NULL);
}

/* Seconds per call of one pass. One untimed call wakes the worker threads and the core clocks
 * after the pause, and says how long a call takes; short kernels are then timed over enough
 * back-to-back calls to last >= 20 ms (the mean per call is recorded). */
static fm_status time_pass(const fm_problem *p, const fm_mask *m, const bench_tensors *t,
                           int backward, double *seconds)
{
    double t0 = now_seconds();
    fm_status st = pass_call(p, m, t, backward);
    const int calls = calls_for(now_seconds() - t0);
    t0 = now_seconds();
    for (int c = 0; c < calls && st == FM_OK; c++) st = pass_call(p, m, t, backward);
    *seconds = (now_seconds() - t0) / calls;
    return st;
}

/* One repetition of one family: sgemm right before and right after the kernels, their mean
 * being this repetition's rate (drift of a shared machine over the repetition cancels to first
 * order), and the forward and backward per call. */
static fm_status family_time(const bench_opts *o, const fm_problem *p, const bench_tensors *t,
                             const gemm_bench *g, family_run *r, int rep)
{
    settle();
    double gemm_before = g ? gemm_rate(g, (int)o->threads) : NAN;
    settle();
    r->bwd[rep] = NAN;
    fm_status st = time_pass(p, &r->mask, t, 0, &r->fwd[rep]);
    if (st == FM_OK && o->backward) st = time_pass(p, &r->mask, t, 1, &r->bwd[rep]);
    if (st != FM_OK) return st;
    settle();
    r->gemm[rep] = g ? 0.5 * (gemm_before + gemm_rate(g, (int)o->threads)) : NAN;
    return FM_OK;
}

/* The naive column's tensors: the inputs widened to float64 once, and the outputs. */
typedef struct naive_tensors {
    double *q, *k, *v, *out, *lse;
} naive_tensors;

static void naive_free(naive_tensors *n)
{
    free(n->q), free(n->k), free(n->v), free(n->out), free(n->lse);
}

/* Allocates and fills *n where the naive column fits under --naive-mb (else leaves it empty). */
static fm_status naive_alloc(const bench_opts *o, const fm_problem *p, const bench_tensors *t,
                             naive_tensors *n)
{
    *n = (naive_tensors){0};
    if ((double)o->seqlen * (double)o->seqlen * 8.0 / 1048576.0 > (double)o->naive_mb)
        return FM_OK;
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    n->q = malloc(nq * sizeof(double)), n->k = malloc(nkv * sizeof(double));
    n->v = malloc(nkv * sizeof(double)), n->out = malloc(nq * sizeof(double));
    n->lse = malloc(fm_problem_lse_elems(p) * sizeof(double));
    if (!n->q || !n->k || !n->v || !n->out || !n->lse) {
        naive_free(n);
        return FM_ERR_NOMEM;
    }
    for (size_t i = 0; i < nq; i++) n->q[i] = t->q[i];
    for (size_t i = 0; i < nkv; i++) n->k[i] = t->k[i], n->v[i] = t->v[i];
    return FM_OK;
}

/* The naive column: the float64 dense reference, one forward, where it fits (n allocated). */
static fm_status family_naive(const bench_opts *o, const fm_problem *p, const naive_tensors *n,
                              family_run *r)
{
    if (!n->q) return FM_OK;
    openblas_set_num_threads((int)o->threads); /* the reference uses threaded BLAS */
    const double t0 = now_seconds();
    const fm_ref_options dense = {.backend = FM_REF_DENSE}; /* the column's meaning */
    fm_status st = fm_ref_forward_opts(p, &r->mask, &dense, n->q, n->k, n->v, n->out, n->lse);
    r->naive_s = now_seconds() - t0;
    return st;
}

/* The row of one family: medians and ranges over the repetitions. Time / density compares the
 * family with the full mask repetition by repetition (both timed in the same sweep over the
 * families, seconds apart), so a burst on a shared machine moves one repetition's ratio, not
 * the median; NaN without the full mask in the run. */
static bench_row family_row(const bench_opts *o, const family_run *r, const family_run *full)
{
    const int n = (int)o->reps;
    double fwd_ratio[MAX_REPS], bwd_ratio[MAX_REPS], fwd_prop[MAX_REPS], bwd_prop[MAX_REPS];
    for (int i = 0; i < n; i++) {
        fwd_ratio[i] = r->fwd_flops / r->fwd[i] * 1e-9 / r->gemm[i];
        bwd_ratio[i] = r->bwd_flops / r->bwd[i] * 1e-9 / r->gemm[i];
        fwd_prop[i] = full ? r->fwd[i] / full->fwd[i] / r->density : NAN;
        bwd_prop[i] = full ? r->bwd[i] / full->bwd[i] / r->density : NAN;
    }
    const double fwd_s = median(r->fwd, n), bwd_s = o->backward ? median(r->bwd, n) : NAN;
    return (bench_row){
        .family = fm_family_name(r->family), .density = r->density,
        .pair_fraction = r->pair_fraction, .fwd_ms = 1e3 * fwd_s,
        .fwd_gflops = r->fwd_flops / fwd_s * 1e-9, .bwd_ms = 1e3 * bwd_s,
        .bwd_gflops = r->bwd_flops / bwd_s * 1e-9,
        .fwd_ratio = {median(fwd_ratio, n), min_of(fwd_ratio, n), max_of(fwd_ratio, n)},
        .bwd_ratio = {median(bwd_ratio, n), min_of(bwd_ratio, n), max_of(bwd_ratio, n)},
        .fwd_prop = {median(fwd_prop, n), min_of(fwd_prop, n), max_of(fwd_prop, n)},
        .bwd_prop = {median(bwd_prop, n), min_of(bwd_prop, n), max_of(bwd_prop, n)},
        .gemm_gflops = {median(r->gemm, n), min_of(r->gemm, n), max_of(r->gemm, n)},
        .naive_ms = 1e3 * r->naive_s};
}

/* ---------------------------------------------------------------- options */

static void usage(void)
{
    printf("usage: flashmask bench [options]\n"
           "CPU layer benchmark: per mask family, forward/backward GFLOP/s from allowed pairs,\n"
           "the ratio to OpenBLAS sgemm measured in the same run at the same thread count,\n"
           "the tile density, time/density relative to the full mask, and the float64 naive\n"
           "reference forward where it fits.\n"
           "  --seqlen S        Sq = Sk (default 4096)\n"
           "  --head-dim D      (default 128)\n"
           "  --batch B         (default 1)\n"
           "  --heads H         query = kv = mask-shared heads (default 1)\n"
           "  --threads N       OpenMP and sgemm threads (default: OMP_NUM_THREADS or all)\n"
           "  --reps R          repetitions; medians and [min, max] reported (default 5)\n"
           "  --families LIST   comma-separated family names, or 'all' (default all)\n"
           "  --gemm-size N     sgemm N x N x N (default 2048; 0 = no sgemm column)\n"
           "  --naive-mb M      run the dense reference when Sq*Sk*8 bytes <= M MiB "
           "(default 256; 0 = never)\n"
           "  --no-backward     forward only\n"
           "  --json FILE       also write the results as JSON (format: docs/api.md)\n"
           "  --svg FILE        also draw time against tile density per family (SVG)\n");
}

static int parse_families(const char *text, int *want)
{
    if (strcmp(text, "all") == 0) {
        for (int f = 0; f < FM_FAMILY_COUNT; f++) want[f] = 1;
        return 0;
    }
    char buf[1024];
    if (strlen(text) >= sizeof buf)
        return cli_fail("bench", FM_ERR_INVALID, "--families: list too long");
    strcpy(buf, text);
    for (char *save = NULL, *name = strtok_r(buf, ",", &save); name;
         name = strtok_r(NULL, ",", &save)) {
        fm_family f;
        if (fm_family_from_name(name, &f) != FM_OK) return cli_report("bench", FM_ERR_INVALID);
        want[f] = 1;
    }
    return 0;
}

static int parse_options(int argc, char **argv, bench_opts *o)
{
    *o = (bench_opts){.batch = 1, .heads = 1, .seqlen = 4096, .head_dim = 128,
                      .threads = omp_get_max_threads(), .reps = 5, .gemm_n = 2048,
                      .naive_mb = 256, .backward = 1};
    for (int f = 0; f < FM_FAMILY_COUNT; f++) o->want[f] = 1;
    struct { const char *flag; int64_t *dst, min, max; } ints[] = {
        {"--seqlen", &o->seqlen, 1, INT32_MAX},   {"--head-dim", &o->head_dim, 1, 65536},
        {"--batch", &o->batch, 1, 1 << 20},       {"--heads", &o->heads, 1, 1 << 20},
        {"--threads", &o->threads, 1, 4096},      {"--reps", &o->reps, 1, MAX_REPS},
        {"--gemm-size", &o->gemm_n, 0, 16384},    {"--naive-mb", &o->naive_mb, 0, 1 << 20},
    };
    for (int i = 1; i < argc; i++) {
        const char *value;
        int m = 0;
        if (cli_is_help(argv[i])) {
            usage();
            return -1;
        }
        if (strcmp(argv[i], "--no-backward") == 0) {
            o->backward = 0;
            continue;
        }
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !m; k++) {
            m = cli_option("bench", argc, argv, &i, ints[k].flag, &value);
            if (m < 0) return 2;
            if (m && cli_int64("bench", ints[k].flag, value, ints[k].min, ints[k].max,
                               ints[k].dst) != FM_OK)
                return 2;
        }
        if (m) continue;
        m = cli_option("bench", argc, argv, &i, "--json", &o->json_path);
        if (m < 0) return 2;
        if (m) continue;
        m = cli_option("bench", argc, argv, &i, "--svg", &o->svg_path);
        if (m < 0) return 2;
        if (m) continue;
        m = cli_option("bench", argc, argv, &i, "--families", &value);
        if (m < 0) return 2;
        if (m) {
            memset(o->want, 0, sizeof o->want);
            int rc = parse_families(value, o->want);
            if (rc) return rc;
            continue;
        }
        return cli_fail("bench", FM_ERR_INVALID, "unknown argument '%s' (see --help)", argv[i]);
    }
    return 0;
}

/* ---------------------------------------------------------------- main */

static void free_tensors(bench_tensors *t)
{
    free(t->q), free(t->k), free(t->v), free(t->out), free(t->lse), free(t->dout);
    free(t->dq), free(t->dk), free(t->dv);
}

static fm_status alloc_tensors(const bench_opts *o, bench_tensors *t, fm_rng *rng)
{
    fm_problem p;
    fm_problem_init(&p, o->batch, o->heads, o->heads, o->seqlen, o->seqlen, o->head_dim);
    const size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    const size_t nl = fm_problem_lse_elems(&p);
    t->q = malloc(nq * sizeof(float)), t->k = malloc(nkv * sizeof(float));
    t->v = malloc(nkv * sizeof(float)), t->out = malloc(nq * sizeof(float));
    t->lse = malloc(nl * sizeof(float));
    if (o->backward) {
        t->dout = malloc(nq * sizeof(float)), t->dq = malloc(nq * sizeof(float));
        t->dk = malloc(nkv * sizeof(float)), t->dv = malloc(nkv * sizeof(float));
        if (!t->dout || !t->dq || !t->dk || !t->dv) return FM_ERR_NOMEM;
        for (size_t i = 0; i < nq; i++) t->dout[i] = (float)fm_rng_normal(rng);
    }
    if (!t->q || !t->k || !t->v || !t->out || !t->lse) return FM_ERR_NOMEM;
    for (size_t i = 0; i < nq; i++) t->q[i] = (float)fm_rng_normal(rng);
    for (size_t i = 0; i < nkv; i++) t->k[i] = (float)fm_rng_normal(rng);
    for (size_t i = 0; i < nkv; i++) t->v[i] = (float)fm_rng_normal(rng);
    return FM_OK;
}

int cmd_bench(int argc, char **argv)
{
    bench_opts o;
    int rc = parse_options(argc, argv, &o);
    if (rc) return rc < 0 ? 0 : rc;
    omp_set_num_threads((int)o.threads);

    fm_rng rng;
    fm_rng_seed(&rng, 2026);
    bench_tensors t = {0};
    gemm_bench g = {0};
    fm_status st = alloc_tensors(&o, &t, &rng);
    if (st == FM_OK && o.gemm_n > 0) st = gemm_init(&g, o.gemm_n, &rng);
    if (st != FM_OK) {
        free_tensors(&t), gemm_free(&g);
        return cli_fail("bench", FM_ERR_NOMEM, "cannot allocate the benchmark tensors");
    }

    printf("# flashmask bench: cpu layer, B=%lld H=%lld S=%lld D=%lld float32, %lld threads, "
           "tiles %dx%d, %lld reps, sgemm %lld^3\n",
           (long long)o.batch, (long long)o.heads, (long long)o.seqlen, (long long)o.head_dim,
           (long long)o.threads, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K, (long long)o.reps,
           (long long)o.gemm_n);
    printf("| family | tile density | allowed pairs | fwd ms | fwd GFLOP/s | fwd/sgemm "
           "[min, max] | bwd ms | bwd GFLOP/s | bwd/sgemm [min, max] | fwd time/density "
           "(full = 1) [min, max] | bwd time/density [min, max] | sgemm GFLOP/s | naive fwd ms |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    fflush(stdout);

    /* Repetitions outside, families inside: every repetition sweeps all the families, so each
     * family's ratio to the full mask is taken within one sweep. */
    fm_problem p;
    fm_problem_init(&p, o.batch, o.heads, o.heads, o.seqlen, o.seqlen, o.head_dim);
    family_run *runs = calloc(FM_FAMILY_COUNT, sizeof *runs);
    int n_runs = 0;
    if (!runs) st = FM_ERR_NOMEM;
    for (int f = 0; f < FM_FAMILY_COUNT && st == FM_OK; f++)
        if (o.want[f]) st = family_prepare(&o, &p, (fm_family)f, &runs[n_runs++]);
    const int progress = isatty(STDERR_FILENO);
    for (int rep = 0; rep < o.reps && st == FM_OK; rep++)
        for (int i = 0; i < n_runs && st == FM_OK; i++) {
            if (progress)
                fprintf(stderr, "\rbench: repetition %d of %lld, %-22s", rep + 1,
                        (long long)o.reps, fm_family_name(runs[i].family));
            st = family_time(&o, &p, &t, o.gemm_n > 0 ? &g : NULL, &runs[i], rep);
        }
    if (progress) fprintf(stderr, "\r%60s\r", "");
    naive_tensors naive = {0};
    if (st == FM_OK) st = naive_alloc(&o, &p, &t, &naive);
    for (int i = 0; i < n_runs && st == FM_OK; i++) st = family_naive(&o, &p, &naive, &runs[i]);
    naive_free(&naive);

    const family_run *full = NULL;
    for (int i = 0; i < n_runs; i++)
        if (runs[i].family == FM_FAMILY_FULL) full = &runs[i];
    bench_row rows[FM_FAMILY_COUNT];
    for (int i = 0; i < n_runs && st == FM_OK; i++) {
        rows[i] = family_row(&o, &runs[i], full);
        const bench_row *w = &rows[i];
        printf("| %s | %.3f | %.3f | %.1f | %.1f | %.2f [%.2f, %.2f] | %.1f | %.1f | "
               "%.2f [%.2f, %.2f] | %.2f [%.2f, %.2f] | %.2f [%.2f, %.2f] | %.1f [%.1f, %.1f] | "
               "%.0f |\n",
               w->family, w->density, w->pair_fraction, w->fwd_ms, w->fwd_gflops,
               w->fwd_ratio[0], w->fwd_ratio[1], w->fwd_ratio[2], w->bwd_ms, w->bwd_gflops,
               w->bwd_ratio[0], w->bwd_ratio[1], w->bwd_ratio[2], w->fwd_prop[0], w->fwd_prop[1],
               w->fwd_prop[2], w->bwd_prop[0], w->bwd_prop[1], w->bwd_prop[2],
               w->gemm_gflops[0], w->gemm_gflops[1], w->gemm_gflops[2], w->naive_ms);
    }
    for (int i = 0; i < n_runs; i++) fm_mask_free(&runs[i].mask);
    free(runs);
    free_tensors(&t), gemm_free(&g);
    if (st != FM_OK) return cli_report("bench", st);

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("# peak resident memory: %.1f MB\n", (double)ru.ru_maxrss / 1024.0);
    bench_setup setup = {o.batch, o.heads, o.seqlen, o.head_dim, o.threads, o.reps, o.gemm_n,
                         FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K, o.backward};
    if (o.json_path && (rc = bench_write_json(o.json_path, &setup, rows, n_runs,
                                              (double)ru.ru_maxrss / 1024.0)) != 0)
        return rc;
    if (o.svg_path && (rc = bench_write_svg(o.svg_path, &setup, rows, n_runs)) != 0) return rc;
    return 0;
}
