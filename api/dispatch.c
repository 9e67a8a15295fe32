/* api/dispatch.c — one calling shape for every implementation: fm_forward/fm_backward validate
 * the problem, the mask and the finiteness of the inputs once, here at the API boundary, then hand
 * float64 host tensors to the chosen layer (converting to float32 for the cpu layer; the cuda layer
 * converts itself). The layers below receive validated inputs.
 * Layer: api (the top of the library) <- reference, cpu, cuda <- masks <- core.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "fm_internal.h"

static const char *const impl_names[FM_IMPL_COUNT] = {"reference", "cpu", "cuda"};

const char *fm_impl_name(fm_impl impl)
{
    return (unsigned)impl < FM_IMPL_COUNT ? impl_names[impl] : "unknown";
}

fm_status fm_impl_from_name(const char *name, fm_impl *out)
{
    for (int i = 0; i < FM_IMPL_COUNT; i++) {
        if (name && strcmp(name, impl_names[i]) == 0) {
            *out = (fm_impl)i;
            return FM_OK;
        }
    }
    return fm_fail(FM_ERR_INVALID, "unknown implementation '%s' (expected reference, cpu or cuda)",
                   name ? name : "(null)");
}

fm_status fm_impl_available(fm_impl impl)
{
    switch (impl) {
    case FM_IMPL_REFERENCE:
    case FM_IMPL_CPU: return FM_OK;
    case FM_IMPL_CUDA: return fm_cuda_available();
    default: return fm_fail(FM_ERR_INVALID, "unknown implementation %d", (int)impl);
    }
}

fm_dtype fm_impl_dtype(fm_impl impl, const fm_problem *p)
{
    switch (impl) {
    case FM_IMPL_REFERENCE: return FM_FLOAT64;
    case FM_IMPL_CPU: return FM_FLOAT32;
    default: return p ? p->dtype : FM_FLOAT16; /* no problem: cuda's default precision */
    }
}

static fm_status check_inputs(const fm_problem *p, const fm_mask *mask, const fm_tensors *t,
                              int backward)
{
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    return st != FM_OK ? st : fm_check_tensors(p, t, backward);
}

/* ---- the cpu layer works in float32: convert in, run, convert out (core/tensors.c) ---- */

static fm_status cpu_forward(const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p), nl = fm_problem_lse_elems(p);
    fm_status st = FM_ERR_NOMEM;
    float *q = fm_to_float(t->q, nq, "cpu q"), *k = fm_to_float(t->k, nkv, "cpu k");
    float *v = fm_to_float(t->v, nkv, "cpu v");
    float *o = fm_alloc(nq, sizeof(float), "cpu out"), *l = fm_alloc(nl, sizeof(float), "cpu lse");
    if (q && k && v && o && l) {
        st = fm_cpu_forward(p, mask, q, k, v, o, l, NULL);
        if (st == FM_OK) {
            fm_to_double(t->out, o, nq);
            fm_to_double(t->lse, l, nl);
        }
    }
    free(q), free(k), free(v), free(o), free(l);
    return st;
}

static fm_status cpu_backward(const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p), nl = fm_problem_lse_elems(p);
    fm_status st = FM_ERR_NOMEM;
    float *q = fm_to_float(t->q, nq, "cpu q"), *k = fm_to_float(t->k, nkv, "cpu k");
    float *v = fm_to_float(t->v, nkv, "cpu v"), *o = fm_to_float(t->out, nq, "cpu out");
    float *l = fm_to_float(t->lse, nl, "cpu lse"), *d = fm_to_float(t->dout, nq, "cpu dout");
    float *dq = fm_alloc(nq, sizeof(float), "cpu dq"), *dk = fm_alloc(nkv, sizeof(float), "cpu dk");
    float *dv = fm_alloc(nkv, sizeof(float), "cpu dv");
    if (q && k && v && o && l && d && dq && dk && dv) {
        st = fm_cpu_backward(p, mask, q, k, v, o, l, d, dq, dk, dv, NULL);
        if (st == FM_OK) {
            fm_to_double(t->dq, dq, nq);
            fm_to_double(t->dk, dk, nkv);
            fm_to_double(t->dv, dv, nkv);
        }
    }
    free(q), free(k), free(v), free(o), free(l), free(d), free(dq), free(dk), free(dv);
    return st;
}

/* Kernel options choose CUDA kernels; the other implementations have one kernel each. */
static fm_status check_options(fm_impl impl, const fm_kernel_options *opt)
{
    if (impl == FM_IMPL_CUDA || fm_kernel_options_is_default(opt)) return FM_OK;
    char spec[128];
    fm_kernel_options_format(opt, spec, sizeof spec);
    return fm_fail(FM_ERR_INVALID, "kernel options '%s' choose CUDA kernels; implementation %s "
                   "has one kernel (pass NULL or \"auto\")", spec, fm_impl_name(impl));
}

/* Forward (backward = 0) or backward of `impl`, inputs checked here once. */
static fm_status run(int backward, fm_impl impl, const fm_problem *p, const fm_mask *mask,
                     fm_tensors *t, const fm_kernel_options *opt)
{
    fm_status st = check_inputs(p, mask, t, backward);
    if (st == FM_OK) st = check_options(impl, opt);
    if (st != FM_OK) return st;
    switch (impl) {
    case FM_IMPL_REFERENCE:
        return backward ? fm_ref_backward(p, mask, t->q, t->k, t->v, t->out, t->lse, t->dout,
                                          t->dq, t->dk, t->dv)
                        : fm_ref_forward(p, mask, t->q, t->k, t->v, t->out, t->lse);
    case FM_IMPL_CPU: return backward ? cpu_backward(p, mask, t) : cpu_forward(p, mask, t);
    case FM_IMPL_CUDA:
        return backward ? fm_cuda_backward_host(p, mask, t, opt)
                        : fm_cuda_forward_host(p, mask, t, opt);
    default: return fm_fail(FM_ERR_INVALID, "unknown implementation %d", (int)impl);
    }
}

fm_status fm_forward_opts(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                          const fm_kernel_options *opt)
{
    return run(0, impl, p, mask, t, opt);
}

fm_status fm_backward_opts(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                           const fm_kernel_options *opt)
{
    return run(1, impl, p, mask, t, opt);
}

fm_status fm_forward(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    return fm_forward_opts(impl, p, mask, t, NULL);
}

fm_status fm_backward(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    return fm_backward_opts(impl, p, mask, t, NULL);
}
