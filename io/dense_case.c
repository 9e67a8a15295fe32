/* io/dense_case.c — the case format extended to dense masks (docs/sparse.md): a docs/spec.md §6 case
 * directory whose mask is mask_dense.npy (uint8 [B, Hm, Sq, Sk], 1 = allowed) instead of, or
 * besides, mask.npy; for QK-sparse and Hash-sparse cases also the keep flags (q_keep.npy,
 * k_keep.npy) or bucket ids (q_buckets.npy, k_buckets.npy) the dense mask was made from.
 * Generation of the patterns (with the dense oracle's expected outputs), saving and loading;
 * running a case is api/dense_run.c's.
 * Layer: io <- reference (dense oracle), sparse (QK-/Hash-sparse masks), masks, core; the CLI's
 * gen_dense / run_dense / show_dense and python/flashmask/sparse.py call it.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "flashmask/io.h"
#include "flashmask/reference.h"
#include "flashmask/sparse.h"
#include "io_internal.h"
#include "fm_internal.h"

static const char *const pattern_names[FM_DENSE_PATTERN_COUNT] = {
    "random", "scrambled_band", "qk_sparse", "hash_sparse", "custom"};

const char *fm_dense_pattern_name(fm_dense_pattern pattern)
{
    return (unsigned)pattern < FM_DENSE_PATTERN_COUNT ? pattern_names[pattern] : "unknown";
}

fm_status fm_dense_pattern_from_name(const char *name, fm_dense_pattern *out)
{
    for (int i = 0; i < FM_DENSE_PATTERN_COUNT; i++)
        if (name && strcmp(name, pattern_names[i]) == 0) {
            *out = (fm_dense_pattern)i;
            return FM_OK;
        }
    return fm_fail(FM_ERR_INVALID,
                   "unknown dense pattern '%s' (expected random, scrambled_band, qk_sparse, "
                   "hash_sparse or custom)", name ? name : "(null)");
}

void fm_dense_case_free(fm_dense_case *c)
{
    if (!c) return;
    free(c->allowed), free(c->q_keep), free(c->k_keep), free(c->q_buckets), free(c->k_buckets);
    free(c->q), free(c->k), free(c->v), free(c->dout);
    free(c->out), free(c->lse), free(c->dq), free(c->dk), free(c->dv);
    memset(c, 0, sizeof *c);
}

static size_t mask_elems(const fm_dense_case *c)
{
    const fm_problem *p = &c->problem;
    return (size_t)(p->batch * c->mask_heads) * (size_t)p->seqlen_q * (size_t)p->seqlen_k;
}

/* The pattern's dense mask into c->allowed (keep flags / buckets first where it has them). */
static fm_status make_pattern(fm_dense_case *c, fm_rng *rng)
{
    const fm_problem *p = &c->problem;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k;
    const size_t nqr = (size_t)(p->batch * p->q_heads * Sq);
    const size_t nkr = (size_t)(p->batch * p->kv_heads * Sk);
    switch (c->pattern) {
    case FM_DENSE_RANDOM: {
        for (size_t e = 0; e < mask_elems(c); e++) c->allowed[e] = fm_rng_uniform(rng) < c->density;
        return FM_OK;
    }
    case FM_DENSE_SCRAMBLED_BAND: {
        /* |perm(i) - perm(j)| < band with one random permutation of positions per (b, head):
         * a band matrix no column form holds and tiles cannot skip until RCM restores it */
        int64_t n = Sq > Sk ? Sq : Sk;
        int64_t *perm = fm_alloc((size_t)n, sizeof(int64_t), "scrambled band permutation");
        if (!perm) return FM_ERR_NOMEM;
        size_t e = 0;
        for (int64_t bh = 0; bh < p->batch * c->mask_heads; bh++) {
            for (int64_t x = 0; x < n; x++) perm[x] = x;
            for (int64_t x = n - 1; x > 0; x--) {
                int64_t y = (int64_t)fm_rng_below(rng, (uint64_t)x + 1), t = perm[x];
                perm[x] = perm[y], perm[y] = t;
            }
            for (int64_t i = 0; i < Sq; i++)
                for (int64_t j = 0; j < Sk; j++, e++)
                    c->allowed[e] = llabs(perm[i] - perm[j]) < c->band;
        }
        free(perm);
        return FM_OK;
    }
    case FM_DENSE_QK_SPARSE: {
        c->q_keep = fm_alloc(nqr, 1, "q_keep");
        c->k_keep = fm_alloc(nkr, 1, "k_keep");
        if (!c->q_keep || !c->k_keep) return FM_ERR_NOMEM;
        for (size_t e = 0; e < nqr; e++) c->q_keep[e] = fm_rng_uniform(rng) < c->density;
        for (size_t e = 0; e < nkr; e++) c->k_keep[e] = fm_rng_uniform(rng) < c->density;
        return fm_qk_sparse_dense_mask(p, c->alignment, c->q_keep, c->k_keep, c->allowed);
    }
    case FM_DENSE_HASH_SPARSE: {
        c->q_buckets = fm_alloc(nqr, sizeof(int32_t), "q_buckets");
        c->k_buckets = fm_alloc(nkr, sizeof(int32_t), "k_buckets");
        if (!c->q_buckets || !c->k_buckets) return FM_ERR_NOMEM;
        fm_status st = fm_hash_buckets(p, c->q, c->k, c->n_buckets, c->seed, c->q_buckets,
                                       c->k_buckets);
        if (st != FM_OK) return st;
        return fm_hash_sparse_dense_mask(p, c->alignment, c->q_buckets, c->k_buckets,
                                         c->n_buckets, c->allowed);
    }
    default:
        return fm_fail(FM_ERR_INVALID, "dense case: pattern %s cannot be generated",
                       fm_dense_pattern_name(c->pattern));
    }
}

fm_status fm_dense_case_generate(fm_dense_case *c, const fm_problem *p, int64_t mask_heads,
                                 fm_dense_pattern pattern, double density, int64_t band,
                                 int64_t n_buckets, fm_causal alignment, uint64_t seed)
{
    fm_clear_error();
    if (!c) return fm_fail(FM_ERR_INVALID, "dense case: NULL output");
    memset(c, 0, sizeof *c);
    if (pattern == FM_DENSE_QK_SPARSE || pattern == FM_DENSE_HASH_SPARSE)
        mask_heads = p ? p->q_heads : 0;
    fm_status st = FM_OK;
    if (!p) return fm_fail(FM_ERR_INVALID, "dense case: NULL problem");
    if (!(density >= 0.0 && density <= 1.0))
        return fm_fail(FM_ERR_INVALID, "dense case: density %g outside [0, 1]", density);
    if (band < 1) return fm_fail(FM_ERR_INVALID, "dense case: band %lld < 1", (long long)band);
    c->problem = *p, c->mask_heads = mask_heads, c->pattern = pattern, c->density = density;
    c->band = band, c->n_buckets = n_buckets, c->alignment = alignment, c->seed = seed;
    /* the shape check of a dense mask, with an all-allowed stand-in for the values */
    size_t n;
    int64_t dims[] = {p->batch, mask_heads, p->seqlen_q, p->seqlen_k};
    if (mask_heads < 1)
        return fm_fail(FM_ERR_INVALID, "dense case: mask heads %lld (must be >= 1)",
                       (long long)mask_heads);
    if (fm_mul_sizes(&n, 4, dims)) /* named as what it is (once: it said "mask heads") */
        return fm_fail(p->batch < 1 || p->seqlen_q < 1 || p->seqlen_k < 1 ? FM_ERR_INVALID
                                                                          : FM_ERR_OVERFLOW,
                       "dense case: B*Hm*Sq*Sk = %lld*%lld*%lld*%lld is negative or overflows "
                       "size_t", (long long)p->batch, (long long)mask_heads,
                       (long long)p->seqlen_q, (long long)p->seqlen_k);
    c->allowed = fm_calloc(n, 1, "dense case mask");
    if (!c->allowed) return FM_ERR_NOMEM;
    if ((st = fm_dense_check_problem(p, c->allowed, mask_heads)) != FM_OK) goto fail;
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    c->q = fm_alloc(nq, 8, "q"), c->k = fm_alloc(nkv, 8, "k"), c->v = fm_alloc(nkv, 8, "v");
    c->dout = fm_alloc(nq, 8, "dout"), c->out = fm_alloc(nq, 8, "out");
    c->lse = fm_alloc(nl, 8, "lse"), c->dq = fm_alloc(nq, 8, "dq");
    c->dk = fm_alloc(nkv, 8, "dk"), c->dv = fm_alloc(nkv, 8, "dv");
    if (!c->q || !c->k || !c->v || !c->dout || !c->out || !c->lse || !c->dq || !c->dk || !c->dv) {
        st = FM_ERR_NOMEM;
        goto fail;
    }
    /* inputs exactly as `flashmask gen` draws them: standard normal from fm_rng(seed) in the
     * order q, k, v, dout, rounded to the case's dtype; the mask from a generator seeded after */
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    double *ins[4] = {c->q, c->k, c->v, c->dout};
    size_t ns[4] = {nq, nkv, nkv, nq};
    for (int t = 0; t < 4; t++)
        for (size_t e = 0; e < ns[t]; e++)
            ins[t][e] = fm_round_to_dtype(fm_rng_normal(&rng), p->dtype);
    if ((st = make_pattern(c, &rng)) != FM_OK) goto fail;
    /* expected outputs: the dense-mask oracle */
    st = fm_ref_forward_dense(p, c->allowed, mask_heads, c->q, c->k, c->v, c->out, c->lse);
    if (st == FM_OK)
        st = fm_ref_backward_dense(p, c->allowed, mask_heads, c->q, c->k, c->v, c->out, c->lse,
                                   c->dout, c->dq, c->dk, c->dv);
    if (st == FM_OK) return FM_OK;
fail:
    fm_dense_case_free(c);
    return st;
}

/* ---------------------------------------------------------------- saving */

static fm_status json_text(const fm_dense_case *c, char **text)
{
    const fm_problem *p = &c->problem;
    cJSON *root = cJSON_CreateObject(), *params = cJSON_CreateObject();
    int ok = root && params;
    ok = ok && cJSON_AddStringToObject(root, "format", "flashmask-case");
    ok = ok && cJSON_AddNumberToObject(root, "version", 1);
    const struct { const char *key; int64_t v; } ints[] = {
        {"batch", p->batch},       {"q_heads", p->q_heads},   {"kv_heads", p->kv_heads},
        {"mask_heads", c->mask_heads}, {"seqlen_q", p->seqlen_q}, {"seqlen_k", p->seqlen_k},
        {"head_dim", p->head_dim},
    };
    for (size_t i = 0; ok && i < sizeof ints / sizeof ints[0]; i++)
        ok = cJSON_AddNumberToObject(root, ints[i].key, (double)ints[i].v) != NULL;
    ok = ok && cJSON_AddNumberToObject(root, "scale", p->scale);
    /* the dense mask holds everything, causal part included: the case's causal is none */
    ok = ok && cJSON_AddStringToObject(root, "causal", "none");
    ok = ok && cJSON_AddStringToObject(root, "dtype", fm_dtype_name(p->dtype));
    ok = ok && cJSON_AddStringToObject(root, "mask_kind", "custom");
    ok = ok && cJSON_AddStringToObject(params, "dense", fm_dense_pattern_name(c->pattern));
    if (c->pattern == FM_DENSE_RANDOM || c->pattern == FM_DENSE_QK_SPARSE)
        ok = ok && cJSON_AddNumberToObject(params, "density", c->density);
    if (c->pattern == FM_DENSE_SCRAMBLED_BAND)
        ok = ok && cJSON_AddNumberToObject(params, "band", (double)c->band);
    if (c->pattern == FM_DENSE_HASH_SPARSE)
        ok = ok && cJSON_AddNumberToObject(params, "n_buckets", (double)c->n_buckets);
    if (c->pattern == FM_DENSE_QK_SPARSE || c->pattern == FM_DENSE_HASH_SPARSE)
        ok = ok && cJSON_AddStringToObject(params, "alignment", fm_causal_name(c->alignment));
    ok = ok && cJSON_AddItemToObject(root, "mask_params", params);
    if (!ok) cJSON_Delete(params); /* not attached */
    ok = ok && cJSON_AddNumberToObject(root, "seed", (double)(c->seed & ((1ull << 53) - 1)));
    *text = ok ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    return *text ? FM_OK : fm_fail(FM_ERR_NOMEM, "dense case: cannot build case.json");
}

fm_status fm_dense_case_save(const char *dir, const fm_dense_case *c)
{
    fm_clear_error();
    if (!dir || !c || !c->allowed || !c->q || !c->k || !c->v || !c->dout)
        return fm_fail(FM_ERR_INVALID, "dense case save: NULL directory, mask or input");
    const fm_problem *p = &c->problem;
    fm_status st = fm_dense_check_problem(p, c->allowed, c->mask_heads);
    if (st != FM_OK) return st;
    char *text = NULL;
    if ((st = json_text(c, &text)) != FM_OK) return st;
    fm_io_outdir o;
    if ((st = fm_io_case_begin(&o, dir, text)) != FM_OK) return st;
    char path[PATH_MAX];
    const int64_t B = p->batch, Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t ms[4] = {B, c->mask_heads, Sq, Sk};
    const int64_t qs[4] = {B, p->q_heads, Sq, D}, ks[4] = {B, p->kv_heads, Sk, D};
    const int64_t ls[3] = {B, p->q_heads, Sq}, kr[3] = {B, p->kv_heads, Sk};
    if (st == FM_OK) st = fm_io_outdir_file(&o, "mask_dense.npy", path, sizeof path);
    if (st == FM_OK) st = fm_npy_write(path, FM_NPY_U1, 4, ms, c->allowed);
    /* mask_dense.npy only: a case has one mask file (a column-form mask.npy beside it could
     * say something else, and `run` and `run-dense` would then disagree) */
    /* inputs: float64 for a float64 case, else float32 holding the dtype's values (docs/spec.md §6) */
    const struct {
        const char *file;
        const double *x;
        const int64_t *shape;
        int nd;
        int input;
    } t[] = {
        {"q.npy", c->q, qs, 4, 1},     {"k.npy", c->k, ks, 4, 1},     {"v.npy", c->v, ks, 4, 1},
        {"do.npy", c->dout, qs, 4, 1}, {"out.npy", c->out, qs, 4, 0}, {"lse.npy", c->lse, ls, 3, 0},
        {"dq.npy", c->dq, qs, 4, 0},   {"dk.npy", c->dk, ks, 4, 0},   {"dv.npy", c->dv, ks, 4, 0},
    };
    for (size_t i = 0; st == FM_OK && i < sizeof t / sizeof t[0]; i++) {
        if (!t[i].x) continue;
        size_t n = 1;
        for (int d = 0; d < t[i].nd; d++) n *= (size_t)t[i].shape[d];
        st = fm_io_outdir_file(&o, t[i].file, path, sizeof path);
        if (st != FM_OK) break;
        if (t[i].input && p->dtype != FM_FLOAT64) {
            float *f = fm_alloc(n, sizeof(float), t[i].file);
            if (!f) { st = FM_ERR_NOMEM; break; }
            for (size_t e = 0; e < n; e++) f[e] = (float)t[i].x[e];
            st = fm_npy_write(path, FM_NPY_F4, t[i].nd, t[i].shape, f);
            free(f);
        } else {
            st = fm_npy_write(path, FM_NPY_F8, t[i].nd, t[i].shape, t[i].x);
        }
    }
    if (st == FM_OK && c->q_keep && c->k_keep) {
        st = fm_io_outdir_file(&o, "q_keep.npy", path, sizeof path);
        if (st == FM_OK) st = fm_npy_write(path, FM_NPY_U1, 3, ls, c->q_keep);
        if (st == FM_OK) st = fm_io_outdir_file(&o, "k_keep.npy", path, sizeof path);
        if (st == FM_OK) st = fm_npy_write(path, FM_NPY_U1, 3, kr, c->k_keep);
    }
    if (st == FM_OK && c->q_buckets && c->k_buckets) {
        st = fm_io_outdir_file(&o, "q_buckets.npy", path, sizeof path);
        if (st == FM_OK) st = fm_npy_write(path, FM_NPY_I4, 3, ls, c->q_buckets);
        if (st == FM_OK) st = fm_io_outdir_file(&o, "k_buckets.npy", path, sizeof path);
        if (st == FM_OK) st = fm_npy_write(path, FM_NPY_I4, 3, kr, c->k_buckets);
    }
    /* case.json last, with the digest of every file written above */
    return fm_io_case_finish(&o, st, text);
}

/* ---------------------------------------------------------------- loading */

/* Is there an entry of that name? (stat, never open: a FIFO planted there must not block;
 * the reader refuses anything that is not a regular file.) */
static int exists(const char *dir, const char *name)
{
    char path[PATH_MAX];
    struct stat info;
    if (fm_io_join(path, sizeof path, dir, name) != FM_OK) return 0;
    return stat(path, &info) == 0;
}

/* Reads an integer-typed array of exactly `shape` into a new buffer of elements of `elem`
 * bytes: uint8 from |u1 or |b1 (values 0/1 checked by the users), int32 from <i4. */
static fm_status load_ints(const char *dir, const char *name, int ndim, const int64_t *shape,
                           const char *dims, int want_i4, void **out)
{
    char path[PATH_MAX];
    fm_status st = fm_io_join(path, sizeof path, dir, name);
    fm_npy a = {0};
    if (st == FM_OK) st = fm_npy_read(path, &a);
    if (st == FM_OK) st = fm_npy_check_shape(&a, name, ndim, shape, dims);
    if (st == FM_OK && want_i4 && a.dtype != FM_NPY_I4)
        st = fm_fail(FM_ERR_FORMAT, "%s: dtype %s, expected <i4 (int32)", name,
                     fm_npy_dtype_descr(a.dtype));
    if (st == FM_OK && !want_i4 && a.dtype != FM_NPY_U1 && a.dtype != FM_NPY_B1)
        st = fm_fail(FM_ERR_FORMAT, "%s: dtype %s, expected |u1 (uint8) or |b1 (bool)", name,
                     fm_npy_dtype_descr(a.dtype));
    if (st != FM_OK) {
        fm_npy_free(&a);
        return st;
    }
    *out = a.data; /* ownership moves to the case */
    return FM_OK;
}

fm_status fm_dense_case_load(const char *dir, fm_dense_case *c)
{
    fm_clear_error();
    if (!dir || !c) return fm_fail(FM_ERR_INVALID, "dense case load: NULL argument");
    memset(c, 0, sizeof *c);
    char path[PATH_MAX];
    fm_status st = fm_io_join(path, sizeof path, dir, "case.json");
    if (st != FM_OK) return st;
    /* case.json through io's parser: sizes, scale, dtype, mask heads, seed */
    char *text = NULL;
    size_t size = 0;
    if ((st = fm_io_read_text(path, &text, &size)) != FM_OK) return st;
    fm_case meta;
    fm_case_init(&meta);
    st = fm_case_parse_json(text, size, path, &meta);
    /* the dense pattern and its parameters, when the case says (informative only) */
    c->pattern = FM_DENSE_CUSTOM;
    cJSON *root = st == FM_OK ? cJSON_ParseWithLength(text, size) : NULL;
    const cJSON *params = root ? cJSON_GetObjectItemCaseSensitive(root, "mask_params") : NULL;
    const cJSON *item = params ? cJSON_GetObjectItemCaseSensitive(params, "dense") : NULL;
    if (cJSON_IsString(item)) fm_dense_pattern_from_name(item->valuestring, &c->pattern);
    item = params ? cJSON_GetObjectItemCaseSensitive(params, "n_buckets") : NULL;
    if (cJSON_IsNumber(item)) c->n_buckets = (int64_t)item->valuedouble;
    item = params ? cJSON_GetObjectItemCaseSensitive(params, "alignment") : NULL;
    c->alignment = FM_CAUSAL_TOP_LEFT;
    if (cJSON_IsString(item) && fm_causal_from_name(item->valuestring, &c->alignment) != FM_OK) {
        st = fm_fail(FM_ERR_FORMAT, "%s: mask_params.alignment '%.40s' unknown", path,
                     item->valuestring);
    }
    cJSON_Delete(root);
    if (st == FM_OK && exists(dir, "mask.npy"))
        st = fm_fail(FM_ERR_FORMAT, "%s: the case holds both mask.npy and mask_dense.npy; a case "
                     "has one mask file (remove the one that is not the case's mask)", dir);
    if (st != FM_OK) {
        free(text);
        fm_case_free(&meta);
        return st;
    }
    c->problem = meta.problem, c->mask_heads = meta.mask.heads, c->seed = meta.seed;
    fm_case_free(&meta);
    const fm_problem *p = &c->problem;
    const int64_t B = p->batch, Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t ms[4] = {B, c->mask_heads, Sq, Sk};
    const int64_t qs[4] = {B, p->q_heads, Sq, D}, ks[4] = {B, p->kv_heads, Sk, D};
    const int64_t ls[3] = {B, p->q_heads, Sq}, kr[3] = {B, p->kv_heads, Sk};
    st = load_ints(dir, "mask_dense.npy", 4, ms, "B,Hm,Sq,Sk", 0, (void **)&c->allowed);
    if (st == FM_OK) st = fm_dense_check_problem(p, c->allowed, c->mask_heads);
    const struct {
        const char *file;
        double **x;
        const int64_t *shape;
        int nd;
        int required;
    } t[] = {
        {"q.npy", &c->q, qs, 4, 1},     {"k.npy", &c->k, ks, 4, 1},
        {"v.npy", &c->v, ks, 4, 1},     {"do.npy", &c->dout, qs, 4, 1},
        {"out.npy", &c->out, qs, 4, 0}, {"lse.npy", &c->lse, ls, 3, 0},
        {"dq.npy", &c->dq, qs, 4, 0},   {"dk.npy", &c->dk, ks, 4, 0},
        {"dv.npy", &c->dv, ks, 4, 0},
    };
    const char *dims4q = "B,Hq,Sq,D", *dims4k = "B,Hk,Sk,D";
    for (size_t i = 0; st == FM_OK && i < sizeof t / sizeof t[0]; i++) {
        if (!t[i].required && !exists(dir, t[i].file)) continue;
        if ((st = fm_io_join(path, sizeof path, dir, t[i].file)) != FM_OK) break;
        st = fm_npy_load_f64(path, t[i].nd, t[i].shape,
                             t[i].nd == 3 ? "B,Hq,Sq" : t[i].shape == ks ? dims4k : dims4q, t[i].x);
    }
    if (st == FM_OK && exists(dir, "q_keep.npy")) {
        st = load_ints(dir, "q_keep.npy", 3, ls, "B,Hq,Sq", 0, (void **)&c->q_keep);
        if (st == FM_OK)
            st = load_ints(dir, "k_keep.npy", 3, kr, "B,Hk,Sk", 0, (void **)&c->k_keep);
    }
    if (st == FM_OK && exists(dir, "q_buckets.npy")) {
        st = load_ints(dir, "q_buckets.npy", 3, ls, "B,Hq,Sq", 1, (void **)&c->q_buckets);
        if (st == FM_OK)
            st = load_ints(dir, "k_buckets.npy", 3, kr, "B,Hk,Sk", 1, (void **)&c->k_buckets);
    }
    /* inputs finite and rounded to the dtype, expected outputs finite (lse may be -inf), as
     * the column-mask loader requires; then the digest (io/case_digest.c) */
    double *ins[4] = {c->q, c->k, c->v, c->dout}, *outs[5] = {c->out, c->lse, c->dq, c->dk, c->dv};
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nin[4] = {nq, nkv, nkv, nq};
    const size_t nout[5] = {nq, fm_problem_lse_elems(p), nq, nkv, nkv};
    for (int i = 0; st == FM_OK && i < 4; i++)
        if ((st = fm_io_join(path, sizeof path, dir, t[i].file)) == FM_OK)
            st = fm_io_check_input(path, ins[i], nin[i], p->dtype);
    for (int i = 0; st == FM_OK && i < 5; i++)
        if (outs[i] && (st = fm_io_join(path, sizeof path, dir, t[4 + i].file)) == FM_OK)
            st = fm_io_check_output(path, outs[i], nout[i], i == 1);
    int sealed = 0;
    if (st == FM_OK) st = fm_io_digest_verify(dir, text, size, &sealed);
    if (st == FM_OK && !sealed) { /* written before digests: expected outputs not trusted */
        for (int i = 0; i < 5; i++) free(outs[i]);
        c->out = c->lse = c->dq = c->dk = c->dv = NULL;
    }
    free(text);
    if (st != FM_OK) fm_dense_case_free(c);
    return st;
}

int fm_dense_case_detect(const char *dir)
{
    return dir && exists(dir, "mask_dense.npy") && !exists(dir, "mask.npy");
}
