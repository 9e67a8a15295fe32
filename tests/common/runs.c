/* tests/common/runs.c — helpers for running an implementation on a problem and judging what it
 * wrote (runs.h says what each does). Layer: tests (uses oracle/, masks/, core/).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "prop.h"
#include "runs.h"

fm_problem fm_test_problem(int64_t batch, int64_t q_heads, int64_t kv_heads, int64_t seqlen_q,
                           int64_t seqlen_k, int64_t head_dim)
{
    fm_problem p;
    fm_problem_init(&p, batch, q_heads, kv_heads, seqlen_q, seqlen_k, head_dim);
    return p;
}

fm_mask fm_test_mask(int64_t batch, int64_t heads, int64_t seqlen_q, int64_t seqlen_k,
                     fm_causal causal)
{
    fm_mask m = {0};
    assert_int_equal(fm_mask_init(&m, batch, heads, seqlen_q, seqlen_k, causal), FM_OK);
    return m;
}

void fm_test_skip_without_gpu(void)
{
    if (fm_cuda_available() != FM_OK) {
        print_message("[  SKIP    ] %s\n", fm_last_error());
        skip();
    }
}

int fm_test_gpu_suite_exit(int failed)
{
    return failed == 0 && fm_cuda_available() != FM_OK ? 77 : failed;
}

void fm_test_fill_normal(double *x, size_t n, fm_rng *rng)
{
    for (size_t i = 0; i < n; i++) x[i] = fm_rng_normal(rng);
}

double *fm_test_normal(size_t n, fm_rng *rng)
{
    double *x = malloc((n ? n : 1) * sizeof *x);
    assert_non_null(x);
    fm_test_fill_normal(x, n, rng);
    return x;
}

void fm_test_outputs_alloc(fm_tensors *t, const fm_problem *p)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    t->out = calloc(nq, sizeof(double)), t->lse = calloc(fm_problem_lse_elems(p), sizeof(double));
    t->dq = calloc(nq, sizeof(double)), t->dk = calloc(nkv, sizeof(double));
    t->dv = calloc(nkv, sizeof(double));
    assert_true(t->out && t->lse && t->dq && t->dk && t->dv);
}

void fm_test_outputs_free(fm_tensors *t)
{
    free(t->out), free(t->lse), free(t->dq), free(t->dk), free(t->dv);
    t->out = t->lse = t->dq = t->dk = t->dv = NULL;
}

int fm_test_inputs_rounded(fm_tensors *t, const fm_problem *p, const double *q, const double *k,
                           const double *v, const double *dout, fm_dtype dtype)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    t->q = fm_rounded_copy(q, nq, dtype), t->k = fm_rounded_copy(k, nkv, dtype);
    t->v = fm_rounded_copy(v, nkv, dtype), t->dout = fm_rounded_copy(dout, nq, dtype);
    if (t->q && t->k && t->v && t->dout) return 1;
    fm_test_inputs_free(t);
    return 0;
}

void fm_test_inputs_free(fm_tensors *t)
{
    free((void *)t->q), free((void *)t->k), free((void *)t->v), free((void *)t->dout);
    t->q = t->k = t->v = t->dout = NULL;
}

int fm_test_judge(const fm_problem *p, const fm_mask *m, const fm_tensors *in,
                  const fm_tensors *got, const fm_check_options *opt, const char *what,
                  char *msg, size_t len)
{
    fm_check_report rep;
    if (fm_check_case(p, m, in, got, opt, &rep) != FM_OK) {
        snprintf(msg, len, "oracle error: %s", fm_last_error());
        return -1;
    }
    if (rep.pass) return 1;
    int w = 0;
    for (int i = 0; i < rep.n_tensors; i++)
        if (!rep.tensor[i].pass) w = i;
    char naive[32] = "not computed";
    if (rep.tensor[w].naive_computed)
        snprintf(naive, sizeof naive, "%.3g", rep.tensor[w].naive_max_abs);
    snprintf(msg, len, "%s %s: max|err| %.3g > bound %.3g (naive %s): %s", what,
             rep.tensor[w].name, rep.tensor[w].max_abs, rep.tensor[w].bound, naive,
             rep.tensor[w].why);
    if (getenv("FM_VERBOSE")) fm_check_report_print(&rep, stderr);
    return 0;
}

void fm_test_assert_repeatable(fm_test_run_fn run, const fm_problem *p, const fm_mask *m,
                               const fm_tensors *in, int compare_out)
{
    fm_tensors a = *in, b = *in;
    fm_test_outputs_alloc(&a, p), fm_test_outputs_alloc(&b, p);
    run(p, m, &a);
    run(p, m, &b);
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    if (compare_out) assert_memory_equal(a.out, b.out, nq * sizeof(double));
    assert_memory_equal(a.dq, b.dq, nq * sizeof(double));
    assert_memory_equal(a.dk, b.dk, nkv * sizeof(double));
    assert_memory_equal(a.dv, b.dv, nkv * sizeof(double));
    fm_test_outputs_free(&a), fm_test_outputs_free(&b);
}

void fm_test_masked_block_make(fm_test_masked_block *f, int64_t S, int64_t D, fm_dtype dtype,
                               uint64_t seed)
{
    f->p = fm_test_problem(1, 2, 1, S, S, D);
    f->p.dtype = dtype;
    f->m = fm_test_mask(1, 1, S, S, FM_CAUSAL_TOP_LEFT);
    for (int64_t j = FM_TEST_MASKED_KEY0; j < FM_TEST_MASKED_KEY1; j++) {
        int32_t *col = fm_mask_column(&f->m, 0, 0, j);
        col[FM_LTS] = 0, col[FM_LTE] = (int32_t)S;
    }
    const size_t nq = fm_problem_q_elems(&f->p), nkv = fm_problem_kv_elems(&f->p);
    f->q = malloc(nq * sizeof(double)), f->k = malloc(nkv * sizeof(double));
    f->v = malloc(nkv * sizeof(double)), f->dout = malloc(nq * sizeof(double));
    assert_true(f->q && f->k && f->v && f->dout);
    fm_rng rng;
    fm_rng_seed(&rng, seed);
    for (size_t i = 0; i < nq; i++) f->q[i] = fm_rng_normal(&rng), f->dout[i] = fm_rng_normal(&rng);
    for (size_t i = 0; i < nkv; i++) f->k[i] = fm_rng_normal(&rng), f->v[i] = fm_rng_normal(&rng);
}

void fm_test_masked_block_fill(fm_test_masked_block *f, double value)
{
    const int64_t D = f->p.head_dim;
    for (int64_t j = FM_TEST_MASKED_KEY0; j < FM_TEST_MASKED_KEY1; j++)
        for (int64_t d = 0; d < D; d++) f->k[j * D + d] = f->v[j * D + d] = value;
}

void fm_test_masked_block_assert_same(const fm_test_masked_block *f, const fm_tensors *a,
                                      const fm_tensors *b)
{
    const int64_t S = f->p.seqlen_k, D = f->p.head_dim;
    const size_t nq = fm_problem_q_elems(&f->p);
    assert_memory_equal(a->out, b->out, nq * sizeof(double));
    assert_memory_equal(a->dq, b->dq, nq * sizeof(double));
    for (int64_t j = 0; j < S; j++) {
        if (j >= FM_TEST_MASKED_KEY0 && j < FM_TEST_MASKED_KEY1) continue;
        assert_memory_equal(a->dk + j * D, b->dk + j * D, (size_t)D * sizeof(double));
        assert_memory_equal(a->dv + j * D, b->dv + j * D, (size_t)D * sizeof(double));
    }
}

void fm_test_masked_block_free(fm_test_masked_block *f)
{
    free(f->q), free(f->k), free(f->v), free(f->dout);
    fm_mask_free(&f->m);
}
