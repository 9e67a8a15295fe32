/* tests/cpu/test_cpu_order.c — the order in which the forward takes its tasks (fm_task_order,
 * cpu/task_order.c): a permutation of the tasks, the lines reversed or longest first as it says,
 * never more than 2% behind longest first in its model of the schedule; on seeded random work
 * counts and on the families' line counts.
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

/* A permutation; lines reversed, or longest first (ties in index order), as announced; the
 * order taken never ends more than 2% later, in the model, than longest first. */
static fm_task_order_kind check_order(const int64_t *work, int64_t n, int64_t line_len,
                                      int64_t max_work, int64_t threads)
{
    int64_t *order = malloc((size_t)n * sizeof *order);
    int64_t *lpt = malloc((size_t)n * sizeof *lpt);
    int64_t *scratch = malloc((size_t)(n + max_work + 2 + threads) * sizeof *scratch);
    char *seen = calloc((size_t)n, 1);
    assert_non_null(order);
    assert_non_null(lpt);
    assert_non_null(scratch);
    assert_non_null(seen);
    const fm_task_order_kind kind =
        fm_task_order(work, n, line_len, max_work, threads, scratch, order);
    for (int64_t i = 0; i < n; i++) {
        assert_true(order[i] >= 0 && order[i] < n);
        assert_false(seen[order[i]]); /* a permutation */
        seen[order[i]] = 1;
        if (kind == FM_ORDER_LINES_REVERSED) {
            assert_int_equal(order[i] / line_len, i / line_len);
            assert_int_equal(order[i] % line_len, line_len - 1 - i % line_len);
        } else if (i > 0) {
            assert_true(work[order[i - 1]] >= work[order[i]]); /* longest first */
            if (work[order[i - 1]] == work[order[i]]) assert_true(order[i - 1] < order[i]);
        }
    }
    /* longest first, by a plain sort, for the model's comparison */
    for (int64_t i = 0; i < n; i++) lpt[i] = i;
    for (int64_t i = 1; i < n; i++)
        for (int64_t j = i; j > 0 && work[lpt[j - 1]] < work[lpt[j]]; j--) {
            const int64_t t = lpt[j];
            lpt[j] = lpt[j - 1], lpt[j - 1] = t;
        }
    const int64_t taken = fm_task_order_makespan(work, order, n, threads, scratch);
    const int64_t best = fm_task_order_makespan(work, lpt, n, threads, scratch);
    if (threads > 1) assert_true(50 * taken <= 51 * best);
    free(order), free(lpt), free(scratch), free(seen);
    return kind;
}

static void test_random_work(void **state)
{
    (void)state;
    fm_rng rng;
    fm_rng_seed(&rng, 20261202);
    for (int trial = 0; trial < 300; trial++) {
        const int64_t line_len = 1 + (int64_t)(fm_rng_uniform(&rng) * 40);
        const int64_t n = line_len * (1 + (int64_t)(fm_rng_uniform(&rng) * 8));
        const int64_t max_work = (int64_t)(fm_rng_uniform(&rng) * 40);
        const int64_t threads = 1 + (int64_t)(fm_rng_uniform(&rng) * 6);
        int64_t *work = malloc((size_t)n * sizeof *work);
        assert_non_null(work);
        for (int64_t t = 0; t < n; t++)
            work[t] = (int64_t)(fm_rng_uniform(&rng) * (double)(max_work + 1)) % (max_work + 1);
        check_order(work, n, line_len, max_work, threads);
        free(work);
    }
}

/* The forward's work counts of a family at S = 4096 (2 heads, 32 query tiles per line). */
static fm_task_order_kind family_order(fm_family family, int64_t threads)
{
    fm_problem p;
    fm_problem_init(&p, 1, 2, 2, 4096, 4096, 16);
    fm_mask_params params;
    fm_mask mask = {0};
    assert_int_equal(fm_mask_params_default(&params, family, 4096), FM_OK);
    assert_int_equal(fm_mask_build(&mask, &params, 1, 1, 4096, 4096, FM_CAUSAL_BOTTOM_RIGHT),
                     FM_OK);
    fm_tile_plan plan;
    assert_int_equal(fm_tile_plan_init(&plan, &p, &mask, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K), FM_OK);
    const int64_t nb = plan.n_q_blocks, n = 2 * nb;
    int64_t work[64];
    assert_true(n <= 64);
    for (int64_t t = 0; t < n; t++) {
        work[t] = fm_tile_plan_line_tiles(&plan, 0, t / nb, FM_RUN_ALONG_KEYS, t % nb);
        if (family == FM_FAMILY_CAUSAL) assert_int_equal(work[t], t % nb + 1);
    }
    const fm_task_order_kind kind = check_order(work, n, nb, plan.n_k_blocks, threads);
    fm_tile_plan_free(&plan);
    fm_mask_params_free(&params);
    fm_mask_free(&mask);
    return kind;
}

/* Causal and document masks keep neighbouring query tiles together (lines reversed: under a
 * causal mask that is also longest first within each line); global_sliding_window, whose longest
 * query tile is each line's first, is taken longest first on 2 threads. */
static void test_families(void **state)
{
    (void)state;
    for (int threads = 1; threads <= 4; threads++) {
        assert_int_equal(family_order(FM_FAMILY_CAUSAL, threads), FM_ORDER_LINES_REVERSED);
        assert_int_equal(family_order(FM_FAMILY_CAUSAL_DOCUMENT, threads),
                         FM_ORDER_LINES_REVERSED);
        assert_int_equal(family_order(FM_FAMILY_PREFIX_LM_DOCUMENT, threads),
                         FM_ORDER_LINES_REVERSED);
        assert_int_equal(family_order(FM_FAMILY_DOCUMENT, threads), FM_ORDER_LINES_REVERSED);
    }
    assert_int_equal(family_order(FM_FAMILY_GLOBAL_SLIDING_WINDOW, 2), FM_ORDER_LONGEST_FIRST);
    for (int f = 0; f < FM_FAMILY_COUNT; f++) family_order((fm_family)f, 2); /* checks only */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_work),
        cmocka_unit_test(test_families),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
