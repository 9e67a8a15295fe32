/* tests/cpu/test_cpu_skip.c — fully masked tiles do no work, shown two ways:
 *   1. the counters: fm_cpu_forward/backward report exactly fm_mask_tile_stats x (Hq / Hm);
 *   2. poisoning: K and V rows (or Q and dO rows) that only fully masked tiles touch are set to
 *      NaN; if the kernel loaded them or did arithmetic with them, NaN would spread. Outputs
 *      must stay bitwise equal to the unpoisoned run (the backward runs with
 *      FM_FLAG_DETERMINISTIC so that dQ's summation order is fixed), and gradients of poisoned
 *      rows must be exactly zero.
 * Also: invalid input is refused with a message, never computed on.
 * Layer: tests, above cpu and masks.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "expect_fail.h"

#include "flashmask.h"
#include "runs.h"

typedef struct run {
    float *out, *lse, *dq, *dk, *dv;
    fm_tile_stats fwd, bwd;
} run;

static float *normal_floats(size_t n, fm_rng *rng)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = (float)fm_rng_normal(rng);
    return x;
}

static void run_cpu(const fm_problem *p, const fm_mask *m, const float *q, const float *k,
                    const float *v, const float *dout, run *r)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    r->out = malloc(nq * sizeof(float)), r->lse = malloc(fm_problem_lse_elems(p) * sizeof(float));
    r->dq = malloc(nq * sizeof(float)), r->dk = malloc(nkv * sizeof(float));
    r->dv = malloc(nkv * sizeof(float));
    assert_true(r->out && r->lse && r->dq && r->dk && r->dv);
    assert_int_equal(fm_cpu_forward(p, m, q, k, v, r->out, r->lse, &r->fwd), FM_OK);
    assert_int_equal(fm_cpu_backward(p, m, q, k, v, r->out, r->lse, dout, r->dq, r->dk, r->dv,
                                     &r->bwd),
                     FM_OK);
}

static void free_run(run *r)
{
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
}

static void assert_stats(const fm_problem *p, const fm_mask *m, const fm_tile_stats *got)
{
    fm_tile_stats want;
    assert_int_equal(fm_mask_tile_stats(m, FM_CPU_BLOCK_Q, FM_CPU_BLOCK_K, &want), FM_OK);
    const int64_t g = p->q_heads / m->heads;
    assert_int_equal(got->total, g * want.total);
    assert_int_equal(got->masked, g * want.masked);
    assert_int_equal(got->partial, g * want.partial);
    assert_int_equal(got->unmasked, g * want.unmasked);
    assert_true(got->masked > 0); /* the cases below are built to have skipped tiles */
}

static void assert_bitwise_equal(const float *a, const float *b, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
            fail_msg("%s[%zu]: %.9g with poison vs %.9g without", what, i, (double)a[i],
                     (double)b[i]);
}

/* Poison rows [r0, r1) of each head of x ([B*H, rows_per_head, D]). */
static void poison_rows(float *x, int64_t heads_total, int64_t rows, int64_t D, int64_t r0,
                        int64_t r1)
{
    for (int64_t h = 0; h < heads_total; h++)
        for (int64_t r = r0; r < r1; r++)
            for (int64_t d = 0; d < D; d++) x[(h * rows + r) * D + d] = NAN;
}

/* Runs clean and poisoned K/V (key rows [c0, c1) of every kv head) and compares. */
static void check_kv_poison(fm_problem *p, const fm_mask *m, int64_t c0, int64_t c1,
                            uint64_t seed)
{
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    p->flags |= FM_FLAG_DETERMINISTIC;
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    float *q = normal_floats(nq, &rng), *k = normal_floats(nkv, &rng);
    float *v = normal_floats(nkv, &rng), *dout = normal_floats(nq, &rng);
    run clean, dirty;
    run_cpu(p, m, q, k, v, dout, &clean);
    assert_stats(p, m, &clean.fwd);
    assert_stats(p, m, &clean.bwd);

    const int64_t kv_heads = p->batch * p->kv_heads, D = p->head_dim;
    poison_rows(k, kv_heads, p->seqlen_k, D, c0, c1);
    poison_rows(v, kv_heads, p->seqlen_k, D, c0, c1);
    run_cpu(p, m, q, k, v, dout, &dirty);
    assert_bitwise_equal(dirty.out, clean.out, nq, "out");
    assert_bitwise_equal(dirty.lse, clean.lse, fm_problem_lse_elems(p), "lse");
    assert_bitwise_equal(dirty.dq, clean.dq, nq, "dq");
    assert_bitwise_equal(dirty.dk, clean.dk, nkv, "dk");
    assert_bitwise_equal(dirty.dv, clean.dv, nkv, "dv");
    for (int64_t h = 0; h < kv_heads; h++)
        for (int64_t r = c0; r < c1; r++)
            for (int64_t d = 0; d < D; d++) {
                assert_true(dirty.dk[(h * p->seqlen_k + r) * D + d] == 0.0f);
                assert_true(dirty.dv[(h * p->seqlen_k + r) * D + d] == 0.0f);
            }
    free_run(&clean), free_run(&dirty);
    free(q), free(k), free(v), free(dout);
}

/* Whole key blocks masked for every row (LT = [0, Sq)), random intervals elsewhere, GQA. */
static void test_poisoned_masked_key_blocks(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(2, 4, 2, 517, 517, 24);
    fm_mask m = fm_test_mask(2, 2, 517, 517, FM_CAUSAL_NONE);
    fm_rng rng;
    fm_rng_seed(&rng, 7);
    const int64_t c0 = FM_CPU_BLOCK_K, c1 = 2 * FM_CPU_BLOCK_K; /* key block 1 */
    for (int64_t b = 0; b < 2; b++)
        for (int64_t h = 0; h < 2; h++)
            for (int64_t j = 0; j < 517; j++) {
                int32_t *col = fm_mask_column(&m, b, h, j);
                if (j >= c0 && j < c1) {
                    col[FM_LTS] = 0, col[FM_LTE] = 517;
                } else { /* a random LT interval: partial and unmasked tiles elsewhere */
                    int32_t s = (int32_t)fm_rng_below(&rng, 518);
                    col[FM_LTS] = s;
                    col[FM_LTE] = s + (int32_t)fm_rng_below(&rng, (uint64_t)(518 - s));
                }
            }
    check_kv_poison(&p, &m, c0, c1, 11);
    fm_mask_free(&m);
}

/* Causal top_left with Sq < Sk: keys beyond the last row are masked for every row. */
static void test_poisoned_causal_tail(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 3, 1, 200, 700, 40);
    fm_mask m = fm_test_mask(1, 1, 200, 700, FM_CAUSAL_TOP_LEFT);
    check_kv_poison(&p, &m, 2 * FM_CPU_BLOCK_K, 700, 12); /* blocks 2.. start at key 256 > 199 */
    fm_mask_free(&m);
}

/* Query block 1 masked for every key (LT = [128, 256) in every column): poison its Q and dO. */
static void test_poisoned_masked_query_block(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 2, 2, 400, 333, 16);
    p.flags |= FM_FLAG_DETERMINISTIC;
    fm_mask m = fm_test_mask(1, 1, 400, 333, FM_CAUSAL_NONE);
    const int64_t r0 = FM_CPU_BLOCK_Q, r1 = 2 * FM_CPU_BLOCK_Q;
    for (int64_t j = 0; j < 333; j++) {
        int32_t *col = fm_mask_column(&m, 0, 0, j);
        col[FM_LTS] = (int32_t)r0, col[FM_LTE] = (int32_t)r1;
        col[FM_UTS] = 300, col[FM_UTE] = (int32_t)(300 + j % 100); /* partial tiles too */
    }
    fm_rng rng;
    fm_rng_seed(&rng, 13);
    size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    float *q = normal_floats(nq, &rng), *k = normal_floats(nkv, &rng);
    float *v = normal_floats(nkv, &rng), *dout = normal_floats(nq, &rng);
    run clean, dirty;
    run_cpu(&p, &m, q, k, v, dout, &clean);
    assert_stats(&p, &m, &clean.fwd);
    poison_rows(q, 2, 400, 16, r0, r1);
    poison_rows(dout, 2, 400, 16, r0, r1);
    run_cpu(&p, &m, q, k, v, dout, &dirty);
    for (int64_t h = 0; h < 2; h++)
        for (int64_t r = 0; r < 400; r++) {
            const size_t row = (size_t)(h * 400 + r);
            if (r >= r0 && r < r1) { /* the fully masked rows: O = 0, LSE = -inf, dQ = 0 */
                assert_true(dirty.lse[row] == -INFINITY);
                for (int64_t d = 0; d < 16; d++) {
                    assert_true(dirty.out[row * 16 + d] == 0.0f);
                    assert_true(dirty.dq[row * 16 + d] == 0.0f);
                }
                /* The clean run's rows are also fully masked: zero there too. */
                memcpy(&dirty.out[row * 16], &clean.out[row * 16], 16 * sizeof(float));
                memcpy(&dirty.dq[row * 16], &clean.dq[row * 16], 16 * sizeof(float));
            }
        }
    assert_bitwise_equal(dirty.out, clean.out, nq, "out");
    assert_bitwise_equal(dirty.lse, clean.lse, fm_problem_lse_elems(&p), "lse");
    assert_bitwise_equal(dirty.dq, clean.dq, nq, "dq");
    assert_bitwise_equal(dirty.dk, clean.dk, nkv, "dk");
    assert_bitwise_equal(dirty.dv, clean.dv, nkv, "dv");
    free_run(&clean), free_run(&dirty);
    free(q), free(k), free(v), free(dout);
    fm_mask_free(&m);
}

/* Invalid input is refused with a message naming what is wrong. */
static void test_invalid_input_refused(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 2, 2, 10, 10, 4);
    fm_mask m = fm_test_mask(1, 1, 10, 10, FM_CAUSAL_NONE);
    float buf[80] = {0}, lse[20], out[80];
    /* LTS > LTE in column 3 */
    fm_mask_column(&m, 0, 0, 3)[FM_LTS] = 6, fm_mask_column(&m, 0, 0, 3)[FM_LTE] = 2;
    assert_int_equal(fm_cpu_forward(&p, &m, buf, buf, buf, out, lse, NULL), FM_ERR_INVALID);
    assert_true(strlen(fm_last_error()) > 0);
    fm_mask_column(&m, 0, 0, 3)[FM_LTS] = 10, fm_mask_column(&m, 0, 0, 3)[FM_LTE] = 10;
    /* NULL tensors */
    assert_int_equal(fm_cpu_forward(&p, &m, NULL, buf, buf, out, lse, NULL), FM_ERR_INVALID);
    assert_int_equal(fm_cpu_backward(&p, &m, buf, buf, buf, out, lse, buf, NULL, buf, buf, NULL),
                     FM_ERR_INVALID);
    /* kv heads that do not divide q heads */
    p.kv_heads = 3;
    EXPECT_FAIL(fm_cpu_forward(&p, &m, buf, buf, buf, out, lse, NULL), FM_ERR_INVALID, "kv_heads");
    fm_mask_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poisoned_masked_key_blocks),
        cmocka_unit_test(test_poisoned_causal_tail),
        cmocka_unit_test(test_poisoned_masked_query_block),
        cmocka_unit_test(test_invalid_input_refused),
    };
    return cmocka_run_group_tests_name("cpu_skip", tests, NULL, NULL);
}
