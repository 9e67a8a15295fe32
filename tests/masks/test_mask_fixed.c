/* tests/masks/test_mask_fixed.c — fixed tests of the mask module (suite 'masks'): every invalid
 * input of docs/spec.md §2 is refused with FM_ERR_INVALID (or OVERFLOW for sizes) and a message that
 * names it; conversions refuse what they cannot express and say which column; small worked
 * examples of the pair count, the canonical dense form, Paddle's forms and tile statistics.
 *
 * Layer: tests, over masks <- core.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include "flashmask.h"
#include "runs.h"

/* The last error message must contain every given fragment. */
static void expect_message(const char *const *fragments, int n)
{
    const char *msg = fm_last_error();
    for (int k = 0; k < n; k++)
        if (!strstr(msg, fragments[k]))
            fail_msg("message \"%s\" does not contain \"%s\"", msg, fragments[k]);
}
#define EXPECT_MESSAGE(...)                                                                  \
    do {                                                                                     \
        const char *const frags_[] = {__VA_ARGS__};                                          \
        expect_message(frags_, (int)(sizeof frags_ / sizeof frags_[0]));                     \
    } while (0)

/* A 1 x 2 x Sq=6 x Sk=5 mask with nothing masked. */
static fm_mask small_mask(fm_causal causal)
{
    fm_mask m = fm_test_mask(1, 2, 6, 5, causal);
    return m;
}

static void test_init_defaults_and_free(void **state)
{
    (void)state;
    fm_mask m = small_mask(FM_CAUSAL_NONE);
    for (int64_t j = 0; j < 5; j++) {
        const int32_t *c = fm_mask_column(&m, 0, 1, j);
        assert_int_equal(c[FM_LTS], 6);
        assert_int_equal(c[FM_LTE], 6);
        assert_int_equal(c[FM_UTS], 0);
        assert_int_equal(c[FM_UTE], 0);
    }
    assert_int_equal(fm_mask_validate(&m), FM_OK);
    assert_int_equal(fm_mask_total_allowed_pairs(&m), 2 * 6 * 5);
    fm_mask copy;
    assert_int_equal(fm_mask_copy(&copy, &m), FM_OK);
    fm_mask_column(&copy, 0, 0, 0)[FM_LTS] = 0; /* the copy owns its bounds */
    assert_int_equal(fm_mask_column(&m, 0, 0, 0)[FM_LTS], 6);
    fm_mask_free(&copy);
    fm_mask_free(&m);
    fm_mask_free(&m); /* twice is safe */
    fm_mask zero = {0};
    fm_mask_free(&zero);
}

static void test_invalid_sizes(void **state)
{
    (void)state;
    fm_mask m;
    assert_int_equal(fm_mask_init(&m, 0, 1, 4, 4, FM_CAUSAL_NONE), FM_ERR_INVALID);
    EXPECT_MESSAGE("batch", "0");
    assert_int_equal(fm_mask_init(&m, 1, 0, 4, 4, FM_CAUSAL_NONE), FM_ERR_INVALID);
    EXPECT_MESSAGE("heads");
    assert_int_equal(fm_mask_init(&m, 1, 1, 0, 4, FM_CAUSAL_NONE), FM_ERR_INVALID);
    EXPECT_MESSAGE("seqlen_q");
    assert_int_equal(fm_mask_init(&m, 1, 1, 4, -3, FM_CAUSAL_NONE), FM_ERR_INVALID);
    EXPECT_MESSAGE("seqlen_k", "-3");
    assert_int_equal(fm_mask_init(&m, 1, 1, (int64_t)INT32_MAX + 1, 4, FM_CAUSAL_NONE),
                     FM_ERR_OVERFLOW);
    EXPECT_MESSAGE("seqlen_q", "2147483648");
    assert_int_equal(fm_mask_init(&m, 1, 1, 4, (int64_t)INT32_MAX + 1, FM_CAUSAL_NONE),
                     FM_ERR_OVERFLOW);
    EXPECT_MESSAGE("seqlen_k");
    assert_int_equal(fm_mask_init(&m, INT64_MAX / 2, INT64_MAX / 2, 4, 4, FM_CAUSAL_NONE),
                     FM_ERR_OVERFLOW);
    EXPECT_MESSAGE("overflow");
    assert_int_equal(fm_mask_init(&m, 1, 1, 4, 4, (fm_causal)7), FM_ERR_INVALID);
    EXPECT_MESSAGE("causal", "7");
    assert_int_equal(fm_mask_validate(NULL), FM_ERR_INVALID);
}

static void test_invalid_bounds(void **state)
{
    (void)state;
    static const char *const names[4] = {"LTS", "LTE", "UTS", "UTE"};
    for (int k = 0; k < FM_BOUNDS; k++) {
        /* below 0 */
        fm_mask m = small_mask(FM_CAUSAL_NONE);
        fm_mask_column(&m, 0, 1, 3)[k] = -1;
        assert_int_equal(fm_mask_validate(&m), FM_ERR_INVALID);
        EXPECT_MESSAGE("b=0", "head=1", "column=3", names[k], "-1", "[0, Sq=6]");
        /* above Sq */
        fm_mask_column(&m, 0, 1, 3)[FM_LTS] = 6, fm_mask_column(&m, 0, 1, 3)[FM_LTE] = 6;
        fm_mask_column(&m, 0, 1, 3)[FM_UTS] = 0, fm_mask_column(&m, 0, 1, 3)[FM_UTE] = 0;
        fm_mask_column(&m, 0, 1, 3)[k] = 7;
        assert_int_equal(fm_mask_validate(&m), FM_ERR_INVALID);
        EXPECT_MESSAGE("column=3", names[k], "7");
        fm_mask_free(&m);
    }
    /* start > end, for LT and for UT */
    fm_mask m = small_mask(FM_CAUSAL_TOP_LEFT);
    fm_mask_column(&m, 0, 0, 2)[FM_LTS] = 4;
    fm_mask_column(&m, 0, 0, 2)[FM_LTE] = 3;
    assert_int_equal(fm_mask_validate(&m), FM_ERR_INVALID);
    EXPECT_MESSAGE("column=2", "LTS = 4", "LTE = 3");
    fm_mask_column(&m, 0, 0, 2)[FM_LTE] = 6;
    fm_mask_column(&m, 0, 0, 4)[FM_UTS] = 2;
    fm_mask_column(&m, 0, 0, 4)[FM_UTE] = 1;
    assert_int_equal(fm_mask_validate(&m), FM_ERR_INVALID);
    EXPECT_MESSAGE("column=4", "UTS = 2", "UTE = 1");
    /* invalid masks are refused by everything that reads them, not clipped */
    uint8_t dense[2 * 6 * 5];
    assert_int_equal(fm_mask_to_dense(&m, dense), FM_ERR_INVALID);
    fm_block_summary s;
    assert_int_equal(fm_block_summary_build(&m, 2, &s), FM_ERR_INVALID);
    fm_tile_stats ts;
    assert_int_equal(fm_mask_tile_stats(&m, 2, 2, &ts), FM_ERR_INVALID);
    int32_t se[2 * 5 * 4];
    assert_int_equal(fm_mask_to_startend(&m, 4, se), FM_ERR_INVALID);
    fm_flex_block_mask fb;
    assert_int_equal(fm_mask_to_flex_blocks(&m, 2, 2, &fb), FM_ERR_INVALID);
    fm_mask_free(&m);
}

static void test_problem_heads_must_divide(void **state)
{
    (void)state;
    fm_problem p;
    fm_mask m;
    fm_problem_init(&p, 1, 6, 4, 8, 8, 4); /* Hk = 4 does not divide Hq = 6 */
    assert_int_equal(fm_mask_init(&m, 1, 1, 8, 8, FM_CAUSAL_NONE), FM_OK);
    assert_int_equal(fm_problem_validate(&p, &m), FM_ERR_INVALID);
    EXPECT_MESSAGE("kv_heads", "4", "6");
    fm_mask_free(&m);
    fm_problem_init(&p, 1, 6, 3, 8, 8, 4);
    assert_int_equal(fm_mask_init(&m, 1, 4, 8, 8, FM_CAUSAL_NONE), FM_OK); /* Hm = 4 */
    assert_int_equal(fm_problem_validate(&p, &m), FM_ERR_INVALID);
    EXPECT_MESSAGE("mask heads", "4");
    fm_mask_free(&m);
}

static void test_causal_names(void **state)
{
    (void)state;
    for (int c = 0; c <= FM_CAUSAL_TOP_LEFT; c++) {
        fm_causal back;
        assert_int_equal(fm_causal_from_name(fm_causal_name((fm_causal)c), &back), FM_OK);
        assert_int_equal((int)back, c);
    }
    assert_string_equal(fm_causal_name(FM_CAUSAL_BOTTOM_RIGHT), "bottom_right");
    fm_causal out;
    assert_int_equal(fm_causal_from_name("diagonal", &out), FM_ERR_INVALID);
    EXPECT_MESSAGE("diagonal");
    assert_int_equal(fm_causal_from_name(NULL, &out), FM_ERR_INVALID);
}

/* Sq = 2, Sk = 4: the two alignments disagree (docs/spec.md §2). bottom_right: row i sees j <= i + 2;
 * top_left: row i sees j <= i. */
static void test_causal_alignments_unequal(void **state)
{
    (void)state;
    fm_mask br, tl;
    assert_int_equal(fm_mask_init(&br, 1, 1, 2, 4, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    assert_int_equal(fm_mask_init(&tl, 1, 1, 2, 4, FM_CAUSAL_TOP_LEFT), FM_OK);
    uint8_t d[8];
    static const uint8_t want_br[8] = {1, 1, 1, 0, 1, 1, 1, 1};
    static const uint8_t want_tl[8] = {1, 0, 0, 0, 1, 1, 0, 0};
    assert_int_equal(fm_mask_to_dense(&br, d), FM_OK);
    assert_memory_equal(d, want_br, 8);
    assert_int_equal(fm_mask_allowed_pairs(&br, 0, 0), 7);
    assert_int_equal(fm_mask_to_dense(&tl, d), FM_OK);
    assert_memory_equal(d, want_tl, 8);
    assert_int_equal(fm_mask_allowed_pairs(&tl, 0, 0), 3);
    fm_mask_free(&br);
    fm_mask_free(&tl);
}

/* Overlapping LT, UT and causal prefix are counted once. */
static void test_allowed_pairs_union(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(1, 1, 10, 1, FM_CAUSAL_TOP_LEFT);
    /* column 0: causal prefix is empty (j = 0); LT [2, 7), UT [5, 9): union [2, 9) = 7 rows */
    int32_t *c = fm_mask_column(&m, 0, 0, 0);
    c[FM_LTS] = 2, c[FM_LTE] = 7, c[FM_UTS] = 5, c[FM_UTE] = 9;
    assert_int_equal(fm_mask_allowed_pairs(&m, 0, 0), 3);
    c[FM_UTS] = 0, c[FM_UTE] = 2; /* touching runs [0, 2) and [2, 7): 7 rows */
    assert_int_equal(fm_mask_allowed_pairs(&m, 0, 0), 3);
    fm_mask_free(&m);
}

/* The canonical dense form of docs/masks.md on one 8-row column each. */
static void test_dense_canonical_form(void **state)
{
    (void)state;
    /* Sq = 8, Sk = 5, no causal; columns (1 = allowed):
     *  0: all allowed           -> LT [8,8) UT [0,0)
     *  1: rows 5..7 masked      -> LT [5,8)
     *  2: rows 0..2 masked      -> UT [0,3)
     *  3: rows 0..1, 6..7       -> UT [0,2), LT [6,8)
     *  4: rows 3..4 masked      -> LT [3,5)                                               */
    static const int masked[5][8] = {{0}, {0, 0, 0, 0, 0, 1, 1, 1}, {1, 1, 1, 0, 0, 0, 0, 0},
                                     {1, 1, 0, 0, 0, 0, 1, 1}, {0, 0, 0, 1, 1, 0, 0, 0}};
    static const int32_t want[5][4] = {{8, 8, 0, 0}, {5, 8, 0, 0}, {8, 8, 0, 3},
                                       {6, 8, 0, 2}, {3, 5, 0, 0}};
    uint8_t d[8 * 5];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 5; j++) d[i * 5 + j] = !masked[j][i];
    fm_mask m;
    assert_int_equal(fm_mask_from_dense(&m, d, 1, 1, 8, 5, FM_CAUSAL_NONE), FM_OK);
    for (int j = 0; j < 5; j++) assert_memory_equal(fm_mask_column(&m, 0, 0, j), want[j], 16);
    fm_mask_free(&m);
    /* With top_left causal the masked prefix of column j is rows < j; the intervals describe
     * only rows at or below it: column 4 masks rows 0..3 (causal) and 6..7 -> LT [6,8). */
    for (int i = 0; i < 8; i++) d[i * 5 + 4] = i >= 4 && i < 6;
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 8; i++) d[i * 5 + j] = i >= j;
    assert_int_equal(fm_mask_from_dense(&m, d, 1, 1, 8, 5, FM_CAUSAL_TOP_LEFT), FM_OK);
    static const int32_t want4[4] = {6, 8, 0, 0};
    assert_memory_equal(fm_mask_column(&m, 0, 0, 4), want4, 16);
    fm_mask_free(&m);
}

static void test_dense_not_representable(void **state)
{
    (void)state;
    /* Sq = 7, Sk = 4: column 2 alternates masked / allowed: runs at rows 0, 2, 4, 6. */
    uint8_t d[7 * 4];
    for (int i = 0; i < 7; i++)
        for (int j = 0; j < 4; j++) d[i * 4 + j] = j == 2 ? (uint8_t)(i % 2) : 1;
    fm_mask m;
    assert_int_equal(fm_mask_from_dense(&m, d, 1, 1, 7, 4, FM_CAUSAL_NONE),
                     FM_ERR_NOT_REPRESENTABLE);
    EXPECT_MESSAGE("b=0", "head=0", "column=2", "4 masked runs");
    assert_null(m.bounds);
    /* a row the causal rule masks may not be allowed in the dense mask */
    for (int k = 0; k < 7 * 4; k++) d[k] = 1;
    assert_int_equal(fm_mask_from_dense(&m, d, 1, 1, 7, 4, FM_CAUSAL_TOP_LEFT),
                     FM_ERR_NOT_REPRESENTABLE);
    EXPECT_MESSAGE("column=1", "row 0", "top_left");
    d[0] = 2; /* not a boolean */
    assert_int_equal(fm_mask_from_dense(&m, d, 1, 1, 7, 4, FM_CAUSAL_NONE), FM_ERR_INVALID);
    EXPECT_MESSAGE("row=0", "column=0", "value 2");
}

/* docs/spec.md §2's table on Sq = Sk = 4. */
static void test_startend_forms(void **state)
{
    (void)state;
    fm_mask m;
    uint8_t d[16];
    /* causal C=1: LTS per column */
    static const int32_t c1[4] = {2, 4, 3, 4};
    assert_int_equal(fm_mask_from_startend(&m, c1, 1, 1, 4, 4, 1, FM_CAUSAL_BOTTOM_RIGHT),
                     FM_OK);
    assert_int_equal(fm_mask_column(&m, 0, 0, 0)[FM_LTS], 2); /* LT [2, Sq), no UT */
    assert_int_equal(fm_mask_column(&m, 0, 0, 0)[FM_LTE], 4);
    assert_int_equal(fm_mask_column(&m, 0, 0, 0)[FM_UTE], 0);
    assert_int_equal(fm_mask_to_dense(&m, d), FM_OK);
    static const uint8_t want1[16] = {1, 0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 0, 1};
    assert_memory_equal(d, want1, 16);
    int32_t back[16];
    assert_int_equal(fm_mask_to_startend(&m, 1, back), FM_OK);
    assert_memory_equal(back, c1, 16);
    fm_mask_free(&m);
    /* non-causal C=2: LTS, UTE */
    static const int32_t c2[8] = {4, 0, 3, 1, 2, 2, 4, 4};
    assert_int_equal(fm_mask_from_startend(&m, c2, 1, 1, 4, 4, 2, FM_CAUSAL_NONE), FM_OK);
    static const int32_t col2[4] = {2, 4, 0, 2};
    assert_memory_equal(fm_mask_column(&m, 0, 0, 2), col2, 16);
    assert_int_equal(fm_mask_to_startend(&m, 2, back), FM_OK);
    /* columns 2 (runs [0,2) and [2,4) touch) and 3 (UT [0, 4)) mask every row: one run
     * [0, 4), which the canonical form writes as LT = [0, Sq) */
    static const int32_t c2_back[8] = {4, 0, 3, 1, 0, 0, 0, 0};
    assert_memory_equal(back, c2_back, 32);
    fm_mask_free(&m);
}

static void test_startend_invalid(void **state)
{
    (void)state;
    fm_mask m;
    int32_t v[8] = {4, 4, 4, 4, 5, 4, 4, 4}; /* C=2 causal: column 2 has LTS = 5 > Sq */
    assert_int_equal(fm_mask_from_startend(&m, v, 1, 1, 4, 4, 2, FM_CAUSAL_TOP_LEFT),
                     FM_ERR_INVALID);
    EXPECT_MESSAGE("column=2", "LTS", "5", "Sq=4");
    v[4] = 3, v[5] = 1; /* LTS = 3 > LTE = 1 */
    assert_int_equal(fm_mask_from_startend(&m, v, 1, 1, 4, 4, 2, FM_CAUSAL_TOP_LEFT),
                     FM_ERR_INVALID);
    EXPECT_MESSAGE("column=2", "LTS = 3", "LTE = 1");
    v[4] = 4, v[5] = -2; /* non-causal C=2: UTE = -2 */
    assert_int_equal(fm_mask_from_startend(&m, v, 1, 1, 4, 4, 2, FM_CAUSAL_NONE),
                     FM_ERR_INVALID);
    EXPECT_MESSAGE("column=2", "UTE", "-2");
    assert_int_equal(fm_mask_from_startend(&m, v, 1, 1, 4, 4, 3, FM_CAUSAL_NONE),
                     FM_ERR_INVALID);
    EXPECT_MESSAGE("C = 3");
    assert_int_equal(fm_mask_from_startend(&m, v, 1, 1, 4, 4, 1, FM_CAUSAL_NONE),
                     FM_ERR_INVALID);
    EXPECT_MESSAGE("C = 1", "causal");
    /* to_startend refuses what its form cannot say, naming the column */
    assert_int_equal(fm_mask_init(&m, 1, 1, 6, 3, FM_CAUSAL_NONE), FM_OK);
    fm_mask_column(&m, 0, 0, 1)[FM_LTS] = 2, fm_mask_column(&m, 0, 0, 1)[FM_LTE] = 4;
    int32_t out[12];
    assert_int_equal(fm_mask_to_startend(&m, 2, out), FM_ERR_NOT_REPRESENTABLE);
    EXPECT_MESSAGE("column=1", "C=2", "LTE = Sq");
    assert_int_equal(fm_mask_to_startend(&m, 4, out), FM_OK);
    fm_mask_free(&m);
}

/* Causal 8 x 8 in 4 x 4 tiles: 1 masked (upper right), 2 partial (diagonal), 1 unmasked. */
static void test_tile_stats_causal(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(1, 1, 8, 8, FM_CAUSAL_BOTTOM_RIGHT);
    fm_tile_stats s;
    assert_int_equal(fm_mask_tile_stats(&m, 4, 4, &s), FM_OK);
    assert_int_equal(s.total, 4);
    assert_int_equal(s.masked, 1);
    assert_int_equal(s.partial, 2);
    assert_int_equal(s.unmasked, 1);
    assert_true(fm_tile_density(&s) == 0.75);
    assert_int_equal(fm_mask_tile_stats(&m, 0, 4, &s), FM_ERR_INVALID);
    EXPECT_MESSAGE("block_q", "0");
    fm_block_summary bs;
    assert_int_equal(fm_block_summary_build(&m, -1, &bs), FM_ERR_INVALID);
    EXPECT_MESSAGE("block_k", "-1");
    fm_mask_free(&m);
}

/* The union rule is tighter than the paper's three tests: a tile covered partly by the causal
 * prefix and partly by the LT intervals is skipped. Sq = Sk = 4, top_left, tile rows [0, 4) x
 * columns [2, 4): the causal rule masks rows [0, 2) of both columns, LT = [2, 4) the rest;
 * none of the paper's three tests alone covers the tile. */
static void test_union_rule_is_tighter(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(1, 1, 4, 4, FM_CAUSAL_TOP_LEFT);
    for (int j = 2; j < 4; j++)
        fm_mask_column(&m, 0, 0, j)[FM_LTS] = 2, fm_mask_column(&m, 0, 0, j)[FM_LTE] = 4;
    fm_block_summary s;
    assert_int_equal(fm_block_summary_build(&m, 2, &s), FM_OK);
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 4, 0, 1), FM_TILE_MASKED);
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 4, 0, 0), FM_TILE_PARTIAL);
    fm_block_summary_free(&s);
    fm_mask_free(&m);
}

/* Empty intervals anywhere ([3,3), [5,5)) neither make a tile look masked nor cost it its
 * "unmasked" call: the intersection sees them as [Sq, Sq) / [0, 0), the hull leaves them out. */
static void test_summary_canonical_empties(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(1, 1, 8, 4, FM_CAUSAL_NONE);
    for (int j = 0; j < 4; j++) {
        int32_t *c = fm_mask_column(&m, 0, 0, j);
        c[FM_LTS] = c[FM_LTE] = (int32_t)(3 + j % 2);
        c[FM_UTS] = c[FM_UTE] = 5;
    }
    fm_block_summary s;
    assert_int_equal(fm_block_summary_build(&m, 4, &s), FM_OK);
    const int32_t *mm = fm_block_summary_at(&s, 0, 0, 0);
    assert_int_equal(mm[FM_MAX_LTS], 8); /* intersection: empty */
    assert_int_equal(mm[FM_MIN_LTE], 8);
    assert_int_equal(mm[FM_MAX_UTS], 0);
    assert_int_equal(mm[FM_MIN_UTE], 0);
    assert_int_equal(mm[FM_MIN_LTS], 8); /* hull of no interval: min Sq, max 0 */
    assert_int_equal(mm[FM_MAX_LTE], 0);
    assert_int_equal(mm[FM_MIN_UTS], 8);
    assert_int_equal(mm[FM_MAX_UTE], 0);
    for (int qb = 0; qb < 4; qb++)
        assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, qb, 0), FM_TILE_UNMASKED);
    fm_block_summary_free(&s);
    fm_mask_free(&m);
}

/* A key block mixing one column with an LT interval [2, 4) and columns with none: the tiles
 * below the interval are truly full and must be called unmasked (an empty LT counted as
 * [Sq, Sq) in max LTE would make every tile below row 4 partial). The same for an UT interval
 * [4, 6) and the tiles above it (an empty UT counted as [0, 0) in min UTS). */
static void test_summary_empty_columns_keep_unmasked(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(1, 1, 8, 4, FM_CAUSAL_NONE);
    int32_t *c = fm_mask_column(&m, 0, 0, 1);
    c[FM_LTS] = 2, c[FM_LTE] = 4;
    fm_block_summary s;
    assert_int_equal(fm_block_summary_build(&m, 4, &s), FM_OK);
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, 0, 0), FM_TILE_UNMASKED); /* 0-2 */
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, 1, 0), FM_TILE_PARTIAL);  /* 2-4 */
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, 2, 0), FM_TILE_UNMASKED); /* 4-6 */
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, 3, 0), FM_TILE_UNMASKED); /* 6-8 */
    fm_block_summary_free(&s);
    c[FM_LTS] = c[FM_LTE] = 8;
    c = fm_mask_column(&m, 0, 0, 2);
    c[FM_UTS] = 4, c[FM_UTE] = 6;
    assert_int_equal(fm_block_summary_build(&m, 4, &s), FM_OK);
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, 0, 0), FM_TILE_UNMASKED); /* 0-2 */
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, 1, 0), FM_TILE_UNMASKED); /* 2-4 */
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, 2, 0), FM_TILE_PARTIAL);  /* 4-6 */
    assert_int_equal(fm_block_summary_classify(&s, 0, 0, 2, 3, 0), FM_TILE_UNMASKED); /* 6-8 */
    fm_block_summary_free(&s);
    fm_mask_free(&m);
}

static void test_flex_small(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(1, 1, 8, 8, FM_CAUSAL_TOP_LEFT);
    fm_flex_block_mask fb;
    assert_int_equal(fm_mask_to_flex_blocks(&m, 4, 4, &fb), FM_OK);
    assert_int_equal(fb.n_q_blocks, 2);
    assert_int_equal(fb.n_kv_blocks, 2);
    /* query block 0: kv block 0 partial, kv block 1 skipped; query block 1: 0 full, 1 partial */
    assert_int_equal(fb.kv_num_blocks[0], 1);
    assert_int_equal(fb.kv_indices[0], 0);
    assert_int_equal(fb.full_kv_num_blocks[0], 0);
    assert_int_equal(fb.kv_num_blocks[1], 1);
    assert_int_equal(fb.kv_indices[2], 1);
    assert_int_equal(fb.full_kv_num_blocks[1], 1);
    assert_int_equal(fb.full_kv_indices[2], 0);
    fm_flex_block_mask_free(&fb);
    fm_flex_block_mask_free(&fb);
    assert_int_equal(fm_mask_to_flex_blocks(&m, 0, 4, &fb), FM_ERR_INVALID);
    EXPECT_MESSAGE("q_block");
    fm_mask_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_defaults_and_free),
        cmocka_unit_test(test_invalid_sizes),
        cmocka_unit_test(test_invalid_bounds),
        cmocka_unit_test(test_problem_heads_must_divide),
        cmocka_unit_test(test_causal_names),
        cmocka_unit_test(test_causal_alignments_unequal),
        cmocka_unit_test(test_allowed_pairs_union),
        cmocka_unit_test(test_dense_canonical_form),
        cmocka_unit_test(test_dense_not_representable),
        cmocka_unit_test(test_startend_forms),
        cmocka_unit_test(test_startend_invalid),
        cmocka_unit_test(test_tile_stats_causal),
        cmocka_unit_test(test_union_rule_is_tighter),
        cmocka_unit_test(test_summary_canonical_empties),
        cmocka_unit_test(test_summary_empty_columns_keep_unmasked),
        cmocka_unit_test(test_flex_small),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
