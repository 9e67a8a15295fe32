/* api/any_mask.c — fm_forward / fm_backward over either mask form (flashmask/bbm.h's
 * fm_any_mask): the column form goes to fm_forward (api/dispatch.c) unchanged; the BBM form is
 * validated here (problem against mask, tensors) and goes to the dense oracle (reference), the
 * CPU layer (float64 <-> float32 around it, api/cpu_bridge.c) or, on cuda, row splitting
 * (sparse/rowsplit.c) of its dense form.
 * Layer: api <- reference, cpu, sparse <- masks <- core.
 */
#include <stdlib.h>

#include "../sparse/sparse_run.h"
#include "flashmask.h"
#include "api_internal.h"
#include "fm_internal.h"

static fm_status check_bbm_inputs(const fm_problem *p, const fm_bbm *m, const fm_tensors *t,
                                  int backward)
{
    fm_status st = fm_bbm_check_problem(p, m);
    return st != FM_OK ? st : fm_check_tensors(p, t, backward); /* fm_forward's refusals */
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
    case FM_IMPL_CPU: return fm_api_cpu(backward, p, NULL, &mask->bbm, t);
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
