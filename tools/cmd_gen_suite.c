/* tools/cmd_gen_suite.c — `flashmask gen-suite --out DIR`: the standard suite of cases a
 * kernel author runs their kernel on: every mask family of docs/spec.md §4 in float16, bfloat16 and
 * float32, odd sequence lengths, MHA/GQA/MQA, mask heads 1/Hk/Hq, Sq != Sk under both causal
 * alignments, and fully masked rows; plus manifest.json listing them. Each case directory
 * (docs/spec.md §6) holds the inputs rounded to its dtype and the float64 reference's outputs.
 * Sizes are small (Sq, Sk <= 109, D <= 64): the whole suite generates in seconds.
 * Shaped suites: --families, --dtypes, --head-dims, --seqlens, --batch, --q-heads,
 * --kv-heads, --alignment and --count replace the standard list by their grid (a CI picks the
 * subset its kernel supports, up to long sequences and D = 256).
 * The reference runs through tools/ref_compute.c (--reference; shared across MPI ranks).
 * Layer: tools CLI over io/ (fm_case_save), masks/ (builders) and reference/.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "ref_compute.h"
#include "flashmask/io.h"
#include "flashmask/oracle.h"

/* One case of the suite before it is drawn. */
typedef struct suite_spec {
    char name[64];
    int family;          /* fm_family, or -1: the custom fully-masked-rows mask */
    fm_dtype dtype;
    int64_t batch, q_heads, kv_heads, mask_heads, seqlen_q, seqlen_k, head_dim;
    fm_causal alignment; /* for causal families */
    const char *feature; /* what this case is for, in the manifest */
} suite_spec;

static const fm_dtype suite_dtypes[3] = {FM_FLOAT16, FM_BFLOAT16, FM_FLOAT32};
static const char *const dtype_short[3] = {"f16", "bf16", "f32"};

/* The mask every column of which hides rows [5, 17) (fully masked rows whatever the causal
 * part) and, from column 3 on, rows [20, 20 + j % 7) — a "custom" mask no family builds. */
static fm_status custom_mask(fm_mask *m, const suite_spec *s)
{
    fm_status st = fm_mask_init(m, s->batch, s->mask_heads, s->seqlen_q, s->seqlen_k,
                                FM_CAUSAL_NONE);
    if (st != FM_OK) return st;
    for (int64_t b = 0; b < s->batch; b++)
        for (int64_t h = 0; h < s->mask_heads; h++)
            for (int64_t j = 0; j < s->seqlen_k; j++) {
                int32_t *col = fm_mask_column(m, b, h, j);
                col[FM_LTS] = 5, col[FM_LTE] = 17;
                col[FM_UTS] = 20, col[FM_UTE] = j >= 3 ? (int32_t)(20 + j % 7) : 20;
            }
    return fm_mask_validate(m);
}

/* The list: per dtype, the 12 families at Sq = Sk (odd lengths, MHA/GQA/MQA, mask heads
 * 1/Hk/Hq rotating), then six cases for Sq != Sk, both alignments, and fully masked rows. */
static int build_specs(suite_spec *specs, int cap)
{
    int n = 0;
    static const int64_t kv_choice[3] = {4, 2, 1}; /* MHA, GQA, MQA with Hq = 4 */
    static const struct {
        int family; int64_t sq, sk; fm_causal align; const char *feature;
    } extra[6] = {
        {FM_FAMILY_CAUSAL, 80, 48, FM_CAUSAL_BOTTOM_RIGHT, "Sq>Sk bottom_right: fully masked rows"},
        {FM_FAMILY_CAUSAL, 48, 80, FM_CAUSAL_TOP_LEFT, "Sq<Sk top_left"},
        {FM_FAMILY_CAUSAL, 45, 83, FM_CAUSAL_BOTTOM_RIGHT, "Sq<Sk bottom_right"},
        {FM_FAMILY_SLIDING_WINDOW, 70, 51, FM_CAUSAL_TOP_LEFT, "Sq>Sk top_left"},
        {FM_FAMILY_CAUSAL_DOCUMENT, 51, 90, FM_CAUSAL_BOTTOM_RIGHT, "Sq<Sk bottom_right docs"},
        {-1, 37, 53, FM_CAUSAL_NONE, "custom mask: rows 5..16 fully masked"},
    };
    for (int d = 0; d < 3; d++) {
        for (int f = 0; f < FM_FAMILY_COUNT && n < cap; f++) {
            suite_spec *s = &specs[n++];
            memset(s, 0, sizeof *s);
            s->family = f;
            s->dtype = suite_dtypes[d];
            s->batch = 1 + (f % 2);
            s->q_heads = 4;
            s->kv_heads = kv_choice[f % 3];
            int64_t mh[3] = {1, s->kv_heads, s->q_heads};
            s->mask_heads = mh[(f / 3 + d) % 3];
            s->seqlen_q = s->seqlen_k = 61 + 16 * (f % 4); /* 61, 77, 93, 109: odd */
            s->head_dim = f % 2 ? 64 : 32;
            s->alignment = FM_CAUSAL_BOTTOM_RIGHT;
            s->feature = s->kv_heads == 4 ? "MHA" : s->kv_heads == 2 ? "GQA" : "MQA";
            snprintf(s->name, sizeof s->name, "%s-%s", fm_family_name((fm_family)f),
                     dtype_short[d]);
        }
        for (int e = 0; e < 6 && n < cap; e++) {
            suite_spec *s = &specs[n++];
            memset(s, 0, sizeof *s);
            s->family = extra[e].family;
            s->dtype = suite_dtypes[d];
            s->batch = 1, s->q_heads = 4, s->kv_heads = 2, s->mask_heads = 2;
            s->seqlen_q = extra[e].sq, s->seqlen_k = extra[e].sk;
            s->head_dim = 32;
            s->alignment = extra[e].align;
            s->feature = extra[e].feature;
            const char *fam = s->family < 0 ? "custom" : fm_family_name((fm_family)s->family);
            const char *al = s->alignment == FM_CAUSAL_TOP_LEFT ? "tl"
                             : s->alignment == FM_CAUSAL_BOTTOM_RIGHT ? "br" : "none";
            snprintf(s->name, sizeof s->name, "%s-sq%lld-sk%lld-%s-%s", fam,
                     (long long)s->seqlen_q, (long long)s->seqlen_k, al, dtype_short[d]);
        }
    }
    return n;
}

/* ---------------------------------------------------------------- shaped suites */

typedef struct shape_opts {
    const char *families, *dtypes, *head_dims, *seqlens, *alignment;
    int64_t batch, q_heads, kv_heads, count;
} shape_opts;

/* Splits a comma list into at most `cap` items of at most 63 characters. */
static int split_list(const char *text, char items[][64], int cap)
{
    int n = 0;
    while (text && *text && n < cap) {
        const char *comma = strchr(text, ',');
        size_t len = comma ? (size_t)(comma - text) : strlen(text);
        if (len > 0 && len < 64) {
            memcpy(items[n], text, len);
            items[n++][len] = '\0';
        } else if (len >= 64) {
            return -1;
        }
        text = comma ? comma + 1 : NULL;
    }
    return text && *text ? -1 : n;
}

/* The grid families x dtypes x head dims x lengths x alignments (alignments only for causal
 * families), spread evenly down to --count entries. Returns the number of specs or -1 after
 * printing an error. */
static int build_shaped(suite_spec **out, const shape_opts *o)
{
    const char *cmd = "gen-suite";
    char fam[32][64], dt[8][64], hd[16][64], sl[32][64];
    int nf = o->families ? split_list(o->families, fam, 32) : 0;
    int nd = split_list(o->dtypes ? o->dtypes : "float16,bfloat16,float32", dt, 8);
    int nh = split_list(o->head_dims ? o->head_dims : "64", hd, 16);
    int ns = split_list(o->seqlens ? o->seqlens : "77", sl, 32);
    if (!o->families)
        for (nf = 0; nf < FM_FAMILY_COUNT; nf++)
            snprintf(fam[nf], sizeof fam[nf], "%s", fm_family_name((fm_family)nf));
    if (nf <= 0 || nd <= 0 || nh <= 0 || ns <= 0) {
        cli_fail(cmd, FM_ERR_INVALID, "empty or overlong list in --families, --dtypes, "
                 "--head-dims or --seqlens");
        return -1;
    }
    int fams[32], nal = 1;
    fm_dtype dts[8];
    int64_t hds[16], sq[32], sk[32];
    fm_causal als[2] = {FM_CAUSAL_BOTTOM_RIGHT, FM_CAUSAL_TOP_LEFT};
    for (int i = 0; i < nf; i++) {
        fm_family f;
        if (!strcmp(fam[i], "custom")) fams[i] = -1;
        else if (fm_family_from_name(fam[i], &f) == FM_OK) fams[i] = (int)f;
        else return cli_fail(cmd, FM_ERR_INVALID, "--families: unknown family '%s' (see "
                             "`flashmask masks`; or custom)", fam[i]), -1;
    }
    for (int i = 0; i < nd; i++)
        if (fm_dtype_from_name(dt[i], &dts[i]) != FM_OK || dts[i] == FM_FLOAT64)
            return cli_fail(cmd, FM_ERR_INVALID, "--dtypes: '%s' is not float16, bfloat16 or "
                            "float32", dt[i]), -1;
    for (int i = 0; i < nh; i++)
        if (cli_int64(cmd, "--head-dims", hd[i], 1, 1024, &hds[i]) != FM_OK) return -1;
    for (int i = 0; i < ns; i++) { /* S or SQxSK */
        char *x = strchr(sl[i], 'x');
        if (x) *x = '\0';
        if (cli_int64(cmd, "--seqlens", sl[i], 1, 1 << 20, &sq[i]) != FM_OK) return -1;
        sk[i] = sq[i];
        if (x && cli_int64(cmd, "--seqlens", x + 1, 1, 1 << 20, &sk[i]) != FM_OK) return -1;
    }
    if (o->alignment && !strcmp(o->alignment, "both")) nal = 2;
    else if (o->alignment && fm_causal_from_name(o->alignment, &als[0]) != FM_OK)
        return cli_fail(cmd, FM_ERR_INVALID, "--alignment %s: expected bottom_right, top_left "
                        "or both", o->alignment), -1;
    const int64_t hq = o->q_heads, hk = o->kv_heads ? o->kv_heads : o->q_heads;
    if (hq % hk)
        return cli_fail(cmd, FM_ERR_INVALID, "--kv-heads %lld must divide --q-heads %lld",
                        (long long)hk, (long long)hq), -1;
    const int total = nf * nd * nh * ns * nal;
    suite_spec *all = calloc((size_t)total, sizeof *all);
    if (!all) return cli_fail(cmd, FM_ERR_NOMEM, "out of memory"), -1;
    int n = 0;
    for (int d = 0; d < nd; d++)
        for (int f = 0; f < nf; f++)
            for (int s = 0; s < ns; s++)
                for (int h = 0; h < nh; h++)
                    for (int a = 0; a < nal; a++) {
                        const int causal = fams[f] >= 0 && fm_family_is_causal((fm_family)fams[f]);
                        if (a > 0 && !causal) continue; /* one alignment is enough */
                        suite_spec *sp = &all[n++];
                        sp->family = fams[f], sp->dtype = dts[d];
                        sp->batch = o->batch, sp->q_heads = hq, sp->kv_heads = hk;
                        sp->mask_heads = hk;
                        sp->seqlen_q = sq[s], sp->seqlen_k = sk[s], sp->head_dim = hds[h];
                        sp->alignment = causal ? als[a] : FM_CAUSAL_NONE;
                        sp->feature = hk == hq ? "MHA" : hk == 1 ? "MQA" : "GQA";
                        const char *al = !causal ? "" : als[a] == FM_CAUSAL_TOP_LEFT ? "-tl"
                                                                                     : "-br";
                        snprintf(sp->name, sizeof sp->name, "%s-s%lldx%lld-d%lld%s-%s",
                                 fams[f] < 0 ? "custom" : fm_family_name((fm_family)fams[f]),
                                 (long long)sq[s], (long long)sk[s], (long long)hds[h], al,
                                 dts[d] == FM_BFLOAT16 ? "bf16" : dts[d] == FM_FLOAT16 ? "f16" : "f32");
                    }
    if (o->count > 0 && o->count < n) { /* evenly spread, deterministic */
        for (int64_t i = 0; i < o->count; i++) all[i] = all[(int)(i * n / o->count)];
        n = (int)o->count;
    }
    *out = all;
    return n;
}

/* Draws the case of one spec (inputs rounded to its dtype, reference outputs) and saves it. */
static fm_status make_case(const suite_spec *s, uint64_t seed, const char *dir, fm_impl impl,
                           fm_ref_backend backend, int64_t *masked_rows)
{
    fm_case c;
    fm_case_init(&c);
    fm_problem_init(&c.problem, s->batch, s->q_heads, s->kv_heads, s->seqlen_q, s->seqlen_k,
                    s->head_dim);
    c.problem.dtype = s->dtype;
    c.seed = seed;
    fm_status st;
    if (s->family < 0) {
        snprintf(c.mask_kind, sizeof c.mask_kind, "custom");
        st = custom_mask(&c.mask, s);
    } else {
        snprintf(c.mask_kind, sizeof c.mask_kind, "%s", fm_family_name((fm_family)s->family));
        st = fm_mask_params_default(&c.mask_params, (fm_family)s->family, s->seqlen_k);
        if (st == FM_OK) {
            c.has_params = 1;
            st = fm_mask_build(&c.mask, &c.mask_params, s->batch, s->mask_heads, s->seqlen_q,
                               s->seqlen_k, s->alignment);
        }
    }
    size_t nq = 0, nkv = 0, nl = 0;
    if (st == FM_OK) st = fm_problem_validate(&c.problem, &c.mask);
    if (st == FM_OK) {
        nq = fm_problem_q_elems(&c.problem), nkv = fm_problem_kv_elems(&c.problem);
        nl = fm_problem_lse_elems(&c.problem);
        c.q = malloc(nq * sizeof(double)), c.dout = malloc(nq * sizeof(double));
        c.k = malloc(nkv * sizeof(double)), c.v = malloc(nkv * sizeof(double));
        c.out = malloc(nq * sizeof(double)), c.lse = malloc(nl * sizeof(double));
        c.dq = malloc(nq * sizeof(double));
        c.dk = malloc(nkv * sizeof(double)), c.dv = malloc(nkv * sizeof(double));
        if (!c.q || !c.dout || !c.k || !c.v || !c.out || !c.lse || !c.dq || !c.dk || !c.dv)
            st = FM_ERR_NOMEM;
    }
    if (st == FM_OK) {
        /* standard normal inputs, rounded to the case's dtype: every consumer sees the same */
        fm_rng rng;
        fm_rng_seed(&rng, seed);
        double *xs[4] = {c.q, c.k, c.v, c.dout};
        size_t ns[4] = {nq, nkv, nkv, nq};
        for (int t = 0; t < 4; t++)
            for (size_t i = 0; i < ns[t]; i++)
                xs[t][i] = fm_round_to_dtype(fm_rng_normal(&rng), s->dtype);
        fm_tensors t = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout, .out = c.out,
                        .lse = c.lse, .dq = c.dq, .dk = c.dk, .dv = c.dv};
        st = cli_reference_compute(&c.problem, &c.mask, impl, backend, &t); /* MPI: rank 0 all */
    }
    if (st == FM_OK) {
        *masked_rows = 0;
        for (size_t i = 0; i < nl; i++) *masked_rows += isinf(c.lse[i]) && c.lse[i] < 0;
        if (cli_mpi_rank() == 0) st = fm_case_save(dir, &c);
    }
    fm_case_free(&c);
    return st;
}

static cJSON *manifest_entry(const suite_spec *s, uint64_t seed, int64_t masked_rows)
{
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "name", s->name);
    cJSON_AddStringToObject(e, "mask_kind",
                            s->family < 0 ? "custom" : fm_family_name((fm_family)s->family));
    cJSON_AddStringToObject(e, "dtype", fm_dtype_name(s->dtype));
    cJSON_AddStringToObject(e, "causal",
                            (s->family >= 0 && fm_family_is_causal((fm_family)s->family))
                                ? fm_causal_name(s->alignment) : "none");
    const int64_t sizes[7] = {s->batch,    s->q_heads,  s->kv_heads, s->mask_heads,
                              s->seqlen_q, s->seqlen_k, s->head_dim};
    cli_json_add_sizes(e, sizes);
    cJSON_AddNumberToObject(e, "seed", (double)seed);
    cJSON_AddNumberToObject(e, "fully_masked_rows", (double)masked_rows);
    cJSON_AddStringToObject(e, "feature", s->feature);
    return e;
}

/* manifest.json, written to a temporary name and renamed: a suite either has it or not. */
static fm_status write_manifest(const char *out, cJSON *root)
{
    char path[4096], tmp[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/manifest.json", out) >= sizeof path ||
        (size_t)snprintf(tmp, sizeof tmp, "%s/.manifest.json.tmp", out) >= sizeof tmp) {
        cli_fail("gen-suite", FM_ERR_INVALID, "--out %s: path too long", out);
        return FM_ERR_INVALID;
    }
    char *text = cJSON_Print(root);
    if (!text) {
        cli_fail("gen-suite", FM_ERR_NOMEM, "manifest: out of memory");
        return FM_ERR_NOMEM;
    }
    int ok = cli_write_text(tmp, text);
    free(text);
    if (!ok || rename(tmp, path) != 0) {
        remove(tmp);
        cli_fail("gen-suite", FM_ERR_IO, "cannot write %s: %s", path, strerror(errno));
        return FM_ERR_IO;
    }
    return FM_OK;
}

static int suite_main(int argc, char **argv);

/* Under mpirun (MPI build) every rank runs the suite, sharing each case's reference; only rank
 * 0 touches the file system (tools/ref_compute.c). */
int cmd_gen_suite(int argc, char **argv)
{
    return cli_mpi_run(suite_main, argc, argv);
}

static int suite_main(int argc, char **argv)
{
    const char *cmd = "gen-suite", *out = NULL, *seed_text = NULL;
    shape_opts so = {.batch = 1, .q_heads = 4, .kv_heads = 0, .count = 0};
    const char *batch_t = NULL, *hq_t = NULL, *hk_t = NULL, *count_t = NULL;
    int shaped = 0;
    fm_ref_backend backend = FM_REF_AUTO;
    fm_impl impl = FM_IMPL_REFERENCE; /* FM_IMPL_REFERENCE_CUDA with --reference cuda */
    for (int i = 1; i < argc; i++) {
        int m;
        if (cli_is_help(argv[i])) {
            printf("usage: flashmask gen-suite --out DIR [--seed N] [shape options]\n"
                   "Writes the standard suite: every mask family x float16/bfloat16/float32, "
                   "odd lengths,\nMHA/GQA/MQA, mask heads, Sq != Sk with both causal "
                   "alignments, fully masked rows;\none case directory per case and "
                   "DIR/manifest.json. DIR must not exist or be empty.\n"
                   "Shape options (any of them replaces the standard list by the grid):\n"
                   "  --families F,...   mask families (`flashmask masks`) or custom "
                   "(default: all 12)\n"
                   "  --dtypes X,...     float16,bfloat16,float32 (default: all three)\n"
                   "  --head-dims D,...  e.g. 64,128,256 (default 64)\n"
                   "  --seqlens S,...    S (Sq = Sk) or SQxSK, e.g. 128,1000x4096,8192 "
                   "(default 77)\n"
                   "  --batch B  --q-heads H  --kv-heads H   (default 1, 4, = q-heads)\n"
                   "  --alignment A      bottom_right (default), top_left or both (causal "
                   "families)\n"
                   "  --count N          at most N cases, spread evenly over the grid\n"
                   CLI_REFERENCE_USAGE);
            return 0;
        }
        const struct { const char *flag; const char **dst; } opts[] = {
            {"--families", &so.families}, {"--dtypes", &so.dtypes},
            {"--head-dims", &so.head_dims}, {"--seqlens", &so.seqlens},
            {"--alignment", &so.alignment}, {"--batch", &batch_t}, {"--q-heads", &hq_t},
            {"--kv-heads", &hk_t}, {"--count", &count_t}};
        int matched = 0;
        for (size_t k = 0; k < sizeof opts / sizeof opts[0] && !matched; k++)
            if ((m = cli_option(cmd, argc, argv, &i, opts[k].flag, opts[k].dst)) != 0) {
                if (m < 0) return 2;
                matched = shaped = 1;
            }
        if (matched) continue;
        if ((m = cli_reference_option(cmd, argc, argv, &i, &backend, &impl)) != 0) {
            if (m < 0) return 2;
        } else if ((m = cli_option(cmd, argc, argv, &i, "--out", &out)) != 0) {
            if (m < 0) return 2;
        } else if ((m = cli_option(cmd, argc, argv, &i, "--seed", &seed_text)) != 0) {
            if (m < 0) return 2;
        } else {
            return cli_fail(cmd, FM_ERR_INVALID, "unexpected argument '%s'", argv[i]);
        }
    }
    if ((batch_t && cli_int64(cmd, "--batch", batch_t, 1, 1 << 16, &so.batch)) ||
        (hq_t && cli_int64(cmd, "--q-heads", hq_t, 1, 1 << 16, &so.q_heads)) ||
        (hk_t && cli_int64(cmd, "--kv-heads", hk_t, 1, 1 << 16, &so.kv_heads)) ||
        (count_t && cli_int64(cmd, "--count", count_t, 1, 1 << 20, &so.count)))
        return 2;
    if (!out) return cli_fail(cmd, FM_ERR_INVALID, "--out DIR is required");
    uint64_t base_seed = 2024;
    if (seed_text && cli_uint64(cmd, "--seed", seed_text, &base_seed) != FM_OK) return 2;
    /* case i uses seed base + i, written to JSON: keep every one exact (<= 2^53) */
    if (base_seed > (UINT64_C(1) << 53) - 64)
        return cli_fail(cmd, FM_ERR_INVALID, "--seed %s: must be <= 2^53 - 64 (JSON integers)",
                        seed_text);
    /* DIR must be new or empty (an old manifest.json beside a half-rewritten suite
     * would look complete); the manifest is written last, so a failed run leaves none. */
    int dir_rc = 0; /* rank 0 alone creates DIR; every rank learns the outcome */
    if (cli_mpi_rank() == 0 && mkdir(out, 0777) != 0) {
        int err = errno;
        DIR *d = err == EEXIST ? opendir(out) : NULL;
        struct dirent *e = NULL;
        while (d && (e = readdir(d)) && (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))) {
        }
        if (d) closedir(d);
        if (err != EEXIST)
            dir_rc = cli_fail(cmd, FM_ERR_IO, "cannot create %s: %s", out, strerror(err));
        else if (!d || e)
            dir_rc = cli_fail(cmd, FM_ERR_IO, "--out %s already exists and is not an empty "
                              "directory; remove it or choose another", out);
    }
    if ((dir_rc = cli_mpi_agree(dir_rc)) != 0) return dir_rc;

    suite_spec standard[64], *specs = standard, *grid = NULL;
    int n;
    if (shaped) {
        if ((n = build_shaped(&grid, &so)) < 0) return 2;
        specs = grid;
    } else {
        n = build_specs(standard, 64);
    }
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "flashmask-suite");
    cJSON_AddNumberToObject(root, "version", 1);
    cJSON_AddStringToObject(root, "generator", "flashmask gen-suite " FM_VERSION_STRING);
    cJSON_AddNumberToObject(root, "seed", (double)base_seed);
    cJSON *cases = cJSON_AddArrayToObject(root, "cases");
    int rc = 0;
    for (int i = 0; i < n; i++) {
        char dir[4096];
        if ((size_t)snprintf(dir, sizeof dir, "%s/%s", out, specs[i].name) >= sizeof dir) {
            rc = cli_fail(cmd, FM_ERR_INVALID, "--out %s: path too long", out);
            break;
        }
        uint64_t seed = base_seed + (uint64_t)i;
        int64_t masked = 0;
        fm_status st = make_case(&specs[i], seed, dir, impl, backend, &masked);
        st = (fm_status)cli_mpi_agree((int)st);
        if (st != FM_OK) {
            rc = cli_fail(cmd, st, "case %s: %s", specs[i].name,
                          fm_last_error()[0] ? fm_last_error() : "out of memory");
            break;
        }
        cJSON_AddItemToArray(cases, manifest_entry(&specs[i], seed, masked));
        if (cli_mpi_rank() == 0)
            printf("%-40s %-8s B=%lld Hq=%lld Hk=%lld Hm=%lld Sq=%lld Sk=%lld D=%lld "
                   "masked_rows=%lld\n",
                   specs[i].name, fm_dtype_name(specs[i].dtype), (long long)specs[i].batch,
                   (long long)specs[i].q_heads, (long long)specs[i].kv_heads,
                   (long long)specs[i].mask_heads, (long long)specs[i].seqlen_q,
                   (long long)specs[i].seqlen_k, (long long)specs[i].head_dim,
                   (long long)masked);
    }
    if (rc == 0 && cli_mpi_rank() == 0 && write_manifest(out, root) != FM_OK) rc = 2;
    if (rc == 0 && cli_mpi_rank() == 0) printf("wrote %d cases and %s/manifest.json\n", n, out);
    cJSON_Delete(root);
    free(grid);
    return rc;
}
