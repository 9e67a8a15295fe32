/* cuda/reference_f64_api.cu — the GPU float64 oracle's entry points (flashmask/cuda.h,
 * fm_cuda_reference_*): on device pointers (asynchronous on a stream) and from host memory
 * (what core/dispatch.c's `reference-cuda` implementation, `flashmask run --impl
 * reference-cuda` and `flashmask gen --reference cuda` take). Checks every argument and every
 * CUDA call; the host path also refuses what the CPU reference refuses (an LSE that does not
 * fit its row, results that overflow float64), with the same messages.
 * Layer: cuda <- masks <- core. Kernels: reference_f64_forward.cu, reference_f64_backward.cu.
 */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "flashmask/cuda.h"
extern "C" {
#include "fm_internal.h" /* a C header without C++ guards */
}
#include "problem_check.h"
#include "reference_f64.cuh"

static fm_status cuda_fail(cudaError_t err, const char *what)
{
    if (err == cudaErrorNotSupported)
        return fm_fail(FM_ERR_UNAVAILABLE, "cuda reference: %s: this device's shared memory is "
                       "too small for the float64 kernels (they need >= 99 KB per block)", what);
    return fm_fail(FM_ERR_DEVICE, "cuda reference: %s failed: %s (%s)", what,
                   cudaGetErrorName(err), cudaGetErrorString(err));
}

/* The problem against itself and the device mask; fills the kernels' parameter block. */
static fm_status prepare(const fm_problem *p, const fm_cuda_mask *m, fm_ref64_params *kp)
{
    fm_clear_error();
    fm_status st = fm_cuda_check_problem("cuda reference", p, m);
    if (st != FM_OK) return st;
    if (m->block_k != FM_REF64_SUMMARY_K)
        return fm_fail(FM_ERR_INTERNAL, "cuda reference: mask summary blocks of %lld keys, "
                       "expected %d", (long long)m->block_k, (int)FM_REF64_SUMMARY_K);
    if (p->head_dim < 1 || p->head_dim > 256)
        return fm_fail(FM_ERR_INVALID, "cuda reference: head_dim = %lld; the float64 kernels "
                       "take 1..256", (long long)p->head_dim);
    if (!(p->scale > 0) || p->scale > 1.0e308)
        return fm_fail(FM_ERR_INVALID, "cuda reference: scale = %g must be finite and > 0",
                       p->scale);
    /* Rows and columns are 32-bit in the kernels (with a tile of headroom); (b, head) is the
     * grid's y index (< 65536). Element offsets are 64-bit throughout. */
    if (p->seqlen_q > INT32_MAX - 256 || p->seqlen_k > INT32_MAX - 256 ||
        p->batch * p->q_heads > 65535)
        return fm_fail(FM_ERR_OVERFLOW, "cuda reference: Sq, Sk must be < 2^31 - 256 and "
                       "B*Hq <= 65535 (Sq=%lld Sk=%lld B*Hq=%lld)", (long long)p->seqlen_q,
                       (long long)p->seqlen_k, (long long)(p->batch * p->q_heads));
    memset(kp, 0, sizeof *kp);
    fm_cuda_fill_shape(kp, p, m);
    kp->scale = p->scale;
    return FM_OK;
}

/* Device tensors: non-NULL and 8-byte aligned (the kernels copy one double at a time). */
static fm_status check_pointers(const char *who, const char *const names[],
                                const void *const ptrs[], int n)
{
    for (int i = 0; i < n; i++) {
        if (!ptrs[i])
            return fm_fail(FM_ERR_INVALID, "cuda reference %s: %s is NULL", who, names[i]);
        if ((uintptr_t)ptrs[i] & 7)
            return fm_fail(FM_ERR_INVALID, "cuda reference %s: %s = %p is not 8-byte aligned",
                           who, names[i], ptrs[i]);
    }
    return FM_OK;
}

extern "C" fm_status fm_cuda_reference_forward(const fm_problem *p, const fm_cuda_mask *mask,
                                               const double *q, const double *k,
                                               const double *v, double *out, double *lse,
                                               void *stream)
{
    fm_ref64_params kp;
    fm_status st = prepare(p, mask, &kp);
    if (st != FM_OK) return st;
    static const char *const names[] = {"q", "k", "v", "out", "lse"};
    const void *const ptrs[] = {q, k, v, out, lse};
    if ((st = check_pointers("forward", names, ptrs, 5)) != FM_OK) return st;
    kp.q = q, kp.k = k, kp.v = v, kp.out = out, kp.lse = lse;
    cudaError_t err = fm_ref64_launch_forward(kp, (cudaStream_t)stream);
    return err == cudaSuccess ? FM_OK : cuda_fail(err, "forward kernel launch");
}

/* The backward with an optional device flag for rows whose LSE does not fit (host path). */
static fm_status backward(const fm_problem *p, const fm_cuda_mask *mask, const double *q,
                          const double *k, const double *v, const double *out,
                          const double *lse, const double *dout, double *dq, double *dk,
                          double *dv, unsigned long long *bad_row, cudaStream_t s)
{
    fm_ref64_params kp;
    fm_status st = prepare(p, mask, &kp);
    if (st != FM_OK) return st;
    static const char *const names[] = {"q", "k", "v", "out", "lse", "dout", "dq", "dk", "dv"};
    const void *const ptrs[] = {q, k, v, out, lse, dout, dq, dk, dv};
    if ((st = check_pointers("backward", names, ptrs, 9)) != FM_OK) return st;
    kp.q = q, kp.k = k, kp.v = v, kp.out_in = out, kp.lse_in = lse, kp.dout = dout;
    kp.dq = dq, kp.dk = dk, kp.dv = dv, kp.bad_row = bad_row;
    const size_t rows = fm_problem_lse_elems(p);
    cudaError_t err = cudaMallocAsync((void **)&kp.delta, rows * sizeof(double), s);
    if (err != cudaSuccess)
        return fm_fail(FM_ERR_NOMEM, "cuda reference backward: %zu-row Delta workspace: %s",
                       rows, cudaGetErrorString(err));
    err = fm_ref64_launch_backward(kp, s);
    cudaError_t err_free = cudaFreeAsync(kp.delta, s);
    if (err != cudaSuccess) return cuda_fail(err, "backward kernel launch");
    return err_free == cudaSuccess ? FM_OK : cuda_fail(err_free, "cudaFreeAsync");
}

extern "C" fm_status fm_cuda_reference_backward(const fm_problem *p, const fm_cuda_mask *mask,
                                                const double *q, const double *k,
                                                const double *v, const double *out,
                                                const double *lse, const double *dout,
                                                double *dq, double *dk, double *dv, void *stream)
{
    return backward(p, mask, q, k, v, out, lse, dout, dq, dk, dv, NULL, (cudaStream_t)stream);
}

/* ---------------------------------------------------------------- host memory */

/* Up to 9 device copies of host tensors; freed together. */
typedef struct dev_set {
    double *d[9];
} dev_set;

static void dev_set_free(dev_set *s)
{
    for (int i = 0; i < 9; i++)
        if (s->d[i]) cudaFree(s->d[i]);
    memset(s, 0, sizeof *s);
}

/* s->d[i] = a device buffer of n doubles, filled from host x when x != NULL. */
static fm_status dev_put(dev_set *s, int i, const double *x, size_t n, const char *what)
{
    cudaError_t err = cudaMalloc((void **)&s->d[i], n * sizeof(double));
    if (err != cudaSuccess) {
        s->d[i] = NULL;
        return fm_fail(FM_ERR_NOMEM, "cuda reference: cudaMalloc for %s (%zu doubles): %s",
                       what, n, cudaGetErrorString(err));
    }
    if (x && (err = cudaMemcpy(s->d[i], x, n * sizeof(double), cudaMemcpyHostToDevice)) !=
                 cudaSuccess)
        return fm_fail(FM_ERR_DEVICE, "cuda reference: upload of %s: %s", what,
                       cudaGetErrorString(err));
    return FM_OK;
}

static fm_status dev_get(double *y, const double *d, size_t n, const char *what)
{
    cudaError_t err = cudaMemcpy(y, d, n * sizeof(double), cudaMemcpyDeviceToHost);
    return err == cudaSuccess ? FM_OK
                              : fm_fail(FM_ERR_DEVICE, "cuda reference: download of %s: %s",
                                        what, cudaGetErrorString(err));
}

/* As the CPU reference: a result that overflowed float64 is refused, naming the element. */
static fm_status check_result(const char *what, const double *x, size_t n, int allow_neg_inf)
{
    for (size_t e = 0; e < n; e++) {
        if (isfinite(x[e]) || (allow_neg_inf && x[e] == -INFINITY)) continue;
        return fm_fail(FM_ERR_OVERFLOW, "reference: %s[%zu] = %g: float64 overflowed (inputs "
                       "too large in magnitude for this scale)", what, e, x[e]);
    }
    return FM_OK;
}

/* What a call on host memory holds: the tensor sizes (elements of q, of k, of lse), the device
 * copies and the device mask; freed by host_call_free. */
typedef struct host_call {
    size_t nq, nkv, nl;
    dev_set s;
    fm_cuda_mask dm;
} host_call;

static fm_status host_prepare(const fm_problem *p, const fm_mask *mask, const fm_tensors *t,
                              host_call *h)
{
    memset(h, 0, sizeof *h);
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    if (st != FM_OK) return st;
    if (!t) return fm_fail(FM_ERR_INVALID, "cuda reference: NULL tensors");
    h->nq = fm_problem_q_elems(p), h->nkv = fm_problem_kv_elems(p);
    h->nl = fm_problem_lse_elems(p);
    return fm_cuda_available();
}

static void host_call_free(host_call *h)
{
    dev_set_free(&h->s);
    fm_cuda_mask_free(&h->dm);
}

extern "C" fm_status fm_cuda_reference_forward_host(const fm_problem *p, const fm_mask *mask,
                                                    fm_tensors *t)
{
    host_call h;
    fm_status st = host_prepare(p, mask, t, &h);
    if (st != FM_OK) return st;
    if (!t->q || !t->k || !t->v || !t->out || !t->lse)
        return fm_fail(FM_ERR_INVALID, "cuda reference forward: NULL q, k, v, out or lse");
    const size_t nq = h.nq, nkv = h.nkv, nl = h.nl;
    dev_set &s = h.s;
    cudaError_t err;
    if ((st = dev_put(&s, 0, t->q, nq, "q")) != FM_OK ||
        (st = dev_put(&s, 1, t->k, nkv, "k")) != FM_OK ||
        (st = dev_put(&s, 2, t->v, nkv, "v")) != FM_OK ||
        (st = dev_put(&s, 3, NULL, nq, "out")) != FM_OK ||
        (st = dev_put(&s, 4, NULL, nl, "lse")) != FM_OK ||
        (st = fm_cuda_mask_upload(mask, &h.dm)) != FM_OK ||
        (st = fm_cuda_reference_forward(p, &h.dm, s.d[0], s.d[1], s.d[2], s.d[3], s.d[4],
                                        NULL)) != FM_OK)
        goto done;
    if ((err = cudaDeviceSynchronize()) != cudaSuccess) {
        st = cuda_fail(err, "forward");
        goto done;
    }
    if ((st = dev_get(t->out, s.d[3], nq, "out")) != FM_OK ||
        (st = dev_get(t->lse, s.d[4], nl, "lse")) != FM_OK)
        goto done;
    if ((st = check_result("lse", t->lse, nl, 1)) == FM_OK)
        st = check_result("out", t->out, nq, 0);
done:
    host_call_free(&h);
    return st;
}

extern "C" fm_status fm_cuda_reference_backward_host(const fm_problem *p, const fm_mask *mask,
                                                     fm_tensors *t)
{
    host_call h;
    fm_status st = host_prepare(p, mask, t, &h);
    if (st != FM_OK) return st;
    if (!t->q || !t->k || !t->v || !t->out || !t->lse || !t->dout || !t->dq || !t->dk || !t->dv)
        return fm_fail(FM_ERR_INVALID, "cuda reference backward: NULL tensor");
    const size_t nq = h.nq, nkv = h.nkv, nl = h.nl;
    dev_set &s = h.s;
    unsigned long long *bad_dev = NULL, bad = ULLONG_MAX;
    cudaError_t err;
    if ((st = dev_put(&s, 0, t->q, nq, "q")) != FM_OK ||
        (st = dev_put(&s, 1, t->k, nkv, "k")) != FM_OK ||
        (st = dev_put(&s, 2, t->v, nkv, "v")) != FM_OK ||
        (st = dev_put(&s, 3, t->out, nq, "out")) != FM_OK ||
        (st = dev_put(&s, 4, t->lse, nl, "lse")) != FM_OK ||
        (st = dev_put(&s, 5, t->dout, nq, "dout")) != FM_OK ||
        (st = dev_put(&s, 6, NULL, nq, "dq")) != FM_OK ||
        (st = dev_put(&s, 7, NULL, nkv, "dk")) != FM_OK ||
        (st = dev_put(&s, 8, NULL, nkv, "dv")) != FM_OK ||
        (st = fm_cuda_mask_upload(mask, &h.dm)) != FM_OK)
        goto done;
    if ((err = cudaMalloc((void **)&bad_dev, sizeof bad)) != cudaSuccess ||
        (err = cudaMemcpy(bad_dev, &bad, sizeof bad, cudaMemcpyHostToDevice)) != cudaSuccess) {
        st = cuda_fail(err, "LSE check flag");
        goto done;
    }
    if ((st = backward(p, &h.dm, s.d[0], s.d[1], s.d[2], s.d[3], s.d[4], s.d[5], s.d[6], s.d[7],
                       s.d[8], bad_dev, NULL)) != FM_OK)
        goto done;
    if ((err = cudaDeviceSynchronize()) != cudaSuccess ||
        (err = cudaMemcpy(&bad, bad_dev, sizeof bad, cudaMemcpyDeviceToHost)) != cudaSuccess) {
        st = cuda_fail(err, "backward");
        goto done;
    }
    if (bad != ULLONG_MAX) {
        const unsigned long long Sq = (unsigned long long)p->seqlen_q;
        const unsigned long long bh = bad / Sq, i = bad % Sq;
        st = fm_fail(FM_ERR_INVALID, "reference backward: lse[b=%llu, h=%llu, row %llu] = %g "
                     "but the row has allowed keys (pass the forward's lse)",
                     bh / (unsigned long long)p->q_heads, bh % (unsigned long long)p->q_heads, i,
                     t->lse[bad]);
        goto done;
    }
    if ((st = dev_get(t->dq, s.d[6], nq, "dq")) != FM_OK ||
        (st = dev_get(t->dk, s.d[7], nkv, "dk")) != FM_OK ||
        (st = dev_get(t->dv, s.d[8], nkv, "dv")) != FM_OK)
        goto done;
    if ((st = check_result("dq", t->dq, nq, 0)) == FM_OK &&
        (st = check_result("dk", t->dk, nkv, 0)) == FM_OK)
        st = check_result("dv", t->dv, nkv, 0);
done:
    host_call_free(&h);
    if (bad_dev) cudaFree(bad_dev);
    return st;
}
