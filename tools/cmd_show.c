/* tools/cmd_show.c — `flashmask show`: draws one (batch, mask head) of a mask as an SVG picture:
 * the tiles of a block_q x block_k tiling coloured by their classification (masked = skipped,
 * partial = element rule applied, unmasked = no element test; fm_block_summary_classify, the
 * rule of BRIEF 3), the allowed elements on top when the picture is fine enough to show them,
 * and a legend with the tile counts, the element density (allowed pairs / Sq*Sk, exact from the
 * vectors) and the tile density ((partial + unmasked) / tiles).
 * The mask comes from a family (defaults overridden by --param, as `flashmask gen` takes them)
 * or from a case directory's mask.npy. Layer: tools CLI (masks, io), drawing through svg.c.
 */
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "svg.h"

/* Colours: a fill for each tile class (light, so the elements drawn on top stay visible) and
 * a stronger outline of the same hue, so the class shows even where elements cover the fill. */
static const char *const tile_name[3] = {"unmasked", "partial", "masked"};
static const char *const tile_fill[3] = {"#d7f0d2", "#fde3b0", "#e3e3e3"};
static const char *const tile_edge[3] = {"#2e8b3a", "#d08c00", "#8a8a8a"};
static const char *const tile_letter[3] = {"U", "P", "M"};
static const char *const allowed_fill = "#2b5aa8";

enum { ELEMENTS_AUTO, ELEMENTS_ON, ELEMENTS_OFF };

typedef struct show_opts {
    const char *family_name, *case_dir, *out_path, *title;
    const char **assignments;
    int n_assign;
    cli_problem_opts problem;
    int64_t block_q, block_k, batch_index, mask_head, size_px;
    int elements;
} show_opts;

static int usage(void)
{
    printf("usage: flashmask show (--mask FAMILY [--param key=value ...] | --case DIR)\n"
           "                      [--seqlen S | --seqlen-q Sq --seqlen-k Sk] [--causal ALIGN]\n"
           "                      [--batch B --mask-heads Hm] [--block-q N] [--block-k N]\n"
           "                      [--block N] [--batch-index b] [--mask-head h]\n"
           "                      [--elements auto|on|off] [--size PX] [--title TEXT] --out FILE\n"
           "Writes an SVG picture of mask (b, h): tiles coloured by classification (green\n"
           "unmasked, amber partial, grey masked = skipped), allowed elements in blue, and a\n"
           "legend with tile counts, element density and tile density. FILE '-' is stdout.\n"
           "defaults: Sq=Sk=128, blocks 16x16, b=h=0, picture grid 512 px, causal bottom_right\n"
           "(causal families only), elements drawn when a cell is at least 1 px (auto).\n"
           "`flashmask masks` lists the families and their parameters.\n");
    return 0;
}

/* Parses the command line into *o. Returns 0, or the exit code of the error it printed. */
static int parse(const char *cmd, int argc, char **argv, show_opts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *val;
        int r;
        if ((r = cli_problem_option(cmd, argc, argv, &i, &o->problem)) != 0) {
            if (r < 0) return 2;
            continue;
        }
        struct { const char *flag; int64_t *field; int64_t min; } ints[] = {
            {"--block-q", &o->block_q, 1}, {"--block-k", &o->block_k, 1},
            {"--batch-index", &o->batch_index, 0}, {"--mask-head", &o->mask_head, 0},
            {"--size", &o->size_px, 16},
        };
        int matched = 0;
        for (size_t k = 0; k < sizeof ints / sizeof ints[0] && !matched; k++) {
            if ((r = cli_option(cmd, argc, argv, &i, ints[k].flag, &val)) == 0) continue;
            if (r < 0 || cli_int64(cmd, ints[k].flag, val, ints[k].min, INT32_MAX,
                                   ints[k].field) != FM_OK)
                return 2;
            matched = 1;
        }
        if (matched) continue;
        if ((r = cli_option(cmd, argc, argv, &i, "--block", &val)) != 0) {
            if (r < 0 || cli_int64(cmd, "--block", val, 1, INT32_MAX, &o->block_q) != FM_OK)
                return 2;
            o->block_k = o->block_q;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--mask", &val)) != 0) {
            if (r < 0) return 2;
            o->family_name = val;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--param", &val)) != 0) {
            if (r < 0) return 2;
            o->assignments[o->n_assign++] = val;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--case", &val)) != 0) {
            if (r < 0) return 2;
            o->case_dir = val;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--out", &val)) != 0) {
            if (r < 0) return 2;
            o->out_path = val;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--title", &val)) != 0) {
            if (r < 0) return 2;
            o->title = val;
        } else if ((r = cli_option(cmd, argc, argv, &i, "--elements", &val)) != 0) {
            if (r < 0) return 2;
            if (strcmp(val, "auto") == 0) o->elements = ELEMENTS_AUTO;
            else if (strcmp(val, "on") == 0) o->elements = ELEMENTS_ON;
            else if (strcmp(val, "off") == 0) o->elements = ELEMENTS_OFF;
            else
                return cli_fail(cmd, FM_ERR_INVALID, "--elements '%s': expected auto, on or off",
                                val);
        } else {
            return cli_fail(cmd, FM_ERR_INVALID, "unexpected argument '%s' (see show --help)",
                            argv[i]);
        }
    }
    /* the mask's source: exactly one of --mask and --case */
    if (!o->out_path) return cli_fail(cmd, FM_ERR_INVALID, "--out FILE is required");
    if (!o->family_name == !o->case_dir)
        return cli_fail(cmd, FM_ERR_INVALID, "give exactly one of --mask FAMILY and --case DIR");
    /* options that only make sense for one source, or not at all here, are refused, not
     * ignored: a picture of something else than asked for would mislead */
    const cli_problem_opts *p = &o->problem;
    if (p->q_heads || p->kv_heads || p->head_dim || p->dtype_given || p->seed)
        return cli_fail(cmd, FM_ERR_INVALID, "--q-heads, --kv-heads, --head-dim, --dtype and "
                        "--seed do not change a mask picture (random_eviction takes "
                        "--param seed=N)");
    if (o->case_dir && (o->n_assign || p->batch || p->mask_heads || p->seqlen_q || p->seqlen_k
                        || p->causal != FM_CAUSAL_NONE))
        return cli_fail(cmd, FM_ERR_INVALID, "--case DIR takes the mask and its sizes from the "
                        "case; --param and shape options go with --mask");
    return 0;
}

/* Builds the family's mask from o (defaults for Sk, then the --param overrides). */
static fm_status build_family(show_opts *o, fm_mask *mask, fm_mask_params *params)
{
    cli_problem_opts *p = &o->problem;
    if (!p->batch) p->batch = 1;
    if (!p->mask_heads) p->mask_heads = 1;
    if (!p->seqlen_q) p->seqlen_q = p->seqlen_k ? p->seqlen_k : 128;
    if (!p->seqlen_k) p->seqlen_k = p->seqlen_q;
    if (p->causal == FM_CAUSAL_NONE) p->causal = FM_CAUSAL_BOTTOM_RIGHT;
    fm_family family;
    fm_status st = fm_family_from_name(o->family_name, &family);
    if (st == FM_OK) st = fm_mask_params_default(params, family, p->seqlen_k);
    if (st == FM_OK) st = fm_mask_params_apply(params, o->n_assign, o->assignments);
    if (st == FM_OK)
        st = fm_mask_build(mask, params, p->batch, p->mask_heads, p->seqlen_q, p->seqlen_k,
                           p->causal);
    return st;
}

/* Everything the picture shows, computed before any drawing. */
typedef struct show_data {
    const fm_mask *mask;
    int64_t b, h, block_q, block_k, n_qb, n_kb;
    int8_t *tiles;            /* [n_qb * n_kb] fm_tile_class of each tile of (b, h) */
    int64_t count[3];         /* tiles of each class */
    int64_t allowed;          /* exact allowed pairs of (b, h) */
    char heading[512];        /* what the mask is */
} show_data;

/* Classifies every tile of (b, h) from the key-block summaries; d->tiles was allocated with
 * n_qb * n_kb entries by the caller (who bounded that product). */
static fm_status classify_tiles(show_data *d)
{
    fm_block_summary summary;
    fm_status st = fm_block_summary_build(d->mask, d->block_k, &summary);
    if (st != FM_OK) return st;
    for (int64_t qb = 0; qb < d->n_qb; qb++)
        for (int64_t kb = 0; kb < d->n_kb; kb++) {
            fm_tile_class c =
                fm_block_summary_classify(&summary, d->b, d->h, d->block_q, qb, kb);
            d->tiles[qb * d->n_kb + kb] = (int8_t)c;
            d->count[c]++;
        }
    fm_block_summary_free(&summary);
    return FM_OK;
}

/* Draws the picture of d into f; grid_px is the length of the longer side of the mask. */
static void draw(FILE *f, const show_data *d, double grid_px, int draw_elements)
{
    const fm_mask *m = d->mask;
    const int64_t sq = m->seqlen_q, sk = m->seqlen_k;
    const double cell = grid_px / (double)(sq > sk ? sq : sk);
    const double left = 56, top = 78, legend_w = 300;
    const double grid_w = cell * (double)sk, grid_h = cell * (double)sq;
    double width = left + grid_w + 24 + legend_w;
    const double min_text_w = 14 + 6.2 * (double)strlen(d->heading); /* heading fits */
    if (width < min_text_w) width = min_text_w;
    double height = top + grid_h + 24;
    if (height < top + 260) height = top + 260; /* room for the legend */

    svg_begin(f, width, height);
    char text[640];
    snprintf(text, sizeof text, "%s (batch %lld, mask head %lld)", d->heading, (long long)d->b,
             (long long)d->h);
    svg_title(f, text);
    svg_text(f, 8, 20, 13, "start", 0, d->heading);
    snprintf(text, sizeof text, "Sq=%lld Sk=%lld, causal %s, batch %lld of %lld, mask head "
             "%lld of %lld, tiles %lld x %lld", (long long)sq, (long long)sk,
             fm_causal_name(m->causal), (long long)d->b, (long long)m->batch, (long long)d->h,
             (long long)m->heads, (long long)d->block_q, (long long)d->block_k);
    svg_text(f, 8, 38, 11, "start", 0, text);
    svg_text(f, left + grid_w / 2, top - 22, 11, "middle", 0, "key j \xe2\x86\x92");
    svg_text(f, left - 30, top + grid_h / 2, 11, "middle", -90, "query i \xe2\x86\x92");

    /* 1. tile fills, one rectangle per tile, classed for readers ("tile masked", ...) */
    svg_group_begin(f, "tiles");
    for (int64_t qb = 0; qb < d->n_qb; qb++)
        for (int64_t kb = 0; kb < d->n_kb; kb++) {
            int c = d->tiles[qb * d->n_kb + kb];
            int64_t r0 = qb * d->block_q, c0 = kb * d->block_k;
            int64_t r1 = r0 + d->block_q < sq ? r0 + d->block_q : sq; /* last tiles are cut */
            int64_t c1 = c0 + d->block_k < sk ? c0 + d->block_k : sk;
            char cls[32];
            snprintf(cls, sizeof cls, "tile %s", tile_name[c]);
            svg_rect(f, left + cell * (double)c0, top + cell * (double)r0,
                     cell * (double)(c1 - c0), cell * (double)(r1 - r0), tile_fill[c], NULL, 0,
                     cls);
        }
    svg_group_end(f);

    /* 2. allowed elements: one rectangle per run of allowed keys in a row (the element rule,
     * fm_mask_is_masked), semi-transparent so the tile colour stays visible beneath */
    if (draw_elements) {
        fputs("<g class=\"elements\" fill-opacity=\"0.55\">\n", f);
        for (int64_t i = 0; i < sq; i++) {
            int64_t j = 0;
            while (j < sk) {
                while (j < sk && fm_mask_is_masked(m, d->b, d->h, i, j)) j++;
                int64_t start = j;
                while (j < sk && !fm_mask_is_masked(m, d->b, d->h, i, j)) j++;
                if (j > start)
                    svg_rect(f, left + cell * (double)start, top + cell * (double)i,
                             cell * (double)(j - start), cell, allowed_fill, NULL, 0, "allowed");
            }
        }
        svg_group_end(f);
    }

    /* 3. tile outlines in the class colour, and the class letter where a tile is big enough */
    svg_group_begin(f, "outlines");
    for (int64_t qb = 0; qb < d->n_qb; qb++)
        for (int64_t kb = 0; kb < d->n_kb; kb++) {
            int c = d->tiles[qb * d->n_kb + kb];
            int64_t r0 = qb * d->block_q, c0 = kb * d->block_k;
            int64_t r1 = r0 + d->block_q < sq ? r0 + d->block_q : sq;
            int64_t c1 = c0 + d->block_k < sk ? c0 + d->block_k : sk;
            double x = left + cell * (double)c0, y = top + cell * (double)r0;
            double w = cell * (double)(c1 - c0), h = cell * (double)(r1 - r0);
            svg_rect(f, x, y, w, h, "none", tile_edge[c], w > 6 && h > 6 ? 1.2 : 0.4, NULL);
            if (w >= 18 && h >= 18)
                svg_text(f, x + w / 2, y + h / 2 + 4, 11, "middle", 0, tile_letter[c]);
        }
    svg_group_end(f);

    /* axis ticks at the tile boundaries, labelled when there is room */
    double tick_gap_k = cell * (double)d->block_k, tick_gap_q = cell * (double)d->block_q;
    int64_t step_k = 1, step_q = 1;
    while (tick_gap_k * (double)step_k < 32) step_k *= 2;
    while (tick_gap_q * (double)step_q < 18) step_q *= 2;
    for (int64_t kb = 0; kb <= d->n_kb; kb += step_k) {
        int64_t c0 = kb * d->block_k < sk ? kb * d->block_k : sk;
        snprintf(text, sizeof text, "%lld", (long long)c0);
        svg_text(f, left + cell * (double)c0, top - 5, 9, "middle", 0, text);
    }
    for (int64_t qb = 0; qb <= d->n_qb; qb += step_q) {
        int64_t r0 = qb * d->block_q < sq ? qb * d->block_q : sq;
        snprintf(text, sizeof text, "%lld", (long long)r0);
        svg_text(f, left - 4, top + cell * (double)r0 + 3, 9, "end", 0, text);
    }

    /* 4. the legend: swatches with counts, then the two densities */
    double lx = left + grid_w + 24, ly = top;
    int64_t total = d->n_qb * d->n_kb;
    static const char *const meaning[3] = {"no element test", "element rule", "skipped"};
    svg_group_begin(f, "legend");
    for (int c = 2; c >= 0; c--) {
        svg_rect(f, lx, ly, 16, 16, tile_fill[c], tile_edge[c], 1.2, NULL);
        snprintf(text, sizeof text, "%s (%s): %lld", tile_name[c], meaning[c],
                 (long long)d->count[c]);
        svg_text(f, lx + 24, ly + 12, 11, "start", 0, text);
        ly += 24;
    }
    if (draw_elements) { /* the swatch with the elements' own transparency */
        fputs("<g fill-opacity=\"0.55\">\n", f);
        svg_rect(f, lx, ly, 16, 16, allowed_fill, NULL, 0, NULL);
        svg_group_end(f);
    }
    svg_text(f, draw_elements ? lx + 24 : lx, ly + 12, 11, "start", 0,
             draw_elements ? "allowed element (i, j)"
                           : "elements not drawn (cells under 1 px; --elements on)");
    ly += 36;
    double element_density = (double)d->allowed / ((double)sq * (double)sk);
    double tile_density = (double)(d->count[0] + d->count[1]) / (double)total;
    snprintf(text, sizeof text, "element density: %.4f", element_density);
    svg_text(f, lx, ly, 11, "start", 0, text);
    snprintf(text, sizeof text, "  (%lld of %lld pairs allowed)", (long long)d->allowed,
             (long long)(sq * sk));
    svg_text(f, lx, ly + 15, 10, "start", 0, text);
    snprintf(text, sizeof text, "tile density: %.4f", tile_density);
    svg_text(f, lx, ly + 36, 11, "start", 0, text);
    snprintf(text, sizeof text, "  ((partial + unmasked) / %lld tiles)", (long long)total);
    svg_text(f, lx, ly + 51, 10, "start", 0, text);
    svg_group_end(f);
}

/* Writes the picture to path ("-" = stdout) through a temporary file renamed into place, so a
 * failed write never leaves a truncated picture behind. Returns 0 or the printed exit code. */
static int write_picture(const char *cmd, const char *path, const show_data *d, double grid_px,
                         int draw_elements)
{
    if (strcmp(path, "-") == 0) {
        draw(stdout, d, grid_px, draw_elements);
        if (svg_end(stdout) != 0 || fflush(stdout) != 0)
            return cli_fail(cmd, FM_ERR_IO, "writing the picture to stdout failed");
        return 0;
    }
    /* show replaces only a picture: an existing file that is not an SVG (a case's mask.npy,
     * a FIFO, a device) is refused, never truncated */
    struct stat sb;
    if (lstat(path, &sb) == 0) {
        char head[512] = "";
        FILE *old = S_ISREG(sb.st_mode) ? fopen(path, "r") : NULL;
        size_t got = old ? fread(head, 1, sizeof head - 1, old) : 0;
        if (old) fclose(old);
        head[got] = '\0';
        if (!S_ISREG(sb.st_mode) || !strstr(head, "<svg"))
            return cli_fail(cmd, FM_ERR_IO, "--out '%s' exists and is not an SVG picture; show "
                            "replaces only its own pictures (remove it or choose another name)",
                            path);
    }
    size_t n = strlen(path) + 8;
    char *tmp = malloc(n);
    if (!tmp) return cli_fail(cmd, FM_ERR_NOMEM, "cannot allocate %zu bytes", n);
    snprintf(tmp, n, "%s.tmp~", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return cli_fail(cmd, FM_ERR_IO, "cannot write '%s'", path);
    }
    draw(f, d, grid_px, draw_elements);
    int bad = svg_end(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        remove(tmp);
        free(tmp);
        return cli_fail(cmd, FM_ERR_IO, "writing '%s' failed", path);
    }
    free(tmp);
    return 0;
}

int cmd_show(int argc, char **argv)
{
    const char *cmd = "show";
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) return usage();

    show_opts o = {.block_q = 16, .block_k = 16, .size_px = 512, .elements = ELEMENTS_AUTO};
    o.assignments = calloc((size_t)argc, sizeof *o.assignments);
    if (!o.assignments) return cli_fail(cmd, FM_ERR_NOMEM, "cannot allocate");
    fm_case c;
    fm_case_init(&c);
    fm_mask_params params;
    memset(&params, 0, sizeof params);
    show_data d;
    memset(&d, 0, sizeof d);
    int rc = parse(cmd, argc, argv, &o);
    if (rc != 0) goto done;

    /* the mask and the words that say what it is */
    fm_status st;
    char *json = NULL;
    if (o.family_name) {
        st = build_family(&o, &c.mask, &params);
        if (st == FM_OK) st = fm_mask_params_to_json(&params, &json);
        if (st == FM_OK)
            snprintf(d.heading, sizeof d.heading, "%s %s", fm_family_name(params.family), json);
    } else {
        st = fm_case_load(o.case_dir, &c);
        if (st == FM_OK && c.has_params) st = fm_mask_params_to_json(&c.mask_params, &json);
        if (st == FM_OK)
            snprintf(d.heading, sizeof d.heading, "%s %s (case %s)", c.mask_kind,
                     json ? json : "", o.case_dir);
    }
    free(json);
    if (st != FM_OK) {
        rc = cli_report(cmd, st);
        goto done;
    }
    if (o.title) snprintf(d.heading, sizeof d.heading, "%s", o.title);
    d.mask = &c.mask;
    if (o.batch_index >= c.mask.batch || o.mask_head >= c.mask.heads) {
        rc = cli_fail(cmd, FM_ERR_INVALID, "--batch-index %lld / --mask-head %lld: the mask has "
                      "%lld batch(es) and %lld mask head(s)", (long long)o.batch_index,
                      (long long)o.mask_head, (long long)c.mask.batch, (long long)c.mask.heads);
        goto done;
    }
    d.b = o.batch_index;
    d.h = o.mask_head;
    d.block_q = o.block_q;
    d.block_k = o.block_k;
    d.n_qb = (c.mask.seqlen_q + o.block_q - 1) / o.block_q;
    d.n_kb = (c.mask.seqlen_k + o.block_k - 1) / o.block_k;
    if (d.n_qb * d.n_kb > 1000000) { /* a picture nobody can read, and a huge file */
        rc = cli_fail(cmd, FM_ERR_INVALID, "%lld x %lld tiles: choose larger --block-q/--block-k "
                      "(at most 10^6 tiles)", (long long)d.n_qb, (long long)d.n_kb);
        goto done;
    }
    d.allowed = fm_mask_allowed_pairs(&c.mask, d.b, d.h);
    if (!(d.tiles = malloc((size_t)(d.n_qb * d.n_kb)))) {
        rc = cli_fail(cmd, FM_ERR_NOMEM, "cannot allocate %lld tiles",
                      (long long)(d.n_qb * d.n_kb));
        goto done;
    }
    if ((st = classify_tiles(&d)) != FM_OK) {
        rc = cli_report(cmd, st);
        goto done;
    }

    /* elements are worth drawing when one cell is at least a pixel */
    int64_t longest = c.mask.seqlen_q > c.mask.seqlen_k ? c.mask.seqlen_q : c.mask.seqlen_k;
    int draw_elements = o.elements == ELEMENTS_ON ||
                        (o.elements == ELEMENTS_AUTO && longest <= o.size_px);
    if ((rc = write_picture(cmd, o.out_path, &d, (double)o.size_px, draw_elements)) != 0)
        goto done;
    if (strcmp(o.out_path, "-") != 0) {
        int64_t total = d.n_qb * d.n_kb;
        printf("wrote %s: %s; %lld tiles: %lld masked, %lld partial, %lld unmasked; "
               "element density %.4f, tile density %.4f\n",
               o.out_path, d.heading, (long long)total, (long long)d.count[FM_TILE_MASKED],
               (long long)d.count[FM_TILE_PARTIAL], (long long)d.count[FM_TILE_UNMASKED],
               (double)d.allowed / ((double)c.mask.seqlen_q * (double)c.mask.seqlen_k),
               (double)(d.count[FM_TILE_PARTIAL] + d.count[FM_TILE_UNMASKED]) / (double)total);
    }
    rc = 0;
done:
    free(d.tiles);
    free(o.assignments);
    fm_mask_params_free(&params);
    fm_case_free(&c);
    return rc;
}
