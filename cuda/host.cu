/* cuda/host.cu — the CUDA layer from host memory (fm_cuda_forward_host / _backward_host): the
 * path api/dispatch.c and `flashmask run --impl cuda` take. float64 host tensors are rounded
 * to p->dtype (fm_round_to_dtype, then the exact bit conversion of core), padded with zeros to
 * a head dimension the kernels are built for, copied to the current device, run through the
 * device-pointer API (api.cu), and copied back to float64. Synchronous. The _step forms run one
 * step of the kernel ladder (cuda/ladder/).
 * Layer: cuda <- masks <- core.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/cuda.h"
extern "C" {
#include "fm_internal.h" /* a C header without C++ guards */
}
#include "kernels.h"

/* The smallest head dimension the kernels are built for that holds d (0 if none). */
static int64_t padded_dim(int64_t d)
{
    static const int64_t dims[] = {32, 64, 96, 128, 256};
    for (int i = 0; i < 5; i++)
        if (d <= dims[i]) return dims[i];
    return 0;
}

/* One device tensor of 16-bit elements, and its host staging copy. */
typedef struct {
    uint16_t *host;
    void *dev;
    size_t n;
} staged;

static void staged_free(staged *s)
{
    free(s->host);
    if (s->dev) cudaFree(s->dev);
    memset(s, 0, sizeof *s);
}

static fm_status staged_alloc(staged *s, size_t n, const char *what)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->host = (uint16_t *)fm_calloc(n, sizeof(uint16_t), what);
    if (!s->host) return FM_ERR_NOMEM;
    cudaError_t err = cudaMalloc(&s->dev, n * sizeof(uint16_t));
    if (err != cudaSuccess) {
        s->dev = NULL;
        return fm_fail(FM_ERR_NOMEM, "cuda: cudaMalloc for %s (%zu elements): %s", what, n,
                       cudaGetErrorString(err));
    }
    return FM_OK;
}

/* x[rows, d] float64 -> host staging [rows, dp] in dtype (zeros in the padding), then upload. */
static fm_status upload(staged *s, const double *x, size_t rows, int64_t d, int64_t dp,
                        fm_dtype dtype)
{
    for (size_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < d; c++) {
            float v = (float)fm_round_to_dtype(x[r * d + c], dtype); /* exact in float */
            s->host[r * dp + c] = dtype == FM_BFLOAT16 ? fm_float_to_bf16(v) : fm_float_to_half(v);
        }
    cudaError_t err = cudaMemcpy(s->dev, s->host, s->n * sizeof(uint16_t), cudaMemcpyHostToDevice);
    return err == cudaSuccess ? FM_OK
                              : fm_fail(FM_ERR_DEVICE, "cuda: upload: %s", cudaGetErrorString(err));
}

/* Download and widen to float64 [rows, d], dropping the padding. */
static fm_status download(double *y, staged *s, size_t rows, int64_t d, int64_t dp, fm_dtype dtype)
{
    cudaError_t err = cudaMemcpy(s->host, s->dev, s->n * sizeof(uint16_t), cudaMemcpyDeviceToHost);
    if (err != cudaSuccess)
        return fm_fail(FM_ERR_DEVICE, "cuda: download: %s", cudaGetErrorString(err));
    for (size_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < d; c++) {
            uint16_t h = s->host[r * dp + c];
            y[r * d + c] = dtype == FM_BFLOAT16 ? fm_bf16_to_float(h) : fm_half_to_float(h);
        }
    return FM_OK;
}

/* Allocate and fill a staging buffer from x[rows, d] in one step. */
static fm_status stage_in(staged *s, const double *x, size_t rows, int64_t d, int64_t dp,
                          fm_dtype dtype, const char *what)
{
    fm_status st = staged_alloc(s, rows * (size_t)dp, what);
    return st != FM_OK ? st : upload(s, x, rows, d, dp, dtype);
}

/* The float32 LSE of n rows on the host and on the device (both NULL on failure). */
static fm_status lse_alloc(size_t n, float **dev, float **host)
{
    *dev = NULL;
    *host = (float *)fm_alloc(n, sizeof(float), "cuda lse");
    if (!*host) return FM_ERR_NOMEM;
    cudaError_t err = cudaMalloc((void **)dev, n * sizeof(float));
    if (err == cudaSuccess) return FM_OK;
    *dev = NULL;
    return fm_fail(FM_ERR_NOMEM, "cuda: cudaMalloc lse: %s", cudaGetErrorString(err));
}

/* What a call on host memory holds: the problem with the kernels' head dimension, the row
 * counts, the staged tensors, the LSE on host and device and the device mask; host_call_free
 * releases them all. */
typedef struct host_call {
    fm_problem pp;
    size_t q_rows, kv_rows;
    int64_t d, dp; /* head dimension of the caller's tensors, of the kernels' */
    staged q, k, v, o, dout, dq, dk, dv;
    float *lse_dev, *lse_host;
    fm_cuda_mask dm;
} host_call;

static void host_call_free(host_call *h)
{
    staged *all[] = {&h->q, &h->k, &h->v, &h->o, &h->dout, &h->dq, &h->dk, &h->dv};
    for (int i = 0; i < 8; i++) staged_free(all[i]);
    if (h->lse_dev) cudaFree(h->lse_dev);
    free(h->lse_host);
    fm_cuda_mask_free(&h->dm);
}

/* Stages the inputs on the device (q, k, v; out and dout for the backward), allocates the
 * outputs (out; dq, dk, dv for the backward) and the LSE, and uploads the mask. */
static fm_status stage_call(host_call *h, const fm_mask *mask, const fm_tensors *t,
                            fm_dtype dtype, bool backward)
{
    const size_t nq = h->q_rows, nk = h->kv_rows;
    const int64_t d = h->d, dp = h->dp;
    fm_status st;
    if ((st = stage_in(&h->q, t->q, nq, d, dp, dtype, "cuda q")) != FM_OK ||
        (st = stage_in(&h->k, t->k, nk, d, dp, dtype, "cuda k")) != FM_OK ||
        (st = stage_in(&h->v, t->v, nk, d, dp, dtype, "cuda v")) != FM_OK)
        return st;
    if (!backward) {
        st = staged_alloc(&h->o, nq * dp, "cuda out");
    } else if ((st = stage_in(&h->o, t->out, nq, d, dp, dtype, "cuda out")) == FM_OK &&
               (st = stage_in(&h->dout, t->dout, nq, d, dp, dtype, "cuda dout")) == FM_OK &&
               (st = staged_alloc(&h->dq, nq * dp, "cuda dq")) == FM_OK &&
               (st = staged_alloc(&h->dk, nk * dp, "cuda dk")) == FM_OK) {
        st = staged_alloc(&h->dv, nk * dp, "cuda dv");
    }
    if (st == FM_OK) st = lse_alloc(nq, &h->lse_dev, &h->lse_host);
    if (st == FM_OK) st = fm_cuda_mask_upload(mask, &h->dm);
    return st;
}

/* The checks of a call (and ladder step `step`'s, when not 0), then the device copies
 * (stage_call): on FM_OK the caller runs the kernels and frees h; on failure nothing is held. */
static fm_status host_begin(host_call *h, const fm_problem *p, const fm_mask *mask,
                            fm_tensors *t, int step, bool backward)
{
    memset(h, 0, sizeof *h);
    fm_problem *padded = &h->pp;
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    if (st != FM_OK) return st;
    if (!t) return fm_fail(FM_ERR_INVALID, "cuda: NULL tensors");
    if (p->dtype != FM_FLOAT16 && p->dtype != FM_BFLOAT16)
        return fm_fail(FM_ERR_INVALID, "cuda: dtype %s; the CUDA layer computes in float16 or "
                       "bfloat16 (set the problem's dtype)", fm_dtype_name(p->dtype));
    *padded = *p;
    padded->head_dim = padded_dim(p->head_dim);
    if (padded->head_dim == 0)
        return fm_fail(FM_ERR_INVALID, "cuda: head_dim = %lld; the CUDA layer supports up to 256",
                       (long long)p->head_dim);
    if ((st = fm_cuda_available()) != FM_OK) return st;
    h->q_rows = fm_problem_lse_elems(p);
    h->kv_rows = fm_problem_kv_elems(p) / (size_t)p->head_dim;
    h->d = p->head_dim, h->dp = padded->head_dim;
    if (step != 0 && (st = fm_cuda_ladder_check(step, backward, padded->head_dim)) != FM_OK)
        return st;
    if (!backward && (!t->q || !t->k || !t->v || !t->out || !t->lse))
        return fm_fail(FM_ERR_INVALID, "cuda forward: NULL q, k, v, out or lse");
    if (backward && (!t->q || !t->k || !t->v || !t->out || !t->lse || !t->dout || !t->dq ||
                     !t->dk || !t->dv))
        return fm_fail(FM_ERR_INVALID, "cuda backward: NULL tensor");
    if ((st = stage_call(h, mask, t, p->dtype, backward)) != FM_OK) host_call_free(h);
    return st;
}

/* Waits for the kernels; a failure names the pass. */
static fm_status synchronize(const char *pass)
{
    cudaError_t err = cudaDeviceSynchronize();
    return err == cudaSuccess
               ? FM_OK
               : fm_fail(FM_ERR_DEVICE, "cuda %s: %s", pass, cudaGetErrorString(err));
}

/* The LSE between the caller's float64 rows and the device's float32 ones (-inf stays -inf). */
static fm_status lse_upload(host_call *h, const double *lse)
{
    for (size_t i = 0; i < h->q_rows; i++) h->lse_host[i] = (float)lse[i];
    cudaError_t err = cudaMemcpy(h->lse_dev, h->lse_host, h->q_rows * sizeof(float),
                                 cudaMemcpyHostToDevice);
    return err == cudaSuccess
               ? FM_OK
               : fm_fail(FM_ERR_DEVICE, "cuda: upload lse: %s", cudaGetErrorString(err));
}

static fm_status lse_download(host_call *h, double *lse)
{
    cudaError_t err = cudaMemcpy(h->lse_host, h->lse_dev, h->q_rows * sizeof(float),
                                 cudaMemcpyDeviceToHost);
    if (err != cudaSuccess)
        return fm_fail(FM_ERR_DEVICE, "cuda: download lse: %s", cudaGetErrorString(err));
    for (size_t i = 0; i < h->q_rows; i++) lse[i] = h->lse_host[i];
    return FM_OK;
}

/* Forward or backward on host tensors: ladder step `step` (0: the kernels `opt` and
 * cuda/heuristics.cu choose). */
static fm_status run_host(int step, bool backward, const fm_problem *p, const fm_mask *mask,
                          fm_tensors *t, const fm_kernel_options *opt)
{
    host_call h;
    fm_status st = host_begin(&h, p, mask, t, step, backward);
    if (st != FM_OK) return st;
    if (!backward) {
        st = step ? fm_cuda_forward_step(step, &h.pp, &h.dm, h.q.dev, h.k.dev, h.v.dev, h.o.dev,
                                         h.lse_dev, NULL)
                  : fm_cuda_forward(&h.pp, &h.dm, h.q.dev, h.k.dev, h.v.dev, h.o.dev, h.lse_dev,
                                    opt, NULL);
    } else if ((st = lse_upload(&h, t->lse)) == FM_OK) {
        st = step ? fm_cuda_backward_step(step, &h.pp, &h.dm, h.q.dev, h.k.dev, h.v.dev, h.o.dev,
                                          h.lse_dev, h.dout.dev, h.dq.dev, h.dk.dev, h.dv.dev,
                                          NULL)
                  : fm_cuda_backward(&h.pp, &h.dm, h.q.dev, h.k.dev, h.v.dev, h.o.dev, h.lse_dev,
                                     h.dout.dev, h.dq.dev, h.dk.dev, h.dv.dev, opt, NULL);
    }
    if (st == FM_OK) st = synchronize(backward ? "backward" : "forward");
    if (st == FM_OK && !backward) {
        st = download(t->out, &h.o, h.q_rows, h.d, h.dp, p->dtype);
        if (st == FM_OK) st = lse_download(&h, t->lse);
    } else if (st == FM_OK) {
        st = download(t->dq, &h.dq, h.q_rows, h.d, h.dp, p->dtype);
        if (st == FM_OK) st = download(t->dk, &h.dk, h.kv_rows, h.d, h.dp, p->dtype);
        if (st == FM_OK) st = download(t->dv, &h.dv, h.kv_rows, h.d, h.dp, p->dtype);
    }
    host_call_free(&h);
    return st;
}

extern "C" fm_status fm_cuda_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                                          const fm_kernel_options *opt)
{
    return run_host(0, false, p, mask, t, opt);
}

extern "C" fm_status fm_cuda_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                                           const fm_kernel_options *opt)
{
    return run_host(0, true, p, mask, t, opt);
}

extern "C" fm_status fm_cuda_forward_host_step(int step, const fm_problem *p,
                                               const fm_mask *mask, fm_tensors *t)
{
    return run_host(step, false, p, mask, t, NULL);
}

extern "C" fm_status fm_cuda_backward_host_step(int step, const fm_problem *p,
                                                const fm_mask *mask, fm_tensors *t)
{
    return run_host(step, true, p, mask, t, NULL);
}
