/* masks/params.c — parameters of the mask families (flashmask/masks.h, fm_mask_params): the
 * documented default instance of each family at a sequence length S (the masks of the
 * benchmarks, docs/spec.md §7; one function per family, named by its row in masks/families.c)
 * and ownership (copy, free). Random instances are in
 * masks/params_random.c. Validation is in masks/params_validate.c.
 *
 * Layer: masks <- core. Arrays are allocated with malloc (fm_alloc), so a caller that fills a
 * struct itself may hand malloc'd arrays over to fm_mask_params_free.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "families_internal.h"
#include "fm_internal.h"

/* ---------------------------------------------------------------- ownership */

/* The arrays a fm_mask_params owns, each with the member that counts its elements (as the
 * families' parameter lists describe them, flashmask/masks.h fm_param_field): copy duplicates
 * exactly these and free releases them. */
static const fm_param_field owned[] = {
    {"doc_lens", FM_PARAM_LIST, offsetof(fm_mask_params, doc_lens),
     offsetof(fm_mask_params, n_docs)},
    {"doc_prefix", FM_PARAM_LIST, offsetof(fm_mask_params, doc_prefix),
     offsetof(fm_mask_params, n_docs)},
    {"sample_segments", FM_PARAM_LIST, offsetof(fm_mask_params, sample_segments),
     offsetof(fm_mask_params, n_samples)},
    {"span_offset", FM_PARAM_LIST, offsetof(fm_mask_params, span_offset),
     offsetof(fm_mask_params, n_spans)},
    {"span_len", FM_PARAM_LIST, offsetof(fm_mask_params, span_len),
     offsetof(fm_mask_params, n_spans)},
};
enum { N_OWNED = sizeof owned / sizeof owned[0] };

/* Where owned array a of p lives, the array itself, and its element count. */
static int64_t **owned_array(fm_mask_params *p, int a)
{
    return (int64_t **)((char *)p + owned[a].value_offset);
}
static const int64_t *owned_values(const fm_mask_params *p, int a)
{
    return *(int64_t *const *)((const char *)p + owned[a].value_offset);
}
static int64_t owned_count(const fm_mask_params *p, int a)
{
    return *(const int64_t *)((const char *)p + owned[a].count_offset);
}

void fm_mask_params_free(fm_mask_params *p)
{
    if (!p) return;
    for (int a = 0; a < N_OWNED; a++) free(*owned_array(p, a));
    fm_family family = p->family;
    memset(p, 0, sizeof *p);
    p->family = family; /* a freed struct still names its family, with no arrays */
}

/* A fresh copy of n int64 values (NULL for n == 0 or src == NULL). */
static fm_status dup_array(int64_t **dst, const int64_t *src, int64_t n, const char *what)
{
    *dst = NULL;
    if (!src || n <= 0) return FM_OK;
    *dst = fm_alloc((size_t)n, sizeof **dst, what);
    if (!*dst) return FM_ERR_NOMEM;
    memcpy(*dst, src, (size_t)n * sizeof **dst);
    return FM_OK;
}

fm_status fm_mask_params_copy(fm_mask_params *dst, const fm_mask_params *src)
{
    if (!dst || !src) return fm_fail(FM_ERR_INVALID, "mask params copy: NULL argument");
    fm_mask_params c = *src;
    for (int a = 0; a < N_OWNED; a++) *owned_array(&c, a) = NULL;
    fm_status st = FM_OK;
    for (int a = 0; a < N_OWNED && st == FM_OK; a++)
        st = dup_array(owned_array(&c, a), owned_values(src, a), owned_count(src, a),
                       owned[a].key);
    if (st != FM_OK) {
        fm_mask_params_free(&c);
        return FM_ERR_NOMEM;
    }
    *dst = c;
    return FM_OK;
}

/* ---------------------------------------------------------------- defaults */

/* Splits `total` into k >= 1 near-equal parts (the first total % k get one more). */
static void split_even(int64_t total, int64_t k, int64_t *parts)
{
    for (int64_t i = 0; i < k; i++) parts[i] = total / k + (i < total % k ? 1 : 0);
}

static fm_status alloc_array(int64_t **slot, int64_t n, const char *what)
{
    *slot = fm_alloc((size_t)(n > 0 ? n : 1), sizeof **slot, what);
    return *slot ? FM_OK : FM_ERR_NOMEM;
}

/* min(8, S) near-equal documents: the "8 docs" of the benchmarks. */
static fm_status default_docs(fm_mask_params *p, int64_t seqlen)
{
    p->n_docs = seqlen < 8 ? seqlen : 8;
    fm_status st = alloc_array(&p->doc_lens, p->n_docs, "doc_lens");
    if (!st) split_even(seqlen, p->n_docs, p->doc_lens);
    return st;
}

/* Two samples (one if S = 1); each of length L has a question of ceil(L/2) keys followed by
 * min(3, floor(L/2)) near-equal answers sharing the other floor(L/2) keys. */
fm_status fm_defaults_shared_question(fm_mask_params *p, int64_t seqlen)
{
    int64_t samples = seqlen < 2 ? 1 : 2, sample_len[2];
    split_even(seqlen, samples, sample_len);
    p->n_samples = samples;
    fm_status st = alloc_array(&p->sample_segments, samples, "sample_segments");
    if (!st) st = alloc_array(&p->doc_lens, 8, "doc_lens"); /* at most 2 * (1 + 3) segments */
    if (st) return st;
    p->n_docs = 0;
    for (int64_t s = 0; s < samples; s++) {
        int64_t answer_total = sample_len[s] / 2;
        int64_t answers = answer_total < 3 ? answer_total : 3;
        p->doc_lens[p->n_docs++] = sample_len[s] - answer_total; /* the question */
        if (answers > 0) split_even(answer_total, answers, p->doc_lens + p->n_docs);
        p->n_docs += answers;
        p->sample_segments[s] = 1 + answers;
    }
    return FM_OK;
}

/* max(1, S/16) single-key spans at distinct positions drawn from a fixed seed (1), sorted:
 * "random single-column drops". */
fm_status fm_defaults_qk_sparse(fm_mask_params *p, int64_t seqlen)
{
    int64_t n = seqlen / 16 > 1 ? seqlen / 16 : 1;
    uint8_t *chosen = fm_calloc((size_t)seqlen, 1, "qk_sparse default");
    if (!chosen) return FM_ERR_NOMEM;
    fm_rng rng;
    fm_rng_seed(&rng, 1);
    /* Floyd's algorithm: n distinct positions out of S, n draws. */
    for (int64_t t = seqlen - n; t < seqlen; t++) {
        int64_t r = fm_rng_range(&rng, 0, t);
        chosen[chosen[r] ? t : r] = 1;
    }
    fm_status st = alloc_array(&p->span_offset, n, "span_offset");
    if (!st) st = alloc_array(&p->span_len, n, "span_len");
    if (!st) {
        p->n_spans = 0;
        for (int64_t j = 0; j < seqlen; j++) {
            if (!chosen[j]) continue;
            p->span_offset[p->n_spans] = j;
            p->span_len[p->n_spans++] = 1;
        }
    }
    free(chosen);
    return st;
}

fm_status fm_mask_params_begin(fm_mask_params *p, fm_family f, int64_t seqlen, const char *what)
{
    memset(p, 0, sizeof *p);
    p->family = f;
    if ((unsigned)f >= FM_FAMILY_COUNT)
        return fm_fail(FM_ERR_INVALID, "%s: unknown family %d", what, (int)f);
    if (seqlen < 1 || seqlen > INT32_MAX)
        return fm_fail(FM_ERR_INVALID, "%s: seqlen = %lld, must be in [1, %d]", what,
                       (long long)seqlen, INT32_MAX);
    return FM_OK;
}

/* The defaults of each family (its row in masks/families.c names the function). */
fm_status fm_defaults_none(fm_mask_params *p, int64_t seqlen)
{
    (void)p, (void)seqlen;
    return FM_OK;
}

fm_status fm_defaults_sliding_window(fm_mask_params *p, int64_t seqlen)
{
    p->window = seqlen / 8 > 1 ? seqlen / 8 : 1;
    return FM_OK;
}

fm_status fm_defaults_docs(fm_mask_params *p, int64_t seqlen)
{
    return default_docs(p, seqlen);
}

fm_status fm_defaults_prefix_lm_document(fm_mask_params *p, int64_t seqlen)
{
    fm_status st = default_docs(p, seqlen);
    if (!st) st = alloc_array(&p->doc_prefix, p->n_docs, "doc_prefix");
    for (int64_t d = 0; !st && d < p->n_docs; d++) p->doc_prefix[d] = p->doc_lens[d] / 4;
    return st;
}

fm_status fm_defaults_global_sliding_window(fm_mask_params *p, int64_t seqlen)
{
    p->global_tokens = seqlen / 64 > 1 ? seqlen / 64 : 1;
    p->left_window = p->right_window = seqlen / 16;
    return FM_OK;
}

fm_status fm_defaults_prefix_lm_causal(fm_mask_params *p, int64_t seqlen)
{
    p->prefix = seqlen / 4;
    return FM_OK;
}

fm_status fm_defaults_random_eviction(fm_mask_params *p, int64_t seqlen)
{
    p->evict_start = seqlen / 2 > 1 ? seqlen / 2 : 1;
    p->seed = 1;
    return FM_OK;
}
