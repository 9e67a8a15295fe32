/* io/case_tensors.c — the tensor files of a case directory: each read once (io/npy.c), hashed
 * from the bytes read for the case digest (io/npy.c), inputs checked finite and rounded to the
 * case's dtype, expected outputs finite; inputs handed over as float64, or as float32 to an
 * implementation that computes in float32 (fm_case_load_inputs). Used by io/case.c.
 * Layer: io <- core.
 */
#include <math.h>
#include <stdlib.h>

#include "fm_internal.h"
#include "io_internal.h"

/* One input element: finite and already rounded to the case's dtype (docs/spec.md §6). */
static fm_status check_input_value(const char *path, size_t i, double x, fm_dtype dtype)
{
    if (!isfinite(x))
        return fm_fail(FM_ERR_NONFINITE, "%s: element %zu is %g; inputs must be finite", path,
                       i, x);
    if (fm_round_to_dtype(x, dtype) != x)
        return fm_fail(FM_ERR_FORMAT, "%s: element %zu = %.17g is not a %s value; a case "
                       "holds inputs already rounded to its dtype", path, i, x,
                       fm_dtype_name(dtype));
    return FM_OK;
}

/* Inputs must be finite and already rounded to the case's dtype. */
fm_status fm_io_check_input(const char *path, const double *x, size_t n, fm_dtype dtype)
{
    for (size_t i = 0; i < n; i++) {
        const fm_status st = check_input_value(path, i, x[i], dtype);
        if (st != FM_OK) return st;
    }
    return FM_OK;
}

/* Outputs: finite, except lse, which may be -inf (fully masked rows). */
fm_status fm_io_check_output(const char *path, const double *x, size_t n, int is_lse)
{
    for (size_t i = 0; i < n; i++) {
        if (isfinite(x[i]) || (is_lse && isinf(x[i]) && x[i] < 0)) continue;
        return fm_fail(FM_ERR_NONFINITE, "%s: element %zu is %g", path, i, x[i]);
    }
    return FM_OK;
}

/* Inputs given as float32 (fm_case_load_inputs): the same rule and messages, on the float32
 * values widened (exactly) to float64; every finite float is a float32 and a float64 value, so
 * only float16 and bfloat16 cases need the rounding test. */
static fm_status check_input_f32(const char *path, const float *x, size_t n, fm_dtype dtype)
{
    const int exact = dtype == FM_FLOAT32 || dtype == FM_FLOAT64;
    for (size_t i = 0; i < n; i++) {
        if (exact && isfinite(x[i])) continue;
        const fm_status st = check_input_value(path, i, (double)x[i], dtype);
        if (st != FM_OK) return st;
    }
    return FM_OK;
}

/* One input tensor, read once and hashed (hash, hex as read_float_file's), checked finite and
 * rounded to dtype, into *f64 (float64) or, when f32 is non-NULL, *f32 (float32: a float32
 * file is used as read; float64 values, of a float64 case, are rounded to float32 after their
 * check, as an implementation computing in float32 takes them). */
fm_status fm_io_load_input(const char *path, const int64_t shape[4], const char *dims,
                            fm_dtype dtype, fm_sha256 *hash, char hex[65], double **f64,
                            float **f32)
{
    fm_npy a;
    fm_status st = fm_io_read_float_file(path, 4, shape, dims, &a, hash, hex);
    if (st != FM_OK) return st;
    const size_t n = a.count;
    if (!f32 || a.dtype != FM_NPY_F4) {
        double *x = fm_io_npy_to_f64(&a, path);
        fm_npy_free(&a);
        if (!x) return FM_ERR_NOMEM;
        if ((st = fm_io_check_input(path, x, n, dtype)) != FM_OK) {
            free(x);
            return st;
        }
        if (!f32) {
            *f64 = x;
            return FM_OK;
        }
        float *y = fm_alloc(n ? n : 1, sizeof(float), path);
        if (y)
            for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
        free(x);
        *f32 = y;
        return y ? FM_OK : FM_ERR_NOMEM;
    }
    if ((st = check_input_f32(path, a.data, n, dtype)) != FM_OK) {
        fm_npy_free(&a);
        return st;
    }
    *f32 = a.data; /* the array read, as it is */
    return FM_OK;
}
