/* tests/families/semantics.c — the independent definitions of the mask families (see
 * semantics.h): each family as a predicate over (row position x, key j). Deliberately naive:
 * documents and spans are found by linear scans over the parameters. */
#include <stdlib.h>

#include "semantics.h"

/* Index of the document (segment) holding key position x, by a linear scan. */
static int64_t doc_scan(const fm_mask_params *p, int64_t x)
{
    int64_t start = 0;
    for (int64_t d = 0; d < p->n_docs; d++) {
        if (x < start + p->doc_lens[d]) return d;
        start += p->doc_lens[d];
    }
    return p->n_docs - 1;
}

static int64_t doc_start(const fm_mask_params *p, int64_t d)
{
    int64_t start = 0;
    for (int64_t k = 0; k < d; k++) start += p->doc_lens[k];
    return start;
}

/* shared_question: the sample holding segment `seg`, and whether seg is its question. */
static int64_t sample_of(const fm_mask_params *p, int64_t seg, int *is_question)
{
    int64_t first = 0;
    for (int64_t s = 0; s < p->n_samples; s++) {
        if (seg < first + p->sample_segments[s]) {
            *is_question = seg == first;
            return s;
        }
        first += p->sample_segments[s];
    }
    *is_question = 0;
    return -1;
}

/* qk_sparse: the span holding position x, or -1, by a linear scan. */
static int64_t span_scan(const fm_mask_params *p, int64_t x)
{
    for (int64_t s = 0; s < p->n_spans; s++)
        if (p->span_offset[s] <= x && x < p->span_offset[s] + p->span_len[s]) return s;
    return -1;
}

int fm_sem_init(fm_sem *s, const fm_mask_params *p, int64_t seqlen_k)
{
    s->p = p;
    s->seqlen_k = seqlen_k;
    s->doc_of = p->doc_lens ? malloc((size_t)seqlen_k * sizeof *s->doc_of) : NULL;
    s->span_of = p->family == FM_FAMILY_QK_SPARSE
                     ? malloc((size_t)seqlen_k * sizeof *s->span_of) : NULL;
    if ((p->doc_lens && !s->doc_of) || (p->family == FM_FAMILY_QK_SPARSE && !s->span_of)) {
        fm_sem_free(s);
        return -1;
    }
    for (int64_t x = 0; x < seqlen_k; x++) {
        if (s->doc_of) s->doc_of[x] = doc_scan(p, x);
        if (s->span_of) s->span_of[x] = span_scan(p, x);
    }
    return 0;
}

void fm_sem_free(fm_sem *s)
{
    free(s->doc_of);
    free(s->span_of);
    s->doc_of = s->span_of = NULL;
}

/* The document of a row position; a row past the last key belongs to the last document. */
static int64_t doc_of(const fm_sem *s, int64_t x)
{
    if (x < 0) x = 0; /* (only reached for rows that the causal rule masks anyway) */
    return s->doc_of[x < s->seqlen_k ? x : s->seqlen_k - 1];
}

/* The span of a row position (rows past the last key are in no span). */
static int64_t span_of(const fm_sem *s, int64_t x)
{
    return x < s->seqlen_k ? s->span_of[x] : -1;
}

int64_t fm_sem_position(const fm_mask_params *p, fm_causal alignment, int64_t seqlen_q,
                        int64_t seqlen_k, int64_t i)
{
    int shifted = fm_family_is_causal(p->family) && alignment == FM_CAUSAL_BOTTOM_RIGHT;
    return i + (shifted ? seqlen_k - seqlen_q : 0);
}

int fm_sem_allowed(const fm_sem *sem, int64_t x, int64_t j)
{
    const fm_mask_params *p = sem->p;
    const int causal_ok = j <= x; /* a key at or before the row */
    switch (p->family) {
    case FM_FAMILY_FULL: return 1;
    case FM_FAMILY_CAUSAL: return causal_ok;
    case FM_FAMILY_SLIDING_WINDOW:
        /* the w most recent keys, the row's own position included */
        return causal_ok && x - j < p->window;
    case FM_FAMILY_CAUSAL_DOCUMENT: return causal_ok && doc_of(sem, x) == doc_of(sem, j);
    case FM_FAMILY_DOCUMENT: return doc_of(sem, x) == doc_of(sem, j);
    case FM_FAMILY_SHARED_QUESTION: {
        if (!causal_ok) return 0;
        int64_t sx = doc_of(sem, x), sj = doc_of(sem, j);
        int qx, qj;
        if (sample_of(p, sx, &qx) != sample_of(p, sj, &qj)) return 0;
        return qj || sx == sj; /* the question is shared; an answer is private */
    }
    case FM_FAMILY_GLOBAL_SLIDING_WINDOW: {
        int64_t g = p->global_tokens;
        if (x < g || j < g) return 1; /* global rows and global keys */
        return x - p->left_window <= j && j <= x + p->right_window;
    }
    case FM_FAMILY_CAUSAL_BLOCKWISE:
        /* the last document sees every earlier key */
        return causal_ok &&
               (doc_of(sem, x) == doc_of(sem, j) || doc_of(sem, x) == p->n_docs - 1);
    case FM_FAMILY_PREFIX_LM_CAUSAL: return j < p->prefix || causal_ok;
    case FM_FAMILY_PREFIX_LM_DOCUMENT: {
        int64_t d = doc_of(sem, j);
        if (doc_of(sem, x) != d) return 0;
        return j < doc_start(p, d) + p->doc_prefix[d] || causal_ok;
    }
    case FM_FAMILY_QK_SPARSE: {
        int64_t s = span_of(sem, j);
        return causal_ok && (s < 0 || span_of(sem, x) != s);
    }
    default: break;
    }
    return -1; /* random_eviction: no closed form */
}
