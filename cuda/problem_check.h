/* cuda/problem_check.h — the checks of a problem against itself and a device-resident mask that
 * every CUDA entry point on device pointers makes (cuda/api.cu for the kernels,
 * cuda/reference_f64_api.cu for the float64 oracle), and the filling of the shape fields that
 * their kernel parameter blocks share. Host code only. Layer: cuda <- masks <- core.
 */
#ifndef FM_CUDA_PROBLEM_CHECK_H
#define FM_CUDA_PROBLEM_CHECK_H

#include "flashmask/cuda.h"
#include "flashmask/rules.h"

/* p and m non-NULL, m uploaded, sizes >= 1, kv_heads and the mask's heads dividing q_heads, the
 * mask's batch and sequence lengths the problem's. `who` ("cuda", "cuda reference") starts the
 * message. Defined in cuda/api.cu. */
fm_status fm_cuda_check_problem(const char *who, const fm_problem *p, const fm_cuda_mask *m);

/* The shape, the causal offset and the mask's device arrays into a kernel parameter block
 * (fm_attn_params, fm_ref64_params) of a problem fm_cuda_check_problem accepted. */
template <class Params>
void fm_cuda_fill_shape(Params *kp, const fm_problem *p, const fm_cuda_mask *m)
{
    kp->batch = (int)p->batch;
    kp->q_heads = (int)p->q_heads;
    kp->kv_heads = (int)p->kv_heads;
    kp->mask_heads = (int)m->heads;
    kp->seqlen_q = (int)p->seqlen_q;
    kp->seqlen_k = (int)p->seqlen_k;
    kp->head_dim = (int)p->head_dim;
    kp->n_kblocks = (int)m->n_blocks;
    kp->causal = (int)m->causal;
    kp->offset = fm_causal_offset(m->causal, p->seqlen_q, p->seqlen_k);
    kp->bounds = m->bounds;
    kp->summary = m->summary;
}

#endif
