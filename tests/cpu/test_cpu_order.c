/* tests/cpu/test_cpu_order.c — the order in which the forward takes its tasks
 * (fm_tile_plan_order_tasks, cpu/cpu_internal.h): a permutation of the tasks, by decreasing
 * work, ties in index order, on seeded random work counts and on a causal mask's line counts.
 * Suite 'cpu'. Layer: tests over cpu/ (its private header).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cpu_internal.h"
#include "flashmask.h"

static void check_order(const int64_t *work, int64_t n, int64_t max_work)
{
    int64_t *order = malloc((size_t)n * sizeof *order), *count = malloc((size_t)(max_work + 2) * 8);
    char *seen = calloc((size_t)n, 1);
    assert_non_null(order);
    assert_non_null(count);
    assert_non_null(seen);
    fm_tile_plan_order_tasks(work, n, max_work, count, order);
    for (int64_t i = 0; i < n; i++) {
        assert_true(order[i] >= 0 && order[i] < n);
        assert_false(seen[order[i]]); /* a permutation */
        seen[order[i]] = 1;
        if (i > 0) {
            assert_true(work[order[i - 1]] >= work[order[i]]); /* longest first */
            if (work[order[i - 1]] == work[order[i]]) assert_true(order[i - 1] < order[i]);
        }
    }
    free(order), free(count), free(seen);
}

static void test_random_work(void **state)
{
    (void)state;
    fm_rng rng;
    fm_rng_seed(&rng, 20261202);
    for (int trial = 0; trial < 200; trial++) {
        const int64_t n = 1 + (int64_t)(fm_rng_uniform(&rng) * 300);
        const int64_t max_work = (int64_t)(fm_rng_uniform(&rng) * 40);
        int64_t *work = malloc((size_t)n * sizeof *work);
        assert_non_null(work);
        for (int64_t t = 0; t < n; t++)
            work[t] = (int64_t)(fm_rng_uniform(&rng) * (double)(max_work + 1)) % (max_work + 1);
        check_order(work, n, max_work);
        free(work);
    }
}

/* The forward's work counts under a causal mask: query tile qb has qb + 1 computed key tiles, so
 * the order starts with the last query tile of each head and ends with the first ones. */
static void test_causal_lines(void **state)
{
    (void)state;
    fm_problem p;
    fm_problem_init(&p, 1, 2, 2, 1024, 1024, 16);
    fm_mask_params params;
    fm_mask mask = {0};
    assert_int_equal(fm_mask_params_default(&params, FM_FAMILY_CAUSAL, 1024), FM_OK);
    assert_int_equal(fm_mask_build(&mask, &params, 1, 1, 1024, 1024, FM_CAUSAL_BOTTOM_RIGHT),
                     FM_OK);
    fm_tile_plan plan;
    assert_int_equal(fm_tile_plan_init(&plan, &p, &mask, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K), FM_OK);
    const int64_t nb = plan.n_q_blocks, n = 2 * nb;
    int64_t work[64], order[64], count[64];
    assert_true(n <= 64);
    for (int64_t t = 0; t < n; t++) {
        work[t] = fm_tile_plan_line_tiles(&plan, 0, t / nb, FM_RUN_ALONG_KEYS, t % nb);
        assert_int_equal(work[t], t % nb + 1);
    }
    fm_tile_plan_order_tasks(work, n, plan.n_k_blocks, count, order);
    assert_int_equal(order[0], nb - 1);     /* head 0, last query tile */
    assert_int_equal(order[1], 2 * nb - 1); /* head 1, last query tile */
    assert_int_equal(order[n - 1], nb);     /* head 1, first query tile */
    check_order(work, n, plan.n_k_blocks);
    fm_tile_plan_free(&plan);
    fm_mask_params_free(&params);
    fm_mask_free(&mask);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_work),
        cmocka_unit_test(test_causal_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
