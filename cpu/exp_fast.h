/* cpu/exp_fast.h — a fast, accurate, vectorisable 2^x for the CPU layer's softmax.
 * Layer: cpu (private header). The tiles keep scores in the base-2 domain (the sgemm that makes
 * them multiplies by scale * log2(e)), so softmax needs exp2, not exp.
 *
 * Method: x = n + f with n = round(x) (the 1.5 * 2^23 trick: pure float arithmetic, so loops
 * vectorise even without SSE4.1 rounding instructions) and f in [-0.5, 0.5]; 2^f by the degree-7
 * Taylor polynomial of e^(f ln 2) (truncation error at most (0.5 ln 2)^8 / 8! = 5.16e-9 times
 * e^(0.5 ln 2) = 1.41, so below 7.3e-9, far below float epsilon); 2^n by writing n + 127 into
 * the exponent bits.
 *
 * Error bound (tested in tests/cpu/test_cpu_exp.c against exp2 in double over x in [-126, 64]):
 * relative error <= 2e-7 (measured maximum 9.5e-8, below one unit in the last place). Inputs
 * that round to n <= -127, i.e. below -126.5 (including -inf), give exactly 0; inputs in
 * [-126.5, -126) round to n = -126 and give the subnormal p * 2^-126 (fm_exp2f_fast(-126.4) =
 * 8.9e-39, as exp2 gives, unless the compiler flushes subnormals); inputs above 127 saturate at
 * 2^127 * 2^f. NaN in gives garbage out: callers never pass NaN
 * (masked scores are -inf).
 * Vectorising: GCC jump-threads the clamps and, with trapping math on, can then if-convert the
 * loop only with AVX-512 masking; row_kernels.c (the only user in cpu/) is compiled with
 * -fno-trapping-math, which lets SSE2 and AVX2 vectorise it too.
 */
#ifndef FM_CPU_EXP_FAST_H
#define FM_CPU_EXP_FAST_H

#include <stdint.h>
#include <string.h>

static inline float fm_exp2f_fast(float x)
{
    /* Clamp: below -127 the exponent field would go negative; -127 maps to a zero scale. */
    x = x < -127.0f ? -127.0f : x;
    x = x > 127.0f ? 127.0f : x;
    /* Round to nearest integer: adding 1.5 * 2^23 pushes the fraction bits out of the float. */
    const float shifter = 12582912.0f;
    float t = x + shifter;
    float n = t - shifter;
    float f = x - n; /* in [-0.5, 0.5] */
    int32_t t_bits, s_bits;
    memcpy(&t_bits, &t, sizeof t_bits);
    const float shifter_copy = shifter;
    memcpy(&s_bits, &shifter_copy, sizeof s_bits);
    int32_t ni = t_bits - s_bits; /* the integer n, exactly */
    /* 2^f = e^(f ln2): Horner on c_k = ln2^k / k!. */
    float p = 1.5252733804059841e-05f;   /* ln2^7 / 7! */
    p = p * f + 1.5403530393381608e-04f; /* ln2^6 / 6! */
    p = p * f + 1.3333558146428443e-03f; /* ln2^5 / 5! */
    p = p * f + 9.6181291076284772e-03f; /* ln2^4 / 4! */
    p = p * f + 5.5504108664821580e-02f; /* ln2^3 / 3! */
    p = p * f + 2.4022650695910071e-01f; /* ln2^2 / 2! */
    p = p * f + 6.9314718055994531e-01f; /* ln2 */
    p = p * f + 1.0f;
    /* 2^n with n in [-127, 127]: biased exponent n + 127 in bits 23..30; n = -127 gives +0.
     * Shifted as unsigned: a NaN x escapes the clamps above and gives any ni (then p is NaN,
     * and so is the result), and a signed shift of a negative value would be undefined. */
    uint32_t scale_bits = (uint32_t)(ni + 127) << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof scale);
    return p * scale;
}

#endif
