/* core/problem.c — the problem descriptor: defaults, validation of the problem on its own (the
 * message names the dimension at fault) and tensor sizes. The check against a mask, and the FLOP
 * count from allowed pairs, need the mask: they are masks/problem_mask.c's.
 * Layer: core.
 */
#include <math.h>

#include "fm_internal.h"

void fm_problem_init(fm_problem *p, int64_t batch, int64_t q_heads, int64_t kv_heads,
                     int64_t seqlen_q, int64_t seqlen_k, int64_t head_dim)
{
    *p = (fm_problem){.batch = batch, .q_heads = q_heads, .kv_heads = kv_heads,
                      .seqlen_q = seqlen_q, .seqlen_k = seqlen_k, .head_dim = head_dim,
                      .scale = head_dim > 0 ? 1.0 / sqrt((double)head_dim) : 1.0,
                      .dtype = FM_FLOAT32, .flags = 0};
}

fm_status fm_problem_check(const fm_problem *p)
{
    if (!p) return fm_fail(FM_ERR_INVALID, "problem: NULL descriptor");
    const struct { const char *name; int64_t value; } dims[] = {
        {"batch", p->batch},       {"q_heads", p->q_heads},   {"kv_heads", p->kv_heads},
        {"seqlen_q", p->seqlen_q}, {"seqlen_k", p->seqlen_k}, {"head_dim", p->head_dim},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++)
        if (dims[i].value < 1)
            return fm_fail(FM_ERR_INVALID, "problem: %s = %lld, must be >= 1", dims[i].name,
                           (long long)dims[i].value);
    if (p->seqlen_q > INT32_MAX || p->seqlen_k > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW,
                       "problem: seqlen_q = %lld, seqlen_k = %lld: row bounds are int32, so "
                       "sequence lengths must be <= %d",
                       (long long)p->seqlen_q, (long long)p->seqlen_k, INT32_MAX);
    /* Every implementation hands D to BLAS (or to GPU kernels) as an int: refuse D > INT32_MAX
     * here, before any layer truncates it (the cpu layer once cast it silently). */
    if (p->head_dim > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW, "problem: head_dim = %lld exceeds the BLAS int limit %d",
                       (long long)p->head_dim, INT32_MAX);
    if (p->q_heads % p->kv_heads != 0)
        return fm_fail(FM_ERR_INVALID, "problem: kv_heads = %lld does not divide q_heads = %lld",
                       (long long)p->kv_heads, (long long)p->q_heads);
    if (!(p->scale > 0.0) || !isfinite(p->scale))
        return fm_fail(FM_ERR_INVALID, "problem: scale = %g, must be finite and > 0", p->scale);
    if ((unsigned)p->dtype > FM_BFLOAT16)
        return fm_fail(FM_ERR_INVALID, "problem: unknown dtype %d", (int)p->dtype);
    size_t n;
    int64_t q_dims[] = {p->batch, p->q_heads, p->seqlen_q, p->head_dim};
    int64_t kv_dims[] = {p->batch, p->kv_heads, p->seqlen_k, p->head_dim};
    if (fm_mul_sizes(&n, 4, q_dims) || n > SIZE_MAX / sizeof(double))
        return fm_fail(FM_ERR_OVERFLOW, "problem: B*Hq*Sq*D = %lld*%lld*%lld*%lld overflows",
                       (long long)p->batch, (long long)p->q_heads, (long long)p->seqlen_q,
                       (long long)p->head_dim);
    if (fm_mul_sizes(&n, 4, kv_dims) || n > SIZE_MAX / sizeof(double))
        return fm_fail(FM_ERR_OVERFLOW, "problem: B*Hk*Sk*D = %lld*%lld*%lld*%lld overflows",
                       (long long)p->batch, (long long)p->kv_heads, (long long)p->seqlen_k,
                       (long long)p->head_dim);
    return FM_OK;
}

size_t fm_problem_q_elems(const fm_problem *p)
{
    return (size_t)p->batch * (size_t)p->q_heads * (size_t)p->seqlen_q * (size_t)p->head_dim;
}

size_t fm_problem_kv_elems(const fm_problem *p)
{
    return (size_t)p->batch * (size_t)p->kv_heads * (size_t)p->seqlen_k * (size_t)p->head_dim;
}

size_t fm_problem_lse_elems(const fm_problem *p)
{
    return (size_t)p->batch * (size_t)p->q_heads * (size_t)p->seqlen_q;
}
