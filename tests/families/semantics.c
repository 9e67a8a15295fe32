/* tests/families/semantics.c — the independent definitions of the mask families (see
 * semantics.h): each family as a predicate over (row position x, key j). Deliberately naive:
 * documents and spans are found by linear scans over the parameters. */
#include "semantics.h"

/* Index of the document (segment) holding position x; positions past the last key belong to
 * the last document. */
static int64_t doc_of(const fm_mask_params *p, int64_t x)
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

/* qk_sparse: the span holding position x, or -1. */
static int64_t span_of(const fm_mask_params *p, int64_t x)
{
    for (int64_t s = 0; s < p->n_spans; s++)
        if (p->span_offset[s] <= x && x < p->span_offset[s] + p->span_len[s]) return s;
    return -1;
}

int64_t fm_sem_position(const fm_mask_params *p, fm_causal alignment, int64_t seqlen_q,
                        int64_t seqlen_k, int64_t i)
{
    int shifted = fm_family_is_causal(p->family) && alignment == FM_CAUSAL_BOTTOM_RIGHT;
    return i + (shifted ? seqlen_k - seqlen_q : 0);
}

int fm_sem_allowed(const fm_mask_params *p, int64_t seqlen_k, int64_t x, int64_t j)
{
    const int causal_ok = j <= x; /* a key at or before the row */
    switch (p->family) {
    case FM_FAMILY_FULL: return 1;
    case FM_FAMILY_CAUSAL: return causal_ok;
    case FM_FAMILY_SLIDING_WINDOW:
        /* the w most recent keys, the row's own position included */
        return causal_ok && x - j < p->window;
    case FM_FAMILY_CAUSAL_DOCUMENT: return causal_ok && doc_of(p, x) == doc_of(p, j);
    case FM_FAMILY_DOCUMENT: return doc_of(p, x) == doc_of(p, j);
    case FM_FAMILY_SHARED_QUESTION: {
        if (!causal_ok) return 0;
        int64_t sx = doc_of(p, x), sj = doc_of(p, j);
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
        return causal_ok && (doc_of(p, x) == doc_of(p, j) || doc_of(p, x) == p->n_docs - 1);
    case FM_FAMILY_PREFIX_LM_CAUSAL: return j < p->prefix || causal_ok;
    case FM_FAMILY_PREFIX_LM_DOCUMENT: {
        int64_t d = doc_of(p, j);
        if (doc_of(p, x) != d) return 0;
        return j < doc_start(p, d) + p->doc_prefix[d] || causal_ok;
    }
    case FM_FAMILY_QK_SPARSE: {
        int64_t s = span_of(p, j);
        return causal_ok && (s < 0 || span_of(p, x) != s);
    }
    default: break;
    }
    (void)seqlen_k;
    return -1; /* random_eviction: no closed form */
}
