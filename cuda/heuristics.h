/* cuda/heuristics.h — the one place where the CUDA layer decides which kernels a call runs
 * (cuda/heuristics.cu). Layer: cuda (private; C++ only).
 */
#ifndef FM_CUDA_HEURISTICS_H
#define FM_CUDA_HEURISTICS_H

#include "flashmask/cuda.h"
#include "kernels.h"

/* The plan of one forward (backward = false) or backward call: the caller's options (NULL:
 * all auto) where they choose, the measured rules of heuristics.cu where they leave it open.
 * A choice the build or the current device cannot run is refused here, before any launch:
 * FM_ERR_UNAVAILABLE (wgmma not built, or not a compute capability 9.0 device) or
 * FM_ERR_INVALID (wgmma at a head dimension other than 128, an unknown value). `kp` is the
 * call's parameter block as api.cu's prepare() filled it (head_dim, seqlen_q, live_per_kblock). */
fm_status fm_cuda_plan_kernels(const fm_problem *p, const fm_attn_params &kp,
                               const fm_kernel_options *opt, bool backward, fm_kernel_plan *plan);

#endif
