/* tests/families/test_families.c — suite 'families': the twelve mask-family builders of docs/spec.md §4
 * (masks/builders*.c, masks/params*.c, masks/families.c).
 *   (a) Paddle's documented N = 10 examples, vector by vector;
 *   (b) on random parameters (fm_mask_params_random), random Sq/Sk and both causal alignments,
 *       the builder's dense mask equals the independent definition of tests/families/
 *       semantics.c (random_eviction: its defining properties);
 *   (c) every family's default builds, validates and means what its documentation says for
 *       S in {1, 2, 3, 7, 64, 4096};
 *   (d) invalid parameters are refused with a message naming them.
 * FM_SEED / FM_TRIALS as everywhere (tests/common/prop.h). A failure prints the case seed:
 * FM_SEED=<seed> FM_TRIALS=1 ./test_families replays it (for every family).
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "expect_fail.h"
#include "prop.h"
#include "semantics.h"

/* ---------------------------------------------------------------- helpers */

static void print_params(const fm_mask_params *p, FILE *out)
{
    fprintf(out, "  %s:", fm_family_name(p->family));
    switch (p->family) {
    case FM_FAMILY_SLIDING_WINDOW: fprintf(out, " window=%" PRId64, p->window); break;
    case FM_FAMILY_GLOBAL_SLIDING_WINDOW:
        fprintf(out, " g=%" PRId64 " wl=%" PRId64 " wr=%" PRId64, p->global_tokens,
                p->left_window, p->right_window);
        break;
    case FM_FAMILY_PREFIX_LM_CAUSAL: fprintf(out, " prefix=%" PRId64, p->prefix); break;
    case FM_FAMILY_RANDOM_EVICTION:
        fprintf(out, " evict_start=%" PRId64 " seed=%" PRIu64, p->evict_start, p->seed);
        break;
    case FM_FAMILY_QK_SPARSE:
        fprintf(out, " spans=");
        for (int64_t s = 0; s < p->n_spans; s++)
            fprintf(out, "(%" PRId64 ",%" PRId64 ")", p->span_offset[s], p->span_len[s]);
        break;
    default: break;
    }
    if (p->doc_lens) {
        fprintf(out, " doc_lens=");
        for (int64_t d = 0; d < p->n_docs; d++) fprintf(out, "%s%" PRId64, d ? "," : "",
                                                         p->doc_lens[d]);
    }
    if (p->doc_prefix) {
        fprintf(out, " doc_prefix=");
        for (int64_t d = 0; d < p->n_docs; d++) fprintf(out, "%s%" PRId64, d ? "," : "",
                                                         p->doc_prefix[d]);
    }
    if (p->sample_segments) {
        fprintf(out, " sample_segments=");
        for (int64_t s = 0; s < p->n_samples; s++) fprintf(out, "%s%" PRId64, s ? "," : "",
                                                            p->sample_segments[s]);
    }
    fprintf(out, "\n");
}

static void assert_vector(const fm_mask *m, int bound, const int32_t *expected, const char *what)
{
    for (int64_t j = 0; j < m->seqlen_k; j++) {
        int32_t got = fm_mask_column(m, 0, 0, j)[bound];
        if (got != expected[j]) fail_msg("%s: column %" PRId64 ": got %d, expected %d", what, j,
                                         got, expected[j]);
    }
}

/* Builds p at N = 10 (Sq = Sk) and compares the four vectors. */
static void check_example(fm_mask_params *p, fm_causal alignment, const int32_t *lts,
                          const int32_t *lte, const int32_t *uts, const int32_t *ute)
{
    fm_mask m;
    fm_status st = fm_mask_build(&m, p, 1, 1, 10, 10, alignment);
    if (st) fail_msg("%s: %s", fm_family_name(p->family), fm_last_error());
    assert_int_equal(m.causal, fm_family_is_causal(p->family) ? alignment : FM_CAUSAL_NONE);
    assert_vector(&m, FM_LTS, lts, "LTS");
    assert_vector(&m, FM_LTE, lte, "LTE");
    assert_vector(&m, FM_UTS, uts, "UTS");
    assert_vector(&m, FM_UTE, ute, "UTE");
    fm_mask_free(&m);
}

static const int32_t all10[10] = {10, 10, 10, 10, 10, 10, 10, 10, 10, 10};
static const int32_t all0[10] = {0};

/* ---------------------------------------------------------------- (a) Paddle's examples */

static void test_paddle_causal_document(void **state)
{
    (void)state;
    int64_t docs[] = {4, 3, 3};
    fm_mask_params p = {.family = FM_FAMILY_CAUSAL_DOCUMENT, .n_docs = 3, .doc_lens = docs};
    const int32_t lts[10] = {4, 4, 4, 4, 7, 7, 7, 10, 10, 10};
    check_example(&p, FM_CAUSAL_BOTTOM_RIGHT, lts, all10, all0, all0);
    check_example(&p, FM_CAUSAL_TOP_LEFT, lts, all10, all0, all0);
}

static void test_paddle_document(void **state)
{
    (void)state;
    int64_t docs[] = {4, 3, 3};
    fm_mask_params p = {.family = FM_FAMILY_DOCUMENT, .n_docs = 3, .doc_lens = docs};
    const int32_t lts[10] = {4, 4, 4, 4, 7, 7, 7, 10, 10, 10};
    const int32_t ute[10] = {0, 0, 0, 0, 4, 4, 4, 7, 7, 7};
    check_example(&p, FM_CAUSAL_NONE, lts, all10, all0, ute);
    check_example(&p, FM_CAUSAL_TOP_LEFT, lts, all10, all0, ute); /* alignment ignored */
}

static void test_paddle_shared_question(void **state)
{
    (void)state;
    int64_t segments[] = {4, 3, 3}, per_sample[] = {3}; /* question 4; answers 3, 3 */
    fm_mask_params p = {.family = FM_FAMILY_SHARED_QUESTION, .n_docs = 3, .doc_lens = segments,
                        .n_samples = 1, .sample_segments = per_sample};
    const int32_t lts[10] = {10, 10, 10, 10, 7, 7, 7, 10, 10, 10};
    check_example(&p, FM_CAUSAL_BOTTOM_RIGHT, lts, all10, all0, all0);
}

static void test_paddle_global_sliding_window(void **state)
{
    (void)state;
    fm_mask_params p = {.family = FM_FAMILY_GLOBAL_SLIDING_WINDOW, .global_tokens = 2,
                        .left_window = 1, .right_window = 1};
    const int32_t lts[10] = {10, 10, 4, 5, 6, 7, 8, 9, 10, 10};
    const int32_t uts[10] = {0, 0, 0, 0, 2, 2, 2, 2, 2, 2};
    const int32_t ute[10] = {0, 0, 0, 0, 3, 4, 5, 6, 7, 8};
    check_example(&p, FM_CAUSAL_NONE, lts, all10, uts, ute);
}

static void test_paddle_prefix_lm_document(void **state)
{
    (void)state;
    int64_t lens[] = {3, 2, 5}, prefix[] = {2, 2, 2}; /* (prefix, len): (2,3), (2,2), (2,5) */
    fm_mask_params p = {.family = FM_FAMILY_PREFIX_LM_DOCUMENT, .n_docs = 3, .doc_lens = lens,
                        .doc_prefix = prefix};
    const int32_t lts[10] = {3, 3, 3, 5, 5, 10, 10, 10, 10, 10};
    const int32_t ute[10] = {0, 0, 2, 3, 3, 5, 5, 7, 8, 9};
    check_example(&p, FM_CAUSAL_NONE, lts, all10, all0, ute);
}

/* The other rows of docs/spec.md §4's table at N = 10, from its formulas. */
static void test_brief_table_rest(void **state)
{
    (void)state;
    fm_mask_params p = {.family = FM_FAMILY_SLIDING_WINDOW, .window = 3};
    const int32_t sw_lts[10] = {3, 4, 5, 6, 7, 8, 9, 10, 10, 10};
    check_example(&p, FM_CAUSAL_BOTTOM_RIGHT, sw_lts, all10, all0, all0);

    int64_t docs[] = {4, 3, 3};
    p = (fm_mask_params){.family = FM_FAMILY_CAUSAL_BLOCKWISE, .n_docs = 3, .doc_lens = docs};
    const int32_t bw_lts[10] = {4, 4, 4, 4, 10, 10, 10, 10, 10, 10};
    const int32_t bw_lte[10] = {7, 7, 7, 7, 10, 10, 10, 10, 10, 10};
    /* doc 1 ends where the last starts: its LT [7, 7) is empty, written canonically [10, 10) */
    check_example(&p, FM_CAUSAL_BOTTOM_RIGHT, bw_lts, bw_lte, all0, all0);

    p = (fm_mask_params){.family = FM_FAMILY_PREFIX_LM_CAUSAL, .prefix = 3};
    const int32_t pl_ute[10] = {0, 0, 0, 3, 4, 5, 6, 7, 8, 9};
    check_example(&p, FM_CAUSAL_NONE, all10, all10, all0, pl_ute);

    int64_t offs[] = {2, 7}, lens[] = {3, 1};
    p = (fm_mask_params){.family = FM_FAMILY_QK_SPARSE, .n_spans = 2, .span_offset = offs,
                         .span_len = lens};
    const int32_t qk_lts[10] = {10, 10, 2, 3, 4, 10, 10, 7, 10, 10};
    const int32_t qk_lte[10] = {10, 10, 5, 5, 5, 10, 10, 8, 10, 10};
    check_example(&p, FM_CAUSAL_TOP_LEFT, qk_lts, qk_lte, all0, all0);

    p = (fm_mask_params){.family = FM_FAMILY_FULL};
    check_example(&p, FM_CAUSAL_NONE, all10, all10, all0, all0);
    p = (fm_mask_params){.family = FM_FAMILY_CAUSAL};
    check_example(&p, FM_CAUSAL_TOP_LEFT, all10, all10, all0, all0);
}

/* Sq != Sk: bottom_right shifts the rows by Sk - Sq (the last query row is the last key). */
static void test_unequal_lengths_shift(void **state)
{
    (void)state;
    int64_t docs[] = {4, 3, 3};
    fm_mask_params p = {.family = FM_FAMILY_CAUSAL_DOCUMENT, .n_docs = 3, .doc_lens = docs};
    fm_mask m;
    /* 4 query rows at key positions 6..9 */
    assert_int_equal(fm_mask_build(&m, &p, 1, 1, 4, 10, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    /* doc 0 ([0,4)) has ended before every row: LT [0, 4) masks all of them; doc 1 ends at
     * position 7 = row 1; doc 2 runs to the end: its LT is empty, written [4, 4) */
    const int32_t lts[10] = {0, 0, 0, 0, 1, 1, 1, 4, 4, 4};
    for (int64_t j = 0; j < 10; j++) {
        assert_int_equal(fm_mask_column(&m, 0, 0, j)[FM_LTS], lts[j]);
        assert_int_equal(fm_mask_column(&m, 0, 0, j)[FM_LTE], 4);
    }
    fm_mask_free(&m);
    /* top_left: rows are positions 0..3, all in document 0: no column needs an interval */
    assert_int_equal(fm_mask_build(&m, &p, 1, 1, 4, 10, FM_CAUSAL_TOP_LEFT), FM_OK);
    for (int64_t j = 0; j < 10; j++)
        assert_int_equal(fm_mask_column(&m, 0, 0, j)[FM_LTS], 4);
    fm_mask_free(&m);
    /* document (no causal rule, no shift) with Sq > Sk: rows 10, 11 stand past the last key
     * and belong to the last document */
    p.family = FM_FAMILY_DOCUMENT;
    assert_int_equal(fm_mask_build(&m, &p, 1, 1, 12, 10, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    assert_int_equal(m.causal, FM_CAUSAL_NONE);
    for (int64_t j = 0; j < 10; j++) {
        assert_int_equal(fm_mask_is_masked(&m, 0, 0, 11, j), j < 7);
        assert_int_equal(fm_mask_is_masked(&m, 0, 0, 0, j), j >= 4);
    }
    fm_mask_free(&m);
}

/* ---------------------------------------------------------------- names */

static void test_names(void **state)
{
    (void)state;
    const int causal[FM_FAMILY_COUNT] = {0, 1, 1, 1, 0, 1, 0, 1, 0, 0, 1, 1}; /* docs/spec.md §4 */
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        fm_family back;
        assert_int_equal(fm_family_from_name(fm_family_name((fm_family)f), &back), FM_OK);
        assert_int_equal(back, f);
        assert_int_equal(fm_family_is_causal((fm_family)f), causal[f]);
        assert_true(strlen(fm_family_help((fm_family)f)) > 10);
    }
    assert_string_equal(fm_family_name(FM_FAMILY_GLOBAL_SLIDING_WINDOW),
                        "global_sliding_window");
    fm_family f;
    EXPECT_FAIL(fm_family_from_name("slidingwindow", &f), FM_ERR_INVALID, "'slidingwindow'");
    assert_int_equal(fm_family_from_name(NULL, &f), FM_ERR_INVALID);
    assert_non_null(strstr(fm_family_help(FM_FAMILY_SLIDING_WINDOW), "window"));
    assert_non_null(strstr(fm_family_help(FM_FAMILY_QK_SPARSE), "span_offset"));
}

/* ---------------------------------------------------------------- (b) random cases */

typedef struct family_case {
    int64_t batch, heads, seqlen_q, seqlen_k;
    fm_causal alignment;
    fm_mask_params params;
} family_case;

/* The case of family f drawn from `seed`, sequence lengths up to `limit`. */
static void make_case(family_case *c, fm_family f, uint64_t seed, int64_t limit)
{
    fm_rng rng;
    fm_rng_seed(&rng, seed ^ (0x51ed27d1a3ull * (uint64_t)(f + 1)));
    c->seqlen_k = fm_rng_range(&rng, 1, limit);
    c->seqlen_q = fm_rng_below(&rng, 2) ? c->seqlen_k : fm_rng_range(&rng, 1, limit);
    c->batch = fm_rng_range(&rng, 1, 2);
    c->heads = fm_rng_range(&rng, 1, 3);
    /* causal families: both alignments; the others ignore it, so any value will do */
    c->alignment = fm_family_is_causal(f) ? (fm_causal)fm_rng_range(&rng, 1, 2)
                                          : (fm_causal)fm_rng_range(&rng, 0, 2);
    fm_status st = fm_mask_params_random(&c->params, f, c->seqlen_k, &rng);
    if (st) fail_msg("fm_mask_params_random(%s): %s", fm_family_name(f), fm_last_error());
}

/* random_eviction has no closed form; its definition as properties of position x:
 * key j is seen from its own row on until it is evicted (one run, starting at x = j), and a
 * row at position x >= 0 sees min(x + 1, s, Sk) keys. */
static int check_eviction_row(const family_case *c, const uint8_t *allowed, int64_t i,
                              char *msg, size_t len)
{
    int64_t x = fm_sem_position(&c->params, c->alignment, c->seqlen_q, c->seqlen_k, i);
    int64_t want = x < 0 ? 0 : x + 1;
    if (want > c->params.evict_start) want = c->params.evict_start;
    if (want > c->seqlen_k) want = c->seqlen_k;
    int64_t seen = 0;
    for (int64_t j = 0; j < c->seqlen_k; j++) seen += allowed[i * c->seqlen_k + j];
    if (seen != want) {
        snprintf(msg, len, "row %" PRId64 " (position %" PRId64 ") sees %" PRId64
                 " keys, expected %" PRId64, i, x, seen, want);
        return 0;
    }
    return 1;
}

static int check_eviction_column(const family_case *c, const uint8_t *allowed, int64_t j,
                                 char *msg, size_t len)
{
    int phase = 0; /* 0: before the key, 1: cached, 2: evicted */
    for (int64_t i = 0; i < c->seqlen_q; i++) {
        int64_t x = fm_sem_position(&c->params, c->alignment, c->seqlen_q, c->seqlen_k, i);
        int a = allowed[i * c->seqlen_k + j];
        if (x < j && a) phase = 3;
        else if (x == j && !a) phase = 3;
        else if (x > j && a && phase == 2) phase = 3;
        else if (x >= j) phase = a ? 1 : 2;
        if (phase == 3) {
            snprintf(msg, len, "key %" PRId64 ": row %" PRId64 " (position %" PRId64
                     ") breaks 'seen from its own row until evicted'", j, i, x);
            return 0;
        }
    }
    return 1;
}

/* 1 if the case holds; else msg says where it breaks. */
static int check_case(const family_case *c, char *msg, size_t len)
{
    fm_mask m;
    fm_status st = fm_mask_build(&m, &c->params, c->batch, c->heads, c->seqlen_q, c->seqlen_k,
                                 c->alignment);
    if (st) {
        snprintf(msg, len, "fm_mask_build refused valid params: %s", fm_last_error());
        return 0;
    }
    int ok = 1;
    fm_causal want_causal = fm_family_is_causal(c->params.family) ? c->alignment
                                                                  : FM_CAUSAL_NONE;
    size_t plane = (size_t)(c->seqlen_q * c->seqlen_k);
    uint8_t *dense = malloc(plane * (size_t)(c->batch * c->heads));
    if (m.causal != want_causal) {
        snprintf(msg, len, "mask causal = %s, expected %s", fm_causal_name(m.causal),
                 fm_causal_name(want_causal));
        ok = 0;
    } else if (fm_mask_validate(&m) != FM_OK) {
        snprintf(msg, len, "built mask does not validate: %s", fm_last_error());
        ok = 0;
    } else if (!dense || fm_mask_to_dense(&m, dense) != FM_OK) {
        snprintf(msg, len, "fm_mask_to_dense: %s", fm_last_error());
        ok = 0;
    }
    fm_sem sem = {0};
    if (ok && fm_sem_init(&sem, &c->params, c->seqlen_k) != 0) {
        snprintf(msg, len, "out of memory");
        ok = 0;
    }
    for (int64_t bh = 0; ok && bh < c->batch * c->heads; bh++) {
        const uint8_t *a = dense + (size_t)bh * plane;
        if (c->params.family == FM_FAMILY_RANDOM_EVICTION) {
            for (int64_t i = 0; ok && i < c->seqlen_q; i++) ok = check_eviction_row(c, a, i,
                                                                                  msg, len);
            for (int64_t j = 0; ok && j < c->seqlen_k; j++) ok = check_eviction_column(c, a, j,
                                                                                     msg, len);
            continue;
        }
        for (int64_t i = 0; ok && i < c->seqlen_q; i++) {
            int64_t x = fm_sem_position(&c->params, c->alignment, c->seqlen_q, c->seqlen_k, i);
            for (int64_t j = 0; ok && j < c->seqlen_k; j++) {
                int want = fm_sem_allowed(&sem, x, j);
                if (a[i * c->seqlen_k + j] != want) {
                    const int32_t *col = fm_mask_column(&m, bh / c->heads, bh % c->heads, j);
                    snprintf(msg, len, "(b,h) %" PRId64 ", row %" PRId64 " (position %" PRId64
                             "), key %" PRId64 ": builder says %s, definition says %s "
                             "(column LTS %d LTE %d UTS %d UTE %d)", bh, i, x, j,
                             a[i * c->seqlen_k + j] ? "allowed" : "masked",
                             want ? "allowed" : "masked", col[0], col[1], col[2], col[3]);
                    ok = 0;
                }
            }
        }
    }
    fm_sem_free(&sem);
    free(dense);
    fm_mask_free(&m);
    return ok;
}

static void print_case(const family_case *c, uint64_t seed, FILE *out)
{
    fprintf(out, "  case seed 0x%" PRIx64 ": B=%" PRId64 " Hm=%" PRId64 " Sq=%" PRId64
            " Sk=%" PRId64 " alignment=%s\n", seed, c->batch, c->heads, c->seqlen_q,
            c->seqlen_k, fm_causal_name(c->alignment));
    print_params(&c->params, out);
}

/* Trial t's case seed: the base seed itself for t = 0, so that FM_SEED=<printed seed>
 * FM_TRIALS=1 replays a printed case. */
static uint64_t trial_seed(uint64_t base, int t)
{
    if (t == 0) return base;
    fm_rng rng;
    fm_rng_seed(&rng, base + (uint64_t)t * 0x9e3779b97f4a7c15ull);
    return fm_rng_u64(&rng);
}

/* Runs `trials` cases of every family with lengths up to `limit`; on a failure shrinks the
 * length limit (same seed) to the smallest failing case and prints it. */
static void run_random_cases(int trials, int64_t limit)
{
    uint64_t base = fm_test_seed();
    char msg[1024];
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        for (int t = 0; t < trials; t++) {
            uint64_t seed = trial_seed(base, t);
            family_case c;
            make_case(&c, (fm_family)f, seed, limit);
            int ok = check_case(&c, msg, sizeof msg);
            if (ok) {
                fm_mask_params_free(&c.params);
                continue;
            }
            /* Shrink: the same seed under smaller length limits. */
            for (int64_t l = 1; l < limit; l++) {
                family_case small;
                make_case(&small, (fm_family)f, seed, l);
                char small_msg[1024];
                if (!check_case(&small, small_msg, sizeof small_msg)) {
                    fprintf(stderr, "[families] shrunk to length limit %" PRId64 "\n", l);
                    fm_mask_params_free(&c.params);
                    c = small;
                    memcpy(msg, small_msg, sizeof msg);
                    break;
                }
                fm_mask_params_free(&small.params);
            }
            fprintf(stderr, "[families] %s, trial %d failed: %s\n", fm_family_name(f), t, msg);
            print_case(&c, seed, stderr);
            fprintf(stderr, "  replay: FM_SEED=0x%" PRIx64 " FM_TRIALS=1\n", seed);
            fm_mask_params_free(&c.params);
            fail_msg("%s: %s", fm_family_name(f), msg);
        }
    }
}

static void test_random_small(void **state)
{
    (void)state;
    run_random_cases(fm_test_trials(1500), 24);
}

static void test_random_large(void **state)
{
    (void)state;
    int trials = fm_test_trials(1500) / 15;
    run_random_cases(trials > 0 ? trials : 1, 160);
}

/* docs/spec.md §4's table taken literally at N = Sq = Sk (random_eviction aside), empty intervals then
 * written canonically: the builder's vectors must equal it, not only its dense mask. */
static void brief_vectors(const fm_mask_params *p, int64_t n, int32_t *v)
{
    int64_t *doc_start = NULL, *doc_end = NULL, last_start = 0;
    if (p->doc_lens) {
        doc_start = malloc((size_t)n * sizeof *doc_start);
        doc_end = malloc((size_t)n * sizeof *doc_end);
        assert_non_null(doc_start);
        assert_non_null(doc_end);
        int64_t pos = 0;
        for (int64_t d = 0; d < p->n_docs; d++) {
            for (int64_t j = pos; j < pos + p->doc_lens[d]; j++) {
                doc_start[j] = pos;
                doc_end[j] = pos + p->doc_lens[d];
            }
            last_start = pos;
            pos += p->doc_lens[d];
        }
    }
    for (int64_t j = 0; j < n; j++) {
        int64_t lts = n, lte = n, uts = 0, ute = 0;
        switch (p->family) {
        case FM_FAMILY_SLIDING_WINDOW: lts = j + p->window < n ? j + p->window : n; break;
        case FM_FAMILY_CAUSAL_DOCUMENT: lts = doc_end[j]; break;
        case FM_FAMILY_DOCUMENT: lts = doc_end[j], ute = doc_start[j]; break;
        case FM_FAMILY_SHARED_QUESTION: {
            /* j's segment, then the first and last segment of the sample holding it */
            int64_t seg = 0, pos = 0, first = 0;
            while (pos + p->doc_lens[seg] <= j) pos += p->doc_lens[seg++];
            for (int64_t s = 0; first + p->sample_segments[s] <= seg; s++)
                first += p->sample_segments[s];
            int64_t last = first, sample_end = 0;
            for (int64_t s = 0, k = 0; s < p->n_samples; k += p->sample_segments[s++])
                if (k == first) last = k + p->sample_segments[s] - 1;
            for (int64_t t = 0; t <= last; t++) sample_end += p->doc_lens[t];
            lts = seg == first ? sample_end : doc_end[j]; /* question : answer */
            break;
        }
        case FM_FAMILY_GLOBAL_SLIDING_WINDOW: {
            int64_t g = p->global_tokens, wl = p->left_window, wr = p->right_window;
            lts = j < g ? n : (j + wl + 1 < n ? j + wl + 1 : n);
            if (j >= g + wr + 1) uts = g, ute = j - wr;
            break;
        }
        case FM_FAMILY_CAUSAL_BLOCKWISE:
            lts = doc_end[j];
            lte = doc_start[j] == last_start ? n : last_start;
            break;
        case FM_FAMILY_PREFIX_LM_CAUSAL: ute = j < p->prefix ? 0 : j; break;
        case FM_FAMILY_PREFIX_LM_DOCUMENT: {
            int64_t d = 0, pos = 0;
            while (pos + p->doc_lens[d] <= j) pos += p->doc_lens[d++];
            lts = doc_end[j];
            ute = j < pos + p->doc_prefix[d] ? doc_start[j] : j;
            break;
        }
        case FM_FAMILY_QK_SPARSE:
            for (int64_t s = 0; s < p->n_spans; s++)
                if (p->span_offset[s] <= j && j < p->span_offset[s] + p->span_len[s])
                    lts = j, lte = p->span_offset[s] + p->span_len[s];
            break;
        default: break;
        }
        if (lts >= lte) lts = lte = n;
        if (uts >= ute) uts = ute = 0;
        v[j * 4 + 0] = (int32_t)lts;
        v[j * 4 + 1] = (int32_t)lte;
        v[j * 4 + 2] = (int32_t)uts;
        v[j * 4 + 3] = (int32_t)ute;
    }
    free(doc_start);
    free(doc_end);
}

static void test_brief_table_literal(void **state)
{
    (void)state;
    fm_rng rng;
    fm_rng_seed(&rng, fm_test_seed() ^ 0xb41ef);
    int trials = fm_test_trials(1500) / 3;
    for (int t = 0; t < trials * FM_FAMILY_COUNT; t++) {
        fm_family f = (fm_family)(t % FM_FAMILY_COUNT);
        if (f == FM_FAMILY_RANDOM_EVICTION) continue;
        int64_t n = fm_rng_range(&rng, 1, 40);
        fm_causal alignment = (fm_causal)fm_rng_range(&rng, 1, 2); /* Sq = Sk: no shift */
        fm_mask_params p;
        assert_int_equal(fm_mask_params_random(&p, f, n, &rng), FM_OK);
        fm_mask m;
        assert_int_equal(fm_mask_build(&m, &p, 1, 1, n, n, alignment), FM_OK);
        int32_t *want = malloc((size_t)n * 4 * sizeof *want);
        assert_non_null(want);
        brief_vectors(&p, n, want);
        for (int64_t j = 0; j < n; j++) {
            const int32_t *col = fm_mask_column(&m, 0, 0, j);
            if (memcmp(col, want + j * 4, 4 * sizeof *col) != 0) {
                print_params(&p, stderr);
                fail_msg("%s, N = %" PRId64 ", column %" PRId64 ": builder (%d,%d,%d,%d), "
                         "docs/spec.md §4 table (%d,%d,%d,%d)", fm_family_name(f), n, j, col[0], col[1],
                         col[2], col[3], want[j * 4], want[j * 4 + 1], want[j * 4 + 2],
                         want[j * 4 + 3]);
            }
        }
        free(want);
        fm_mask_free(&m);
        fm_mask_params_free(&p);
    }
}

/* The random parameters reach their edge values (else the property above proves less). */
static void test_random_params_reach_edges(void **state)
{
    (void)state;
    fm_rng rng;
    fm_rng_seed(&rng, fm_test_seed());
    enum { WINDOW_1, WINDOW_BEYOND, ONE_DOC, ALL_LEN_1, PREFIX_0, PREFIX_ALL, DOC_PREFIX_0,
           DOC_PREFIX_ALL, SPAN_AT_0, SPAN_AT_END, NO_SPAN, QUESTION_ONLY, G_0, WL_0, WR_BEYOND,
           EVICT_1, EVICT_NEVER, N_EDGES };
    int seen[N_EDGES] = {0};
    for (int t = 0; t < 3000; t++) {
        fm_family f = (fm_family)(t % FM_FAMILY_COUNT);
        int64_t s = fm_rng_range(&rng, 2, 16);
        fm_mask_params p;
        assert_int_equal(fm_mask_params_random(&p, f, s, &rng), FM_OK);
        seen[WINDOW_1] |= f == FM_FAMILY_SLIDING_WINDOW && p.window == 1;
        seen[WINDOW_BEYOND] |= f == FM_FAMILY_SLIDING_WINDOW && p.window > s;
        seen[ONE_DOC] |= f == FM_FAMILY_DOCUMENT && p.n_docs == 1;
        seen[ALL_LEN_1] |= f == FM_FAMILY_CAUSAL_DOCUMENT && p.n_docs == s;
        seen[PREFIX_0] |= f == FM_FAMILY_PREFIX_LM_CAUSAL && p.prefix == 0;
        seen[PREFIX_ALL] |= f == FM_FAMILY_PREFIX_LM_CAUSAL && p.prefix >= s;
        for (int64_t d = 0; f == FM_FAMILY_PREFIX_LM_DOCUMENT && d < p.n_docs; d++) {
            seen[DOC_PREFIX_0] |= p.doc_prefix[d] == 0;
            seen[DOC_PREFIX_ALL] |= p.doc_prefix[d] == p.doc_lens[d] && p.doc_lens[d] > 1;
        }
        for (int64_t k = 0; f == FM_FAMILY_QK_SPARSE && k < p.n_spans; k++) {
            seen[SPAN_AT_0] |= p.span_offset[k] == 0;
            seen[SPAN_AT_END] |= p.span_offset[k] + p.span_len[k] == s;
        }
        seen[NO_SPAN] |= f == FM_FAMILY_QK_SPARSE && p.n_spans == 0;
        for (int64_t k = 0; f == FM_FAMILY_SHARED_QUESTION && k < p.n_samples; k++)
            seen[QUESTION_ONLY] |= p.sample_segments[k] == 1;
        seen[G_0] |= f == FM_FAMILY_GLOBAL_SLIDING_WINDOW && p.global_tokens == 0;
        seen[WL_0] |= f == FM_FAMILY_GLOBAL_SLIDING_WINDOW && p.left_window == 0;
        seen[WR_BEYOND] |= f == FM_FAMILY_GLOBAL_SLIDING_WINDOW && p.right_window >= s;
        seen[EVICT_1] |= f == FM_FAMILY_RANDOM_EVICTION && p.evict_start == 1;
        seen[EVICT_NEVER] |= f == FM_FAMILY_RANDOM_EVICTION && p.evict_start >= s;
        fm_mask_params_free(&p);
    }
    for (int e = 0; e < N_EDGES; e++)
        if (!seen[e]) fail_msg("edge value %d never drawn by fm_mask_params_random", e);
}

/* Eviction differs per (b, head), is a function of the seed, and changes with it. */
static void test_random_eviction_streams(void **state)
{
    (void)state;
    fm_mask_params p = {.family = FM_FAMILY_RANDOM_EVICTION, .evict_start = 8, .seed = 42};
    fm_mask a, b;
    assert_int_equal(fm_mask_build(&a, &p, 2, 2, 64, 64, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    assert_int_equal(fm_mask_build(&b, &p, 2, 2, 64, 64, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    size_t plane = 64 * FM_BOUNDS * sizeof(int32_t);
    assert_memory_equal(a.bounds, b.bounds, 4 * plane);
    for (int x = 0; x < 4; x++)
        for (int y = x + 1; y < 4; y++)
            assert_memory_not_equal(a.bounds + x * 64 * FM_BOUNDS, a.bounds + y * 64 * FM_BOUNDS,
                                    plane);
    fm_mask_free(&b);
    p.seed = 43;
    assert_int_equal(fm_mask_build(&b, &p, 2, 2, 64, 64, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    assert_memory_not_equal(a.bounds, b.bounds, plane);
    fm_mask_free(&a);
    fm_mask_free(&b);
}

/* ---------------------------------------------------------------- (c) defaults */

/* Allowed pairs of the definition, counted naively (random_eviction: its row counts). */
static int64_t semantic_pairs(const fm_mask_params *p, int64_t s)
{
    int64_t n = 0;
    fm_sem sem;
    assert_int_equal(fm_sem_init(&sem, p, s), 0);
    for (int64_t x = 0; x < s; x++) {
        if (p->family == FM_FAMILY_RANDOM_EVICTION) {
            int64_t k = x + 1 < p->evict_start ? x + 1 : p->evict_start;
            n += k;
            continue;
        }
        for (int64_t j = 0; j < s; j++) n += fm_sem_allowed(&sem, x, j);
    }
    fm_sem_free(&sem);
    return n;
}

static void check_default_documented(const fm_mask_params *p, int64_t s)
{
    int64_t docs = s < 8 ? s : 8, sum = 0;
    switch (p->family) {
    case FM_FAMILY_SLIDING_WINDOW: assert_int_equal(p->window, s / 8 > 1 ? s / 8 : 1); break;
    case FM_FAMILY_PREFIX_LM_DOCUMENT:
        for (int64_t d = 0; d < p->n_docs; d++)
            assert_int_equal(p->doc_prefix[d], p->doc_lens[d] / 4);
        /* fall through */
    case FM_FAMILY_CAUSAL_DOCUMENT:
    case FM_FAMILY_DOCUMENT:
    case FM_FAMILY_CAUSAL_BLOCKWISE:
        assert_int_equal(p->n_docs, docs);
        for (int64_t d = 0; d < p->n_docs; d++) {
            assert_true(p->doc_lens[d] == s / docs || p->doc_lens[d] == s / docs + 1);
            sum += p->doc_lens[d];
        }
        assert_int_equal(sum, s);
        break;
    case FM_FAMILY_SHARED_QUESTION: assert_int_equal(p->n_samples, s < 2 ? 1 : 2); break;
    case FM_FAMILY_GLOBAL_SLIDING_WINDOW:
        assert_int_equal(p->global_tokens, s / 64 > 1 ? s / 64 : 1);
        assert_int_equal(p->left_window, s / 16);
        assert_int_equal(p->right_window, s / 16);
        break;
    case FM_FAMILY_PREFIX_LM_CAUSAL: assert_int_equal(p->prefix, s / 4); break;
    case FM_FAMILY_QK_SPARSE:
        assert_int_equal(p->n_spans, s / 16 > 1 ? s / 16 : 1);
        for (int64_t k = 0; k < p->n_spans; k++) {
            assert_int_equal(p->span_len[k], 1);
            if (k) assert_true(p->span_offset[k] > p->span_offset[k - 1]);
        }
        break;
    case FM_FAMILY_RANDOM_EVICTION:
        assert_int_equal(p->evict_start, s / 2 > 1 ? s / 2 : 1);
        break;
    default: break;
    }
}

static void test_defaults(void **state)
{
    (void)state;
    const int64_t sizes[] = {1, 2, 3, 7, 64, 4096};
    char msg[1024];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t s = sizes[k];
        for (int f = 0; f < FM_FAMILY_COUNT; f++) {
            family_case c = {.batch = 1, .heads = 2, .seqlen_q = s, .seqlen_k = s,
                             .alignment = fm_family_is_causal(f) ? FM_CAUSAL_TOP_LEFT
                                                                 : FM_CAUSAL_NONE};
            if (fm_mask_params_default(&c.params, (fm_family)f, s) != FM_OK)
                fail_msg("default %s at S=%" PRId64 ": %s", fm_family_name(f), s,
                         fm_last_error());
            check_default_documented(&c.params, s);
            fm_mask m;
            if (fm_mask_build(&m, &c.params, 1, 1, s, s, c.alignment) != FM_OK)
                fail_msg("default %s at S=%" PRId64 ": %s", fm_family_name(f), s,
                         fm_last_error());
            assert_int_equal(fm_mask_validate(&m), FM_OK);
            int64_t pairs = fm_mask_allowed_pairs(&m, 0, 0), want = semantic_pairs(&c.params, s);
            if (pairs != want)
                fail_msg("default %s at S=%" PRId64 ": %" PRId64 " allowed pairs, definition %"
                         PRId64, fm_family_name(f), s, pairs, want);
            fm_mask_free(&m);
            if (s <= 64 && !check_case(&c, msg, sizeof msg)) {
                print_case(&c, 0, stderr);
                fail_msg("default %s at S=%" PRId64 ": %s", fm_family_name(f), s, msg);
            }
            /* and with unequal lengths, both alignments */
            for (int a = 1; a <= 2; a++) {
                assert_int_equal(fm_mask_build(&m, &c.params, 1, 1, s + 3, s, (fm_causal)a),
                                 FM_OK);
                fm_mask_free(&m);
                if (s > 3) {
                    assert_int_equal(fm_mask_build(&m, &c.params, 1, 1, s / 3, s, (fm_causal)a),
                                     FM_OK);
                    fm_mask_free(&m);
                }
            }
            fm_mask_params_free(&c.params);
        }
    }
    fm_mask_params p;
    EXPECT_FAIL(fm_mask_params_default(&p, FM_FAMILY_DOCUMENT, 0), FM_ERR_INVALID, "seqlen = 0");
}

/* ---------------------------------------------------------------- ownership */

static void test_params_copy_free(void **state)
{
    (void)state;
    fm_rng rng;
    fm_rng_seed(&rng, fm_test_seed());
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        fm_mask_params p, q;
        assert_int_equal(fm_mask_params_random(&p, (fm_family)f, 33, &rng), FM_OK);
        assert_int_equal(fm_mask_params_copy(&q, &p), FM_OK);
        assert_true(!p.doc_lens || q.doc_lens != p.doc_lens);
        fm_mask a, b;
        assert_int_equal(fm_mask_build(&a, &p, 1, 2, 33, 33, FM_CAUSAL_TOP_LEFT), FM_OK);
        fm_mask_params_free(&p); /* the copy owns its own arrays */
        assert_int_equal(fm_mask_build(&b, &q, 1, 2, 33, 33, FM_CAUSAL_TOP_LEFT), FM_OK);
        assert_memory_equal(a.bounds, b.bounds, 2 * 33 * FM_BOUNDS * sizeof(int32_t));
        fm_mask_free(&a);
        fm_mask_free(&b);
        fm_mask_params_free(&q);
        fm_mask_params_free(&q); /* twice is harmless */
        assert_int_equal(q.family, f);
    }
}

/* fm_mask_params_random is a function of the generator state (what makes a seed replayable),
 * and refuses what it cannot draw for. */
static void test_random_params_deterministic(void **state)
{
    (void)state;
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        fm_rng r1, r2;
        fm_rng_seed(&r1, 77);
        fm_rng_seed(&r2, 77);
        fm_mask_params p, q;
        assert_int_equal(fm_mask_params_random(&p, (fm_family)f, 50, &r1), FM_OK);
        assert_int_equal(fm_mask_params_random(&q, (fm_family)f, 50, &r2), FM_OK);
        fm_mask a, b;
        assert_int_equal(fm_mask_build(&a, &p, 2, 2, 41, 50, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
        assert_int_equal(fm_mask_build(&b, &q, 2, 2, 41, 50, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
        assert_memory_equal(a.bounds, b.bounds, 4 * 50 * FM_BOUNDS * sizeof(int32_t));
        fm_mask_free(&a);
        fm_mask_free(&b);
        fm_mask_params_free(&p);
        fm_mask_params_free(&q);
    }
    fm_rng rng;
    fm_rng_seed(&rng, 1);
    fm_mask_params p;
    EXPECT_FAIL(fm_mask_params_random(&p, FM_FAMILY_DOCUMENT, 0, &rng),
                FM_ERR_INVALID, "seqlen = 0");
    EXPECT_FAIL(fm_mask_params_random(&p, (fm_family)12, 5, &rng),
                FM_ERR_INVALID, "unknown family 12");
}

/* ---------------------------------------------------------------- (d) invalid params */

typedef struct invalid_case {
    const char *what;
    fm_mask_params p;
    int64_t seqlen_q, seqlen_k;
    fm_causal alignment;
    const char *message; /* must occur in fm_last_error() */
} invalid_case;

static void test_invalid_params(void **state)
{
    (void)state;
    int64_t docs_short[] = {4, 3, 2}, docs_zero[] = {4, 0, 6}, docs_neg[] = {5, -2, 7},
            docs_ok[] = {4, 3, 3}, prefix_big[] = {0, 4, 0}, prefix_neg[] = {-1, 0, 0},
            seg_bad[] = {2, 2}, seg_zero[] = {0, 3}, off_out[] = {10}, off_neg[] = {-1},
            len1[] = {1}, len_zero[] = {0}, off_over[] = {8}, len_over[] = {3},
            off_pair[] = {2, 4}, len_pair[] = {3, 2};
    const invalid_case cases[] = {
        {"window 0", {.family = FM_FAMILY_SLIDING_WINDOW, .window = 0}, 10, 10,
         FM_CAUSAL_BOTTOM_RIGHT, "window = 0"},
        {"negative window", {.family = FM_FAMILY_SLIDING_WINDOW, .window = -5}, 10, 10,
         FM_CAUSAL_BOTTOM_RIGHT, "window = -5"},
        {"docs sum short", {.family = FM_FAMILY_DOCUMENT, .n_docs = 3, .doc_lens = docs_short},
         10, 10, FM_CAUSAL_NONE, "sum to 9, not seqlen_k = 10"},
        {"docs sum past Sk", {.family = FM_FAMILY_CAUSAL_DOCUMENT, .n_docs = 3,
         .doc_lens = docs_ok}, 10, 9, FM_CAUSAL_TOP_LEFT, "doc_lens[2] = 3"},
        {"zero-length doc", {.family = FM_FAMILY_CAUSAL_BLOCKWISE, .n_docs = 3,
         .doc_lens = docs_zero}, 10, 10, FM_CAUSAL_TOP_LEFT, "doc_lens[1] = 0"},
        {"negative doc", {.family = FM_FAMILY_DOCUMENT, .n_docs = 3, .doc_lens = docs_neg},
         10, 10, FM_CAUSAL_NONE, "doc_lens[1] = -2"},
        {"no docs", {.family = FM_FAMILY_DOCUMENT, .n_docs = 0, .doc_lens = docs_ok}, 10, 10,
         FM_CAUSAL_NONE, "n_docs = 0"},
        {"NULL docs", {.family = FM_FAMILY_DOCUMENT, .n_docs = 3}, 10, 10, FM_CAUSAL_NONE,
         "doc_lens is NULL"},
        {"prefix > doc", {.family = FM_FAMILY_PREFIX_LM_DOCUMENT, .n_docs = 3,
         .doc_lens = docs_ok, .doc_prefix = prefix_big}, 10, 10, FM_CAUSAL_NONE,
         "doc_prefix[1] = 4"},
        {"negative prefix", {.family = FM_FAMILY_PREFIX_LM_DOCUMENT, .n_docs = 3,
         .doc_lens = docs_ok, .doc_prefix = prefix_neg}, 10, 10, FM_CAUSAL_NONE,
         "doc_prefix[0] = -1"},
        {"NULL doc_prefix", {.family = FM_FAMILY_PREFIX_LM_DOCUMENT, .n_docs = 3,
         .doc_lens = docs_ok}, 10, 10, FM_CAUSAL_NONE, "doc_prefix is NULL"},
        {"samples miss a segment", {.family = FM_FAMILY_SHARED_QUESTION, .n_docs = 3,
         .doc_lens = docs_ok, .n_samples = 1, .sample_segments = seg_bad}, 10, 10,
         FM_CAUSAL_BOTTOM_RIGHT, "sample_segments sum to 2, not n_docs = 3"},
        {"samples too many", {.family = FM_FAMILY_SHARED_QUESTION, .n_docs = 3,
         .doc_lens = docs_ok, .n_samples = 2, .sample_segments = seg_bad}, 10, 10,
         FM_CAUSAL_BOTTOM_RIGHT, "sample_segments[1] = 2"},
        {"empty sample", {.family = FM_FAMILY_SHARED_QUESTION, .n_docs = 3,
         .doc_lens = docs_ok, .n_samples = 2, .sample_segments = seg_zero}, 10, 10,
         FM_CAUSAL_BOTTOM_RIGHT, "sample_segments[0] = 0"},
        {"negative g", {.family = FM_FAMILY_GLOBAL_SLIDING_WINDOW, .global_tokens = -1},
         10, 10, FM_CAUSAL_NONE, "global_tokens = -1"},
        {"negative wl", {.family = FM_FAMILY_GLOBAL_SLIDING_WINDOW, .left_window = -3},
         10, 10, FM_CAUSAL_NONE, "left_window = -3"},
        {"negative wr", {.family = FM_FAMILY_GLOBAL_SLIDING_WINDOW, .right_window = -4},
         10, 10, FM_CAUSAL_NONE, "right_window = -4"},
        {"negative prefix", {.family = FM_FAMILY_PREFIX_LM_CAUSAL, .prefix = -2}, 10, 10,
         FM_CAUSAL_NONE, "prefix = -2"},
        {"span past end", {.family = FM_FAMILY_QK_SPARSE, .n_spans = 1, .span_offset = off_out,
         .span_len = len1}, 10, 10, FM_CAUSAL_TOP_LEFT, "span_offset[0] = 10"},
        {"span negative", {.family = FM_FAMILY_QK_SPARSE, .n_spans = 1, .span_offset = off_neg,
         .span_len = len1}, 10, 10, FM_CAUSAL_TOP_LEFT, "span_offset[0] = -1"},
        {"span empty", {.family = FM_FAMILY_QK_SPARSE, .n_spans = 1, .span_offset = off_over,
         .span_len = len_zero}, 10, 10, FM_CAUSAL_TOP_LEFT, "span_len[0] = 0"},
        {"span overruns", {.family = FM_FAMILY_QK_SPARSE, .n_spans = 1, .span_offset = off_over,
         .span_len = len_over}, 10, 10, FM_CAUSAL_TOP_LEFT, "span_len[0] = 3"},
        {"spans overlap", {.family = FM_FAMILY_QK_SPARSE, .n_spans = 2, .span_offset = off_pair,
         .span_len = len_pair}, 10, 10, FM_CAUSAL_TOP_LEFT, "span 1 [4, 6) overlaps span 0"},
        {"evict_start 0", {.family = FM_FAMILY_RANDOM_EVICTION, .evict_start = 0}, 10, 10,
         FM_CAUSAL_TOP_LEFT, "evict_start = 0"},
        {"causal family, no alignment", {.family = FM_FAMILY_CAUSAL}, 10, 10, FM_CAUSAL_NONE,
         "alignment 'none' refused"},
        {"bad alignment", {.family = FM_FAMILY_SLIDING_WINDOW, .window = 2}, 10, 10,
         (fm_causal)7, "alignment"},
        {"unknown family", {.family = (fm_family)99}, 10, 10, FM_CAUSAL_NONE,
         "unknown family 99"},
        {"Sq = 0", {.family = FM_FAMILY_FULL}, 0, 10, FM_CAUSAL_NONE, "seqlen_q = 0"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const invalid_case *c = &cases[k];
        fm_mask m;
        fm_status st = fm_mask_build(&m, &c->p, 1, 1, c->seqlen_q, c->seqlen_k, c->alignment);
        if (st == FM_OK) fail_msg("%s: accepted", c->what);
        if (!strstr(fm_last_error(), c->message))
            fail_msg("%s: message '%s' lacks '%s'", c->what, fm_last_error(), c->message);
        assert_null(m.bounds); /* nothing half-built is handed out */
    }
    fm_mask m;
    assert_int_equal(fm_mask_build(&m, NULL, 1, 1, 4, 4, FM_CAUSAL_NONE), FM_ERR_INVALID);
    assert_int_equal(fm_mask_build(NULL, &cases[0].p, 1, 1, 4, 4, FM_CAUSAL_NONE),
                     FM_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paddle_causal_document),
        cmocka_unit_test(test_paddle_document),
        cmocka_unit_test(test_paddle_shared_question),
        cmocka_unit_test(test_paddle_global_sliding_window),
        cmocka_unit_test(test_paddle_prefix_lm_document),
        cmocka_unit_test(test_brief_table_rest),
        cmocka_unit_test(test_unequal_lengths_shift),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_brief_table_literal),
        cmocka_unit_test(test_random_small),
        cmocka_unit_test(test_random_large),
        cmocka_unit_test(test_random_params_reach_edges),
        cmocka_unit_test(test_random_eviction_streams),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_params_copy_free),
        cmocka_unit_test(test_random_params_deterministic),
        cmocka_unit_test(test_invalid_params),
    };
    return cmocka_run_group_tests_name("families", tests, NULL, NULL);
}
