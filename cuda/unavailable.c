/* cuda/unavailable.c — the CUDA layer's entry points in a build without CUDA: each reports
 * FM_ERR_UNAVAILABLE with the reason, so that callers (dispatch, CLI, tests) can skip cleanly. */
#include "flashmask/cuda.h"
#include "fm_internal.h"

static fm_status not_built(void)
{
    return fm_fail(FM_ERR_UNAVAILABLE,
                   "cuda: this build of libflashmask has no CUDA layer (configure with "
                   "-Dcuda=enabled on a machine with nvcc)");
}

fm_status fm_cuda_available(void) { return not_built(); }

fm_status fm_cuda_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    (void)p, (void)mask, (void)t;
    return not_built();
}

fm_status fm_cuda_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t)
{
    (void)p, (void)mask, (void)t;
    return not_built();
}
