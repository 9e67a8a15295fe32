/* io/case.c — the case directory of docs/spec.md §6: case.json (through cJSON) plus .npy tensors, and an
 * implementation's result files. Loading checks everything a third party can get wrong (keys,
 * types, sizes, shapes, dtypes, mask bounds, heads, finiteness, inputs not rounded to the case's
 * dtype) and names the file, field and value; saving is atomic (io/outdir.c).
 * Layer: io <- masks <- core.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fm_internal.h"
#include "io_internal.h"

/* JSON values (numbers, strings, arrays, objects) a case.json may hold: a qk_sparse mask of
 * S = 2^20 has 2 * 2^16 span numbers; cJSON spends ~80 bytes a value, so this caps the tree
 * at ~0.3 GB however long the ignored free-form parameters of a custom mask are */
enum { CASE_JSON_MAX_VALUES = 1 << 22 };

void fm_case_init(fm_case *c) { memset(c, 0, sizeof *c); }

int fm_case_is_small(const fm_problem *p)
{
    if (!p) return 0;
    double work = (double)p->batch * (double)p->q_heads * (double)p->seqlen_q *
                  (double)p->seqlen_k * (double)p->head_dim;
    return work <= (double)FM_CASE_SMALL_WORK;
}

void fm_case_free(fm_case *c)
{
    if (!c) return;
    fm_mask_free(&c->mask);
    fm_mask_params_free(&c->mask_params);
    free(c->q), free(c->k), free(c->v), free(c->dout);
    free(c->out), free(c->lse), free(c->dq), free(c->dk), free(c->dv);
    memset(c, 0, sizeof *c);
}

/* ---------------------------------------------------------------- case.json */

static const char *const case_keys[] = {
    "format", "version", "batch", "q_heads", "kv_heads", "mask_heads", "seqlen_q", "seqlen_k",
    "head_dim", "scale", "causal", "dtype", "mask_kind", "mask_params", "seed", "digest",
};
enum { N_CASE_KEYS = sizeof case_keys / sizeof case_keys[0] };

static fm_status get_string(const cJSON *root, const char *name, const char *key,
                            const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsString(v) || !v->valuestring)
        return fm_fail(FM_ERR_FORMAT, "%s: '%s' is missing or not a string", name, key);
    *out = v->valuestring;
    return FM_OK;
}

static fm_status get_count(const cJSON *root, const char *name, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) return fm_fail(FM_ERR_FORMAT, "%s: '%s' is missing", name, key);
    return fm_io_json_count(v, name, key, out);
}

fm_status fm_case_parse_json(const char *text, size_t size, const char *name, fm_case *c)
{
    fm_case_free(c);
    if (!name) name = "case.json";
    if (!text) return fm_fail(FM_ERR_INVALID, "%s: NULL text", name);
    fm_status pre = fm_io_json_prescan(text, size, name, CASE_JSON_MAX_VALUES);
    if (pre != FM_OK) return pre;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, size, &end, 0);
    if (!root)
        return fm_fail(FM_ERR_FORMAT, "%s: invalid JSON near byte %lld", name,
                       (long long)(end ? end - text : 0));
    /* only whitespace may follow the document */
    for (const char *p = end; p && p < text + size; p++)
        if (*p != ' ' && *p != '\n' && *p != '\r' && *p != '\t') {
            cJSON_Delete(root);
            return fm_fail(FM_ERR_FORMAT, "%s: unexpected bytes after the JSON object at byte "
                           "%lld", name, (long long)(p - text));
        }

    fm_status st = FM_OK;
    const char *s = NULL;
    int64_t version, dims[7];
    if (!cJSON_IsObject(root)) {
        st = fm_fail(FM_ERR_FORMAT, "%s: the document is not a JSON object", name);
        goto done;
    }
    /* every member must be a known key, at most once */
    for (const cJSON *m = root->child; m; m = m->next) {
        int known = 0;
        for (int k = 0; k < N_CASE_KEYS; k++) known |= strcmp(m->string, case_keys[k]) == 0;
        if (!known) {
            st = fm_fail(FM_ERR_FORMAT, "%s: unknown key '%s'", name, m->string);
            goto done;
        }
        for (const cJSON *o = root->child; o != m; o = o->next)
            if (strcmp(o->string, m->string) == 0) {
                st = fm_fail(FM_ERR_FORMAT, "%s: key '%s' appears twice", name, m->string);
                goto done;
            }
    }
    const cJSON *digest = cJSON_GetObjectItemCaseSensitive(root, "digest");
    if (digest && (st = fm_io_digest_check_member(digest, name)) != FM_OK) goto done;
    if ((st = get_string(root, name, "format", &s)) != FM_OK) goto done;
    if (strcmp(s, "flashmask-case") != 0) {
        st = fm_fail(FM_ERR_FORMAT, "%s: format is '%s', expected 'flashmask-case'", name, s);
        goto done;
    }
    if ((st = get_count(root, name, "version", &version)) != FM_OK) goto done;
    if (version != 1) {
        st = fm_fail(FM_ERR_FORMAT, "%s: version %lld is not supported (expected 1)", name,
                     (long long)version);
        goto done;
    }
    const char *dim_keys[7] = {"batch", "q_heads", "kv_heads", "mask_heads",
                               "seqlen_q", "seqlen_k", "head_dim"};
    for (int d = 0; d < 7; d++) {
        if ((st = get_count(root, name, dim_keys[d], &dims[d])) != FM_OK) goto done;
        if (dims[d] < 1) {
            st = fm_fail(FM_ERR_FORMAT, "%s: '%s' = %lld, must be >= 1", name, dim_keys[d],
                         (long long)dims[d]);
            goto done;
        }
    }
    fm_problem_init(&c->problem, dims[0], dims[1], dims[2], dims[4], dims[5], dims[6]);
    c->mask.batch = dims[0];
    c->mask.heads = dims[3];
    c->mask.seqlen_q = dims[4];
    c->mask.seqlen_k = dims[5];

    const cJSON *scale = cJSON_GetObjectItemCaseSensitive(root, "scale");
    if (!cJSON_IsNumber(scale) || !isfinite(scale->valuedouble) || !(scale->valuedouble > 0)) {
        st = fm_fail(FM_ERR_FORMAT, "%s: 'scale' is missing or not a finite number > 0", name);
        goto done;
    }
    c->problem.scale = scale->valuedouble;

    if ((st = get_string(root, name, "causal", &s)) != FM_OK) goto done;
    if ((st = fm_causal_from_name(s, &c->mask.causal)) != FM_OK) {
        st = fm_fail(FM_ERR_FORMAT, "%s: causal '%s' (expected none, bottom_right or top_left)",
                     name, s);
        goto done;
    }
    if ((st = get_string(root, name, "dtype", &s)) != FM_OK) goto done;
    if ((st = fm_dtype_from_name(s, &c->problem.dtype)) != FM_OK) {
        st = fm_fail(FM_ERR_FORMAT, "%s: dtype '%s' (expected float64, float32, float16 or "
                     "bfloat16)", name, s);
        goto done;
    }
    int64_t seed;
    if ((st = get_count(root, name, "seed", &seed)) != FM_OK) goto done;
    c->seed = (uint64_t)seed;

    /* mask_kind: a family (then mask_params are its parameters) or "custom" */
    if ((st = get_string(root, name, "mask_kind", &s)) != FM_OK) goto done;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(root, "mask_params");
    if (!cJSON_IsObject(params)) {
        st = fm_fail(FM_ERR_FORMAT, "%s: 'mask_params' is missing or not an object", name);
        goto done;
    }
    fm_family family;
    if (strcmp(s, "custom") == 0) {
        snprintf(c->mask_kind, sizeof c->mask_kind, "custom");
        c->has_params = 0; /* free-form description: not interpreted */
    } else if (fm_family_from_name(s, &family) == FM_OK) {
        snprintf(c->mask_kind, sizeof c->mask_kind, "%s", fm_family_name(family));
        char where[96];
        snprintf(where, sizeof where, "%s: mask_params", name);
        if ((st = fm_io_params_from_cjson(&c->mask_params, family, params, where)) != FM_OK)
            goto done;
        c->has_params = 1;
    } else {
        st = fm_fail(FM_ERR_FORMAT, "%s: mask_kind '%.80s' is neither a mask family (flashmask "
                     "masks lists them) nor 'custom'", name, s);
        goto done;
    }
done:
    cJSON_Delete(root);
    if (st != FM_OK) fm_case_free(c);
    return st;
}

/* ---------------------------------------------------------------- tensors */

/* Re-raises the current error with "where: " in front (the message is copied first: fm_fail
 * writes into the buffer fm_last_error() returns). */
static fm_status prefix_error(fm_status st, const char *where)
{
    char message[1024];
    snprintf(message, sizeof message, "%s", fm_last_error());
    return fm_fail(st, "%s: %s", where, message);
}

/* The five output tensors of a problem: file name, shape, dimension names. */
typedef struct tensor_spec {
    const char *file;
    int ndim;
    int64_t shape[4];
    const char *dims;
    size_t count;
} tensor_spec;

static void output_specs(const fm_problem *p, tensor_spec spec[5])
{
    const fm_problem *q = p;
    tensor_spec s[5] = {
        {"out.npy", 4, {q->batch, q->q_heads, q->seqlen_q, q->head_dim}, "B,Hq,Sq,D",
         fm_problem_q_elems(q)},
        {"lse.npy", 3, {q->batch, q->q_heads, q->seqlen_q, 0}, "B,Hq,Sq", fm_problem_lse_elems(q)},
        {"dq.npy", 4, {q->batch, q->q_heads, q->seqlen_q, q->head_dim}, "B,Hq,Sq,D",
         fm_problem_q_elems(q)},
        {"dk.npy", 4, {q->batch, q->kv_heads, q->seqlen_k, q->head_dim}, "B,Hk,Sk,D",
         fm_problem_kv_elems(q)},
        {"dv.npy", 4, {q->batch, q->kv_heads, q->seqlen_k, q->head_dim}, "B,Hk,Sk,D",
         fm_problem_kv_elems(q)},
    };
    memcpy(spec, s, sizeof s);
}

static int file_exists(const char *path)
{
    struct stat sb;
    return lstat(path, &sb) == 0;
}

/* Loads whichever outputs exist into slots[5] (out, lse, dq, dk, dv) and counts them. Expected
 * outputs of a case are checked finite; a candidate's results are not (NaN is for the oracle's
 * checker to report as a failure, and FlashAttention-2 writes +inf LSE on masked rows). With
 * `hashes` (5 slots) each file read is hashed from its bytes into hashes[t] (file NULL when
 * absent). */
static fm_status load_outputs(const char *dir, const fm_problem *p, double **slots[5], int *found,
                              int check_finite, fm_io_file_hash *hashes)
{
    tensor_spec spec[5];
    output_specs(p, spec);
    char path[PATH_MAX];
    *found = 0;
    for (int t = 0; t < 5; t++) {
        if (hashes) hashes[t].file = NULL;
        fm_status st = fm_io_join(path, sizeof path, dir, spec[t].file);
        if (st != FM_OK) return st;
        if (!file_exists(path)) continue;
        fm_sha256 hash;
        if (hashes && (st = fm_sha256_init(&hash)) != FM_OK) return st;
        if ((st = fm_io_load_f64_hashed(path, spec[t].ndim, spec[t].shape, spec[t].dims, slots[t],
                                  hashes ? &hash : NULL, hashes ? hashes[t].hex : NULL)) != FM_OK)
            return st;
        if (hashes) hashes[t].file = spec[t].file;
        if (check_finite &&
            (st = fm_io_check_output(path, *slots[t], spec[t].count, t == 1)) != FM_OK)
            return st;
        ++*found;
    }
    return FM_OK;
}

/* mask.npy: int32 [B, Hm, Sk, C], C = 4 (LTS, LTE, UTS, UTE) or Paddle's C in {1, 2}. */
static fm_status load_mask(const char *path, fm_case *c)
{
    fm_npy a;
    fm_status st = fm_npy_read(path, &a);
    if (st != FM_OK) return st;
    const fm_mask meta = c->mask; /* batch, heads, seqlens, causal from case.json */
    int64_t shape[4] = {meta.batch, meta.heads, meta.seqlen_k, -1};
    if ((st = fm_npy_check_shape(&a, path, 4, shape, "B,Hm,Sk,C")) != FM_OK) goto done;
    if (a.dtype != FM_NPY_I4) {
        st = fm_fail(FM_ERR_FORMAT, "%s: dtype %s, expected <i4 (int32 row bounds)", path,
                     fm_npy_dtype_descr(a.dtype));
        goto done;
    }
    int columns = (int)a.shape[3];
    if (columns != 1 && columns != 2 && columns != 4) {
        st = fm_fail(FM_ERR_FORMAT, "%s: last dimension C = %d, expected 4 (LTS, LTE, UTS, UTE) "
                     "or Paddle's 1 or 2", path, columns);
        goto done;
    }
    fm_mask m = {0};
    if (columns == 4) { /* our native layout, with the case's causal alignment */
        st = fm_mask_init(&m, meta.batch, meta.heads, meta.seqlen_q, meta.seqlen_k, meta.causal);
        if (st == FM_OK) memcpy(m.bounds, a.data, a.count * sizeof(int32_t));
    } else {
        st = fm_mask_from_startend(&m, a.data, meta.batch, meta.heads, meta.seqlen_q,
                                   meta.seqlen_k, columns, meta.causal);
    }
    if (st == FM_OK) st = fm_mask_validate(&m);
    if (st != FM_OK) {
        fm_mask_free(&m);
        st = prefix_error(st, path);
        goto done;
    }
    c->mask = m;
done:
    fm_npy_free(&a);
    return st;
}

/* fm_case_load and fm_case_load_inputs: with for_run the expected outputs are not read (nor
 * hashed), and with in32 the inputs come back as float32 there. */
static fm_status load_case(const char *dir, fm_case *c, int for_run, fm_case_inputs32 *in32)
{
    fm_case_init(c);
    if (in32) memset(in32, 0, sizeof *in32);
    char path[PATH_MAX];
    char *text = NULL;
    size_t size = 0;
    fm_status st = fm_io_join(path, sizeof path, dir, "case.json");
    if (st == FM_OK) st = fm_io_read_text(path, &text, &size);
    if (st == FM_OK) st = fm_case_parse_json(text, size, path, c);
    if (st != FM_OK) {
        free(text);
        return st;
    }
    /* one mask file per case: with both, `run` and `run-dense` would run different masks */
    if ((st = fm_io_join(path, sizeof path, dir, "mask_dense.npy")) != FM_OK) goto fail;
    if (file_exists(path)) {
        st = fm_fail(FM_ERR_FORMAT, "%s: the case holds both mask.npy and mask_dense.npy; a case "
                     "has one mask file (remove the one that is not the case's mask)", dir);
        goto fail;
    }
    if ((st = fm_io_join(path, sizeof path, dir, "mask.npy")) != FM_OK) goto fail;
    if ((st = load_mask(path, c)) != FM_OK) goto fail;
    /* sizes, heads dividing, int32 limits, overflow of every tensor size, mask bounds */
    if ((st = fm_problem_validate(&c->problem, &c->mask)) != FM_OK) {
        char where[PATH_MAX];
        snprintf(where, sizeof where, "%s/case.json", dir);
        st = prefix_error(st, where);
        goto fail;
    }

    const fm_problem *p = &c->problem;
    struct {
        const char *file;
        int64_t shape[4];
        const char *dims;
        double **slot;
        float **slot32;
    } inputs[4] = {
        {"q.npy", {p->batch, p->q_heads, p->seqlen_q, p->head_dim}, "B,Hq,Sq,D", &c->q,
         in32 ? &in32->q : NULL},
        {"k.npy", {p->batch, p->kv_heads, p->seqlen_k, p->head_dim}, "B,Hk,Sk,D", &c->k,
         in32 ? &in32->k : NULL},
        {"v.npy", {p->batch, p->kv_heads, p->seqlen_k, p->head_dim}, "B,Hk,Sk,D", &c->v,
         in32 ? &in32->v : NULL},
        {"do.npy", {p->batch, p->q_heads, p->seqlen_q, p->head_dim}, "B,Hq,Sq,D", &c->dout,
         in32 ? &in32->dout : NULL},
    };
    /* every tensor file is read once and hashed from the bytes read: the digest below compares
     * what was used, not a second reading */
    fm_io_file_hash hashes[9];
    for (int t = 0; t < 4; t++) {
        fm_sha256 hash;
        if ((st = fm_io_join(path, sizeof path, dir, inputs[t].file)) != FM_OK) goto fail;
        if ((st = fm_sha256_init(&hash)) != FM_OK) goto fail;
        st = fm_io_load_input(path, inputs[t].shape, inputs[t].dims, p->dtype, &hash, hashes[t].hex,
                        inputs[t].slot, inputs[t].slot32);
        if (st != FM_OK) goto fail;
        hashes[t].file = inputs[t].file;
    }
    int n_hashes = 4;
    if (!for_run) {
        double **outs[5] = {&c->out, &c->lse, &c->dq, &c->dk, &c->dv};
        int found;
        if ((st = load_outputs(dir, p, outs, &found, 1, hashes + 4)) != FM_OK) goto fail;
        for (int t = 4; t < 9; t++) /* the outputs present, packed after the inputs */
            if (hashes[t].file) hashes[n_hashes++] = hashes[t];
    }
    /* last, so that a malformed file is named by what is wrong with it: the digest */
    int sealed = 0;
    if ((st = fm_io_digest_verify_read(dir, text, size, hashes, n_hashes, for_run, &sealed)) !=
        FM_OK)
        goto fail;
    if (!sealed) { /* written before digests: its expected outputs are not trusted */
        free(c->out), free(c->lse), free(c->dq), free(c->dk), free(c->dv);
        c->out = c->lse = c->dq = c->dk = c->dv = NULL;
    }
    free(text);
    return FM_OK;
fail:
    free(text);
    fm_case_free(c);
    fm_case_inputs32_free(in32);
    return st;
}

fm_status fm_case_load(const char *dir, fm_case *c) { return load_case(dir, c, 0, NULL); }

fm_status fm_case_load_inputs(const char *dir, fm_case *c, fm_case_inputs32 *in32)
{
    return load_case(dir, c, 1, in32);
}

void fm_case_inputs32_free(fm_case_inputs32 *in)
{
    if (!in) return;
    free(in->q), free(in->k), free(in->v), free(in->dout);
    memset(in, 0, sizeof *in);
}

/* ---------------------------------------------------------------- saving */

static fm_status case_json_text(const fm_case *c, char **text)
{
    const fm_problem *p = &c->problem;
    *text = NULL;
    if (c->seed > (1ull << 53))
        return fm_fail(FM_ERR_INVALID, "case: seed = %llu is outside [0, 2^53], which "
                       "case.json cannot hold exactly", (unsigned long long)c->seed);
    cJSON *params = NULL;
    fm_status st = FM_OK;
    if (c->has_params) st = fm_io_params_to_cjson(&c->mask_params, &params);
    else if (!(params = cJSON_CreateObject())) st = FM_ERR_NOMEM;
    if (st != FM_OK) return st == FM_ERR_NOMEM ? fm_fail(st, "case.json: out of memory") : st;

    /* without parameters the mask is described only by mask.npy: fm_case_parse_json reads
     * back a family name only together with its parameters, so anything else is "custom" */
    const char *kind = c->has_params ? fm_family_name(c->mask_params.family) : "custom";
    cJSON *root = cJSON_CreateObject();
    int ok = root != NULL;
    ok = ok && cJSON_AddStringToObject(root, "format", "flashmask-case");
    ok = ok && cJSON_AddNumberToObject(root, "version", 1);
    ok = ok && cJSON_AddNumberToObject(root, "batch", (double)p->batch);
    ok = ok && cJSON_AddNumberToObject(root, "q_heads", (double)p->q_heads);
    ok = ok && cJSON_AddNumberToObject(root, "kv_heads", (double)p->kv_heads);
    ok = ok && cJSON_AddNumberToObject(root, "mask_heads", (double)c->mask.heads);
    ok = ok && cJSON_AddNumberToObject(root, "seqlen_q", (double)p->seqlen_q);
    ok = ok && cJSON_AddNumberToObject(root, "seqlen_k", (double)p->seqlen_k);
    ok = ok && cJSON_AddNumberToObject(root, "head_dim", (double)p->head_dim);
    ok = ok && cJSON_AddNumberToObject(root, "scale", p->scale);
    ok = ok && cJSON_AddStringToObject(root, "causal", fm_causal_name(c->mask.causal));
    ok = ok && cJSON_AddStringToObject(root, "dtype", fm_dtype_name(p->dtype));
    ok = ok && cJSON_AddStringToObject(root, "mask_kind", kind);
    if (ok) ok = cJSON_AddItemToObject(root, "mask_params", params);
    else cJSON_Delete(params);
    ok = ok && cJSON_AddNumberToObject(root, "seed", (double)c->seed);
    /* exact numbers: the scale to the last bit, so that every reader uses the same one */
    if (ok) st = fm_io_json_exact(root->child);
    if (ok && st == FM_OK) *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (st != FM_OK) return st;
    return *text ? FM_OK : fm_fail(FM_ERR_NOMEM, "case.json: out of memory");
}

/* Writes the tensor as float64, or as float32 when every value is a float32 value and
 * `narrow` is set (inputs of a non-float64 case). */
static fm_status write_tensor(fm_io_outdir *o, const char *file, int ndim, const int64_t *shape,
                              const double *x, size_t n, int narrow)
{
    char path[PATH_MAX];
    fm_status st = fm_io_outdir_file(o, file, path, sizeof path);
    if (st != FM_OK) return st;
    if (!narrow) return fm_npy_write(path, FM_NPY_F8, ndim, shape, x);
    float *y = fm_alloc(n ? n : 1, sizeof(float), file);
    if (!y) return FM_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    st = fm_npy_write(path, FM_NPY_F4, ndim, shape, y);
    free(y);
    return st;
}

/* Writes the outputs present in outs (out, lse, dq, dk, dv; NULL ones are skipped) as
 * float64 files of o. */
/* The non-NULL result tensors (out, lse, dq, dk, dv) as .npy files: float64 arrays, or with f32
 * float32 arrays written as they are. */
static fm_status write_outputs(fm_io_outdir *o, const fm_problem *p, const void *const outs[5],
                               int f32)
{
    tensor_spec spec[5];
    output_specs(p, spec);
    fm_status st = FM_OK;
    char path[PATH_MAX];
    for (int t = 0; t < 5 && st == FM_OK; t++) {
        if (!outs[t]) continue;
        if (!f32) {
            st = write_tensor(o, spec[t].file, spec[t].ndim, spec[t].shape,
                              (const double *)outs[t], spec[t].count, 0);
            continue;
        }
        st = fm_io_outdir_file(o, spec[t].file, path, sizeof path);
        if (st == FM_OK) st = fm_npy_write(path, FM_NPY_F4, spec[t].ndim, spec[t].shape, outs[t]);
    }
    return st;
}

fm_status fm_case_save(const char *dir, const fm_case *c)
{
    fm_status st = fm_problem_validate(&c->problem, &c->mask);
    if (st != FM_OK) return st;
    const fm_problem *p = &c->problem;
    if (!c->q || !c->k || !c->v || !c->dout)
        return fm_fail(FM_ERR_INVALID, "case: inputs q, k, v and dout are required");
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const char *names[4] = {"q", "k", "v", "dout"};
    const double *xs[4] = {c->q, c->k, c->v, c->dout};
    size_t ns[4] = {nq, nkv, nkv, nq};
    for (int t = 0; t < 4; t++)
        if ((st = fm_io_check_input(names[t], xs[t], ns[t], p->dtype)) != FM_OK) return st;

    char *text = NULL;
    if ((st = case_json_text(c, &text)) != FM_OK) return st;
    fm_io_outdir o;
    if ((st = fm_io_case_begin(&o, dir, text)) != FM_OK) return st;

    int64_t qs[4] = {p->batch, p->q_heads, p->seqlen_q, p->head_dim};
    int64_t kvs[4] = {p->batch, p->kv_heads, p->seqlen_k, p->head_dim};
    int64_t ms[4] = {c->mask.batch, c->mask.heads, c->mask.seqlen_k, FM_BOUNDS};
    int narrow = p->dtype != FM_FLOAT64;
    char path[PATH_MAX];
    if (st == FM_OK) st = fm_io_outdir_file(&o, "mask.npy", path, sizeof path);
    if (st == FM_OK) st = fm_npy_write(path, FM_NPY_I4, 4, ms, c->mask.bounds);
    if (st == FM_OK) st = write_tensor(&o, "q.npy", 4, qs, c->q, nq, narrow);
    if (st == FM_OK) st = write_tensor(&o, "k.npy", 4, kvs, c->k, nkv, narrow);
    if (st == FM_OK) st = write_tensor(&o, "v.npy", 4, kvs, c->v, nkv, narrow);
    if (st == FM_OK) st = write_tensor(&o, "do.npy", 4, qs, c->dout, nq, narrow);

    const void *outs[5] = {c->out, c->lse, c->dq, c->dk, c->dv};
    if (st == FM_OK) st = write_outputs(&o, p, outs, 0);
    /* case.json last, with the digest of everything written above */
    return fm_io_case_finish(&o, st, text);
}

/* The results' directory, written atomically (fm_io_outdir). */
static fm_status save_results(const char *dir, const fm_problem *p, const void *const outs[5],
                              int f32)
{
    fm_io_outdir o;
    fm_status st = fm_io_outdir_begin(&o, dir);
    if (st == FM_OK) st = write_outputs(&o, p, outs, f32);
    if (st != FM_OK) {
        fm_io_outdir_abort(&o);
        return st;
    }
    return fm_io_outdir_commit(&o);
}

fm_status fm_results_save(const char *dir, const fm_problem *p, const fm_results *r)
{
    if (!p || !r) return fm_fail(FM_ERR_INVALID, "results: NULL problem or results");
    const void *outs[5] = {r->out, r->lse, r->dq, r->dk, r->dv};
    return save_results(dir, p, outs, 0);
}

fm_status fm_results_save_f32(const char *dir, const fm_problem *p, const fm_results32 *r)
{
    if (!p || !r) return fm_fail(FM_ERR_INVALID, "results: NULL problem or results");
    const void *outs[5] = {r->out, r->lse, r->dq, r->dk, r->dv};
    return save_results(dir, p, outs, 1);
}

void fm_results_free(fm_results *r)
{
    if (!r) return;
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
    memset(r, 0, sizeof *r);
}

fm_status fm_results_load(const char *dir, const fm_problem *p, fm_results *r)
{
    if (!dir || !p || !r)
        return fm_fail(FM_ERR_INVALID, "results: NULL directory, problem or output");
    memset(r, 0, sizeof *r);
    double **slots[5] = {&r->out, &r->lse, &r->dq, &r->dk, &r->dv};
    int found = 0;
    fm_status st = load_outputs(dir, p, slots, &found, 0, NULL);
    if (st == FM_OK && found == 0)
        st = fm_fail(FM_ERR_IO, "%s: none of out.npy, lse.npy, dq.npy, dk.npy, dv.npy found", dir);
    if (st != FM_OK) fm_results_free(r);
    return st;
}
