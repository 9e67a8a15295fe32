/* api/cpu_bridge.c — the cpu layer computes in float32: the API's float64 host tensors are
 * converted in (core/tensors.c), the layer runs on either mask form (the column form or Binary
 * Block Masking), and the results are converted back. Inputs were validated by the caller
 * (api/dispatch.c, api/any_mask.c). Layer: api <- cpu <- masks <- core.
 */
#include <math.h>
#include <stdlib.h>

#include "api_internal.h"
#include "flashmask.h"
#include "fm_internal.h"

/* fm_to_float for the cpu layer's inputs: a finite value beyond float32's range would become
 * +-inf there and NaN in the results; refuse it naming the tensor (status in *st). NULL with
 * *st untouched when an earlier conversion already failed (prev == NULL). */
static float *to_float_in_range(const void *prev, const double *x, size_t n, const char *name,
                                fm_status *st)
{
    if (!prev) return NULL;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i]) && isinf((float)x[i])) {
            *st = fm_fail(FM_ERR_OVERFLOW, "tensor %s: element %zu = %g is outside float32's "
                          "range (the cpu layer computes in float32; the reference in float64)",
                          name, i, x[i]);
            return NULL;
        }
    float *y = fm_to_float(x, n, name);
    if (!y) *st = FM_ERR_NOMEM;
    return y;
}

fm_status fm_api_cpu(int backward, const fm_problem *p, const fm_mask *columns, const fm_bbm *bbm,
                     fm_tensors *t)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p), nl = fm_problem_lse_elems(p);
    fm_status st = FM_OK;
    const void *ok = "";
    float *q = to_float_in_range(ok, t->q, nq, "q", &st);
    float *k = to_float_in_range(q, t->k, nkv, "k", &st);
    float *v = to_float_in_range(k, t->v, nkv, "v", &st);
    float *o = backward ? to_float_in_range(v, t->out, nq, "out", &st)
                        : fm_alloc(nq, sizeof(float), "cpu out");
    float *l = backward ? to_float_in_range(o, t->lse, nl, "lse", &st)
                        : fm_alloc(nl, sizeof(float), "cpu lse");
    float *d = backward ? to_float_in_range(l, t->dout, nq, "dout", &st) : NULL;
    float *dq = backward ? fm_alloc(nq, sizeof(float), "cpu dq") : NULL;
    float *dk = backward ? fm_alloc(nkv, sizeof(float), "cpu dk") : NULL;
    float *dv = backward ? fm_alloc(nkv, sizeof(float), "cpu dv") : NULL;
    if (st == FM_OK && !(q && k && v && o && l && (!backward || (d && dq && dk && dv))))
        st = FM_ERR_NOMEM;
    if (st == FM_OK) {
        if (!backward) {
            st = columns ? fm_cpu_forward(p, columns, q, k, v, o, l, NULL)
                         : fm_cpu_forward_bbm(p, bbm, q, k, v, o, l, NULL);
            if (st == FM_OK) fm_to_double(t->out, o, nq), fm_to_double(t->lse, l, nl);
        } else {
            st = columns ? fm_cpu_backward(p, columns, q, k, v, o, l, d, dq, dk, dv, NULL)
                         : fm_cpu_backward_bbm(p, bbm, q, k, v, o, l, d, dq, dk, dv, NULL);
            if (st == FM_OK) {
                fm_to_double(t->dq, dq, nq);
                fm_to_double(t->dk, dk, nkv);
                fm_to_double(t->dv, dv, nkv);
            }
        }
    }
    free(q), free(k), free(v), free(o), free(l), free(d), free(dq), free(dk), free(dv);
    return st;
}
