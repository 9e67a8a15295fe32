/* tests/families/print_examples.c — prints the N = 10 example of every mask family (its
 * parameters, its four vectors and an ASCII picture of the dense mask) as the Markdown blocks
 * of docs/mask-families.md, so that the document shows what our code builds:
 *     build/tests/families/families_examples > /tmp/examples.md
 * Not a test; the same examples are pinned by test_families.c. Layer: tests (masks <- core). */
#include <inttypes.h>
#include <stdio.h>

#include "flashmask.h"

/* '#' = allowed (row i may attend to key j), '.' = masked. Rows are queries, columns keys. */
static void print_mask(const fm_mask_params *p, const char *title, int64_t sq, int64_t sk,
                       fm_causal alignment)
{
    fm_mask m;
    if (fm_mask_build(&m, p, 1, 1, sq, sk, alignment) != FM_OK) {
        printf("error: %s\n", fm_last_error());
        return;
    }
    static const char *names[FM_BOUNDS] = {"LTS", "LTE", "UTS", "UTE"};
    printf("%s (Sq = %" PRId64 ", Sk = %" PRId64 ", causal = %s)\n\n```\n", title, sq, sk,
           fm_causal_name(m.causal));
    for (int k = 0; k < FM_BOUNDS; k++) {
        printf("%s [", names[k]);
        for (int64_t j = 0; j < sk; j++)
            printf("%s%d", j ? "," : "", fm_mask_column(&m, 0, 0, j)[k]);
        printf("]\n");
    }
    printf("\n       key j: ");
    for (int64_t j = 0; j < sk; j++) printf("%" PRId64, j % 10);
    printf("\n");
    for (int64_t i = 0; i < sq; i++) {
        printf("  row i = %2" PRId64 ": ", i);
        for (int64_t j = 0; j < sk; j++) putchar(fm_mask_is_masked(&m, 0, 0, i, j) ? '.' : '#');
        printf("\n");
    }
    printf("```\n\n");
    fm_mask_free(&m);
}

int main(void)
{
    int64_t docs[] = {4, 3, 3}, segments[] = {4, 3, 3}, one_sample[] = {3};
    int64_t pl_lens[] = {3, 2, 5}, pl_prefix[] = {2, 2, 2}, offs[] = {2, 7}, lens[] = {3, 1};
    const fm_causal br = FM_CAUSAL_BOTTOM_RIGHT, none = FM_CAUSAL_NONE;
    struct {
        const char *title;
        fm_mask_params p;
        fm_causal alignment;
    } ex[] = {
        {"full", {.family = FM_FAMILY_FULL}, none},
        {"causal", {.family = FM_FAMILY_CAUSAL}, br},
        {"sliding_window, window = 3", {.family = FM_FAMILY_SLIDING_WINDOW, .window = 3}, br},
        {"causal_document, doc_lens = (4,3,3)",
         {.family = FM_FAMILY_CAUSAL_DOCUMENT, .n_docs = 3, .doc_lens = docs}, br},
        {"document, doc_lens = (4,3,3)",
         {.family = FM_FAMILY_DOCUMENT, .n_docs = 3, .doc_lens = docs}, none},
        {"shared_question, question 4, answers 3, 3 (doc_lens = (4,3,3), sample_segments = (3))",
         {.family = FM_FAMILY_SHARED_QUESTION, .n_docs = 3, .doc_lens = segments,
          .n_samples = 1, .sample_segments = one_sample}, br},
        {"global_sliding_window, g = 2, wl = wr = 1",
         {.family = FM_FAMILY_GLOBAL_SLIDING_WINDOW, .global_tokens = 2, .left_window = 1,
          .right_window = 1}, none},
        {"causal_blockwise, doc_lens = (4,3,3)",
         {.family = FM_FAMILY_CAUSAL_BLOCKWISE, .n_docs = 3, .doc_lens = docs}, br},
        {"prefix_lm_causal, prefix = 3", {.family = FM_FAMILY_PREFIX_LM_CAUSAL, .prefix = 3},
         none},
        {"prefix_lm_document, (prefix, len) = (2,3), (2,2), (2,5)",
         {.family = FM_FAMILY_PREFIX_LM_DOCUMENT, .n_docs = 3, .doc_lens = pl_lens,
          .doc_prefix = pl_prefix}, none},
        {"qk_sparse, spans (offset, len) = (2,3), (7,1)",
         {.family = FM_FAMILY_QK_SPARSE, .n_spans = 2, .span_offset = offs, .span_len = lens},
         br},
        {"random_eviction, evict_start = 4, seed = 1",
         {.family = FM_FAMILY_RANDOM_EVICTION, .evict_start = 4, .seed = 1}, br},
    };
    for (size_t k = 0; k < sizeof ex / sizeof ex[0]; k++)
        print_mask(&ex[k].p, ex[k].title, 10, 10, ex[k].alignment);
    /* Sq != Sk: the two causal alignments. */
    fm_mask_params sw = {.family = FM_FAMILY_SLIDING_WINDOW, .window = 3};
    print_mask(&sw, "sliding_window, window = 3, bottom_right", 4, 10, FM_CAUSAL_BOTTOM_RIGHT);
    print_mask(&sw, "sliding_window, window = 3, top_left", 4, 10, FM_CAUSAL_TOP_LEFT);
    fm_mask_params cd = {.family = FM_FAMILY_CAUSAL_DOCUMENT, .n_docs = 3, .doc_lens = docs};
    print_mask(&cd, "causal_document, doc_lens = (4,3,3), bottom_right", 4, 10,
               FM_CAUSAL_BOTTOM_RIGHT);
    return 0;
}
