/* tests/cpu/test_cpu_rules.c — the by-column form of the element rule that the CPU layer masks
 * partial tiles with, fm_column_masked_runs (rules.h), agrees with fm_element_masked on every
 * element: random columns (empty, full, overlapping intervals), all three causal alignments,
 * offsets of both signs, random row windows [r0, r1). Layer: tests, on rules.h alone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "flashmask.h"

static void test_column_runs_match_element_rule(void **state)
{
    (void)state;
    fm_rng rng;
    fm_rng_seed(&rng, 0x5eed);
    for (int trial = 0; trial < 20000; trial++) {
        const int64_t sq = fm_rng_range(&rng, 1, 40), sk = fm_rng_range(&rng, 1, 40);
        const fm_causal causal = (fm_causal)fm_rng_below(&rng, 3);
        const int64_t offset = fm_causal_offset(causal, sq, sk);
        int32_t col[4];
        for (int k = 0; k < 2; k++) { /* LT then UT: start <= end in [0, sq] */
            int32_t a = (int32_t)fm_rng_range(&rng, 0, sq), b = (int32_t)fm_rng_range(&rng, 0, sq);
            col[2 * k] = a < b ? a : b;
            col[2 * k + 1] = a < b ? b : a;
        }
        const int64_t j = fm_rng_range(&rng, 0, sk - 1);
        const int64_t r0 = fm_rng_range(&rng, 0, sq - 1), r1 = fm_rng_range(&rng, r0 + 1, sq);
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_column_runs_match_element_rule),
    };
    return cmocka_run_group_tests_name("cpu_rules", tests, NULL, NULL);
}
