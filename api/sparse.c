/* api/sparse.c — the public calls of sparse/'s pipelines (flashmask/api.h): each binds the
 * chosen implementation to the pipeline as an fm_attend (sparse/sparse_run.h) whose attention is
 * fm_forward_any / fm_backward_any, so that sparse/ keeps only the transforms and calls nothing
 * above it. The tensors are checked by fm_forward_any on the transformed problem.
 * Layer: api <- sparse <- masks <- core.
 */
#include "../sparse/sparse_run.h"
#include "flashmask.h"

static fm_status attend_any(fm_impl impl, int backward, const fm_problem *p,
                            const fm_any_mask *mask, fm_tensors *t)
{
    return backward ? fm_backward_any(impl, p, mask, t) : fm_forward_any(impl, p, mask, t);
}

#define FM_ATTEND(impl) (&(const fm_attend){.run = attend_any, .impl = (impl)})

fm_status fm_qk_sparse_forward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                               const uint8_t *q_keep, const uint8_t *k_keep, fm_tensors *t)
{
    return fm_qk_sparse_run(FM_ATTEND(impl), 0, p, alignment, q_keep, k_keep, t);
}

fm_status fm_qk_sparse_backward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                const uint8_t *q_keep, const uint8_t *k_keep, fm_tensors *t)
{
    return fm_qk_sparse_run(FM_ATTEND(impl), 1, p, alignment, q_keep, k_keep, t);
}

fm_status fm_hash_sparse_forward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                 const int32_t *q_buckets, const int32_t *k_buckets,
                                 int64_t n_buckets, fm_tensors *t)
{
    return fm_hash_sparse_run(FM_ATTEND(impl), 0, p, alignment, q_buckets, k_buckets, n_buckets,
                              t);
}

fm_status fm_hash_sparse_backward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                  const int32_t *q_buckets, const int32_t *k_buckets,
                                  int64_t n_buckets, fm_tensors *t)
{
    return fm_hash_sparse_run(FM_ATTEND(impl), 1, p, alignment, q_buckets, k_buckets, n_buckets,
                              t);
}

fm_status fm_rcm_forward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                         int64_t mask_heads, int64_t block_q, int64_t block_k, fm_tensors *t)
{
    return fm_rcm_run(FM_ATTEND(impl), 0, p, allowed, mask_heads, block_q, block_k, t);
}

fm_status fm_rcm_backward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                          int64_t mask_heads, int64_t block_q, int64_t block_k, fm_tensors *t)
{
    return fm_rcm_run(FM_ATTEND(impl), 1, p, allowed, mask_heads, block_q, block_k, t);
}

fm_status fm_rowsplit_forward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                              int64_t mask_heads, fm_tensors *t)
{
    return fm_rowsplit_run(FM_ATTEND(impl), 0, p, allowed, mask_heads, t);
}

fm_status fm_rowsplit_backward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                               int64_t mask_heads, fm_tensors *t)
{
    return fm_rowsplit_run(FM_ATTEND(impl), 1, p, allowed, mask_heads, t);
}
