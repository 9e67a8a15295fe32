/* tools/cmd_gen_dense.c — `flashmask gen_dense`: writes a case whose mask is dense
 * (mask_dense.npy; docs/sparse.md): a random, scrambled-band, QK-sparse or Hash-sparse
 * pattern, inputs drawn as `gen` draws them, and the dense oracle's expected outputs.
 * Layer: tools CLI (io/dense_case.c, api/dense_run.c). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "flashmask.h"

static int usage(void)
{
    printf("usage: flashmask gen_dense --pattern P [--density x] [--band w] [--buckets n]\n"
           "                           [--align A] [problem options] --out DIR\n"
           "Writes a dense-mask case DIR: case.json, mask_dense.npy (uint8 [B,Hm,Sq,Sk]),\n"
           "mask.npy too when the mask is column-representable, q/k/v/do.npy, the dense\n"
           "reference's out/lse/dq/dk/dv.npy, and q_keep/k_keep.npy (qk_sparse) or\n"
           "q_buckets/k_buckets.npy (hash_sparse).\n"
           "  --pattern P    random (i.i.d., --density), scrambled_band (--band), qk_sparse\n"
           "                 (keep probability --density), hash_sparse (--buckets, even)\n"
           "  --density x    in [0, 1] (default 0.1)   --band w   >= 1 (default 3)\n"
           "  --buckets n    (default 4)   --align A   none, top_left (default), bottom_right:\n"
           "                 the causal rule of qk_sparse / hash_sparse\n"
           "problem options (defaults: B=1, Hq=2, Sq=Sk=128, D=32, float32, seed 0;\n"
           "qk_sparse and hash_sparse use mask heads = Hq):\n%s",
           cli_problem_usage);
    return 0;
}

int cmd_gen_dense(int argc, char **argv)
{
    const char *cmd = argv[0]; /* as typed: run-dense, or run when run hands over */
    cli_problem_opts o = {0};
    const char *pattern_name = NULL, *out_dir = NULL, *density_text = "0.1";
    const char *band_text = "3", *buckets_text = "4", *align_name = "top_left";
    const cli_string_opt opts[] = {
        {"--pattern", &pattern_name, "--pattern"}, {"--density", &density_text, NULL},
        {"--band", &band_text, NULL}, {"--buckets", &buckets_text, NULL},
        {"--align", &align_name, NULL}, {"--out", &out_dir, "--out DIR"}};
    int rc;
    if (!cli_parse_string_options(cmd, argc, argv, opts, 6, &o, usage, &rc)) return rc;
    fm_dense_pattern pattern;
    fm_causal align;
    fm_status st = fm_dense_pattern_from_name(pattern_name, &pattern);
    if (st == FM_OK) st = fm_causal_from_name(align_name, &align);
    if (st != FM_OK) return cli_report(cmd, st);
    char *end = NULL;
    double density = strtod(density_text, &end);
    if (!end || end == density_text || *end || isspace((unsigned char)*density_text) ||
        !(density >= 0.0 && density <= 1.0))
        return cli_fail(cmd, FM_ERR_INVALID, "--density '%s' is not a number in [0, 1]",
                        density_text);
    int64_t band, buckets;
    if (cli_int64(cmd, "--band", band_text, 1, INT32_MAX, &band) != FM_OK ||
        cli_int64(cmd, "--buckets", buckets_text, 2, INT32_MAX, &buckets) != FM_OK)
        return 2;
    const cli_problem_opts defaults = {.batch = 1, .q_heads = 2, .seqlen_q = 128, .head_dim = 32,
                                       .dtype = FM_FLOAT32};
    if (cli_problem_finish(cmd, &o, &defaults) != FM_OK) return 2;
    fm_problem p;
    fm_problem_init(&p, o.batch, o.q_heads, o.kv_heads, o.seqlen_q, o.seqlen_k, o.head_dim);
    p.dtype = o.dtype;
    fm_dense_case c;
    st = fm_dense_case_generate(&c, &p, o.mask_heads, pattern, density, band, buckets, align,
                                o.seed);
    if (st == FM_OK) st = fm_dense_case_save(out_dir, &c);
    rc = cli_report(cmd, st);
    if (rc == 0) {
        int64_t allowed = 0;
        size_t n = (size_t)(p.batch * c.mask_heads) * (size_t)p.seqlen_q * (size_t)p.seqlen_k;
        for (size_t e = 0; e < n; e++) allowed += c.allowed[e];
        printf("wrote %s: %s mask [%lld,%lld,%lld,%lld], %lld allowed pairs (%.2f%%)\n", out_dir,
               fm_dense_pattern_name(pattern), (long long)p.batch, (long long)c.mask_heads,
               (long long)p.seqlen_q, (long long)p.seqlen_k, (long long)allowed,
               100.0 * (double)allowed / (double)n);
    }
    fm_dense_case_free(&c);
    return rc;
}
