/* cuda/ladder/ladder.cu — which kernel runs for ladder step N: the one table from step numbers
 * to launchers (ladder.h lists the steps), and the reasons a step refuses a call. api.cu calls
 * it for steps 1-3 (forward) and 1-2 (backward) of fm_cuda_forward_step / fm_cuda_backward_step;
 * steps 4 and 5 are the library's own kernels, which api.cu runs through the kernel options
 * (fwd=mma / fwd=wgmma and bwd=...), decided by cuda/heuristics.cu as every other call.
 * Layer: cuda (private).
 */
#include "ladder.h"

const char *fm_ladder_refusal(int step, int backward, int head_dim, int *unavailable)
{
    *unavailable = 0;
    if (step < 0 || step > 5)
        return "the ladder's steps are 1 to 5 (0: the library's choice)";
    if (backward && step == 3)
        return "the backward ladder has steps 1, 2, 4 and 5 (step 3, tensor cores without the "
               "tuning, is a forward step only)";
    if (step != 5) return NULL;
    if (head_dim != 128) return "step 5 (wgmma) is built for head_dim 128 only";
#ifdef FM_CUDA_WGMMA
    int dev = 0, major = 0, minor = 0;
    if (cudaGetDevice(&dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) == cudaSuccess &&
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev) == cudaSuccess &&
        major == 9 && minor == 0)
        return NULL;
    *unavailable = 1;
    return "step 5 (wgmma) needs a compute capability 9.0 device";
#else
    *unavailable = 1;
    return "step 5 (wgmma) is not in this build (configure with 90a in gpu_archs)";
#endif
}

cudaError_t fm_ladder_launch_forward(int step, const fm_attn_params &p, fm_dtype dtype,
                                     cudaStream_t stream)
{
    switch (step) { /* steps 4 and 5 are the library's kernels: api.cu runs them by options */
    case 1: return fm_ladder_fwd1(p, dtype, stream);
    case 2: return fm_ladder_fwd2(p, dtype, stream);
    case 3: return fm_ladder_fwd3(p, dtype, stream);
    default: return cudaErrorNotSupported;
    }
}

cudaError_t fm_ladder_launch_backward(int step, const fm_attn_params &p, fm_dtype dtype,
                                      cudaStream_t stream)
{
    switch (step) {
    case 1: return fm_ladder_bwd1(p, dtype, stream);
    case 2: return fm_ladder_bwd2(p, dtype, stream);
    default: return cudaErrorNotSupported;
    }
}
