/* masks/params_validate.c — checks the parameters of a mask family against the sequence
 * lengths before a builder runs (fm_mask_params_validate, masks/families.c, calls the family's
 * function here). Every refusal names the family, the
 * field, the index within the field and the value: "document: doc_lens sum to 9, not
 * seqlen_k = 10", "qk_sparse: span 2 [5, 9) overlaps span 1 [3, 6)".
 *
 * Layer: masks <- core.
 */
#include <stdlib.h>

#include "families_internal.h"
#include "fm_internal.h"

static fm_status check_nonneg(const char *family, const char *field, int64_t value, int64_t min)
{
    if (value < min)
        return fm_fail(FM_ERR_INVALID, "%s: %s = %lld, must be >= %lld", family, field,
                       (long long)value, (long long)min);
    return FM_OK;
}

/* doc_lens: n_docs >= 1 lengths, each >= 1, summing to Sk. */
fm_status fm_validate_docs(const char *family, const fm_mask_params *p, int64_t seqlen_k)
{
    if (p->n_docs < 1)
        return fm_fail(FM_ERR_INVALID, "%s: n_docs = %lld, must be >= 1", family,
                       (long long)p->n_docs);
    if (!p->doc_lens) return fm_fail(FM_ERR_INVALID, "%s: doc_lens is NULL", family);
    int64_t sum = 0;
    for (int64_t d = 0; d < p->n_docs; d++) {
        if (p->doc_lens[d] < 1)
            return fm_fail(FM_ERR_INVALID, "%s: doc_lens[%lld] = %lld, must be >= 1", family,
                           (long long)d, (long long)p->doc_lens[d]);
        if (p->doc_lens[d] > seqlen_k - sum)
            return fm_fail(FM_ERR_INVALID,
                           "%s: doc_lens sum past seqlen_k = %lld (at doc_lens[%lld] = %lld)",
                           family, (long long)seqlen_k, (long long)d,
                           (long long)p->doc_lens[d]);
        sum += p->doc_lens[d];
    }
    if (sum != seqlen_k)
        return fm_fail(FM_ERR_INVALID, "%s: doc_lens sum to %lld, not seqlen_k = %lld", family,
                       (long long)sum, (long long)seqlen_k);
    return FM_OK;
}

static fm_status check_doc_prefix(const char *family, const fm_mask_params *p)
{
    if (!p->doc_prefix) return fm_fail(FM_ERR_INVALID, "%s: doc_prefix is NULL", family);
    for (int64_t d = 0; d < p->n_docs; d++)
        if (p->doc_prefix[d] < 0 || p->doc_prefix[d] > p->doc_lens[d])
            return fm_fail(FM_ERR_INVALID,
                           "%s: doc_prefix[%lld] = %lld, must be in [0, doc_lens[%lld] = %lld]",
                           family, (long long)d, (long long)p->doc_prefix[d], (long long)d,
                           (long long)p->doc_lens[d]);
    return FM_OK;
}

static fm_status check_samples(const char *family, const fm_mask_params *p)
{
    if (p->n_samples < 1)
        return fm_fail(FM_ERR_INVALID, "%s: n_samples = %lld, must be >= 1", family,
                       (long long)p->n_samples);
    if (!p->sample_segments)
        return fm_fail(FM_ERR_INVALID, "%s: sample_segments is NULL", family);
    int64_t sum = 0;
    for (int64_t s = 0; s < p->n_samples; s++) {
        if (p->sample_segments[s] < 1 || p->sample_segments[s] > p->n_docs - sum)
            return fm_fail(FM_ERR_INVALID,
                           "%s: sample_segments[%lld] = %lld, must be >= 1 and keep the sum "
                           "<= n_docs = %lld (segments: 1 question + answers)",
                           family, (long long)s, (long long)p->sample_segments[s],
                           (long long)p->n_docs);
        sum += p->sample_segments[s];
    }
    if (sum != p->n_docs)
        return fm_fail(FM_ERR_INVALID, "%s: sample_segments sum to %lld, not n_docs = %lld",
                       family, (long long)sum, (long long)p->n_docs);
    return FM_OK;
}

/* A span with its index, sorted by offset for the overlap check (no global state: the
 * library may be called from several threads). */
typedef struct indexed_span {
    int64_t offset, len, index;
} indexed_span;

static int by_offset(const void *a, const void *b)
{
    int64_t oa = ((const indexed_span *)a)->offset, ob = ((const indexed_span *)b)->offset;
    return (oa > ob) - (oa < ob);
}

fm_status fm_validate_qk_sparse(const char *family, const fm_mask_params *p,
                                int64_t seqlen_k)
{
    if (p->n_spans < 0)
        return fm_fail(FM_ERR_INVALID, "%s: n_spans = %lld, must be >= 0", family,
                       (long long)p->n_spans);
    if (p->n_spans == 0) return FM_OK;
    if (!p->span_offset || !p->span_len)
        return fm_fail(FM_ERR_INVALID, "%s: span_offset or span_len is NULL", family);
    for (int64_t s = 0; s < p->n_spans; s++) {
        int64_t o = p->span_offset[s], l = p->span_len[s];
        if (o < 0 || o >= seqlen_k)
            return fm_fail(FM_ERR_INVALID, "%s: span_offset[%lld] = %lld, outside [0, %lld)",
                           family, (long long)s, (long long)o, (long long)seqlen_k);
        if (l < 1 || l > seqlen_k - o)
            return fm_fail(FM_ERR_INVALID,
                           "%s: span_len[%lld] = %lld, must be >= 1 and end the span at or "
                           "before seqlen_k = %lld (span_offset %lld)",
                           family, (long long)s, (long long)l, (long long)seqlen_k,
                           (long long)o);
    }
    indexed_span *spans = fm_alloc((size_t)p->n_spans, sizeof *spans, "span order");
    if (!spans) return FM_ERR_NOMEM;
    for (int64_t s = 0; s < p->n_spans; s++)
        spans[s] = (indexed_span){p->span_offset[s], p->span_len[s], s};
    qsort(spans, (size_t)p->n_spans, sizeof *spans, by_offset);
    fm_status st = FM_OK;
    for (int64_t k = 1; k < p->n_spans && !st; k++) {
        const indexed_span *a = &spans[k - 1], *b = &spans[k];
        if (b->offset < a->offset + a->len)
            st = fm_fail(FM_ERR_INVALID, "%s: span %lld [%lld, %lld) overlaps span %lld "
                         "[%lld, %lld)", family, (long long)b->index, (long long)b->offset,
                         (long long)(b->offset + b->len), (long long)a->index,
                         (long long)a->offset, (long long)(a->offset + a->len));
    }
    free(spans);
    return st;
}

/* The checks of each family (its row in masks/families.c names the function). */
fm_status fm_validate_none(const char *name, const fm_mask_params *p, int64_t seqlen_k)
{
    (void)name, (void)p, (void)seqlen_k;
    return FM_OK;
}

fm_status fm_validate_sliding_window(const char *name, const fm_mask_params *p, int64_t seqlen_k)
{
    (void)seqlen_k;
    return check_nonneg(name, "window", p->window, 1);
}

fm_status fm_validate_prefix_lm_document(const char *name, const fm_mask_params *p,
                                         int64_t seqlen_k)
{
    fm_status st = fm_validate_docs(name, p, seqlen_k);
    return st ? st : check_doc_prefix(name, p);
}

fm_status fm_validate_shared_question(const char *name, const fm_mask_params *p,
                                      int64_t seqlen_k)
{
    fm_status st = fm_validate_docs(name, p, seqlen_k);
    return st ? st : check_samples(name, p);
}

fm_status fm_validate_global_sliding_window(const char *name, const fm_mask_params *p,
                                            int64_t seqlen_k)
{
    (void)seqlen_k;
    fm_status st = check_nonneg(name, "global_tokens", p->global_tokens, 0);
    if (!st) st = check_nonneg(name, "left_window", p->left_window, 0);
    if (!st) st = check_nonneg(name, "right_window", p->right_window, 0);
    return st;
}

fm_status fm_validate_prefix_lm_causal(const char *name, const fm_mask_params *p,
                                       int64_t seqlen_k)
{
    (void)seqlen_k;
    return check_nonneg(name, "prefix", p->prefix, 0);
}

fm_status fm_validate_random_eviction(const char *name, const fm_mask_params *p,
                                      int64_t seqlen_k)
{
    (void)seqlen_k;
    return check_nonneg(name, "evict_start", p->evict_start, 1);
}
