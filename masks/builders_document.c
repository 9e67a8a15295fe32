/* masks/builders_document.c — the builders of the families made of documents (docs/spec.md §4):
 * causal_document, document, causal_blockwise, prefix_lm_document and shared_question, and the
 * document table they share (first key, end and owner of every key).
 *
 * Layer: masks <- core. Positions and clipping: see families_internal.h.
 */
#include <stdlib.h>

#include "families_internal.h"
#include "fm_internal.h"

/* ---------------------------------------------------------------- the document table */

fm_status fm_doc_table_init(fm_doc_table *t, const int64_t *lens, int64_t n, int64_t seqlen_k)
{
    t->n = n;
    t->start = fm_alloc((size_t)n, sizeof *t->start, "document starts");
    t->end = fm_alloc((size_t)n, sizeof *t->end, "document ends");
    t->of = fm_alloc((size_t)seqlen_k, sizeof *t->of, "document of each key");
    if (!t->start || !t->end || !t->of) {
        fm_doc_table_free(t);
        return FM_ERR_NOMEM;
    }
    int64_t pos = 0;
    for (int64_t d = 0; d < n; d++) {
        t->start[d] = pos;
        for (int64_t j = pos; j < pos + lens[d]; j++) t->of[j] = d;
        pos += lens[d];
        /* The last document runs on past the last key: a row standing beyond Sk (Sq > Sk)
         * belongs to it, as Paddle's N = Sq would say. */
        t->end[d] = d == n - 1 ? FM_POS_END : pos;
    }
    return FM_OK;
}

void fm_doc_table_free(fm_doc_table *t)
{
    free(t->start);
    free(t->end);
    free(t->of);
    t->start = t->end = t->of = NULL;
}

/* ---------------------------------------------------------------- builders */

/* Which document-family variant to write. */
typedef enum doc_variant {
    CAUSAL_DOCUMENT,    /* LTS = doc_end (with the causal rule)                          */
    DOCUMENT,           /* LT = [doc_end, end), UT = [0, doc_start)                        */
    CAUSAL_BLOCKWISE,   /* LT = [doc_end, start of the last doc) before the last document  */
    PREFIX_LM_DOCUMENT  /* LT = [doc_end, end), UT = [0, doc_start or j)                   */
} doc_variant;

static fm_status build_documents(const fm_build_ctx *c, doc_variant variant)
{
    fm_doc_table t;
    fm_status st = fm_doc_table_init(&t, c->p->doc_lens, c->p->n_docs, c->seqlen_k);
    if (st) return st;
    int64_t last_start = t.start[t.n - 1];
    for (int64_t j = 0; j < c->seqlen_k; j++) {
        int64_t d = t.of[j];
        int64_t lts = t.end[d], lte = FM_POS_END, uts = FM_POS_BEGIN, ute = FM_POS_BEGIN;
        switch (variant) {
        case CAUSAL_DOCUMENT: break;
        case DOCUMENT: ute = t.start[d]; break;
        case CAUSAL_BLOCKWISE:
            /* Rows of the last document see every earlier key; other rows only their own
             * document's. For the last document itself lts is the end: no interval. */
            if (d < t.n - 1) lte = last_start;
            break;
        case PREFIX_LM_DOCUMENT:
            /* Prefix keys are seen by the whole document, later keys causally. */
            ute = j < t.start[d] + c->p->doc_prefix[d] ? t.start[d] : j;
            break;
        }
        fm_build_set_column(c, 0, 0, j, lts, lte, uts, ute);
    }
    fm_doc_table_free(&t);
    fm_build_broadcast(c);
    return FM_OK;
}

fm_status fm_build_causal_document(const fm_build_ctx *c)
{
    return build_documents(c, CAUSAL_DOCUMENT);
}

fm_status fm_build_document(const fm_build_ctx *c) { return build_documents(c, DOCUMENT); }

fm_status fm_build_causal_blockwise(const fm_build_ctx *c)
{
    return build_documents(c, CAUSAL_BLOCKWISE);
}

fm_status fm_build_prefix_lm_document(const fm_build_ctx *c)
{
    return build_documents(c, PREFIX_LM_DOCUMENT);
}

/* shared_question: doc_lens are segments, sample_segments groups them into samples (a question
 * followed by its answers). With the causal rule: a question key is seen until the end of its
 * sample (by the question and every answer), an answer key until the end of its answer. */
fm_status fm_build_shared_question(const fm_build_ctx *c)
{
    fm_doc_table t;
    fm_status st = fm_doc_table_init(&t, c->p->doc_lens, c->p->n_docs, c->seqlen_k);
    if (st) return st;
    int64_t first = 0; /* first segment of the sample */
    for (int64_t s = 0; s < c->p->n_samples; s++) {
        int64_t count = c->p->sample_segments[s];
        int64_t sample_end = t.end[first + count - 1];
        for (int64_t seg = first; seg < first + count; seg++) {
            int64_t lts = seg == first ? sample_end : t.end[seg];
            int64_t seg_stop = seg == t.n - 1 ? c->seqlen_k : t.end[seg];
            for (int64_t j = t.start[seg]; j < seg_stop; j++)
                fm_build_set_column(c, 0, 0, j, lts, FM_POS_END, FM_POS_BEGIN, FM_POS_BEGIN);
        }
        first += count;
    }
    fm_doc_table_free(&t);
    fm_build_broadcast(c);
    return FM_OK;
}
