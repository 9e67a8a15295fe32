/* bench/sparse_bench.c — CPU benchmark of the dense-mask paths (docs/sparse.md): for masks that
 * the column-wise form cannot hold, the plain dense-mask path (every tile computed, every
 * element tested: what a mask-unaware kernel pays) against Binary Block Masking (empty tiles
 * skipped, full tiles unmasked), BBM after Reverse Cuthill-McKee reordering, and row splitting
 * (sparse/rowsplit.c: row blocks run by the CPU layer's own FlashMask kernels under the column
 * form; float64 in and out, so its times include the conversions). Prints tile counts,
 * milliseconds (best of --reps) and GFLOP/s counted from allowed pairs (docs/spec.md §3).
 * Layer: bench, on the library's public API (flashmask/sparse.h).
 *
 * usage: sparse_bench [--seqlen S] [--head-dim D] [--heads H] [--reps R] [--block B]
 * Masks (B = 1, H heads sharing one mask head, Sq = Sk = S):
 *   strided_docs    token i belongs to document (i / 64) % 4: four interleaved documents, each
 *                   column has S/256 allowed runs (not column-representable); tiles of 128
 *                   are empty or partial, tiles of 64 empty or full
 *   scrambled_band  |perm(i) - perm(j)| < 8 for a random permutation: very sparse, every tile
 *                   non-empty until RCM restores the band
 *   random_5pct     i.i.d. cells with P = 0.05: BBM cannot skip anything (the worst case)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "flashmask.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct bench_args {
    int64_t seqlen, head_dim, heads, reps, block;
} bench_args;

static int parse(int argc, char **argv, bench_args *a)
{
    *a = (bench_args){2048, 64, 2, 3, 128};
    for (int i = 1; i < argc; i++) {
        int64_t *slot = !strcmp(argv[i], "--seqlen")     ? &a->seqlen
                        : !strcmp(argv[i], "--head-dim") ? &a->head_dim
                        : !strcmp(argv[i], "--heads")    ? &a->heads
                        : !strcmp(argv[i], "--reps")     ? &a->reps
                        : !strcmp(argv[i], "--block")    ? &a->block
                                                         : NULL;
        char *end = NULL;
        if (!slot || i + 1 >= argc || (*slot = strtoll(argv[i + 1], &end, 10)) < 1 || *end) {
            fprintf(stderr, "usage: sparse_bench [--seqlen S] [--head-dim D] [--heads H] "
                            "[--reps R] [--block B]   (bad or unknown argument '%s')\n", argv[i]);
            return 0;
        }
        i++;
    }
    return 1;
}

/* The three masks of the file comment, [1, 1, S, S]. */
static void make_mask(const char *name, int64_t S, uint8_t *a, fm_rng *rng)
{
    if (!strcmp(name, "strided_docs")) {
        for (int64_t i = 0; i < S; i++)
            for (int64_t j = 0; j < S; j++) a[i * S + j] = (i / 64) % 4 == (j / 64) % 4;
    } else if (!strcmp(name, "scrambled_band")) {
        int64_t *perm = malloc((size_t)S * sizeof *perm);
        for (int64_t x = 0; x < S; x++) perm[x] = x;
        for (int64_t x = S - 1; x > 0; x--) {
            int64_t y = (int64_t)fm_rng_below(rng, (uint64_t)x + 1), t = perm[x];
            perm[x] = perm[y], perm[y] = t;
        }
        for (int64_t i = 0; i < S; i++)
            for (int64_t j = 0; j < S; j++) a[i * S + j] = llabs(perm[i] - perm[j]) < 8;
        free(perm);
    } else {
        for (int64_t e = 0; e < S * S; e++) a[e] = fm_rng_uniform(rng) < 0.05;
    }
}

/* One timed repetition: forward ran over [t0, t1), backward over [t1, t2). Keeps the best
 * times; returns 0 (after printing the error) when the run failed. */
static int keep_best(fm_status st, double t0, double t1, double t2, double *fwd_ms,
                     double *bwd_ms)
{
    if (st != FM_OK) {
        fprintf(stderr, "sparse_bench: %s\n", fm_last_error());
        return 0;
    }
    if (1e3 * (t1 - t0) < *fwd_ms) *fwd_ms = 1e3 * (t1 - t0);
    if (1e3 * (t2 - t1) < *bwd_ms) *bwd_ms = 1e3 * (t2 - t1);
    return 1;
}

/* Best-of-reps forward and backward milliseconds of one path. path 0: dense baseline,
 * 1: BBM of `bbm`. */
static int time_path(int path, const fm_problem *p, const uint8_t *dense, const fm_bbm *bbm,
                     float *buf[9], int64_t reps, double *fwd_ms, double *bwd_ms,
                     fm_tile_stats *stats)
{
    *fwd_ms = *bwd_ms = INFINITY;
    for (int64_t r = 0; r < reps; r++) {
        double t0 = now();
        fm_status st = path == 0 ? fm_cpu_forward_dense(p, dense, 1, buf[0], buf[1], buf[2],
                                                        buf[4], buf[5], stats)
                                 : fm_cpu_forward_bbm(p, bbm, buf[0], buf[1], buf[2], buf[4],
                                                      buf[5], stats);
        double t1 = now();
        if (st == FM_OK)
            st = path == 0 ? fm_cpu_backward_dense(p, dense, 1, buf[0], buf[1], buf[2], buf[4],
                                                   buf[5], buf[3], buf[6], buf[7], buf[8], NULL)
                           : fm_cpu_backward_bbm(p, bbm, buf[0], buf[1], buf[2], buf[4], buf[5],
                                                 buf[3], buf[6], buf[7], buf[8], NULL);
        if (!keep_best(st, t0, t1, now(), fwd_ms, bwd_ms)) return 0;
    }
    return 1;
}

/* Best-of-reps milliseconds of row splitting on the CPU layer (float64 tensors in t). */
static int time_rowsplit(const fm_problem *p, const uint8_t *dense, fm_tensors *t, int64_t reps,
                         double *fwd_ms, double *bwd_ms)
{
    *fwd_ms = *bwd_ms = INFINITY;
    for (int64_t r = 0; r < reps; r++) {
        double t0 = now();
        fm_status st = fm_rowsplit_forward(FM_IMPL_CPU, p, dense, 1, t);
        double t1 = now();
        if (st == FM_OK) st = fm_rowsplit_backward(FM_IMPL_CPU, p, dense, 1, t);
        if (!keep_best(st, t0, t1, now(), fwd_ms, bwd_ms)) return 0;
    }
    return 1;
}

static void print_row(const char *mask, const char *path, const fm_tile_stats *s, double flops,
                      double fwd_ms, double bwd_ms)
{
    printf("%-15s %-11s %6lld %6lld %6lld %6lld %10.1f %10.1f %8.2f %8.2f\n", mask, path,
           (long long)s->total, (long long)s->masked, (long long)s->partial,
           (long long)s->unmasked, fwd_ms, bwd_ms, flops / (fwd_ms * 1e6),
           2.5 * flops / (bwd_ms * 1e6));
}

int main(int argc, char **argv)
{
    bench_args a;
    if (!parse(argc, argv, &a)) return 2;
    const int64_t S = a.seqlen, D = a.head_dim, H = a.heads;
    fm_problem p;
    fm_problem_init(&p, 1, H, H, S, S, D);
    const size_t nq = fm_problem_q_elems(&p), nl = fm_problem_lse_elems(&p);
    float *buf[9]; /* q k v dout out lse dq dk dv */
    const size_t sizes[9] = {nq, nq, nq, nq, nq, nl, nq, nq, nq};
    fm_rng rng;
    fm_rng_seed(&rng, 2026);
    for (int t = 0; t < 9; t++) {
        buf[t] = malloc(sizes[t] * sizeof(float));
        if (!buf[t]) return 1;
        for (size_t e = 0; e < sizes[t]; e++) buf[t][e] = (float)fm_rng_normal(&rng);
    }
    uint8_t *mask = malloc((size_t)(S * S)), *permuted = malloc((size_t)(S * S));
    if (!mask || !permuted) return 1;
    double *dbuf[9]; /* the same tensors in float64, for the row-split path */
    for (int t = 0; t < 9; t++) {
        dbuf[t] = malloc(sizes[t] * sizeof(double));
        if (!dbuf[t]) return 1;
        for (size_t e = 0; e < sizes[t]; e++) dbuf[t][e] = (double)buf[t][e];
    }
    fm_tensors dt = {dbuf[0], dbuf[1], dbuf[2], dbuf[3], dbuf[4], dbuf[5], dbuf[6], dbuf[7],
                     dbuf[8]};
    printf("sparse_bench: B=1 H=%lld S=%lld D=%lld, tiles %lld x %lld, best of %lld; GFLOP/s "
           "from allowed pairs (4D per pair forward, 2.5x backward)\n",
           (long long)H, (long long)S, (long long)D, (long long)a.block, (long long)a.block,
           (long long)a.reps);
    printf("%-15s %-11s %6s %6s %6s %6s %10s %10s %8s %8s\n", "mask", "path", "tiles", "empty",
           "part.", "full", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s");
    const char *masks[] = {"strided_docs", "scrambled_band", "random_5pct"};
    for (int m = 0; m < 3; m++) {
        make_mask(masks[m], S, mask, &rng);
        int64_t pairs = 0;
        for (int64_t e = 0; e < S * S; e++) pairs += mask[e];
        const double flops = 4.0 * (double)D * (double)pairs * (double)H;
        fm_bbm bbm = {0}, bbm_rcm = {0};
        fm_rcm rcm = {0};
        fm_tile_stats s;
        double f, b;
        double t0 = now();
        int ok = fm_rcm_build(&rcm, mask, 1, 1, S, S) == FM_OK &&
                 fm_rcm_apply_mask(&rcm, mask, 1, permuted) == FM_OK;
        double rcm_ms = 1e3 * (now() - t0);
        ok = ok && fm_bbm_from_dense(&bbm, mask, 1, 1, S, S, a.block, a.block) == FM_OK &&
             fm_bbm_from_dense(&bbm_rcm, permuted, 1, 1, S, S, a.block, a.block) == FM_OK;
        if (!ok) {
            fprintf(stderr, "sparse_bench: %s\n", fm_last_error());
            return 1;
        }
        if (!time_path(0, &p, mask, NULL, buf, a.reps, &f, &b, &s)) return 1;
        print_row(masks[m], "dense", &s, flops, f, b);
        if (!time_path(1, &p, NULL, &bbm, buf, a.reps, &f, &b, &s)) return 1;
        print_row(masks[m], "bbm", &s, flops, f, b);
        if (!time_path(1, &p, NULL, &bbm_rcm, buf, a.reps, &f, &b, &s)) return 1;
        print_row(masks[m], "rcm+bbm", &s, flops, f, b);
        int64_t blocks;
        if (fm_rowsplit_blocks(&p, mask, 1, &blocks) != FM_OK) return 1;
        if (blocks <= 64) { /* more blocks: one call per two or three rows, not a contender */
            if (!time_rowsplit(&p, mask, &dt, a.reps, &f, &b)) return 1;
            fm_tile_stats none = {0, 0, 0, 0};
            print_row(masks[m], "rowsplit", &none, flops, f, b);
        }
        printf("%-15s %.2f%% allowed; RCM order + mask permutation took %.1f ms (once per "
               "mask); row split: %lld blocks%s\n", masks[m],
               100.0 * (double)pairs / (double)(S * S), rcm_ms, (long long)blocks,
               blocks <= 64 ? " (tile columns: see the cpu layer's own counters)" : ", not timed");
        fm_bbm_free(&bbm), fm_bbm_free(&bbm_rcm), fm_rcm_free(&rcm);
    }
    for (int t = 0; t < 9; t++) free(buf[t]), free(dbuf[t]);
    free(mask), free(permuted);
    return 0;
}
