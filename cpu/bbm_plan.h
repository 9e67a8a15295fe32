/* cpu/bbm_plan.h — tile decisions of the CPU layer for masks held densely: a Binary Block
 * Masking mask (flashmask/bbm.h) or, as the baseline that skips nothing, a plain dense boolean
 * mask. Used by bbm_forward.c and bbm_backward.c, which run the CPU layer's tile kernels
 * (cpu_internal.h: tile sgemms; softmax_online.h: the online softmax rows).
 * Layer: cpu (private header) <- masks (bbm) <- core.
 */
#ifndef FM_CPU_BBM_PLAN_H
#define FM_CPU_BBM_PLAN_H

#include <math.h>

#include "cpu_internal.h"
#include "flashmask/bbm.h"

/* Exactly one of bbm and dense is set. */
typedef struct fm_bbm_plan {
    const fm_bbm *bbm;      /* tiles skipped / run unmasked / bit-tested as its codes say */
    const uint8_t *dense;   /* [B, Hm, Sq, Sk]: every tile computed and element-masked */
    int64_t mask_heads, seqlen_q, seqlen_k;
    int64_t block_q, block_k, n_q_blocks, n_k_blocks;
    int64_t q_per_mask_head; /* Hq / Hm */
} fm_bbm_plan;

static inline void fm_bbm_plan_init(fm_bbm_plan *plan, const fm_problem *p, const fm_bbm *bbm,
                                    const uint8_t *dense, int64_t mask_heads, int64_t block_q,
                                    int64_t block_k)
{
    plan->bbm = bbm;
    plan->dense = dense;
    plan->mask_heads = bbm ? bbm->heads : mask_heads;
    plan->seqlen_q = p->seqlen_q;
    plan->seqlen_k = p->seqlen_k;
    plan->block_q = bbm ? bbm->block_q : block_q;
    plan->block_k = bbm ? bbm->block_k : block_k;
    plan->n_q_blocks = (p->seqlen_q + plan->block_q - 1) / plan->block_q;
    plan->n_k_blocks = (p->seqlen_k + plan->block_k - 1) / plan->block_k;
    plan->q_per_mask_head = p->q_heads / plan->mask_heads;
}

/* The class of tile (qb, kb) for query head hq. Inside the query tile's contiguous run of full
 * tiles the codes are not read at all (the paper's contiguous-run optimisation). */
static inline fm_tile_class fm_bbm_plan_classify(const fm_bbm_plan *plan, int64_t b, int64_t hq,
                                                 int64_t qb, int64_t kb)
{
    if (!plan->bbm) return FM_TILE_PARTIAL; /* the dense baseline decides per element */
    const fm_bbm *m = plan->bbm;
    const int64_t h = hq / plan->q_per_mask_head;
    const int64_t row = (b * m->heads + h) * m->n_q_blocks + qb;
    if (kb >= m->run_start[row] && kb < m->run_end[row]) return FM_TILE_UNMASKED;
    return fm_bbm_tile(m, b, h, qb, kb);
}

/* In a partial tile, set the scores of masked elements to -inf: rows [r0, r0 + rows) x keys
 * [c0, c0 + cols) of (b, hq), row stride ld. */
static inline void fm_bbm_plan_mask_scores(const fm_bbm_plan *plan, int64_t b, int64_t hq,
                                           int64_t qb, int64_t kb, int64_t rows, int64_t cols,
                                           float *scores, int64_t ld)
{
    const int64_t h = hq / plan->q_per_mask_head;
    const int64_t r0 = qb * plan->block_q, c0 = kb * plan->block_k;
    if (plan->dense) {
        const uint8_t *base = plan->dense + ((size_t)(b * plan->mask_heads + h) *
                                             (size_t)plan->seqlen_q + (size_t)r0) *
                                                (size_t)plan->seqlen_k + (size_t)c0;
        for (int64_t i = 0; i < rows; i++) {
            const uint8_t *allowed = base + (size_t)i * (size_t)plan->seqlen_k;
            float *s = scores + i * ld;
            for (int64_t j = 0; j < cols; j++)
                if (!allowed[j]) s[j] = -INFINITY;
        }
        return;
    }
    const fm_bbm *m = plan->bbm;
    const size_t t = (size_t)(((b * m->heads + h) * m->n_q_blocks + qb) * m->n_k_blocks + kb);
    const uint64_t *bits = m->bits + m->bits_offset[t];
    /* Row i's bits start at bit i * block_k of the tile (fm_bbm_tile_bit's layout). Take them
     * up to 64 at a time and visit only the zero (masked) bits: the work is one store per
     * masked element, not one bit extraction per element. */
    for (int64_t i = 0; i < rows; i++) {
        float *s = scores + i * ld;
        for (int64_t j0 = 0; j0 < cols;) {
            const int64_t bit = i * m->block_k + j0, shift = bit & 63;
            int64_t take = 64 - shift;
            if (take > cols - j0) take = cols - j0;
            const uint64_t valid = take == 64 ? ~(uint64_t)0 : (((uint64_t)1 << take) - 1);
            uint64_t masked = ~(bits[bit >> 6] >> shift) & valid;
            while (masked) {
                s[j0 + __builtin_ctzll(masked)] = -INFINITY;
                masked &= masked - 1; /* clear the lowest masked bit */
            }
            j0 += take;
        }
    }
}

#endif
