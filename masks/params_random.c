/* masks/params_random.c — random valid parameters of every mask family, for the property tests
 * (fm_mask_params_random, masks/families.c, calls the family's function here). Each parameter is drawn so that its edge values come up often:
 * window 1 and >= S, a single document, documents of length 1, an empty or whole prefix, spans
 * touching the first and the last key, no span at all, eviction from row 1 or never.
 *
 * Layer: masks <- core. Deterministic in (family, seqlen, rng state): the project's fm_rng.
 */
#include <stdlib.h>
#include <string.h>

#include "families_internal.h"
#include "fm_internal.h"

/* True with probability num/den. */
static int chance(fm_rng *rng, uint64_t num, uint64_t den)
{
    return fm_rng_below(rng, den) < num;
}

/* A length in [0, S] that is 0, S or beyond S (a few keys past the end) more often than a
 * uniform draw would make it; lo is the smallest value allowed. */
static int64_t edgy_length(fm_rng *rng, int64_t lo, int64_t seqlen)
{
    uint64_t pick = fm_rng_below(rng, 10);
    if (pick < 2) return lo;
    if (pick < 3) return seqlen;
    if (pick < 4) return seqlen + fm_rng_range(rng, 1, 3);
    return fm_rng_range(rng, lo, seqlen > lo ? seqlen : lo);
}

/* Random partition of [0, S) into segments: one segment, all of length 1, or cuts placed
 * independently with a random density (biased toward few cuts). lens must hold S values. */
static int64_t random_partition(fm_rng *rng, int64_t seqlen, int64_t *lens)
{
    uint64_t mode = fm_rng_below(rng, 10);
    if (mode < 2 || seqlen == 1) {
        lens[0] = seqlen;
        return 1;
    }
    if (mode < 3) {
        for (int64_t j = 0; j < seqlen; j++) lens[j] = 1;
        return seqlen;
    }
    double u = fm_rng_uniform(rng), density = u * u;
    int64_t n = 0, start = 0;
    for (int64_t j = 1; j < seqlen; j++) {
        if (fm_rng_uniform(rng) < density) {
            lens[n++] = j - start;
            start = j;
        }
    }
    lens[n++] = seqlen - start;
    return n;
}

fm_status fm_random_docs(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    p->doc_lens = fm_alloc((size_t)seqlen, sizeof *p->doc_lens, "doc_lens");
    if (!p->doc_lens) return FM_ERR_NOMEM;
    p->n_docs = random_partition(rng, seqlen, p->doc_lens);
    return FM_OK;
}

/* Segments as documents, then grouped into samples: each sample starts with its question and
 * takes a random number of the following segments as answers (possibly none). */
fm_status fm_random_shared_question(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    fm_status st = fm_random_docs(p, seqlen, rng);
    if (st) return st;
    p->sample_segments = fm_alloc((size_t)p->n_docs, sizeof *p->sample_segments,
                                  "sample_segments");
    if (!p->sample_segments) return FM_ERR_NOMEM;
    uint64_t new_sample_odds = fm_rng_range(rng, 1, 4); /* a new sample in 1..4 of 5 cases */
    p->n_samples = 0;
    for (int64_t d = 0; d < p->n_docs; d++) {
        if (d == 0 || chance(rng, new_sample_odds, 5)) p->sample_segments[p->n_samples++] = 0;
        p->sample_segments[p->n_samples - 1]++;
    }
    return FM_OK;
}

/* Disjoint spans walked left to right: random gaps and lengths (the first span often at key 0,
 * the last often truncated to end at key S-1), sometimes none, sometimes shuffled. */
fm_status fm_random_qk_sparse(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    p->span_offset = fm_alloc((size_t)seqlen, sizeof *p->span_offset, "span_offset");
    p->span_len = fm_alloc((size_t)seqlen, sizeof *p->span_len, "span_len");
    if (!p->span_offset || !p->span_len) return FM_ERR_NOMEM;
    p->n_spans = 0;
    if (chance(rng, 1, 10)) return FM_OK;
    int64_t max_gap = fm_rng_range(rng, 1, seqlen), max_len = fm_rng_range(rng, 1, seqlen);
    int64_t pos = chance(rng, 1, 3) ? 0 : fm_rng_range(rng, 0, max_gap);
    while (pos < seqlen) {
        int64_t len = fm_rng_range(rng, 1, max_len);
        if (pos + len > seqlen) {
            if (chance(rng, 1, 2)) break;
            len = seqlen - pos; /* a span that ends at the last key */
        }
        p->span_offset[p->n_spans] = pos;
        p->span_len[p->n_spans++] = len;
        pos += len + fm_rng_range(rng, 0, max_gap);
    }
    if (chance(rng, 1, 4)) { /* spans in any order are accepted */
        for (int64_t s = p->n_spans - 1; s > 0; s--) {
            int64_t r = fm_rng_range(rng, 0, s), o = p->span_offset[s], l = p->span_len[s];
            p->span_offset[s] = p->span_offset[r];
            p->span_len[s] = p->span_len[r];
            p->span_offset[r] = o;
            p->span_len[r] = l;
        }
    }
    return FM_OK;
}

/* The random draw of each family (its row in masks/families.c names the function). */
fm_status fm_random_none(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    (void)p, (void)seqlen, (void)rng;
    return FM_OK;
}

fm_status fm_random_sliding_window(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    p->window = edgy_length(rng, 1, seqlen);
    return FM_OK;
}

fm_status fm_random_prefix_lm_document(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    fm_status st = fm_random_docs(p, seqlen, rng);
    if (st) return st;
    p->doc_prefix = fm_alloc((size_t)p->n_docs, sizeof *p->doc_prefix, "doc_prefix");
    if (!p->doc_prefix) return FM_ERR_NOMEM;
    for (int64_t d = 0; d < p->n_docs; d++) {
        uint64_t pick = fm_rng_below(rng, 4); /* empty, whole, or anything between */
        int64_t len = p->doc_lens[d];
        p->doc_prefix[d] = pick == 0 ? 0 : pick == 1 ? len : fm_rng_range(rng, 0, len);
    }
    return FM_OK;
}

fm_status fm_random_global_sliding_window(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    p->global_tokens = edgy_length(rng, 0, seqlen);
    p->left_window = edgy_length(rng, 0, seqlen);
    p->right_window = edgy_length(rng, 0, seqlen);
    return FM_OK;
}

fm_status fm_random_prefix_lm_causal(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    p->prefix = edgy_length(rng, 0, seqlen);
    return FM_OK;
}

fm_status fm_random_random_eviction(fm_mask_params *p, int64_t seqlen, fm_rng *rng)
{
    p->evict_start = edgy_length(rng, 1, seqlen);
    p->seed = fm_rng_u64(rng) >> 11; /* < 2^53: exact in case.json (io/params_json.c) */
    return FM_OK;
}
