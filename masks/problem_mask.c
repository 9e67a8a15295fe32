/* masks/problem_mask.c — a problem against its mask: the problem's own checks (core/problem.c),
 * then the mask's shape against the problem (batch, sequence lengths, mask heads dividing the
 * query heads) and the mask's own validity; and the FLOP count from allowed pairs
 * (docs/spec.md §3). Layer: masks <- core.
 */
#include "flashmask/masks.h"
#include "fm_internal.h"

fm_status fm_problem_validate(const fm_problem *p, const fm_mask *mask)
{
    fm_status st = fm_problem_check(p);
    if (st != FM_OK) return st;
    if (!mask) return fm_fail(FM_ERR_INVALID, "problem: NULL mask");
    if (mask->batch != p->batch)
        return fm_fail(FM_ERR_INVALID, "mask batch = %lld differs from problem batch = %lld",
                       (long long)mask->batch, (long long)p->batch);
    if (mask->seqlen_q != p->seqlen_q || mask->seqlen_k != p->seqlen_k)
        return fm_fail(FM_ERR_INVALID,
                       "mask is %lld x %lld (Sq x Sk) but the problem is %lld x %lld",
                       (long long)mask->seqlen_q, (long long)mask->seqlen_k,
                       (long long)p->seqlen_q, (long long)p->seqlen_k);
    if (mask->heads < 1 || p->q_heads % mask->heads != 0)
        return fm_fail(FM_ERR_INVALID, "mask heads = %lld does not divide q_heads = %lld",
                       (long long)mask->heads, (long long)p->q_heads);
    return fm_mask_validate(mask);
}

fm_status fm_problem_validate_shape(const fm_problem *p, int64_t batch, int64_t heads,
                                    int64_t seqlen_q, int64_t seqlen_k)
{
    /* An empty column mask of that shape: fm_mask_init makes its columns valid, so only the
     * shape can be at fault. */
    fm_mask shape = {0};
    fm_status st = fm_mask_init(&shape, batch, heads, seqlen_q, seqlen_k, FM_CAUSAL_NONE);
    if (st != FM_OK) return st;
    st = fm_problem_validate(p, &shape);
    fm_mask_free(&shape);
    return st;
}

double fm_problem_flops(const fm_problem *p, const fm_mask *mask, int backward)
{
    if (fm_problem_validate(p, mask) != FM_OK) return 0.0; /* no division by zero heads */
    double pairs = (double)fm_mask_total_allowed_pairs(mask);
    double per_mask_head = (double)(p->q_heads / mask->heads); /* query heads per mask head */
    double flops = 4.0 * (double)p->head_dim * pairs * per_mask_head;
    return backward ? 2.5 * flops : flops;
}
