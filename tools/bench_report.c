/* tools/bench_report.c — the JSON and SVG outputs of `flashmask bench` (bench_report.h).
 * JSON: {"setup": {...}, "families": [{"family", "tile_density", "allowed_fraction", "fwd": {
 * "ms", "gflops", "ratio_to_sgemm": [median, min, max], "time_per_density" (the median),
 * "time_per_density_range": [median, min, max]}, "bwd": {...},
 * "sgemm_gflops": [...], "naive_fwd_ms"}], "peak_rss_mb"}; unmeasured numbers are null.
 * SVG: forward (and backward) time against tile density, one labelled point per family, with
 * the line through the origin and the full mask's point (time exactly proportional to the tiles
 * computed), so a family far above the line pays for skipped tiles. Layer: tools CLI (cJSON,
 * svg.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bench_report.h"
#include "cli.h"
#include "svg.h"

static void add_num(cJSON *o, const char *key, double x)
{
    if (isfinite(x)) cJSON_AddNumberToObject(o, key, x);
    else cJSON_AddNullToObject(o, key);
}

static void add_triple(cJSON *o, const char *key, const double *x)
{
    cJSON *a = cJSON_AddArrayToObject(o, key);
    for (int i = 0; i < 3; i++)
        cJSON_AddItemToArray(a, isfinite(x[i]) ? cJSON_CreateNumber(x[i]) : cJSON_CreateNull());
}

static void add_pass(cJSON *row, const char *key, double ms, double gflops, const double *ratio,
                     const double *prop)
{
    cJSON *o = cJSON_AddObjectToObject(row, key);
    add_num(o, "ms", ms);
    add_num(o, "gflops", gflops);
    add_triple(o, "ratio_to_sgemm", ratio);
    add_num(o, "time_per_density", prop[0]);
    add_triple(o, "time_per_density_range", prop);
}

int bench_write_json(const char *path, const bench_setup *s, const bench_row *rows, int n,
                     double peak_mb)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "tool", "flashmask bench");
    cJSON_AddStringToObject(root, "version", fm_version());
    cJSON *su = cJSON_AddObjectToObject(root, "setup");
    cJSON_AddStringToObject(su, "impl", "cpu");
    cJSON_AddStringToObject(su, "dtype", "float32");
    add_num(su, "batch", (double)s->batch);
    add_num(su, "heads", (double)s->heads);
    add_num(su, "seqlen", (double)s->seqlen);
    add_num(su, "head_dim", (double)s->head_dim);
    add_num(su, "threads", (double)s->threads);
    add_num(su, "reps", (double)s->reps);
    add_num(su, "sgemm_n", (double)s->gemm_n);
    add_num(su, "block_q", s->block_q);
    add_num(su, "block_k", s->block_k);
    cJSON_AddBoolToObject(su, "backward", s->backward);
    cJSON *fams = cJSON_AddArrayToObject(root, "families");
    for (int i = 0; i < n; i++) {
        const bench_row *r = &rows[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "family", r->family);
        add_num(o, "tile_density", r->density);
        add_num(o, "allowed_fraction", r->pair_fraction);
        add_pass(o, "fwd", r->fwd_ms, r->fwd_gflops, r->fwd_ratio, r->fwd_prop);
        add_pass(o, "bwd", r->bwd_ms, r->bwd_gflops, r->bwd_ratio, r->bwd_prop);
        add_triple(o, "sgemm_gflops", r->gemm_gflops);
        add_num(o, "naive_fwd_ms", r->naive_ms);
        cJSON_AddItemToArray(fams, o);
    }
    add_num(root, "peak_rss_mb", peak_mb);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int ok = cli_write_text(path, text);
    free(text);
    if (!ok) return cli_fail("bench", FM_ERR_IO, "--json %s: cannot write the file", path);
    return 0;
}

/* ---------------------------------------------------------------- SVG */

enum { W = 760, H = 520, LEFT = 80, RIGHT = 190, TOP = 50, BOTTOM = 60 };

/* A "nice" axis maximum at or above x: 1, 2 or 5 times a power of ten. */
static double nice_max(double x)
{
    if (!(x > 0)) return 1.0;
    double p = pow(10.0, floor(log10(x)));
    for (int k = 0; k < 3; k++) {
        double m = (k == 0 ? 1.0 : k == 1 ? 2.0 : 5.0) * p;
        if (m >= x) return m;
    }
    return 10.0 * p;
}

static void plot_series(FILE *f, const bench_row *rows, int n, int bwd, double ymax,
                        const char *colour, const char *cls)
{
    const double pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    svg_group_begin(f, cls);
    double full = NAN;
    for (int i = 0; i < n; i++)
        if (strcmp(rows[i].family, "full") == 0) full = bwd ? rows[i].bwd_ms : rows[i].fwd_ms;
    if (isfinite(full)) { /* proportional: time = full * density (through the origin) */
        double yend = full > ymax ? ymax : full, xend = full > ymax ? ymax / full : 1.0;
        svg_line(f, LEFT, TOP + ph, LEFT + pw * xend, TOP + ph - ph * yend / ymax, colour, 0.8);
    }
    for (int i = 0; i < n; i++) {
        double t = bwd ? rows[i].bwd_ms : rows[i].fwd_ms;
        if (!isfinite(t) || !isfinite(rows[i].density)) continue;
        double x = LEFT + pw * rows[i].density, y = TOP + ph - ph * t / ymax;
        svg_rect(f, x - 3.5, y - 3.5, 7, 7, colour, NULL, 0, "point");
        svg_text(f, x + 6, y + 3, 9, "start", 0, rows[i].family);
    }
    svg_group_end(f);
}

int bench_write_svg(const char *path, const bench_setup *s, const bench_row *rows, int n)
{
    FILE *f = fopen(path, "w");
    if (!f) return cli_fail("bench", FM_ERR_IO, "--svg %s: cannot open the file", path);
    double tmax = 0;
    for (int i = 0; i < n; i++) {
        if (isfinite(rows[i].fwd_ms) && rows[i].fwd_ms > tmax) tmax = rows[i].fwd_ms;
        if (isfinite(rows[i].bwd_ms) && rows[i].bwd_ms > tmax) tmax = rows[i].bwd_ms;
    }
    const double ymax = nice_max(tmax), pw = W - LEFT - RIGHT, ph = H - TOP - BOTTOM;
    char text[256];
    svg_begin(f, W, H);
    snprintf(text, sizeof text, "flashmask bench: cpu layer time against tile density, "
             "B=%lld H=%lld S=%lld D=%lld, %lld threads, tiles %dx%d, median of %lld",
             (long long)s->batch, (long long)s->heads, (long long)s->seqlen,
             (long long)s->head_dim, (long long)s->threads, s->block_q, s->block_k,
             (long long)s->reps);
    svg_title(f, text);
    svg_text(f, W / 2.0, 24, 13, "middle", 0, "time against tile density, per mask family");
    snprintf(text, sizeof text, "cpu layer, float32, B=%lld H=%lld S=%lld D=%lld, %lld threads, "
             "tiles %dx%d, median of %lld runs", (long long)s->batch, (long long)s->heads,
             (long long)s->seqlen, (long long)s->head_dim, (long long)s->threads, s->block_q,
             s->block_k, (long long)s->reps);
    svg_text(f, W / 2.0, 40, 10, "middle", 0, text);
    /* axes, grid and ticks */
    svg_rect(f, LEFT, TOP, pw, ph, "none", "#444", 1, "frame");
    for (int k = 0; k <= 5; k++) {
        double x = LEFT + pw * k / 5.0, y = TOP + ph - ph * k / 5.0;
        svg_line(f, LEFT, y, LEFT + pw, y, "#e4e4e4", 0.6);
        svg_line(f, x, TOP, x, TOP + ph, "#e4e4e4", 0.6);
        snprintf(text, sizeof text, "%.1f", k / 5.0);
        svg_text(f, x, TOP + ph + 16, 10, "middle", 0, text);
        snprintf(text, sizeof text, "%.4g", ymax * k / 5.0);
        svg_text(f, LEFT - 6, y + 3, 10, "end", 0, text);
    }
    svg_text(f, LEFT + pw / 2.0, H - 18, 11, "middle", 0,
             "tile density: (partial + unmasked tiles) / all tiles");
    svg_text(f, 22, TOP + ph / 2.0, 11, "middle", -90, "time per call (ms)");
    plot_series(f, rows, n, 0, ymax, "#1f6fb4", "fwd");
    if (s->backward) plot_series(f, rows, n, 1, ymax, "#c8501e", "bwd");
    /* legend */
    double lx = W - RIGHT + 20, ly = TOP + 10;
    svg_rect(f, lx, ly, 8, 8, "#1f6fb4", NULL, 0, NULL);
    svg_text(f, lx + 14, ly + 8, 10, "start", 0, "forward");
    if (s->backward) {
        svg_rect(f, lx, ly + 18, 8, 8, "#c8501e", NULL, 0, NULL);
        svg_text(f, lx + 14, ly + 26, 10, "start", 0, "backward");
    }
    svg_text(f, lx, ly + 50, 9, "start", 0, "lines: time proportional");
    svg_text(f, lx, ly + 62, 9, "start", 0, "to tiles computed, through");
    svg_text(f, lx, ly + 74, 9, "start", 0, "the full mask's time");
    int bad = svg_end(f);
    if (fclose(f) != 0 || bad)
        return cli_fail("bench", FM_ERR_IO, "--svg %s: write error", path);
    return 0;
}
