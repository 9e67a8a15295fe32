/* tests/cpu/test_cpu_scratch.c — the CPU forward and backward read no working memory they have
 * not written in the same call: the kept working-memory block (cpu/workspace.c) is filled with
 * NaN before each call, and the results must be bitwise those of a run on a zeroed block. The
 * mask hides whole MR x NR sub-blocks inside the row panels' key spans (a hidden band every
 * third group of 16 keys), so the products leave out blocks whose scratch is then read as zeros
 * (docs/algorithm.md, "The backward's packed products and key spans"): a block the code
 * forgets to write shows as NaN. The backward runs with FM_FLAG_DETERMINISTIC (dQ's summation
 * order fixed). Without the packed products (no BLIS) the same checks hold for the OpenBLAS
 * path. Suite 'cpu'. Layer: tests over cpu/ (its private header, for the working memory).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "cpu_internal.h"
#include "flashmask.h"
#include "prop.h"
#include "runs.h"

enum { WORKSPACE_FLOATS = 8 << 20 }; /* 32 MiB: more than these calls need, less than kept */

/* The block the next call of the CPU layer takes, filled with `value`. */
static void fill_kept_workspace(float value)
{
    float *block = NULL;
    size_t floats = 0;
    assert_int_equal(fm_workspace_take(WORKSPACE_FLOATS, "test", &block, &floats), FM_OK);
    for (size_t i = 0; i < floats; i++) block[i] = value;
    fm_workspace_give(block, floats);
}

typedef struct run {
    float *out, *lse, *dq, *dk, *dv;
} run;

static void run_cpu(const fm_problem *p, const fm_mask *m, const float *q, const float *k,
                    const float *v, const float *dout, float fill, run *r)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    r->out = malloc(nq * sizeof(float)), r->lse = malloc(fm_problem_lse_elems(p) * sizeof(float));
    r->dq = malloc(nq * sizeof(float)), r->dk = malloc(nkv * sizeof(float));
    r->dv = malloc(nkv * sizeof(float));
    assert_true(r->out && r->lse && r->dq && r->dk && r->dv);
    fill_kept_workspace(fill);
    assert_int_equal(fm_cpu_forward(p, m, q, k, v, r->out, r->lse, NULL), FM_OK);
    fill_kept_workspace(fill);
    assert_int_equal(
        fm_cpu_backward(p, m, q, k, v, r->out, r->lse, dout, r->dq, r->dk, r->dv, NULL), FM_OK);
}

static void assert_same(const float *got, const float *want, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s[%zu]: %.9g with NaN working memory vs %.9g with zeros", what, i,
                     (double)got[i], (double)want[i]);
}

static void check_case(int64_t S, int64_t D, fm_causal causal, uint64_t seed)
{
    fm_problem p = fm_test_problem(1, 4, 2, S, S, D);
    p.flags |= FM_FLAG_DETERMINISTIC;
    fm_mask m = fm_test_mask(1, 2, S, S, causal);
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    for (int64_t h = 0; h < 2; h++)
        for (int64_t j = 0; j < S; j++) { /* every third group of 16 keys: a band of rows */
            int32_t *col = fm_mask_column(&m, 0, h, j);
            const int64_t group = j / 16;
            if (group % 3 != 1) continue;
            const int64_t lo = (group * 37 + h * 11) % (S / 2);
            col[FM_LTS] = (int32_t)lo, col[FM_LTE] = (int32_t)(lo + 40 + group % 50);
        }
    const size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    float *x[4];
    for (int t = 0; t < 4; t++) {
        const size_t n = t == 0 || t == 3 ? nq : nkv;
        x[t] = malloc(n * sizeof(float));
        assert_non_null(x[t]);
        for (size_t i = 0; i < n; i++) x[t][i] = (float)fm_rng_normal(&rng);
    }
    run clean, dirty;
    run_cpu(&p, &m, x[0], x[1], x[2], x[3], 0.0f, &clean);
    run_cpu(&p, &m, x[0], x[1], x[2], x[3], NAN, &dirty);
    assert_same(dirty.out, clean.out, nq, "out");
    assert_same(dirty.lse, clean.lse, fm_problem_lse_elems(&p), "lse");
    assert_same(dirty.dq, clean.dq, nq, "dq");
    assert_same(dirty.dk, clean.dk, nkv, "dk");
    assert_same(dirty.dv, clean.dv, nkv, "dv");
    for (int i = 0; i < 5; i++) {
        free((&clean.out)[i]);
        free((&dirty.out)[i]);
    }
    for (int t = 0; t < 4; t++) free(x[t]);
    fm_mask_free(&m);
}

static void test_nan_working_memory(void **state)
{
    (void)state;
    const uint64_t seed = fm_test_seed();
    check_case(600, 64, FM_CAUSAL_NONE, seed);
    check_case(517, 40, FM_CAUSAL_BOTTOM_RIGHT, seed ^ 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nan_working_memory),
    };
    return cmocka_run_group_tests_name("cpu_scratch", tests, NULL, NULL);
}
