/* api/cpu_bridge.c — the cpu layer computes in float32: the API's float64 host tensors are
 * converted in (core/tensors.c), the layer runs on either mask form (the column form or Binary
 * Block Masking), and the results are converted back. Inputs were validated by the caller
 * (api/dispatch.c, api/any_mask.c). Layer: api <- cpu <- masks <- core.
 */
#include <stdlib.h>

#include "api_internal.h"
#include "flashmask.h"
#include "fm_internal.h"

fm_status fm_api_cpu(int backward, const fm_problem *p, const fm_mask *columns, const fm_bbm *bbm,
                     fm_tensors *t)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p), nl = fm_problem_lse_elems(p);
    float *q = fm_to_float(t->q, nq, "cpu q"), *k = fm_to_float(t->k, nkv, "cpu k");
    float *v = fm_to_float(t->v, nkv, "cpu v");
    float *o = backward ? fm_to_float(t->out, nq, "cpu out")
                        : fm_alloc(nq, sizeof(float), "cpu out");
    float *l = backward ? fm_to_float(t->lse, nl, "cpu lse")
                        : fm_alloc(nl, sizeof(float), "cpu lse");
    float *d = backward ? fm_to_float(t->dout, nq, "cpu dout") : NULL;
    float *dq = backward ? fm_alloc(nq, sizeof(float), "cpu dq") : NULL;
    float *dk = backward ? fm_alloc(nkv, sizeof(float), "cpu dk") : NULL;
    float *dv = backward ? fm_alloc(nkv, sizeof(float), "cpu dv") : NULL;
    fm_status st = FM_ERR_NOMEM;
    if (q && k && v && o && l && (!backward || (d && dq && dk && dv))) {
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
