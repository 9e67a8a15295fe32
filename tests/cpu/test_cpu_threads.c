/* tests/cpu/test_cpu_threads.c — the CPU layer and threads: OpenBLAS's thread count is the same
 * after a call as before (the layer sets it to one inside its OpenMP regions and restores it);
 * the forward gives bitwise the same result at 1 and at 2 OpenMP threads (each query tile is
 * one task, so no summation order depends on scheduling); with FM_FLAG_DETERMINISTIC the
 * backward is bitwise reproducible, and without it agrees with the deterministic one to float32
 * rounding (only dQ's order of addition varies); two caller threads at once get the same
 * results and leave the OpenBLAS thread count as it was. Layer: tests, above cpu.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "flashmask.h"

typedef struct problem_data {
    fm_problem p;
    fm_mask m;
    float *q, *k, *v, *dout;
    size_t nq, nkv, nl;
} problem_data;

/* A GQA causal-document problem over several tiles, with random inputs. */
static problem_data *make_problem(void)
{
    problem_data *d = malloc(sizeof *d);
    assert_non_null(d);
    fm_problem_init(&d->p, 2, 4, 2, 421, 421, 32);
    fm_mask_params params;
    assert_int_equal(fm_mask_params_default(&params, FM_FAMILY_CAUSAL_DOCUMENT, 421), FM_OK);
    assert_int_equal(fm_mask_build(&d->m, &params, 2, 2, 421, 421, FM_CAUSAL_BOTTOM_RIGHT),
                     FM_OK);
    fm_mask_params_free(&params);
    d->nq = fm_problem_q_elems(&d->p), d->nkv = fm_problem_kv_elems(&d->p);
    d->nl = fm_problem_lse_elems(&d->p);
    fm_rng rng;
    fm_rng_seed(&rng, 99);
    float **xs[4] = {&d->q, &d->k, &d->v, &d->dout};
    size_t ns[4] = {d->nq, d->nkv, d->nkv, d->nq};
    for (int t = 0; t < 4; t++) {
        *xs[t] = malloc(ns[t] * sizeof(float));
        assert_non_null(*xs[t]);
        for (size_t i = 0; i < ns[t]; i++) (*xs[t])[i] = (float)fm_rng_normal(&rng);
    }
    return d;
}

static void free_problem(problem_data *d)
{
    free(d->q), free(d->k), free(d->v), free(d->dout);
    fm_mask_free(&d->m);
}

/* The cmocka fixture of every test here: *state is a fresh problem_data. */
static int setup_problem(void **state)
{
    *state = make_problem();
    return 0;
}

static int teardown_problem(void **state)
{
    free_problem(*state);
    free(*state);
    return 0;
}

static float *alloc_floats(size_t n)
{
    float *x = malloc(n * sizeof *x);
    assert_non_null(x);
    return x;
}

static void test_blas_thread_count_restored(void **state)
{
    problem_data *d = *state;
    float *out = alloc_floats(d->nq), *lse = alloc_floats(d->nl), *dq = alloc_floats(d->nq);
    float *dk = alloc_floats(d->nkv), *dv = alloc_floats(d->nkv);
    openblas_set_num_threads(2);
    const int before = openblas_get_num_threads();
    assert_int_equal(fm_cpu_forward(&d->p, &d->m, d->q, d->k, d->v, out, lse, NULL), FM_OK);
    assert_int_equal(openblas_get_num_threads(), before);
    assert_int_equal(fm_cpu_backward(&d->p, &d->m, d->q, d->k, d->v, out, lse, d->dout, dq, dk, dv,
                                     NULL),
                     FM_OK);
    assert_int_equal(openblas_get_num_threads(), before);
    free(out), free(lse), free(dq), free(dk), free(dv);
}

static void test_forward_same_bits_at_any_thread_count(void **state)
{
    problem_data *d = *state;
    float *out1 = alloc_floats(d->nq), *lse1 = alloc_floats(d->nl);
    float *out2 = alloc_floats(d->nq), *lse2 = alloc_floats(d->nl);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    assert_int_equal(fm_cpu_forward(&d->p, &d->m, d->q, d->k, d->v, out1, lse1, NULL), FM_OK);
    omp_set_num_threads(2);
    assert_int_equal(fm_cpu_forward(&d->p, &d->m, d->q, d->k, d->v, out2, lse2, NULL), FM_OK);
    omp_set_num_threads(saved);
    assert_memory_equal(out1, out2, d->nq * sizeof(float));
    assert_memory_equal(lse1, lse2, d->nl * sizeof(float));
    free(out1), free(lse1), free(out2), free(lse2);
}

static void test_backward_deterministic_flag(void **state)
{
    problem_data *d = *state;
    float *out = alloc_floats(d->nq), *lse = alloc_floats(d->nl);
    assert_int_equal(fm_cpu_forward(&d->p, &d->m, d->q, d->k, d->v, out, lse, NULL), FM_OK);
    float *g[3][3]; /* [run][dq, dk, dv] */
    const size_t n[3] = {d->nq, d->nkv, d->nkv};
    omp_set_num_threads(2);
    for (int r = 0; r < 3; r++) {
        for (int t = 0; t < 3; t++) g[r][t] = alloc_floats(n[t]);
        d->p.flags = r < 2 ? FM_FLAG_DETERMINISTIC : 0; /* runs 0, 1 deterministic; 2 not */
        assert_int_equal(fm_cpu_backward(&d->p, &d->m, d->q, d->k, d->v, out, lse, d->dout, g[r][0],
                                         g[r][1], g[r][2], NULL),
                         FM_OK);
    }
    for (int t = 0; t < 3; t++) assert_memory_equal(g[0][t], g[1][t], n[t] * sizeof(float));
    /* dK and dV are owned by one task each: bitwise equal either way. dQ: rounding only. */
    assert_memory_equal(g[0][1], g[2][1], n[1] * sizeof(float));
    assert_memory_equal(g[0][2], g[2][2], n[2] * sizeof(float));
    double diff = 0.0, mag = 0.0;
    for (size_t i = 0; i < d->nq; i++) {
        diff = fmax(diff, fabs((double)g[0][0][i] - (double)g[2][0][i]));
        mag = fmax(mag, fabs((double)g[0][0][i]));
    }
    assert_true(diff <= 1e-5 * mag);
    for (int r = 0; r < 3; r++)
        for (int t = 0; t < 3; t++) free(g[r][t]);
    free(out), free(lse);
}

/* Two caller threads at once (an outer OpenMP region): both results equal the single call's,
 * and the OpenBLAS thread count is restored once both are done. */
static void test_concurrent_callers(void **state)
{
    problem_data *d = *state;
    float *ref = alloc_floats(d->nq), *lref = alloc_floats(d->nl);
    float *out[2] = {alloc_floats(d->nq), alloc_floats(d->nq)};
    float *lse[2] = {alloc_floats(d->nl), alloc_floats(d->nl)};
    openblas_set_num_threads(2);
    assert_int_equal(fm_cpu_forward(&d->p, &d->m, d->q, d->k, d->v, ref, lref, NULL), FM_OK);
    fm_status st[2];
#pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num();
        st[t] = fm_cpu_forward(&d->p, &d->m, d->q, d->k, d->v, out[t], lse[t], NULL);
    }
    for (int t = 0; t < 2; t++) {
        assert_int_equal(st[t], FM_OK);
        assert_memory_equal(out[t], ref, d->nq * sizeof(float));
        assert_memory_equal(lse[t], lref, d->nl * sizeof(float));
        free(out[t]), free(lse[t]);
    }
    assert_int_equal(openblas_get_num_threads(), 2);
    free(ref), free(lref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_blas_thread_count_restored, setup_problem,
                                        teardown_problem),
        cmocka_unit_test_setup_teardown(test_forward_same_bits_at_any_thread_count, setup_problem,
                                        teardown_problem),
        cmocka_unit_test_setup_teardown(test_backward_deterministic_flag, setup_problem,
                                        teardown_problem),
        cmocka_unit_test_setup_teardown(test_concurrent_callers, setup_problem, teardown_problem),
    };
    return cmocka_run_group_tests_name("cpu_threads", tests, NULL, NULL);
}
