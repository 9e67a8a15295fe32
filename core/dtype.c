/* core/dtype.c — element types: names, exact rounding from float64 to float32/float16/bfloat16
 * (round to nearest, ties to even, no double rounding) and the 16-bit encodings. The oracle's
 * "naive same-precision" emulation and every dtype conversion go through here. */
#include <math.h>
#include <string.h>

#include "fm_internal.h"

static const char *const dtype_names[] = {"float64", "float32", "float16", "bfloat16"};

const char *fm_dtype_name(fm_dtype dtype)
{
    if ((unsigned)dtype > FM_BFLOAT16) return "unknown";
    return dtype_names[dtype];
}

fm_status fm_dtype_from_name(const char *name, fm_dtype *out)
{
    for (int i = 0; i <= FM_BFLOAT16; i++) {
        if (name && strcmp(name, dtype_names[i]) == 0) {
            *out = (fm_dtype)i;
            return FM_OK;
        }
    }
    return fm_fail(FM_ERR_INVALID,
                   "unknown dtype '%s' (expected float64, float32, float16 or bfloat16)",
                   name ? name : "(null)");
}

/* A binary floating-point format with `precision` significant bits (hidden bit included),
 * smallest normal exponent `emin` and largest finite value `max_finite`. */
static double round_to_format(double x, int precision, int emin, double max_finite)
{
    if (!isfinite(x) || x == 0.0) return x;
    int e = ilogb(x);
    if (e < emin) e = emin; /* subnormal range: fixed quantum */
    double quantum = ldexp(1.0, e - precision + 1);
    double r = nearbyint(x / quantum) * quantum; /* default rounding mode: ties to even */
    if (fabs(r) > max_finite) return copysign(INFINITY, x);
    return r;
}

double fm_round_to_dtype(double x, fm_dtype dtype)
{
    switch (dtype) {
    case FM_FLOAT64: return x;
    case FM_FLOAT32: return (double)(float)x;
    case FM_FLOAT16: return round_to_format(x, 11, -14, 65504.0);
    case FM_BFLOAT16: return round_to_format(x, 8, -126, 0x1.fep127);
    }
    return x;
}

/* Encode a value already representable in the format (sign, biased exponent, mantissa). */
static uint16_t encode16(double r, int mant_bits, int bias, int emin)
{
    uint16_t sign = signbit(r) ? 0x8000u : 0u;
    int exp_field_max = (1 << (15 - mant_bits)) - 1;
    if (isnan(r)) return (uint16_t)(sign | (exp_field_max << mant_bits) | (1u << (mant_bits - 1)));
    if (isinf(r)) return (uint16_t)(sign | (exp_field_max << mant_bits));
    double a = fabs(r);
    if (a == 0.0) return sign;
    int e = ilogb(a);
    if (e < emin) /* subnormal: mantissa = a / 2^(emin - mant_bits) */
        return (uint16_t)(sign | (uint16_t)ldexp(a, mant_bits - emin));
    uint16_t mant = (uint16_t)(ldexp(a, mant_bits - e) - ldexp(1.0, mant_bits));
    return (uint16_t)(sign | ((e + bias) << mant_bits) | mant);
}

static float decode16(uint16_t h, int mant_bits, int bias, int emin)
{
    int exp_field_max = (1 << (15 - mant_bits)) - 1;
    int sign = h >> 15;
    int ef = (h >> mant_bits) & exp_field_max;
    int mant = h & ((1 << mant_bits) - 1);
    double v;
    if (ef == exp_field_max) v = mant ? NAN : INFINITY;
    else if (ef == 0) v = ldexp((double)mant, emin - mant_bits);
    else v = ldexp(1.0 + ldexp((double)mant, -mant_bits), ef - bias);
    return (float)(sign ? -v : v);
}

/* float16: 10 mantissa bits, bias 15, emin -14; bfloat16: 7 mantissa bits, bias 127, emin -126 */
uint16_t fm_float_to_half(float x)
{
    return encode16(fm_round_to_dtype(x, FM_FLOAT16), 10, 15, -14);
}
float fm_half_to_float(uint16_t h) { return decode16(h, 10, 15, -14); }
uint16_t fm_float_to_bf16(float x)
{
    return encode16(fm_round_to_dtype(x, FM_BFLOAT16), 7, 127, -126);
}
float fm_bf16_to_float(uint16_t b) { return decode16(b, 7, 127, -126); }
