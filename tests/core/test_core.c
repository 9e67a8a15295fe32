/* tests/core/test_core.c — the core layer: exact dtype rounding and 16-bit encodings, the seeded
 * generator's determinism and range, problem validation messages, status exit codes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "expect_fail.h"

#include "flashmask.h"
#include "runs.h"

static void test_round_float16(void **state)
{
    (void)state;
    assert_true(fm_round_to_dtype(1.0, FM_FLOAT16) == 1.0);
    /* 1 + 2^-11 is a tie between 1 and 1 + 2^-10: ties to even -> 1 */
    assert_true(fm_round_to_dtype(1.0 + 0x1p-11, FM_FLOAT16) == 1.0);
    /* 1 + 3*2^-11 ties between 1+2^-10 (odd) and 1+2^-9 (even) -> 1+2^-9 */
    assert_true(fm_round_to_dtype(1.0 + 3 * 0x1p-11, FM_FLOAT16) == 1.0 + 0x1p-9);
    /* just above the tie rounds up: no double rounding through float */
    assert_true(fm_round_to_dtype(1.0 + 0x1p-11 + 0x1p-40, FM_FLOAT16) == 1.0 + 0x1p-10);
    assert_true(fm_round_to_dtype(65504.0, FM_FLOAT16) == 65504.0);
    assert_true(isinf(fm_round_to_dtype(65520.0, FM_FLOAT16)));  /* tie at max+half ulp -> inf */
    assert_true(fm_round_to_dtype(65519.0, FM_FLOAT16) == 65504.0);
    /* smallest subnormal 2^-24; half of it ties to 0 */
    assert_true(fm_round_to_dtype(0x1p-24, FM_FLOAT16) == 0x1p-24);
    assert_true(fm_round_to_dtype(0x1p-25, FM_FLOAT16) == 0.0);
    assert_true(fm_round_to_dtype(-0x1.8p-25, FM_FLOAT16) == -0x1p-24);
}

static void test_round_bfloat16(void **state)
{
    (void)state;
    assert_true(fm_round_to_dtype(1.0 + 0x1p-8, FM_BFLOAT16) == 1.0);            /* tie -> even */
    assert_true(fm_round_to_dtype(1.0 + 0x1p-8 + 0x1p-30, FM_BFLOAT16) == 1.0 + 0x1p-7);
    double big = fm_round_to_dtype(3.0e38, FM_BFLOAT16);
    assert_true(isfinite(big) && fabs(big - 3.0e38) <= 3.0e38 * 0x1p-8);
    assert_true(isinf(fm_round_to_dtype(3.5e38, FM_BFLOAT16)));
    assert_true(fm_round_to_dtype(0x1p-133, FM_BFLOAT16) == 0x1p-133);           /* subnormal */
}

/* Every 16-bit pattern that is not NaN decodes and re-encodes to itself. */
static void test_encodings_round_trip(void **state)
{
    (void)state;
    for (uint32_t bits = 0; bits < 65536; bits++) {
        float h = fm_half_to_float((uint16_t)bits);
        if (!isnan(h)) assert_int_equal(fm_float_to_half(h), bits);
        float b = fm_bf16_to_float((uint16_t)bits);
        if (!isnan(b)) assert_int_equal(fm_float_to_bf16(b), bits);
    }
    assert_int_equal(fm_float_to_half(1.0f), 0x3c00);
    assert_int_equal(fm_float_to_bf16(1.0f), 0x3f80);
    assert_int_equal(fm_float_to_half(-2.0f), 0xc000);
}

static void test_rng(void **state)
{
    (void)state;
    fm_rng a, b;
    fm_rng_seed(&a, 42);
    fm_rng_seed(&b, 42);
    for (int i = 0; i < 1000; i++) assert_true(fm_rng_u64(&a) == fm_rng_u64(&b));
    fm_rng_seed(&b, 43);
    assert_true(fm_rng_u64(&a) != fm_rng_u64(&b));
    int seen[7] = {0};
    double sum = 0, sum2 = 0;
    for (int i = 0; i < 20000; i++) {
        int64_t r = fm_rng_range(&a, -3, 3);
        assert_true(r >= -3 && r <= 3);
        seen[r + 3] = 1;
        double u = fm_rng_uniform(&a);
        assert_true(u >= 0.0 && u < 1.0);
        double n = fm_rng_normal(&a);
        sum += n, sum2 += n * n;
    }
    for (int i = 0; i < 7; i++) assert_true(seen[i]);
    assert_true(fabs(sum / 20000) < 0.05);
    assert_true(fabs(sum2 / 20000 - 1.0) < 0.05);
}

static void test_problem_validation(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(2, 2, 5, 7, FM_CAUSAL_NONE);
    fm_problem p = fm_test_problem(2, 4, 2, 5, 7, 8);
    assert_true(fabs(p.scale - 1.0 / sqrt(8.0)) < 1e-15);
    assert_int_equal(fm_problem_validate(&p, &m), FM_OK);

    p.kv_heads = 3;
    EXPECT_FAIL(fm_problem_validate(&p, &m), FM_ERR_INVALID, "kv_heads = 3");
    p.kv_heads = 2;

    p.head_dim = 0;
    EXPECT_FAIL(fm_problem_validate(&p, &m), FM_ERR_INVALID, "head_dim");
    p.head_dim = 8;

    p.seqlen_k = 6;
    EXPECT_FAIL(fm_problem_validate(&p, &m), FM_ERR_INVALID, "Sq x Sk");
    p.seqlen_k = 7;

    p.q_heads = 3, p.kv_heads = 1; /* mask heads 2 do not divide 3 */
    EXPECT_FAIL(fm_problem_validate(&p, &m), FM_ERR_INVALID, "mask heads");
    p.q_heads = 4, p.kv_heads = 2;

    p.scale = NAN;
    assert_int_equal(fm_problem_validate(&p, &m), FM_ERR_INVALID);
    p.scale = 0.5;

    p.batch = INT64_C(1) << 40, p.head_dim = INT64_C(1) << 30;
    assert_int_equal(fm_problem_validate(&p, &m), FM_ERR_OVERFLOW);
    fm_mask_free(&m);
}

static void test_status_and_names(void **state)
{
    (void)state;
    assert_int_equal(fm_status_exit_code(FM_OK), 0);
    assert_int_equal(fm_status_exit_code(FM_ERR_FORMAT), 2);
    assert_int_equal(fm_status_exit_code(FM_ERR_UNAVAILABLE), 3);
    assert_int_equal(fm_status_exit_code(FM_ERR_INTERNAL), 1);
    fm_dtype d;
    assert_int_equal(fm_dtype_from_name("bfloat16", &d), FM_OK);
    assert_int_equal(d, FM_BFLOAT16);
    EXPECT_FAIL(fm_dtype_from_name("half", &d), FM_ERR_INVALID, "half");
    fm_impl impl;
    assert_int_equal(fm_impl_from_name("cpu", &impl), FM_OK);
    assert_int_equal(impl, FM_IMPL_CPU);
    assert_int_equal(fm_impl_from_name("tpu", &impl), FM_ERR_INVALID);
    assert_int_equal(fm_impl_available(FM_IMPL_REFERENCE), FM_OK);
}

/* fm_forward refuses NaN inputs, naming the tensor and the element. */
static void test_dispatch_refuses_nan(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(1, 1, 2, 2, FM_CAUSAL_NONE);
    fm_problem p = fm_test_problem(1, 1, 1, 2, 2, 2);
    double q[4] = {0, 1, 2, 3}, k[4] = {0, 1, NAN, 3}, v[4] = {0};
    double out[4], lse[2];
    fm_tensors t = {.q = q, .k = k, .v = v, .out = out, .lse = lse};
    EXPECT_FAIL(fm_forward(FM_IMPL_REFERENCE, &p, &m, &t), FM_ERR_NONFINITE, "tensor k: element 2");
    fm_mask_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_float16),
        cmocka_unit_test(test_round_bfloat16),
        cmocka_unit_test(test_encodings_round_trip),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_problem_validation),
        cmocka_unit_test(test_status_and_names),
        cmocka_unit_test(test_dispatch_refuses_nan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
