/* flashmask/cuda.h — the CUDA layer: FlashMask forward/backward kernels on tensor cores in
 * float16/bfloat16 (p->dtype), float32 accumulation and LSE.
 * Layer: cuda <- masks <- core. Built only when CUDA is enabled; otherwise every call returns
 * FM_ERR_UNAVAILABLE with a message. The host-memory path below converts float64 host tensors
 * to p->dtype, runs on the current device and converts back (used by fm_forward/fm_backward and
 * `flashmask run --impl cuda`).
 */
#ifndef FLASHMASK_CUDA_H
#define FLASHMASK_CUDA_H

#include "flashmask/masks.h"

#ifdef __cplusplus
extern "C" {
#endif

/* FM_OK if the layer was built and a CUDA device of compute capability >= 8.0 is present. */
fm_status fm_cuda_available(void);

fm_status fm_cuda_forward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t);
fm_status fm_cuda_backward_host(const fm_problem *p, const fm_mask *mask, fm_tensors *t);

#ifdef __cplusplus
}
#endif
#endif
