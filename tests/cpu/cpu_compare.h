/* tests/cpu/cpu_compare.h — helpers the CPU suites share: run the CPU layer and the float64
 * reference on the same float32-rounded inputs of a random case and measure the error.
 * Layer: tests, above cpu and reference.
 *
 * The error metric (the bound the CPU layer promises, stated in docs/algorithm.md):
 *     rel(T) = max_e |T_cpu[e] - T_ref[e]| / max(max_e |T_ref[e]|, floor)
 * over every element (for LSE: over rows the reference finds finite; rows it finds -inf must be
 * -inf exactly). Bounds: rel <= 1e-5 for O (floor 0: purely relative; an all-zero reference
 * needs an all-zero result) and for LSE with floor 1: LSE = m + log(l) with l >= 1 cancels when
 * the row max m is negative, and its float32 error is absolute, of order 1e-7 (|m| + log l),
 * not relative to a small |LSE| (FM_SEED=1796185540, trial 84: an LSE tensor of largest
 * magnitude about 0.01 with error 2e-7 failed the purely relative 1e-5), rel <= 5e-5 for dQ, dK,
 * dV with floor 1: gradients can
 * cancel to exactly zero (one allowed key: dS = P (dP - Delta) = 0), where float32 leaves
 * ~1e-8, so gradients smaller than 1 in magnitude (inputs are unit normal) are held to the
 * absolute bound 5e-5 instead. A gradient past 5e-5 is then judged by the oracle's float32
 * rule (test_cpu_props.c, oracle_passes): no fixed relative bound holds for sums of cancelling
 * float32 products.
 */
#ifndef FM_TEST_CPU_COMPARE_H
#define FM_TEST_CPU_COMPARE_H

#include <math.h>
#include <stdlib.h>

#include "prop.h"

#define FM_CPU_TOL_FORWARD 1e-5
#define FM_CPU_TOL_BACKWARD 5e-5

/* rel(T) as above; INFINITY if the CPU tensor has a NaN, or the denominator is zero and the CPU
 * tensor differs. Elements where skip_neg_inf is set and ref is -inf are left out. */
static inline double fm_cpu_rel_error(const float *cand, const double *ref, size_t n,
                                      int skip_neg_inf, double floor)
{
    double diff = 0.0, mag = floor;
    for (size_t e = 0; e < n; e++) {
        if (isnan(cand[e])) return INFINITY;
        if (skip_neg_inf && ref[e] == -INFINITY) continue;
        double d = fabs((double)cand[e] - ref[e]);
        if (d > diff) diff = d;
        if (fabs(ref[e]) > mag) mag = fabs(ref[e]);
    }
    if (mag == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
    return diff / mag;
}

/* float32 copy of x, and x itself rounded to float32 in place (so that the reference sees the
 * exact inputs the CPU layer sees). */
static inline float *fm_cpu_round_copy(double *x, size_t n)
{
    float *y = malloc(n * sizeof(float));
    if (!y) return NULL;
    for (size_t e = 0; e < n; e++) {
        y[e] = (float)x[e];
        x[e] = (double)y[e];
    }
    return y;
}

#endif
