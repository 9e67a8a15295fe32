/* core/dispatch.c — one calling shape for every implementation: fm_forward/fm_backward validate
 * the problem, the mask and the finiteness of the inputs, then hand float64 host tensors to the
 * chosen layer (converting to float32 for the cpu layer; the cuda layer converts itself). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
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

static fm_status check_inputs(const fm_problem *p, const fm_mask *mask, const fm_tensors *t,
                              int backward)
{
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    return st != FM_OK ? st : fm_check_tensors(p, t, backward);
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

/* ---- the cpu layer works in float32: convert in, run, convert out ---- */

float *fm_to_float(const double *x, size_t n, const char *what)
{
    float *y = fm_alloc(n, sizeof(float), what);
    if (y)
        for (size_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

/* fm_to_float for the cpu layer's inputs: a finite value beyond float32's range would become
 * +-inf there and NaN in the results; refuse it naming the tensor (status in *st). */
static float *to_float_in_range(const double *x, size_t n, const char *name, fm_status *st)
{
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

static double max_abs(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

/* Finite inputs can still overflow an implementation's arithmetic (float32 products of 3e38,
 * exp of scores near 1e60): its results then hold inf or NaN, which must never be returned as
 * a success. Names the first bad result and the input largest in magnitude. */
static fm_status check_results(fm_impl impl, const fm_problem *p, const fm_tensors *t,
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

void fm_to_double(double *y, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) y[i] = (double)x[i];
}

static fm_status cpu_forward(const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p), nl = fm_problem_lse_elems(p);
    fm_status st = FM_OK;
    float *q = to_float_in_range(t->q, nq, "q", &st);
    float *k = q ? to_float_in_range(t->k, nkv, "k", &st) : NULL;
    float *v = k ? to_float_in_range(t->v, nkv, "v", &st) : NULL;
    float *o = fm_alloc(nq, sizeof(float), "cpu out"), *l = fm_alloc(nl, sizeof(float), "cpu lse");
    if (st == FM_OK && !(o && l)) st = FM_ERR_NOMEM;
    if (st == FM_OK) {
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
    fm_status st = FM_OK;
    float *q = to_float_in_range(t->q, nq, "q", &st);
    float *k = q ? to_float_in_range(t->k, nkv, "k", &st) : NULL;
    float *v = k ? to_float_in_range(t->v, nkv, "v", &st) : NULL;
    float *o = v ? to_float_in_range(t->out, nq, "out", &st) : NULL;
    float *l = o ? to_float_in_range(t->lse, nl, "lse", &st) : NULL;
    float *d = l ? to_float_in_range(t->dout, nq, "dout", &st) : NULL;
    float *dq = fm_alloc(nq, sizeof(float), "cpu dq"), *dk = fm_alloc(nkv, sizeof(float), "cpu dk");
    float *dv = fm_alloc(nkv, sizeof(float), "cpu dv");
    if (st == FM_OK && !(dq && dk && dv)) st = FM_ERR_NOMEM;
    if (st == FM_OK) {
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

fm_status fm_forward(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    fm_status st = check_inputs(p, mask, t, 0);
    if (st != FM_OK) return st;
    switch (impl) {
    case FM_IMPL_REFERENCE: st = fm_ref_forward(p, mask, t->q, t->k, t->v, t->out, t->lse); break;
    case FM_IMPL_CPU: st = cpu_forward(p, mask, t); break;
    case FM_IMPL_CUDA: st = fm_cuda_forward_host(p, mask, t); break;
    case FM_IMPL_REFERENCE_CUDA: st = fm_cuda_reference_forward_host(p, mask, t); break;
    default: return fm_fail(FM_ERR_INVALID, "unknown implementation %d", (int)impl);
    }
    return st == FM_OK ? check_results(impl, p, t, 0) : st;
}

fm_status fm_backward(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    fm_status st = check_inputs(p, mask, t, 1);
    if (st != FM_OK) return st;
    switch (impl) {
    case FM_IMPL_REFERENCE:
        st = fm_ref_backward(p, mask, t->q, t->k, t->v, t->out, t->lse, t->dout, t->dq, t->dk,
                             t->dv);
        break;
    case FM_IMPL_CPU: st = cpu_backward(p, mask, t); break;
    case FM_IMPL_CUDA: st = fm_cuda_backward_host(p, mask, t); break;
    case FM_IMPL_REFERENCE_CUDA: st = fm_cuda_reference_backward_host(p, mask, t); break;
    default: return fm_fail(FM_ERR_INVALID, "unknown implementation %d", (int)impl);
    }
    return st == FM_OK ? check_results(impl, p, t, 1) : st;
}
