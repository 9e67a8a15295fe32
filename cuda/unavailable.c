/* cuda/unavailable.c — the CUDA layer's entry points in a build without CUDA: each reports
 * FM_ERR_UNAVAILABLE with the reason, so that callers (dispatch, CLI, tests) can skip cleanly. */
#include <string.h>

#include "flashmask/cuda.h"
#include "fm_internal.h"

static fm_status not_built(void)
{
    return fm_fail(FM_ERR_UNAVAILABLE,
                   "cuda: this build of libflashmask has no CUDA layer (configure with "
                   "-Dcuda=enabled on a machine with nvcc)");
}

fm_status fm_cuda_available(void) { return not_built(); }

fm_status fm_cuda_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                               const fm_kernel_options *opt)
{
    (void)p, (void)mask, (void)t, (void)opt;
    return not_built();
}

fm_status fm_cuda_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                                const fm_kernel_options *opt)
{
    (void)p, (void)mask, (void)t, (void)opt;
    return not_built();
}

fm_status fm_cuda_mask_upload(const fm_mask *mask, fm_cuda_mask *out)
{
    (void)mask;
    if (out) memset(out, 0, sizeof *out);
    return not_built();
}

void fm_cuda_mask_free(fm_cuda_mask *m) { (void)m; }

fm_status fm_cuda_copy_summary(const fm_cuda_mask *m, int32_t *out)
{
    (void)m, (void)out;
    return not_built();
}

fm_status fm_cuda_forward(const fm_problem *p, const fm_cuda_mask *mask, const void *q,
                          const void *k, const void *v, void *out, float *lse,
                          const fm_kernel_options *opt, void *stream)
{
    (void)p, (void)mask, (void)q, (void)k, (void)v, (void)out, (void)lse, (void)opt, (void)stream;
    return not_built();
}

fm_status fm_cuda_backward(const fm_problem *p, const fm_cuda_mask *mask, const void *q,
                           const void *k, const void *v, const void *out, const float *lse,
                           const void *dout, void *dq, void *dk, void *dv,
                           const fm_kernel_options *opt, void *stream)
{
    (void)p, (void)mask, (void)q, (void)k, (void)v, (void)out, (void)lse, (void)dout;
    (void)dq, (void)dk, (void)dv, (void)opt, (void)stream;
    return not_built();
}

fm_status fm_cuda_reference_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    (void)p, (void)mask, (void)t;
    return not_built();
}

fm_status fm_cuda_reference_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    (void)p, (void)mask, (void)t;
    return not_built();
}

fm_status fm_cuda_reference_forward(const fm_problem *p, const fm_cuda_mask *mask,
                                    const double *q, const double *k, const double *v,
                                    double *out, double *lse, void *stream)
{
    (void)p, (void)mask, (void)q, (void)k, (void)v, (void)out, (void)lse, (void)stream;
    return not_built();
}

fm_status fm_cuda_reference_backward(const fm_problem *p, const fm_cuda_mask *mask,
                                     const double *q, const double *k, const double *v,
                                     const double *out, const double *lse, const double *dout,
                                     double *dq, double *dk, double *dv, void *stream)
{
    (void)p, (void)mask, (void)q, (void)k, (void)v, (void)out, (void)lse, (void)dout;
    (void)dq, (void)dk, (void)dv, (void)stream;
    return not_built();
}

fm_status fm_cuda_ladder_check(int step, int backward, int64_t head_dim)
{
    (void)step, (void)backward, (void)head_dim;
    return not_built();
}

fm_status fm_cuda_forward_step(int step, const fm_problem *p, const fm_cuda_mask *mask,
                               const void *q, const void *k, const void *v, void *out,
                               float *lse, void *stream)
{
    (void)step;
    return fm_cuda_forward(p, mask, q, k, v, out, lse, NULL, stream);
}

fm_status fm_cuda_backward_step(int step, const fm_problem *p, const fm_cuda_mask *mask,
                                const void *q, const void *k, const void *v, const void *out,
                                const float *lse, const void *dout, void *dq, void *dk, void *dv,
                                void *stream)
{
    (void)step;
    return fm_cuda_backward(p, mask, q, k, v, out, lse, dout, dq, dk, dv, NULL, stream);
}

fm_status fm_cuda_forward_host_step(int step, const fm_problem *p, const fm_mask *mask,
                                    fm_tensors *t)
{
    (void)step;
    return fm_cuda_forward_host(p, mask, t, NULL);
}

fm_status fm_cuda_backward_host_step(int step, const fm_problem *p, const fm_mask *mask,
                                     fm_tensors *t)
{
    (void)step;
    return fm_cuda_backward_host(p, mask, t, NULL);
}

void fm_cuda_reference_force_small_tiles(int on)
{
    (void)on; /* no GPU oracle in this build: nothing to choose */
}
