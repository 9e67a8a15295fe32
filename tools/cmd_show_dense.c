/* tools/cmd_show_dense.c — `flashmask show-dense`: what a dense-mask case (docs/sparse.md) looks
 * like to the kernels: its shape and allowed pairs, which form the front door picks (column
 * form or Binary Block Masking), the BBM tile counts and full runs, the tile counts after
 * Reverse Cuthill-McKee, and a picture of the tile codes of (b=0, head 0); --json FILE writes
 * the numbers as JSON too. Layer: tools CLI (io/dense_case.c, masks/bbm.c, masks/rcm.c). */
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "flashmask.h"

static int usage(void)
{
    printf("usage: flashmask show-dense --case DIR [--block-q n] [--block-k n] [--json FILE]\n"
           "Prints the dense-mask case's shape, allowed pairs, the form the front door picks,\n"
           "the BBM tile counts (empty/partial/full), tile counts after RCM reordering and the\n"
           "tile codes of batch 0, head 0 ('.' empty, '+' partial, '#' full; up to 64 x 64).\n"
           "  --block-q n, --block-k n   tile size (default 128 x 128)\n"
           "  --json FILE  also write the numbers (no picture) as JSON\n");
    return 0;
}

static void json_stats(cJSON *root, const char *key, const fm_tile_stats *s)
{
    cJSON *o = cJSON_AddObjectToObject(root, key);
    cJSON_AddNumberToObject(o, "total", (double)s->total);
    cJSON_AddNumberToObject(o, "empty", (double)s->masked);
    cJSON_AddNumberToObject(o, "partial", (double)s->partial);
    cJSON_AddNumberToObject(o, "full", (double)s->unmasked);
    cJSON_AddNumberToObject(o, "density", fm_tile_density(s));
}

/* The numbers of the printed report as one JSON document. Returns 0 or the exit code. */
static int write_json(const char *path, const char *case_dir, const fm_dense_case *c,
                      const fm_any_mask *any, const fm_bbm *bbm, const fm_tile_stats *stats,
                      const fm_rcm_report *rep)
{
    const fm_problem *p = &c->problem;
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "case", case_dir);
    cJSON_AddStringToObject(root, "pattern", fm_dense_pattern_name(c->pattern));
    const int64_t sizes[7] = {p->batch, p->q_heads, p->kv_heads, c->mask_heads, p->seqlen_q,
                              p->seqlen_k, p->head_dim};
    cli_json_add_sizes(root, sizes);
    cJSON_AddStringToObject(root, "dtype", fm_dtype_name(p->dtype));
    cJSON_AddNumberToObject(root, "allowed_pairs", (double)fm_bbm_total_allowed_pairs(bbm));
    cJSON_AddNumberToObject(root, "cells", (double)(p->batch * c->mask_heads) *
                                               (double)p->seqlen_q * (double)p->seqlen_k);
    cJSON_AddStringToObject(root, "form", fm_mask_form_name(any->form));
    cJSON_AddNumberToObject(root, "block_q", (double)bbm->block_q);
    cJSON_AddNumberToObject(root, "block_k", (double)bbm->block_k);
    json_stats(root, "bbm", stats);
    json_stats(root, "bbm_after_rcm", &rep->after);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    int ok = cli_write_text(path, text);
    free(text);
    return ok ? 0 : cli_fail("show_dense", FM_ERR_IO, "--json %s: cannot write the file", path);
}

static void print_stats(const char *what, const fm_tile_stats *s)
{
    printf("%-22s %lld tiles: %lld empty, %lld partial, %lld full (%.1f%% need work)\n", what,
           (long long)s->total, (long long)s->masked, (long long)s->partial,
           (long long)s->unmasked, 100.0 * fm_tile_density(s));
}

int cmd_show_dense(int argc, char **argv)
{
    const char *cmd = argv[0]; /* the subcommand as typed */
    const char *case_dir = NULL, *bq_text = "128", *bk_text = "128", *json_path = NULL;
    const cli_string_opt opts[] = {
        {"--case", &case_dir, "--case DIR"}, {"--block-q", &bq_text, NULL},
        {"--block-k", &bk_text, NULL},       {"--json", &json_path, NULL}};
    int rc;
    if (!cli_parse_string_options(cmd, argc, argv, opts, 4, NULL, usage, &rc)) return rc;
    int64_t bq, bk;
    if (cli_int64(cmd, "--block-q", bq_text, 1, 1 << 20, &bq) != FM_OK ||
        cli_int64(cmd, "--block-k", bk_text, 1, 1 << 20, &bk) != FM_OK)
        return 2;
    fm_dense_case c;
    fm_status st = fm_dense_case_load(case_dir, &c);
    if (st != FM_OK) return cli_report(cmd, st);
    const fm_problem *p = &c.problem;
    fm_any_mask any = {0};
    fm_bbm bbm = {0};
    fm_rcm_report rep;
    fm_tile_stats stats;
    st = fm_mask_from_dense_auto(&any, c.allowed, p->batch, c.mask_heads, p->seqlen_q,
                                 p->seqlen_k, FM_CAUSAL_NONE, bq, bk);
    if (st == FM_OK)
        st = fm_bbm_from_dense(&bbm, c.allowed, p->batch, c.mask_heads, p->seqlen_q, p->seqlen_k,
                               bq, bk);
    if (st == FM_OK) st = fm_bbm_tile_stats(&bbm, &stats);
    if (st == FM_OK)
        st = fm_rcm_tile_report(c.allowed, p->batch, c.mask_heads, p->seqlen_q, p->seqlen_k, bq,
                                bk, &rep);
    rc = cli_report(cmd, st);
    if (rc == 0) {
        int64_t allowed = fm_bbm_total_allowed_pairs(&bbm);
        double cells =
            (double)(p->batch * c.mask_heads) * (double)p->seqlen_q * (double)p->seqlen_k;
        printf("case %s: pattern %s, B=%lld Hq=%lld Hk=%lld Hm=%lld Sq=%lld Sk=%lld D=%lld %s\n",
               case_dir, fm_dense_pattern_name(c.pattern), (long long)p->batch,
               (long long)p->q_heads, (long long)p->kv_heads, (long long)c.mask_heads,
               (long long)p->seqlen_q, (long long)p->seqlen_k, (long long)p->head_dim,
               fm_dtype_name(p->dtype));
        printf("allowed pairs          %lld of %.0f (%.2f%%)\n", (long long)allowed, cells,
               100.0 * (double)allowed / cells);
        printf("front door picks       %s%s\n", fm_mask_form_name(any.form),
               any.form == FM_FORM_COLUMNS ? " (every column has <= 2 masked runs)"
                                           : " (some column has more than 2 masked runs)");
        printf("tiles                  %lld x %lld\n", (long long)bbm.block_q,
               (long long)bbm.block_k);
        print_stats("BBM", &stats);
        print_stats("BBM after RCM", &rep.after);
        int64_t nq = bbm.n_q_blocks < 64 ? bbm.n_q_blocks : 64;
        int64_t nk = bbm.n_k_blocks < 64 ? bbm.n_k_blocks : 64;
        printf("tile codes of b=0, head 0 (full run of each query tile in [start,end)):\n");
        for (int64_t qb = 0; qb < nq; qb++) {
            printf("  ");
            for (int64_t kb = 0; kb < nk; kb++) {
                fm_tile_class cl = fm_bbm_tile(&bbm, 0, 0, qb, kb);
                putchar(cl == FM_TILE_MASKED ? '.' : cl == FM_TILE_PARTIAL ? '+' : '#');
            }
            printf("  [%d,%d)\n", bbm.run_start[qb], bbm.run_end[qb]);
        }
        if (json_path) rc = write_json(json_path, case_dir, &c, &any, &bbm, &stats, &rep);
    }
    fm_any_mask_free(&any);
    fm_bbm_free(&bbm);
    fm_dense_case_free(&c);
    return rc;
}
