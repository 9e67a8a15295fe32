/* tests/cpu/test_cpu_exp.c — the error bound of the CPU layer's fast 2^x (cpu/exp_fast.h):
 * relative error <= 2e-7 against exp2 in double over [-126, 64] (dense sweep plus every float
 * near the points where the integer part switches), exact 0 at and below -127 and for -inf, exactly
 * 1 at 0, monotone over a sweep. Layer: tests, on a private header of cpu/.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "exp_fast.h"

#define FM_EXP2_BOUND 2e-7

static double rel_err(float x)
{
    double want = exp2((double)x);
    return fabs((double)fm_exp2f_fast(x) - want) / want;
}

static void test_exp2_relative_error_bound(void **state)
{
    (void)state;
    double worst = 0.0;
    float worst_x = 0.0f;
    for (double x = -126.0; x <= 64.0; x += 1.0 / 4096.0 + 1e-9) { /* steps hit odd fractions */
        double e = rel_err((float)x);
        if (e > worst) worst = e, worst_x = (float)x;
    }
    /* Every float within 1e-4 of the points where n = round(x) switches (f = +-0.5), where
     * the polynomial is at the ends of its range. */
    const float switches[] = {-100.5f, -2.5f, -1.5f, -0.5f, 0.5f, 1.5f, 20.5f};
    for (size_t s = 0; s < sizeof switches / sizeof switches[0]; s++)
        for (float x = switches[s] - 1e-4f; x <= switches[s] + 1e-4f; x = nextafterf(x, 1e9f)) {
            double e = rel_err(x);
            if (e > worst) worst = e, worst_x = x;
        }
    printf("fm_exp2f_fast: max relative error %.3g at x = %.9g (bound %.1g)\n", worst,
           (double)worst_x, FM_EXP2_BOUND);
    assert_true(worst <= FM_EXP2_BOUND);
}

static void test_exp2_special_values(void **state)
{
    (void)state;
    assert_true(fm_exp2f_fast(-INFINITY) == 0.0f);
    assert_true(fm_exp2f_fast(-127.0f) == 0.0f);
    assert_true(fm_exp2f_fast(-1000.0f) == 0.0f);
    assert_true(fm_exp2f_fast(0.0f) == 1.0f);
    assert_true(fm_exp2f_fast(1.0f) == 2.0f);
    assert_true(fm_exp2f_fast(-1.0f) == 0.5f);
    assert_true(isfinite(fm_exp2f_fast(1000.0f)));
}

static void test_exp2_monotone(void **state)
{
    (void)state;
    float prev = 0.0f;
    for (float x = -130.0f; x <= 30.0f; x += 0.001f) {
        float y = fm_exp2f_fast(x);
        assert_true(y >= prev);
        prev = y;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp2_relative_error_bound),
        cmocka_unit_test(test_exp2_special_values),
        cmocka_unit_test(test_exp2_monotone),
    };
    return cmocka_run_group_tests_name("cpu_exp", tests, NULL, NULL);
}
