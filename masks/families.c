/* masks/families.c — the twelve mask families of docs/spec.md §4 by name: their names, whether they use
 * the causal rule, and a one-line description of their parameters (what `flashmask masks`
 * prints). The builders are in masks/builders*.c, the parameters in masks/params*.c.
 *
 * Layer: masks <- core.
 */
#include <string.h>

#include "flashmask/masks.h"
#include "fm_internal.h"

/* One row per family, in the order of enum fm_family. */
static const struct {
    const char *name;
    int causal; /* docs/spec.md §4's "causal" column */
    const char *help;
} families[FM_FAMILY_COUNT] = {
    [FM_FAMILY_FULL] = {"full", 0, "no parameters; every key visible to every row"},
    [FM_FAMILY_CAUSAL] = {"causal", 1, "no parameters; key j visible to rows at j and after"},
    [FM_FAMILY_SLIDING_WINDOW] =
        {"sliding_window", 1,
         "window=w >= 1: each row sees the w most recent keys, itself included "
         "(default w = max(1, S/8))"},
    [FM_FAMILY_CAUSAL_DOCUMENT] =
        {"causal_document", 1,
         "doc_lens=l1,l2,... (sum S): causal inside each document (default 8 near-equal docs)"},
    [FM_FAMILY_DOCUMENT] =
        {"document", 0,
         "doc_lens=l1,l2,... (sum S): bidirectional inside each document (default 8 docs)"},
    [FM_FAMILY_SHARED_QUESTION] =
        {"shared_question", 1,
         "doc_lens=segments (sum S), sample_segments=n1,n2,... (1 question + answers per "
         "sample): answers see their question and themselves, causally (default 2 samples, "
         "question = half, 3 answers)"},
    [FM_FAMILY_GLOBAL_SLIDING_WINDOW] =
        {"global_sliding_window", 0,
         "global_tokens=g, left_window=wl, right_window=wr (>= 0): the first g keys and rows "
         "see/are seen by all, others see keys [x-wl, x+wr] (default g = max(1, S/64), "
         "wl = wr = S/16)"},
    [FM_FAMILY_CAUSAL_BLOCKWISE] =
        {"causal_blockwise", 1,
         "doc_lens=l1,l2,... (sum S): causal inside each document, the last document sees "
         "every earlier key (default 8 docs)"},
    [FM_FAMILY_PREFIX_LM_CAUSAL] =
        {"prefix_lm_causal", 0,
         "prefix=p >= 0: keys < p seen by every row, later keys causally (default p = S/4)"},
    [FM_FAMILY_PREFIX_LM_DOCUMENT] =
        {"prefix_lm_document", 0,
         "doc_lens=l1,..., doc_prefix=p1,... (0 <= p_d <= l_d): prefix-LM inside each document "
         "(default 8 docs, prefix = len/4)"},
    [FM_FAMILY_QK_SPARSE] =
        {"qk_sparse", 1,
         "span_offset=o1,..., span_len=n1,... (disjoint, inside [0,S)): causal, but the keys of "
         "a span are hidden from the rows of the same span (default: max(1, S/16) random "
         "single-column drops)"},
    [FM_FAMILY_RANDOM_EVICTION] =
        {"random_eviction", 1,
         "evict_start=s >= 1, seed: causal; from row s on each row evicts one random earlier "
         "key, so it sees s keys; differs per (batch, head) (default s = max(1, S/2), seed 1)"},
};

const char *fm_family_name(fm_family f)
{
    return (unsigned)f < FM_FAMILY_COUNT ? families[f].name : "unknown";
}

fm_status fm_family_from_name(const char *name, fm_family *out)
{
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        if (name && strcmp(name, families[f].name) == 0) {
            *out = (fm_family)f;
            return FM_OK;
        }
    }
    return fm_fail(FM_ERR_INVALID,
                   "unknown mask family '%s' (expected full, causal, sliding_window, "
                   "causal_document, document, shared_question, global_sliding_window, "
                   "causal_blockwise, prefix_lm_causal, prefix_lm_document, qk_sparse or "
                   "random_eviction)",
                   name ? name : "(null)");
}

int fm_family_is_causal(fm_family f)
{
    return (unsigned)f < FM_FAMILY_COUNT ? families[f].causal : 0;
}

const char *fm_family_help(fm_family f)
{
    return (unsigned)f < FM_FAMILY_COUNT ? families[f].help : "unknown family";
}
