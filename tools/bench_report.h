/* tools/bench_report.h — what `flashmask bench` measured, written as a JSON document
 * (--json FILE) and as an SVG plot of time against tile density per family (--svg FILE).
 * cmd_bench.c fills one bench_row per family; this file only formats. Layer: tools CLI. */
#ifndef FM_TOOLS_BENCH_REPORT_H
#define FM_TOOLS_BENCH_REPORT_H

#include <stdint.h>

typedef struct bench_setup {
    int64_t batch, heads, seqlen, head_dim, threads, reps, gemm_n;
    int block_q, block_k, backward;
} bench_setup;

/* One family's results; NaN where not measured (bwd with --no-backward, naive when skipped,
 * sgemm columns with --gemm-size 0, proportionality without the full mask). */
typedef struct bench_row {
    const char *family;
    double density, pair_fraction;
    double fwd_ms, fwd_gflops, fwd_ratio[3]; /* ratio to sgemm: median, min, max */
    double bwd_ms, bwd_gflops, bwd_ratio[3];
    double fwd_prop[3], bwd_prop[3];         /* time / density relative to full (1 = prop.):
                                                median, min, max over the repetitions */
    double gemm_gflops[3];                   /* median, min, max */
    double naive_ms;
} bench_row;

/* Both return 0 on success, or print an error naming the file and return the exit code 2. */
int bench_write_json(const char *path, const bench_setup *s, const bench_row *rows, int n,
                     double peak_mb);
int bench_write_svg(const char *path, const bench_setup *s, const bench_row *rows, int n);

#endif
