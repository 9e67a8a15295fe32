/* tests/cpu/test_cpu_rules.c — the by-column form of the element rule that the CPU layer masks
 * partial tiles with, fm_column_masked_runs (rules.h), agrees with fm_element_masked on every
 * element: random columns (empty, full, overlapping intervals), all three causal alignments,
 * offsets of both signs, random row windows [r0, r1); the kernels' causal row bound
 * fm_causal_row_end_i32 (rows below it are exactly the causally masked ones, also on lengths
 * near 2^31 where j - offset leaves int32); and the 32-rows-at-once bit form
 * fm_column_masked_bits32, bit for bit. Layer: tests, on rules.h alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "flashmask.h"

/* One random column: sequence lengths in [1, max_len], an alignment, the column's LT and UT
 * intervals (start <= end in [0, Sq]) and its key index j. */
typedef struct {
    int64_t sq, sk, offset, j;
    fm_causal causal;
    int32_t col[4];
} random_column;

static random_column random_column_draw(fm_rng *rng, int64_t max_len)
{
    random_column c;
    c.sq = fm_rng_range(rng, 1, max_len), c.sk = fm_rng_range(rng, 1, max_len);
    c.causal = (fm_causal)fm_rng_below(rng, 3);
    c.offset = fm_causal_offset(c.causal, c.sq, c.sk);
    for (int k = 0; k < 2; k++) { /* LT then UT */
        int32_t a = (int32_t)fm_rng_range(rng, 0, c.sq), b = (int32_t)fm_rng_range(rng, 0, c.sq);
        c.col[2 * k] = a < b ? a : b;
        c.col[2 * k + 1] = a < b ? b : a;
    }
    c.j = fm_rng_range(rng, 0, c.sk - 1);
    return c;
}

/* A row of the column's sequence, drawn where mistakes live half of the time: near one of the
 * four bounds or the causal edge (near + sign * [0, spread] + shift), else uniform; clipped to
 * [0, Sq). */
static int64_t random_row_near_edges(fm_rng *rng, const random_column *c, int64_t causal_edge,
                                     int sign, int64_t spread, int64_t shift)
{
    const int64_t near[5] = {c->col[0], c->col[1], c->col[2], c->col[3], causal_edge};
    int64_t i = near[fm_rng_below(rng, 5)] + sign * fm_rng_range(rng, 0, spread) + shift;
    if (fm_rng_below(rng, 2)) i = fm_rng_range(rng, 0, c->sq - 1);
    return i < 0 ? 0 : i >= c->sq ? c->sq - 1 : i;
}

/* fm_column_masked_runs over a random row window [r0, r1) marks exactly the masked rows. */
static void check_column_runs(int trial, const random_column *rc, fm_rng *rng)
{
    const int64_t sq = rc->sq, offset = rc->offset, j = rc->j;
    const fm_causal causal = rc->causal;
    const int32_t *col = rc->col;
    const int64_t r0 = fm_rng_range(rng, 0, sq - 1), r1 = fm_rng_range(rng, r0 + 1, sq);
    int64_t lo[3], hi[3];
    int runs = fm_column_masked_runs(col, causal, offset, j, r0, r1, lo, hi);
    assert_in_range(runs, 0, 3);
    for (int64_t i = r0; i < r1; i++) {
        int in_run = 0;
        for (int k = 0; k < runs; k++) {
            assert_true(r0 <= lo[k] && lo[k] < hi[k] && hi[k] <= r1);
            in_run |= lo[k] <= i && i < hi[k];
        }
        if (in_run != fm_element_masked(col, causal, offset, i, j))
            fail_msg("trial %d: col {%d,%d,%d,%d} causal %d offset %lld j %lld row %lld: "
                     "runs say %d, element rule says %d",
                     trial, col[0], col[1], col[2], col[3], (int)causal, (long long)offset,
                     (long long)j, (long long)i, in_run,
                     fm_element_masked(col, causal, offset, i, j));
    }
}

/* Rows below fm_causal_row_end_i32 are exactly the causally masked ones. */
static void check_causal_row_end(int trial, const random_column *rc, fm_rng *rng)
{
    const int64_t offset = rc->offset, j = rc->j;
    const fm_causal causal = rc->causal;
    const int32_t *col = rc->col;
    const int64_t i = random_row_near_edges(rng, rc, j - offset, 1, 2, -1);
    const int32_t end = fm_causal_row_end_i32(causal, offset, j);
    const int got = i < end;
    const int want = fm_causal_masked(causal, offset, i, j);
    if (got != want)
        fail_msg("trial %d: col {%d,%d,%d,%d} causal %d offset %lld j %lld row %lld: "
                 "row < causal end %d says %d, causal rule says %d",
                 trial, col[0], col[1], col[2], col[3], (int)causal, (long long)offset,
                 (long long)j, (long long)i, end, got, want);
}

/* fm_column_masked_bits32 on a 32-row window equals the element rule bit for bit. */
static void check_bits32(int trial, const random_column *rc, fm_rng *rng)
{
    const random_column c = *rc;
    const int32_t end = fm_causal_row_end_i32(c.causal, c.offset, c.j);
    /* the 32-row window starts at most 40 rows before a bound or the causal edge */
    const int64_t w0 = random_row_near_edges(rng, &c, end, -1, 40, 0);
    const uint32_t bits =
        fm_column_masked_bits32(c.col[0], c.col[1], c.col[2], c.col[3], end, (int32_t)w0);
    for (int r = 0; r < 32 && w0 + r <= INT32_MAX; r++) {
        const int want = fm_element_masked(c.col, c.causal, c.offset, w0 + r, c.j);
        if ((int)((bits >> r) & 1u) != want)
            fail_msg("trial %d: col {%d,%d,%d,%d} causal %d offset %lld j %lld w0 %lld "
                     "row +%d: bit %u, element rule %d",
                     trial, c.col[0], c.col[1], c.col[2], c.col[3], (int)c.causal,
                     (long long)c.offset, (long long)c.j, (long long)w0, r,
                     (bits >> r) & 1u, want);
    }
}

/* A check run on `trials` random columns from `seed`: lengths up to max_len_odd on odd trials
 * and max_len_even on even ones (INT32_MAX: near 2^31, where j - offset leaves int32). */
typedef struct column_test {
    const char *name;
    void (*check)(int trial, const random_column *rc, fm_rng *rng);
    uint64_t seed;
    int trials;
    int64_t max_len_odd, max_len_even;
} column_test;

static void run_column_test(void **state)
{
    const column_test *t = *state;
    fm_rng rng;
    fm_rng_seed(&rng, t->seed);
    for (int trial = 0; trial < t->trials; trial++) {
        const random_column rc =
            random_column_draw(&rng, trial % 2 ? t->max_len_odd : t->max_len_even);
        t->check(trial, &rc, &rng);
    }
}

static column_test column_runs = {"column_runs_match_element_rule", check_column_runs, 0x5eed,
                                  20000, 40, 40};
static column_test causal_row_end = {"causal_row_end_matches_causal_rule", check_causal_row_end,
                                     0x1325, 200000, 40, INT32_MAX};
static column_test bits32 = {"bits32_form_matches_element_rule", check_bits32, 0xb175, 50000, 100,
                             INT32_MAX};

int main(void)
{
    const struct CMUnitTest tests[] = {
        {column_runs.name, run_column_test, NULL, NULL, &column_runs},
        {causal_row_end.name, run_column_test, NULL, NULL, &causal_row_end},
        {bits32.name, run_column_test, NULL, NULL, &bits32},
    };
    return cmocka_run_group_tests_name("cpu_rules", tests, NULL, NULL);
}
