/* core/tensors.c — the tensor bundle's checks and the float32 conversions: what the API layer
 * (api/dispatch.c, api/any_mask.c) does to every call before handing it to an implementation.
 * Needs only the problem's sizes. Layer: core.
 */
#include <math.h>
#include <stdlib.h>

#include "fm_internal.h"

/* NaN anywhere, or +-Inf unless `allow_neg_inf` and the value is -inf (lse of masked rows). */
static fm_status check_finite(const char *name, const double *x, size_t n, int allow_neg_inf)
{
    if (!x) return fm_fail(FM_ERR_INVALID, "tensor %s: NULL pointer", name);
    for (size_t i = 0; i < n; i++) {
        if (isfinite(x[i])) continue;
        if (allow_neg_inf && isinf(x[i]) && x[i] < 0) continue;
        return fm_fail(FM_ERR_NONFINITE, "tensor %s: element %zu is %g", name, i, x[i]);
    }
    return FM_OK;
}

fm_status fm_check_tensors(const fm_problem *p, const fm_tensors *t, int backward)
{
    fm_status st;
    if (!t) return fm_fail(FM_ERR_INVALID, "tensors: NULL bundle");
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    if ((st = check_finite("q", t->q, nq, 0)) != FM_OK) return st;
    if ((st = check_finite("k", t->k, nkv, 0)) != FM_OK) return st;
    if ((st = check_finite("v", t->v, nkv, 0)) != FM_OK) return st;
    if (!backward) {
        if (!t->out || !t->lse) return fm_fail(FM_ERR_INVALID, "tensors: NULL out or lse");
        return FM_OK;
    }
    if ((st = check_finite("dout", t->dout, nq, 0)) != FM_OK) return st;
    if ((st = check_finite("out", t->out, nq, 0)) != FM_OK) return st;
    if ((st = check_finite("lse", t->lse, fm_problem_lse_elems(p), 1)) != FM_OK) return st;
    if (!t->dq || !t->dk || !t->dv) return fm_fail(FM_ERR_INVALID, "tensors: NULL dq, dk or dv");
    return FM_OK;
}

float *fm_to_float(const double *x, size_t n, const char *what)
{
    float *y = fm_alloc(n, sizeof(float), what);
    if (y)
        for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

void fm_to_double(double *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = (double)x[i];
}
