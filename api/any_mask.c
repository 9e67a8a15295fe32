/* api/any_mask.c — fm_forward / fm_backward over either mask form (flashmask/bbm.h's
 * fm_any_mask): the column form goes to fm_forward (api/dispatch.c) unchanged; the BBM form is
 * validated here (problem against mask, tensors) and goes to the dense oracle (reference), the
 * CPU layer's BBM kernels (float64 <-> float32 around them) or, on cuda, row splitting
 * (sparse/rowsplit.c) of its dense form.
 * Layer: api <- reference, cpu, sparse <- masks <- core.
 */
#include <stdlib.h>

#include "../sparse/sparse_run.h"
#include "flashmask.h"
#include "fm_internal.h"

static fm_status check_bbm_inputs(const fm_problem *p, const fm_bbm *m, const fm_tensors *t,
                                  int backward)
{
    fm_status st = fm_bbm_check_problem(p, m);
    return st != FM_OK ? st : fm_check_tensors(p, t, backward); /* fm_forward's refusals */
}

static fm_status cpu_bbm(int backward, const fm_problem *p, const fm_bbm *m, fm_tensors *t)
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
            st = fm_cpu_forward_bbm(p, m, q, k, v, o, l, NULL);
            if (st == FM_OK) fm_to_double(t->out, o, nq), fm_to_double(t->lse, l, nl);
        } else {
            st = fm_cpu_backward_bbm(p, m, q, k, v, o, l, d, dq, dk, dv, NULL);
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

static fm_status run_any(int backward, fm_impl impl, const fm_problem *p,
                         const fm_any_mask *mask, fm_tensors *t);

static fm_status attend_any(fm_impl impl, int backward, const fm_problem *p,
                            const fm_any_mask *mask, fm_tensors *t)
{
    return run_any(backward, impl, p, mask, t);
}

/* The CUDA kernels take the column form only: run a BBM mask there by row splitting its
 * dense form (sparse/rowsplit.c), blocks of rows over which it is column-wise; each block comes
 * back here in the column form. */
static fm_status cuda_bbm(int backward, const fm_problem *p, const fm_bbm *m, fm_tensors *t)
{
    fm_status st = fm_impl_available(FM_IMPL_CUDA);
    if (st != FM_OK) return st;
    size_t n = (size_t)(m->batch * m->heads) * (size_t)m->seqlen_q * (size_t)m->seqlen_k;
    uint8_t *dense = fm_alloc(n, 1, "cuda bbm dense mask");
    if (!dense) return FM_ERR_NOMEM;
    st = fm_bbm_to_dense(m, dense);
    if (st == FM_OK)
        st = fm_rowsplit_run(&(const fm_attend){.run = attend_any, .impl = FM_IMPL_CUDA},
                             backward, p, dense, m->heads, t);
    free(dense);
    return st;
}

static fm_status run_any(int backward, fm_impl impl, const fm_problem *p,
                         const fm_any_mask *mask, fm_tensors *t)
{
    fm_clear_error();
    if (!mask) return fm_fail(FM_ERR_INVALID, "mask: NULL");
    if (mask->form == FM_FORM_COLUMNS)
        return backward ? fm_backward(impl, p, &mask->columns, t)
                        : fm_forward(impl, p, &mask->columns, t);
    if (mask->form != FM_FORM_BBM)
        return fm_fail(FM_ERR_INVALID, "mask: unknown form %d", (int)mask->form);
    fm_status st = check_bbm_inputs(p, &mask->bbm, t, backward);
    if (st != FM_OK) return st;
    switch (impl) {
    case FM_IMPL_REFERENCE:
        return backward ? fm_ref_backward_bbm(p, &mask->bbm, t->q, t->k, t->v, t->out, t->lse,
                                              t->dout, t->dq, t->dk, t->dv)
                        : fm_ref_forward_bbm(p, &mask->bbm, t->q, t->k, t->v, t->out, t->lse);
    case FM_IMPL_CPU: return cpu_bbm(backward, p, &mask->bbm, t);
    case FM_IMPL_CUDA: return cuda_bbm(backward, p, &mask->bbm, t);
    default: return fm_fail(FM_ERR_INVALID, "unknown implementation %d", (int)impl);
    }
}

fm_status fm_forward_any(fm_impl impl, const fm_problem *p, const fm_any_mask *mask,
                         fm_tensors *t)
{
    return run_any(0, impl, p, mask, t);
}

fm_status fm_backward_any(fm_impl impl, const fm_problem *p, const fm_any_mask *mask,
                          fm_tensors *t)
{
    return run_any(1, impl, p, mask, t);
}
