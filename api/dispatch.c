/* api/dispatch.c — one calling shape for every implementation: fm_forward/fm_backward validate
 * the problem, the mask and the finiteness of the inputs once, here at the API boundary, then hand
 * float64 host tensors to the chosen layer (the cpu layer through api/cpu_bridge.c; the cuda layer
 * converts itself). The layers below receive validated inputs.
 * Layer: api (the top of the library) <- reference, cpu, cuda <- masks <- core.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "api_internal.h"
#include "fm_internal.h"

static const char *const impl_names[FM_IMPL_COUNT] = {"reference", "cpu", "cuda",
                                                      "reference-cuda"};

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
    return fm_fail(FM_ERR_INVALID, "unknown implementation '%s' (expected reference, cpu, cuda or "
                   "reference-cuda)",
                   name ? name : "(null)");
}

fm_status fm_impl_available(fm_impl impl)
{
    switch (impl) {
    case FM_IMPL_REFERENCE:
    case FM_IMPL_CPU: return FM_OK;
    case FM_IMPL_CUDA:
    case FM_IMPL_REFERENCE_CUDA: return fm_cuda_available();
    default: return fm_fail(FM_ERR_INVALID, "unknown implementation %d", (int)impl);
    }
}

fm_dtype fm_impl_dtype(fm_impl impl, const fm_problem *p)
{
    switch (impl) {
    case FM_IMPL_REFERENCE:
    case FM_IMPL_REFERENCE_CUDA: return FM_FLOAT64;
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

static double max_abs(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* Finite inputs can still overflow an implementation's arithmetic (float32 products of 3e38,
 * exp of scores near 1e60): its results then hold inf or NaN, which must never be returned as
 * a success. Names the first bad result and the input largest in magnitude. */
fm_status fm_results_check_finite(fm_impl impl, const fm_problem *p, const fm_tensors *t,
                                  int backward)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const char *names[3] = {"out", "lse", NULL};
    const double *xs[3] = {t->out, t->lse, NULL};
    size_t ns[3] = {nq, fm_problem_lse_elems(p), 0};
    if (backward) {
        names[0] = "dq", names[1] = "dk", names[2] = "dv";
        xs[0] = t->dq, xs[1] = t->dk, xs[2] = t->dv;
        ns[0] = nq, ns[1] = nkv, ns[2] = nkv;
    }
    for (int r = 0; r < 3 && xs[r]; r++)
        for (size_t i = 0; i < ns[r]; i++) {
            double x = xs[r][i];
            if (isfinite(x) || (!backward && r == 1 && x == -INFINITY)) continue;
            const char *in[4] = {"q", "k", "v", "dout"};
            const double *ix[4] = {t->q, t->k, t->v, t->dout};
            size_t in_n[4] = {nq, nkv, nkv, nq};
            int worst = 0;
            double worst_v = -1;
            for (int j = 0; j < (backward ? 4 : 3); j++) {
                double m = max_abs(ix[j], in_n[j]);
                if (m > worst_v) worst_v = m, worst = j;
            }
            return fm_fail(FM_ERR_OVERFLOW, "%s %s: result %s[%zu] = %g from finite inputs: %s "
                           "arithmetic overflowed; input %s (max |%s| = %g) is too large in "
                           "magnitude for it", fm_impl_name(impl),
                           backward ? "backward" : "forward", names[r], i, x,
                           fm_dtype_name(fm_impl_dtype(impl, p)), in[worst], in[worst], worst_v);
        }
    return FM_OK;
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
        st = backward ? fm_ref_backward(p, mask, t->q, t->k, t->v, t->out, t->lse, t->dout, t->dq,
                                        t->dk, t->dv)
                      : fm_ref_forward(p, mask, t->q, t->k, t->v, t->out, t->lse);
        break;
    case FM_IMPL_CPU: st = fm_api_cpu(backward, p, mask, NULL, t); break; /* api/cpu_bridge.c */
    case FM_IMPL_CUDA:
        st = backward ? fm_cuda_backward_host(p, mask, t, opt)
                      : fm_cuda_forward_host(p, mask, t, opt);
        break;
    case FM_IMPL_REFERENCE_CUDA:
        st = backward ? fm_cuda_reference_backward_host(p, mask, t)
                      : fm_cuda_reference_forward_host(p, mask, t);
        break;
    default: return fm_fail(FM_ERR_INVALID, "unknown implementation %d", (int)impl);
    }
    return st == FM_OK ? fm_results_check_finite(impl, p, t, backward) : st;
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
