/* api/dense_run.c — running a dense-mask case (io/dense_case.c loads and saves it) with one of
 * the methods: auto (column form if it fits, else BBM), bbm, rcm, qk_sparse, hash_sparse, the
 * dense oracle itself, or row splitting. A dispatch, so it lives in the API layer.
 * Layer: api <- io, sparse, reference <- masks <- core.
 */
#include <string.h>

#include "flashmask.h"
#include "fm_internal.h"

static const char *const method_names[FM_DENSE_METHOD_COUNT] = {
    "auto", "bbm", "rcm", "qk_sparse", "hash_sparse", "dense", "rowsplit"};

const char *fm_dense_method_name(fm_dense_method m)
{
    return (unsigned)m < FM_DENSE_METHOD_COUNT ? method_names[m] : "unknown";
}

fm_status fm_dense_method_from_name(const char *name, fm_dense_method *out)
{
    for (int i = 0; i < FM_DENSE_METHOD_COUNT; i++)
        if (name && strcmp(name, method_names[i]) == 0) {
            *out = (fm_dense_method)i;
            return FM_OK;
        }
    return fm_fail(FM_ERR_INVALID,
                   "unknown method '%s' (expected auto, bbm, rcm, qk_sparse, hash_sparse, dense "
                   "or rowsplit)",
                   name ? name : "(null)");
}

fm_status fm_dense_case_run(fm_impl impl, const fm_dense_case *c, fm_dense_method method,
                            int64_t block_q, int64_t block_k, int backward, fm_tensors *t)
{
    fm_clear_error();
    if (!c || !t) return fm_fail(FM_ERR_INVALID, "dense case run: NULL argument");
    const fm_problem *p = &c->problem;
    fm_status st;
    switch (method) {
    case FM_DENSE_AUTO:
    case FM_DENSE_BBM: {
        fm_any_mask any = {0};
        if (method == FM_DENSE_AUTO)
            st = fm_mask_from_dense_auto(&any, c->allowed, p->batch, c->mask_heads, p->seqlen_q,
                                         p->seqlen_k, FM_CAUSAL_NONE, block_q, block_k);
        else {
            any.form = FM_FORM_BBM;
            st = fm_bbm_from_dense(&any.bbm, c->allowed, p->batch, c->mask_heads, p->seqlen_q,
                                   p->seqlen_k, block_q, block_k);
        }
        if (st == FM_OK)
            st = backward ? fm_backward_any(impl, p, &any, t) : fm_forward_any(impl, p, &any, t);
        fm_any_mask_free(&any);
        return st;
    }
    case FM_DENSE_RCM:
        return backward ? fm_rcm_backward(impl, p, c->allowed, c->mask_heads, block_q, block_k, t)
                        : fm_rcm_forward(impl, p, c->allowed, c->mask_heads, block_q, block_k, t);
    case FM_DENSE_QK:
        if (!c->q_keep || !c->k_keep)
            return fm_fail(FM_ERR_INVALID, "method qk_sparse needs q_keep.npy and k_keep.npy");
        return backward ? fm_qk_sparse_backward(impl, p, c->alignment, c->q_keep, c->k_keep, t)
                        : fm_qk_sparse_forward(impl, p, c->alignment, c->q_keep, c->k_keep, t);
    case FM_DENSE_HASH:
        if (!c->q_buckets || !c->k_buckets)
            return fm_fail(FM_ERR_INVALID,
                           "method hash_sparse needs q_buckets.npy and k_buckets.npy");
        return backward ? fm_hash_sparse_backward(impl, p, c->alignment, c->q_buckets,
                                                  c->k_buckets, c->n_buckets, t)
                        : fm_hash_sparse_forward(impl, p, c->alignment, c->q_buckets, c->k_buckets,
                                                 c->n_buckets, t);
    case FM_DENSE_PLAIN:
        if (impl != FM_IMPL_REFERENCE)
            return fm_fail(FM_ERR_INVALID, "method dense runs the reference only (the CPU "
                           "baseline is fm_cpu_forward_dense, in bench/sparse_bench)");
        return backward ? fm_ref_backward_dense(p, c->allowed, c->mask_heads, t->q, t->k, t->v,
                                                t->out, t->lse, t->dout, t->dq, t->dk, t->dv)
                        : fm_ref_forward_dense(p, c->allowed, c->mask_heads, t->q, t->k, t->v,
                                               t->out, t->lse);
    case FM_DENSE_ROWSPLIT:
        return backward ? fm_rowsplit_backward(impl, p, c->allowed, c->mask_heads, t)
                        : fm_rowsplit_forward(impl, p, c->allowed, c->mask_heads, t);
    default: return fm_fail(FM_ERR_INVALID, "unknown method %d", (int)method);
    }
}
