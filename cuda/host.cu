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

/* Common checks; *padded receives the problem with the kernel's head dimension. */
static fm_status host_prepare(const fm_problem *p, const fm_mask *mask, const fm_tensors *t,
                              fm_problem *padded)
{
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
    return fm_cuda_available();
}

/* Forward on host tensors: ladder step `step` (0: the kernels `opt` and cuda/heuristics.cu
 * choose). */
static fm_status forward_host(int step, const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                              const fm_kernel_options *opt)
{
    fm_problem pp;
    fm_status st = host_prepare(p, mask, t, &pp);
    if (st != FM_OK) return st;
    if (step != 0 && (st = fm_cuda_ladder_check(step, 0, pp.head_dim)) != FM_OK) return st;
    if (!t->q || !t->k || !t->v || !t->out || !t->lse)
        return fm_fail(FM_ERR_INVALID, "cuda forward: NULL q, k, v, out or lse");
    const size_t q_rows = fm_problem_lse_elems(p);
    const size_t kv_rows = fm_problem_kv_elems(p) / (size_t)p->head_dim;
    const int64_t d = p->head_dim, dp = pp.head_dim;
    staged q, k, v, o;
    memset(&q, 0, sizeof q), memset(&k, 0, sizeof k), memset(&v, 0, sizeof v);
    memset(&o, 0, sizeof o);
    float *lse_dev = NULL, *lse_host = NULL;
    fm_cuda_mask dm;
    memset(&dm, 0, sizeof dm);
    cudaError_t err = cudaSuccess;

    if ((st = stage_in(&q, t->q, q_rows, d, dp, p->dtype, "cuda q")) != FM_OK ||
        (st = stage_in(&k, t->k, kv_rows, d, dp, p->dtype, "cuda k")) != FM_OK ||
        (st = stage_in(&v, t->v, kv_rows, d, dp, p->dtype, "cuda v")) != FM_OK ||
        (st = staged_alloc(&o, q_rows * dp, "cuda out")) != FM_OK ||
        (st = lse_alloc(q_rows, &lse_dev, &lse_host)) != FM_OK ||
        (st = fm_cuda_mask_upload(mask, &dm)) != FM_OK)
        goto done;
    st = step ? fm_cuda_forward_step(step, &pp, &dm, q.dev, k.dev, v.dev, o.dev, lse_dev, NULL)
              : fm_cuda_forward(&pp, &dm, q.dev, k.dev, v.dev, o.dev, lse_dev, opt, NULL);
    if (st != FM_OK) goto done;
    if ((err = cudaDeviceSynchronize()) != cudaSuccess) {
        st = fm_fail(FM_ERR_DEVICE, "cuda forward: %s", cudaGetErrorString(err));
        goto done;
    }
    if ((st = download(t->out, &o, q_rows, d, dp, p->dtype)) != FM_OK) goto done;
    if ((err = cudaMemcpy(lse_host, lse_dev, q_rows * sizeof(float), cudaMemcpyDeviceToHost)) !=
        cudaSuccess) {
        st = fm_fail(FM_ERR_DEVICE, "cuda: download lse: %s", cudaGetErrorString(err));
        goto done;
    }
    for (size_t i = 0; i < q_rows; i++) t->lse[i] = lse_host[i];
done:
    staged_free(&q), staged_free(&k), staged_free(&v), staged_free(&o);
    if (lse_dev) cudaFree(lse_dev);
    free(lse_host);
    fm_cuda_mask_free(&dm);
    return st;
}

/* Backward on host tensors, as forward_host. */
static fm_status backward_host(int step, const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                               const fm_kernel_options *opt)
{
    fm_problem pp;
    fm_status st = host_prepare(p, mask, t, &pp);
    if (st != FM_OK) return st;
    if (step != 0 && (st = fm_cuda_ladder_check(step, 1, pp.head_dim)) != FM_OK) return st;
    if (!t->q || !t->k || !t->v || !t->out || !t->lse || !t->dout || !t->dq || !t->dk || !t->dv)
        return fm_fail(FM_ERR_INVALID, "cuda backward: NULL tensor");
    const size_t q_rows = fm_problem_lse_elems(p);
    const size_t kv_rows = fm_problem_kv_elems(p) / (size_t)p->head_dim;
    const int64_t d = p->head_dim, dp = pp.head_dim;
    staged q, k, v, o, dout, dq, dk, dv;
    staged *all[] = {&q, &k, &v, &o, &dout, &dq, &dk, &dv};
    for (int i = 0; i < 8; i++) memset(all[i], 0, sizeof(staged));
    float *lse_dev = NULL, *lse_host = NULL;
    fm_cuda_mask dm;
    memset(&dm, 0, sizeof dm);
    cudaError_t err = cudaSuccess;

    if ((st = stage_in(&q, t->q, q_rows, d, dp, p->dtype, "cuda q")) != FM_OK ||
        (st = stage_in(&k, t->k, kv_rows, d, dp, p->dtype, "cuda k")) != FM_OK ||
        (st = stage_in(&v, t->v, kv_rows, d, dp, p->dtype, "cuda v")) != FM_OK ||
        (st = stage_in(&o, t->out, q_rows, d, dp, p->dtype, "cuda out")) != FM_OK ||
        (st = stage_in(&dout, t->dout, q_rows, d, dp, p->dtype, "cuda dout")) != FM_OK ||
        (st = staged_alloc(&dq, q_rows * dp, "cuda dq")) != FM_OK ||
        (st = staged_alloc(&dk, kv_rows * dp, "cuda dk")) != FM_OK ||
        (st = staged_alloc(&dv, kv_rows * dp, "cuda dv")) != FM_OK ||
        (st = lse_alloc(q_rows, &lse_dev, &lse_host)) != FM_OK ||
        (st = fm_cuda_mask_upload(mask, &dm)) != FM_OK)
        goto done;
    for (size_t i = 0; i < q_rows; i++) lse_host[i] = (float)t->lse[i]; /* -inf stays -inf */
    if ((err = cudaMemcpy(lse_dev, lse_host, q_rows * sizeof(float), cudaMemcpyHostToDevice)) !=
        cudaSuccess) {
        st = fm_fail(FM_ERR_DEVICE, "cuda: upload lse: %s", cudaGetErrorString(err));
        goto done;
    }
    st = step ? fm_cuda_backward_step(step, &pp, &dm, q.dev, k.dev, v.dev, o.dev, lse_dev,
                                      dout.dev, dq.dev, dk.dev, dv.dev, NULL)
              : fm_cuda_backward(&pp, &dm, q.dev, k.dev, v.dev, o.dev, lse_dev, dout.dev, dq.dev,
                                 dk.dev, dv.dev, opt, NULL);
    if (st != FM_OK) goto done;
    if ((err = cudaDeviceSynchronize()) != cudaSuccess) {
        st = fm_fail(FM_ERR_DEVICE, "cuda backward: %s", cudaGetErrorString(err));
        goto done;
    }
    if ((st = download(t->dq, &dq, q_rows, d, dp, p->dtype)) != FM_OK) goto done;
    if ((st = download(t->dk, &dk, kv_rows, d, dp, p->dtype)) != FM_OK) goto done;
    st = download(t->dv, &dv, kv_rows, d, dp, p->dtype);
done:
    for (int i = 0; i < 8; i++) staged_free(all[i]);
    if (lse_dev) cudaFree(lse_dev);
    free(lse_host);
    fm_cuda_mask_free(&dm);
    return st;
}

extern "C" fm_status fm_cuda_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                                          const fm_kernel_options *opt)
{
    return forward_host(0, p, mask, t, opt);
}

extern "C" fm_status fm_cuda_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                                           const fm_kernel_options *opt)
{
    return backward_host(0, p, mask, t, opt);
}

extern "C" fm_status fm_cuda_forward_host_step(int step, const fm_problem *p,
                                               const fm_mask *mask, fm_tensors *t)
{
    return forward_host(step, p, mask, t, NULL);
}

extern "C" fm_status fm_cuda_backward_host_step(int step, const fm_problem *p,
                                                const fm_mask *mask, fm_tensors *t)
{
    return backward_host(step, p, mask, t, NULL);
}
