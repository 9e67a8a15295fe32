/* cpu/tile_plan.c — the tile contract (cpu_internal.h): from a mask in any of its forms to
 * per-tile decisions for the CPU kernels. Layer: cpu <- masks. The decisions themselves are
 * masks/'s: fm_block_summary_classify, fm_classify_tile (sub-blocks) and fm_element_masked
 * (rules.h) for the column form,
 * fm_bbm_tile and the tile bits for Binary Block Masking; this file maps query heads to mask
 * heads, sizes the tile grid and applies the element rule to a partial tile's scores.
 */
#include <math.h>
#include <string.h>

#include "cpu_internal.h"
#include "fm_internal.h"

/* The grid of block_q x block_k tiles over the problem, no mask form yet. */
static void plan_grid(fm_tile_plan *plan, const fm_problem *p, int64_t mask_heads,
                      int64_t block_q, int64_t block_k)
{
    memset(plan, 0, sizeof *plan);
    plan->mask_heads = mask_heads;
    plan->seqlen_q = p->seqlen_q;
    plan->seqlen_k = p->seqlen_k;
    plan->block_q = block_q;
    plan->block_k = block_k;
    plan->n_q_blocks = (p->seqlen_q + block_q - 1) / block_q;
    plan->n_k_blocks = (p->seqlen_k + block_k - 1) / block_k;
    plan->q_per_mask_head = p->q_heads / mask_heads;
}

void fm_tile_plan_init_bbm(fm_tile_plan *plan, const fm_problem *p, const fm_bbm *bbm)
{
    plan_grid(plan, p, bbm->heads, bbm->block_q, bbm->block_k);
    plan->bbm = bbm;
}

void fm_tile_plan_init_dense(fm_tile_plan *plan, const fm_problem *p, const uint8_t *allowed,
                             int64_t mask_heads, int64_t block_q, int64_t block_k)
{
    plan_grid(plan, p, mask_heads, block_q, block_k);
    plan->dense = allowed;
}

fm_status fm_tile_plan_init(fm_tile_plan *plan, const fm_problem *p, const fm_mask *mask,
                            int64_t block_q, int64_t block_k)
{
    plan_grid(plan, p, mask->heads, block_q, block_k);
    plan->mask = mask;
    plan->offset = fm_causal_offset(mask->causal, mask->seqlen_q, mask->seqlen_k);
    return fm_block_summary_build(mask, block_k, &plan->summary);
}

fm_status fm_tile_plan_init_sub_blocks(fm_tile_plan *plan, int64_t col_step)
{
    if (!plan->mask || plan->sub.minmax) return FM_OK;
    return fm_block_summary_build(plan->mask, col_step, &plan->sub);
}

void fm_tile_plan_free(fm_tile_plan *plan)
{
    if (plan->mask) fm_block_summary_free(&plan->summary);
    if (plan->sub.minmax) fm_block_summary_free(&plan->sub);
}

fm_tile_class fm_tile_plan_classify(const fm_tile_plan *plan, int64_t b, int64_t hq, int64_t qb,
                                    int64_t kb)
{
    const int64_t h = hq / plan->q_per_mask_head;
    if (plan->mask) return fm_block_summary_classify(&plan->summary, b, h, plan->block_q, qb, kb);
    if (!plan->bbm) return FM_TILE_PARTIAL; /* the dense baseline decides per element */
    /* Inside the query tile's contiguous run of full tiles the codes are not read at all (the
     * paper's contiguous-run optimisation). */
    const fm_bbm *m = plan->bbm;
    const int64_t row = (b * m->heads + h) * m->n_q_blocks + qb;
    if (kb >= m->run_start[row] && kb < m->run_end[row]) return FM_TILE_UNMASKED;
    return fm_bbm_tile(m, b, h, qb, kb);
}

/* mask_scores for a dense mask: its bytes, row by row. */
static void dense_mask_scores(const fm_tile_plan *plan, int64_t b, int64_t h, int64_t r0,
                              int64_t rows, int64_t c0, int64_t cols, float *scores, int64_t ld)
{
    const uint8_t *base = plan->dense + ((size_t)(b * plan->mask_heads + h) *
                                         (size_t)plan->seqlen_q + (size_t)r0) *
                                            (size_t)plan->seqlen_k + (size_t)c0;
    for (int64_t i = 0; i < rows; i++) {
        const uint8_t *allowed = base + (size_t)i * (size_t)plan->seqlen_k;
        float *s = scores + i * ld;
        for (int64_t j = 0; j < cols; j++)
            if (!allowed[j]) s[j] = -INFINITY;
    }
}

/* mask_scores for Binary Block Masking: the tile's packed bits. Row i's bits start at bit
 * i * block_k of the tile (fm_bbm_tile_bit's layout); take them up to 64 at a time and visit
 * only the zero (masked) bits: one store per masked element, not one extraction per element. */
static void bbm_mask_scores(const fm_tile_plan *plan, int64_t b, int64_t h, int64_t r0,
                            int64_t rows, int64_t c0, int64_t cols, float *scores, int64_t ld)
{
    const fm_bbm *m = plan->bbm;
    const int64_t qb = r0 / m->block_q, kb = c0 / m->block_k;
    const size_t t = (size_t)(((b * m->heads + h) * m->n_q_blocks + qb) * m->n_k_blocks + kb);
    const uint64_t *bits = m->bits + m->bits_offset[t];
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

int64_t fm_tile_plan_masked_blocks(const fm_tile_plan *plan, int64_t b, int64_t hq, int64_t r0,
                                   int64_t m, int64_t c0, int64_t n, int64_t row_step,
                                   unsigned char *masked)
{
    const fm_block_summary *sub = &plan->sub;
    if (!sub->minmax) return 0; /* none asked for, or not the column form */
    const int64_t step = sub->block_k, h = hq / plan->q_per_mask_head;
    const int64_t row_groups = (m + row_step - 1) / row_step, col_groups = (n + step - 1) / step;
    int64_t count = 0;
    for (int64_t gj = 0; gj < col_groups; gj++) {
        /* the sub-block's keys: one block of the fine summary (c0 is a multiple of step) */
        const int64_t k0 = c0 + gj * step, k1 = k0 + step < c0 + n ? k0 + step : c0 + n;
        const int32_t *mm = fm_block_summary_at(sub, b, h, k0 / step);
        for (int64_t gi = 0; gi < row_groups; gi++) {
            const int64_t lo = r0 + gi * row_step, hi = lo + row_step < r0 + m ? lo + row_step
                                                                              : r0 + m;
            const int hidden = fm_classify_tile(mm, plan->mask->causal, plan->offset, lo, hi, k0,
                                                k1) == FM_TILE_MASKED;
            masked[gi * col_groups + gj] = (unsigned char)hidden;
            count += hidden;
        }
    }
    return count;
}

int64_t fm_tile_plan_next_run(const fm_tile_plan *plan, int64_t b, int64_t hq, fm_run_axis along,
                              int64_t fixed, int64_t *pos, int64_t *first,
                              unsigned char partial[FM_CPU_RUN_TILES], fm_tile_stats *stats)
{
    const int64_t end = along == FM_RUN_ALONG_KEYS ? plan->n_k_blocks : plan->n_q_blocks;
#define CLASSIFY(t) (along == FM_RUN_ALONG_KEYS ? fm_tile_plan_classify(plan, b, hq, fixed, (t)) \
                                                : fm_tile_plan_classify(plan, b, hq, (t), fixed))
    while (*pos < end) {
        fm_tile_class cls = CLASSIFY(*pos);
        fm_tile_stats_count(stats, cls);
        if (cls == FM_TILE_MASKED) { /* the skip: no load, no arithmetic */
            ++*pos;
            continue;
        }
        int64_t n_tiles = 0;
        *first = *pos;
        partial[n_tiles++] = cls == FM_TILE_PARTIAL;
        for (++*pos; n_tiles < FM_CPU_RUN_TILES && *pos < end; ++*pos) {
            cls = CLASSIFY(*pos);
            if (cls == FM_TILE_MASKED) break; /* counted when the next call starts there */
            fm_tile_stats_count(stats, cls);
            partial[n_tiles++] = cls == FM_TILE_PARTIAL;
        }
        return n_tiles;
    }
#undef CLASSIFY
    return 0;
}

int64_t fm_tile_plan_line_tiles(const fm_tile_plan *plan, int64_t b, int64_t hq, fm_run_axis along,
                                int64_t fixed)
{
    const int64_t end = along == FM_RUN_ALONG_KEYS ? plan->n_k_blocks : plan->n_q_blocks;
    int64_t n = 0;
    for (int64_t t = 0; t < end; t++) {
        fm_tile_class c = along == FM_RUN_ALONG_KEYS ? fm_tile_plan_classify(plan, b, hq, fixed, t)
                                                     : fm_tile_plan_classify(plan, b, hq, t, fixed);
        n += c != FM_TILE_MASKED;
    }
    return n;
}

void fm_tile_plan_mask_scores(const fm_tile_plan *plan, int64_t b, int64_t hq, int64_t r0,
                              int64_t m, int64_t c0, int64_t n, float *scores, int64_t ld)
{
    fm_tile_plan_mask_scores_in(plan, b, hq, r0, m, c0, n, scores, ld, NULL);
}

void fm_tile_plan_mask_scores_in(const fm_tile_plan *plan, int64_t b, int64_t hq, int64_t r0,
                                 int64_t m, int64_t c0, int64_t n, float *scores, int64_t ld,
                                 const fm_row_spans *spans)
{
    if (plan->dense) { /* (no spans for these forms: every score is masked) */
        dense_mask_scores(plan, b, hq / plan->q_per_mask_head, r0, m, c0, n, scores, ld);
        return;
    }
    if (plan->bbm) {
        bbm_mask_scores(plan, b, hq / plan->q_per_mask_head, r0, m, c0, n, scores, ld);
        return;
    }
    /* The columns each group of rows needs (all, without spans), and their union: the columns
     * whose masked rows are worked out. */
    const int64_t step = spans ? spans->row_step : m, groups = (m + step - 1) / step;
    int64_t col_lo = spans ? n : 0, col_hi = spans ? 0 : n;
    int64_t group_lo[FM_CPU_TILE_Q], group_hi[FM_CPU_TILE_Q];
    for (int64_t g = 0; spans && g < groups; g++) {
        int64_t lo = spans->span[2 * g] - spans->origin, hi = spans->span[2 * g + 1] - spans->origin;
        lo = lo < 0 ? 0 : lo, hi = hi > n ? n : hi;
        group_lo[g] = lo, group_hi[g] = hi;
        if (lo < hi) {
            col_lo = lo < col_lo ? lo : col_lo;
            col_hi = hi > col_hi ? hi : col_hi;
        }
    }
    /* Two steps, both fast:
     *  1. per column, fm_column_masked_runs (rules.h, the element rule read down a column) gives
     *     the masked rows as at most three runs; they go into small per-run arrays (structure of
     *     arrays, empty runs as [0, 0));
     *  2. row by row, a branch-free membership test over contiguous columns (vectorised) sets
     *     masked scores to -inf.
     * Calling fm_element_masked per element cost about as much as the tile's two sgemms, and
     * writing -inf down columns was strided; this form is a few vector operations per 16
     * elements (docs/measurement-notes.md). */
    const fm_mask *mask = plan->mask;
    const int32_t *cols = fm_mask_column(mask, b, hq / plan->q_per_mask_head, c0);
    int32_t lo[3][FM_CPU_TILE_K], hi[3][FM_CPU_TILE_K];
    for (int64_t j = col_lo; j < col_hi; j++) {
        int64_t run_lo[3], run_hi[3];
        int runs = fm_column_masked_runs(cols + j * FM_BOUNDS, mask->causal, plan->offset,
                                         c0 + j, r0, r0 + m, run_lo, run_hi);
        for (int k = 0; k < 3; k++) { /* rows fit int32: fm_problem_validate checked Sq */
            lo[k][j] = k < runs ? (int32_t)run_lo[k] : 0;
            hi[k][j] = k < runs ? (int32_t)run_hi[k] : 0;
        }
    }
    for (int64_t i = 0; i < m; i++) {
        const int32_t row = (int32_t)(r0 + i);
        const int64_t j0 = spans ? group_lo[i / step] : 0, j1 = spans ? group_hi[i / step] : n;
        float *s = scores + i * ld;
#pragma omp simd
        for (int64_t j = j0; j < j1; j++) {
            int masked = (lo[0][j] <= row && row < hi[0][j]) |
                         (lo[1][j] <= row && row < hi[1][j]) |
                         (lo[2][j] <= row && row < hi[2][j]);
            s[j] = masked ? -INFINITY : s[j];
        }
    }
}
