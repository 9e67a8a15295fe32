/* flashmask/api.h — the calls that run attention: every dispatch of the library, over
 * implementations (reference, cpu, cuda), mask forms (column-wise, Binary Block Masking, dense)
 * and the sparse pipelines (RCM reordering, row splitting, QK-sparse, Hash-sparse). Inputs are
 * validated here, once, at the boundary; the layers below take validated inputs.
 * Layer: api (the top of the library; code in api/) <- io, oracle, sparse, reference, cpu, cuda
 * <- masks <- core.
 */
#ifndef FLASHMASK_API_H
#define FLASHMASK_API_H

#include "flashmask/bbm.h"
#include "flashmask/core.h"
#include "flashmask/cuda.h"
#include "flashmask/io.h"
#include "flashmask/masks.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- implementations */

const char *fm_impl_name(fm_impl impl); /* "reference", "cpu", "cuda", "reference-cuda" */
fm_status fm_impl_from_name(const char *name, fm_impl *out);

/* FM_OK, or FM_ERR_UNAVAILABLE with a message saying why (not built, no device). */
fm_status fm_impl_available(fm_impl impl);

/* The dtype the implementation computes in for this problem. */
fm_dtype fm_impl_dtype(fm_impl impl, const fm_problem *p);

/* The check fm_forward / fm_backward make of an implementation's results (backward = 0: out
 * and lse, lse may be -inf; 1: dq, dk, dv) computed from t's finite inputs: a result that is
 * inf or NaN means the implementation's arithmetic (fm_impl_dtype) overflowed, and is
 * FM_ERR_OVERFLOW naming the result, its index and the input largest in magnitude. For callers
 * that run an implementation's own entry points (`flashmask run`'s float32 path). */
fm_status fm_results_check_finite(fm_impl impl, const fm_problem *p, const fm_tensors *t,
                                  int backward);

/* The same calling shape for every implementation: validate (problem, mask, finiteness of the
 * inputs: FM_ERR_NONFINITE names the tensor and index), convert, run, convert back. */
fm_status fm_forward(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t);
fm_status fm_backward(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t);

/* The same with the kernels chosen by `opt` (flashmask/cuda.h; NULL or all auto: the
 * heuristics of cuda/heuristics.cu decide). Options other than auto apply to FM_IMPL_CUDA
 * only; with another implementation they are refused (FM_ERR_INVALID), not ignored. */
fm_status fm_forward_opts(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                          const fm_kernel_options *opt);
fm_status fm_backward_opts(fm_impl impl, const fm_problem *p, const fm_mask *mask, fm_tensors *t,
                           const fm_kernel_options *opt);

/* ---------------------------------------------------------------- either mask form */

/* fm_forward / fm_backward (core.h) over either mask form: the column form goes to fm_forward,
 * the BBM form to fm_ref_*_bbm (reference) or fm_cpu_*_bbm (cpu; float64 <-> float32 around
 * it) or, on cuda (whose kernels take the column form only), row splitting of its dense form
 * (fm_rowsplit_*). Inputs are checked for finiteness as fm_forward does. */
fm_status fm_forward_any(fm_impl impl, const fm_problem *p, const fm_any_mask *mask,
                         fm_tensors *t);
fm_status fm_backward_any(fm_impl impl, const fm_problem *p, const fm_any_mask *mask,
                          fm_tensors *t);

/* ---------------------------------------------------------------- dense masks */

/* Attention under the dense mask `allowed` [B, mask_heads, Sq, Sk] through RCM: Q, K, V and the
 * mask permuted, `impl` run on the reordered problem (column form when the reordered mask fits
 * it, BBM with block_q x block_k tiles otherwise), the permutation undone on out, lse, dq, dk,
 * dv. The answer is the same attention as without reordering (up to summation order). */
fm_status fm_rcm_forward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                         int64_t mask_heads, int64_t block_q, int64_t block_k, fm_tensors *t);
fm_status fm_rcm_backward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                          int64_t mask_heads, int64_t block_q, int64_t block_k, fm_tensors *t);

/* Row splitting (flashmask/sparse.h's fm_rowsplit_blocks) run: each block of rows as its own
 * problem under the column form of its rows, on any implementation, dK and dV summed. */
fm_status fm_rowsplit_forward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                              int64_t mask_heads, fm_tensors *t);
fm_status fm_rowsplit_backward(fm_impl impl, const fm_problem *p, const uint8_t *allowed,
                               int64_t mask_heads, fm_tensors *t);

/* ---------------------------------------------------------------- Sparse Flash Attention */

/* QK-sparse: q_keep [B, Hq, Sq] and k_keep [B, Hk, Sk] are 0/1 flags; the keep-list of a
 * (b, head) is the positions flagged 1, in increasing order. Kept queries attend kept keys of
 * their kv head iff (alignment != none) original i + offset >= original j, offset =
 * fm_causal_offset(alignment, Sq, Sk) (top_left: i >= j, the paper's rule); alignment none
 * drops tokens only. Runs `impl` on the compacted problem under a column-wise mask and
 * scatters back: dropped queries get out 0 and lse -inf, dropped queries and keys get 0
 * gradient. Inputs are checked for finiteness by fm_forward/fm_backward on the compact tensors. */
fm_status fm_qk_sparse_forward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                               const uint8_t *q_keep, const uint8_t *k_keep, fm_tensors *t);
fm_status fm_qk_sparse_backward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                const uint8_t *q_keep, const uint8_t *k_keep, fm_tensors *t);

/* Hash-sparse: queries and keys stable-sorted by bucket (ids in [0, n_buckets)); a query
 * attends a key of its kv head iff same bucket and (alignment != none) i + offset >= j.
 * Runs `impl` on the sorted problem under a column-wise mask (a causal document mask over
 * buckets) and scatters back to the original order. */
fm_status fm_hash_sparse_forward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                 const int32_t *q_buckets, const int32_t *k_buckets,
                                 int64_t n_buckets, fm_tensors *t);
fm_status fm_hash_sparse_backward(fm_impl impl, const fm_problem *p, fm_causal alignment,
                                  const int32_t *q_buckets, const int32_t *k_buckets,
                                  int64_t n_buckets, fm_tensors *t);

/* ---------------------------------------------------------------- dense-mask cases */

/* How to run a dense case: auto (column form if it fits, else BBM), bbm (always BBM), rcm
 * (RCM reordering, then auto), qk_sparse / hash_sparse (the gather pipeline from the case's
 * keep flags / buckets), dense (the dense oracle itself; reference only), rowsplit (row blocks
 * in the column form: every implementation, cuda included). */
typedef enum fm_dense_method {
    FM_DENSE_AUTO = 0, FM_DENSE_BBM, FM_DENSE_RCM, FM_DENSE_QK, FM_DENSE_HASH, FM_DENSE_PLAIN,
    FM_DENSE_ROWSPLIT, FM_DENSE_METHOD_COUNT
} fm_dense_method;

const char *fm_dense_method_name(fm_dense_method m);
fm_status fm_dense_method_from_name(const char *name, fm_dense_method *out);

/* Forward (backward = 0) or backward of `impl` on the case with `method`; t as fm_forward. */
fm_status fm_dense_case_run(fm_impl impl, const fm_dense_case *c, fm_dense_method method,
                            int64_t block_q, int64_t block_k, int backward, fm_tensors *t);

#ifdef __cplusplus
}
#endif
#endif
