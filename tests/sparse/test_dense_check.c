/* tests/sparse/test_dense_check.c — the pass rule on dense masks (oracle/dense_check.c): on a
 * column mask made dense it reproduces fm_check_case (the oracle's own judgement) — verdicts,
 * and naive errors and bounds to the references' last bits — and it fails a candidate with one
 * planted error, naming the element. Layer: tests, suite 'sparse'.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "runs.h"
#include "sparse_case.h"

/* Equal up to the references' last bits: the dense oracle (row by row) and the column oracle
 * sum in different orders (~1e-16 of O(1) values), which moves |x - ref| by as much. */
static int near(double a, double b) { return fabs(a - b) <= 1e-9 * fabs(b) + 1e-13; }

/* A candidate: the cpu layer's results on the case (inputs rounded to float32 beforehand). */
static int prop_dense_check_matches_oracle(const fm_random_case *cc, void *ctx, char *msg,
                                           size_t len)
{
    (void)ctx;
    fm_random_case c = *cc;
    fm_rng rng;
    fm_rng_seed(&rng, c.seed ^ 0xc4ec);
    const fm_dtype x = (fm_dtype)(1 + fm_rng_below(&rng, 3)); /* float32, float16, bfloat16 */
    const fm_problem *p = &c.problem;
    fm_tensors in = {0};
    uint8_t *dense = sp_dense_mask(&c, SP_FROM_COLUMNS, NULL);
    sp_run cand = {0};
    int ok = 0;
    if (!fm_test_inputs_rounded(&in, p, c.q, c.k, c.v, c.dout, x) || !dense ||
        !sp_run_alloc(&cand, p)) {
        sp_fail(msg, len, "out of memory");
        goto done;
    }
    c.q = (double *)in.q, c.k = (double *)in.k, c.v = (double *)in.v, c.dout = (double *)in.dout;
    fm_tensors t = sp_tensors(&c, &cand);
    if (fm_forward(FM_IMPL_CPU, p, &c.mask, &t) != FM_OK ||
        fm_backward(FM_IMPL_CPU, p, &c.mask, &t) != FM_OK) {
        sp_fail(msg, len, "cpu: %s", fm_last_error());
        goto done;
    }
    /* one planted error in a third of the cases: out of a row that has an allowed key */
    if (fm_rng_below(&rng, 3) == 0) {
        size_t row = (size_t)fm_rng_below(&rng, fm_problem_lse_elems(p));
        if (isfinite(cand.lse[row])) cand.out[row * (size_t)p->head_dim] += 0.25;
    }
    fm_tensors ref = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout};
    fm_tensors got = {.out = cand.out, .lse = cand.lse, .dq = cand.dq, .dk = cand.dk,
                      .dv = cand.dv};
    fm_check_options opt = fm_check_options_default(x);
    opt.naive = 1; /* the naive yardsticks are compared too (the derived rule may omit them) */
    fm_check_report want, have;
    if (fm_check_case(p, &c.mask, &ref, &got, &opt, &want) != FM_OK ||
        fm_check_dense(p, dense, c.mask.heads, &ref, &got, &opt, &have) != FM_OK) {
        sp_fail(msg, len, "check: %s", fm_last_error());
        goto done;
    }
    int64_t blocks;
    fm_rowsplit_blocks(p, dense, c.mask.heads, &blocks);
    if (want.pass != have.pass || want.masked_rows != have.masked_rows) {
        sp_fail(msg, len, "verdict %d vs oracle %d (masked rows %lld vs %lld)", have.pass,
                want.pass, (long long)have.masked_rows, (long long)want.masked_rows);
        goto done;
    }
    for (int i = 0; i < 5; i++) {
        const fm_tensor_check *a = &have.tensor[i], *b = &want.tensor[i];
        /* the candidate's own errors are the same numbers; so is the naive yardstick, except
         * dk/dv of a mask that needed several row blocks (one rounding per block) */
        const int exact_naive = i < 3 || blocks == 1;
        if (!near(a->max_abs, b->max_abs) || a->pass != b->pass ||
            (exact_naive && (!near(a->naive_max_abs, b->naive_max_abs) ||
                             !near(a->bound, b->bound)))) {
            sp_fail(msg, len, "%s (%lld blocks, %s): pass %d/%d max_abs %.17g/%.17g naive "
                    "%.17g/%.17g bound %.17g/%.17g", b->name, (long long)blocks,
                    fm_dtype_name(x), a->pass, b->pass, a->max_abs, b->max_abs,
                    a->naive_max_abs, b->naive_max_abs, a->bound, b->bound);
            goto done;
        }
    }
    ok = 1;
done:
    fm_test_inputs_free(&in);
    free(dense);
    sp_run_free(&cand);
    return ok;
}

static fm_property_test dense_check_matches_oracle = {
    "dense_check_matches_oracle", prop_dense_check_matches_oracle, .trials = 80, .max_seqlen = 40};

/* A planted error on a non-column mask is caught and located. */
static void test_dense_check_catches_planted_error(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 2, 1, 24, 20, 8);
    const size_t nq = fm_problem_q_elems(&p), nk = fm_problem_kv_elems(&p);
    const size_t nl = fm_problem_lse_elems(&p);
    double *q = malloc(nq * 8), *k = malloc(nk * 8), *v = malloc(nk * 8), *d = malloc(nq * 8);
    double *o = malloc(nq * 8), *l = malloc(nl * 8), *dq = malloc(nq * 8), *dk = malloc(nk * 8);
    double *dv = malloc(nk * 8);
    uint8_t a[24 * 20];
    fm_rng rng;
    fm_rng_seed(&rng, 5);
    for (size_t e = 0; e < nq; e++)
        q[e] = (float)fm_rng_normal(&rng), d[e] = (float)fm_rng_normal(&rng);
    for (size_t e = 0; e < nk; e++)
        k[e] = (float)fm_rng_normal(&rng), v[e] = (float)fm_rng_normal(&rng);
    for (int i = 0; i < 24; i++)
        for (int j = 0; j < 20; j++) a[i * 20 + j] = (i + j) % 3 == 0; /* diagonal stripes */
    fm_tensors t = {q, k, v, d, o, l, dq, dk, dv};
    assert_int_equal(fm_rowsplit_forward(FM_IMPL_CPU, &p, a, 1, &t), FM_OK);
    assert_int_equal(fm_rowsplit_backward(FM_IMPL_CPU, &p, a, 1, &t), FM_OK);
    fm_tensors ref = {.q = q, .k = k, .v = v, .dout = d};
    fm_tensors cand = {.out = o, .lse = l, .dq = dq, .dk = dk, .dv = dv};
    fm_check_options opt = fm_check_options_default(FM_FLOAT32);
    fm_check_report rep;
    assert_int_equal(fm_check_dense(&p, a, 1, &ref, &cand, &opt, &rep), FM_OK);
    assert_true(rep.pass);
    dk[3 * 8 + 2] += 0.01; /* key row 3, d = 2 */
    assert_int_equal(fm_check_dense(&p, a, 1, &ref, &cand, &opt, &rep), FM_OK);
    assert_false(rep.pass);
    assert_false(rep.tensor[FM_CHECK_DK].pass);
    printf("planted error: %s\n", rep.tensor[FM_CHECK_DK].why);
    assert_non_null(strstr(rep.tensor[FM_CHECK_DK].why, "j=3, d=2"));
    free(q), free(k), free(v), free(d), free(o), free(l), free(dq), free(dk), free(dv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dense_check_catches_planted_error),
        fm_property_unit_test(dense_check_matches_oracle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
