/* masks/dense.c — exact conversions between the column-wise mask and a dense boolean mask
 * [B, Hm, Sq, Sk] (1 = allowed), and the canonical column form both directions agree on
 * (docs/masks.md, "Dense canonical form").
 *
 * Layer: masks <- core. The element rule is fm_element_masked (flashmask/rules.h).
 */
#include <string.h>

#include "flashmask/masks.h"
#include "fm_internal.h"
#include "mask_internal.h"

int64_t fm_causal_row_end(fm_causal causal, int64_t offset, int64_t seqlen_q, int64_t j)
{
    if (causal == FM_CAUSAL_NONE) return 0;
    int64_t end = j - offset; /* rows i < j - offset satisfy j > i + offset */
    return end < 0 ? 0 : end > seqlen_q ? seqlen_q : end;
}

int fm_column_runs(const int32_t *col, int64_t causal_end, int64_t seqlen_q, fm_run runs[2])
{
    /* Each interval, cut to the rows the causal rule leaves open. */
    fm_run cut[2];
    int n = 0;
    for (int k = 0; k < FM_BOUNDS; k += 2) {
        int64_t s = col[k] > causal_end ? col[k] : causal_end;
        int64_t e = col[k + 1] < seqlen_q ? col[k + 1] : seqlen_q;
        if (s < e) cut[n++] = (fm_run){s, e};
    }
    if (n == 2 && cut[1].start < cut[0].start) { /* sort by start */
        fm_run t = cut[0];
        cut[0] = cut[1];
        cut[1] = t;
    }
    if (n == 2 && cut[1].start <= cut[0].end) { /* overlapping or touching: one run */
        if (cut[1].end > cut[0].end) cut[0].end = cut[1].end;
        n = 1;
    }
    memcpy(runs, cut, (size_t)n * sizeof *cut);
    return n;
}

void fm_canonical_bounds(const fm_run *runs, int n, fm_causal causal, int64_t seqlen_q,
                         int32_t out[FM_BOUNDS])
{
    /* Start from "nothing masked", written as the canonical empty intervals. */
    out[FM_LTS] = out[FM_LTE] = (int32_t)seqlen_q;
    out[FM_UTS] = out[FM_UTE] = 0;
    const fm_run *lower = NULL, *upper = NULL;
    if (n == 2) {
        upper = &runs[0];
        lower = &runs[1];
    } else if (n == 1) {
        /* Paddle's causal forms have no UT, and its non-causal two-column form has UT starting
         * at row 0 and LT ending at Sq: this choice lets every such column convert. */
        if (causal == FM_CAUSAL_NONE && runs[0].start == 0 && runs[0].end < seqlen_q)
            upper = &runs[0];
        else
            lower = &runs[0];
    }
    if (lower) {
        out[FM_LTS] = (int32_t)lower->start;
        out[FM_LTE] = (int32_t)lower->end;
    }
    if (upper) {
        out[FM_UTS] = (int32_t)upper->start;
        out[FM_UTE] = (int32_t)upper->end;
    }
}

fm_status fm_mask_to_dense(const fm_mask *m, uint8_t *allowed)
{
    fm_status st = fm_mask_validate(m);
    if (st != FM_OK) return st;
    if (!allowed) return fm_fail(FM_ERR_INVALID, "to_dense: NULL output");
    int64_t shape[] = {m->batch, m->heads, m->seqlen_q, m->seqlen_k};
    size_t n;
    if (fm_mul_sizes(&n, 4, shape))
        return fm_fail(FM_ERR_OVERFLOW, "to_dense: B*Hm*Sq*Sk = %lld*%lld*%lld*%lld overflows",
                       (long long)m->batch, (long long)m->heads, (long long)m->seqlen_q,
                       (long long)m->seqlen_k);
    const int64_t offset = fm_causal_offset(m->causal, m->seqlen_q, m->seqlen_k);
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++) {
            uint8_t *plane = allowed + (size_t)(b * m->heads + h) * (size_t)(m->seqlen_q *
                                                                             m->seqlen_k);
            for (int64_t i = 0; i < m->seqlen_q; i++)
                for (int64_t j = 0; j < m->seqlen_k; j++)
                    plane[i * m->seqlen_k + j] =
                        !fm_element_masked(fm_mask_column(m, b, h, j), m->causal, offset, i, j);
        }
    return FM_OK;
}

fm_status fm_mask_from_dense(fm_mask *out, const uint8_t *allowed, int64_t batch, int64_t heads,
                             int64_t seqlen_q, int64_t seqlen_k, fm_causal causal)
{
    if (!out) return fm_fail(FM_ERR_INVALID, "from_dense: NULL output");
    memset(out, 0, sizeof *out);
    if (!allowed) return fm_fail(FM_ERR_INVALID, "from_dense: NULL dense mask");
    /* The dense size is checked before the column mask is allocated: a huge batch with a
     * modest Sk would otherwise ask for the mask's memory first. */
    int64_t shape[] = {batch, heads, seqlen_q, seqlen_k};
    size_t n_elems;
    if (batch >= 1 && heads >= 1 && seqlen_q >= 1 && seqlen_k >= 1 &&
        fm_mul_sizes(&n_elems, 4, shape))
        return fm_fail(FM_ERR_OVERFLOW, "from_dense: B*Hm*Sq*Sk overflows size_t");
    fm_mask m;
    fm_status st = fm_mask_init(&m, batch, heads, seqlen_q, seqlen_k, causal);
    if (st != FM_OK) return st;
    const int64_t offset = fm_causal_offset(causal, seqlen_q, seqlen_k);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t j = 0; j < seqlen_k; j++) {
                const uint8_t *plane = allowed + (size_t)(b * heads + h) *
                                                     (size_t)(seqlen_q * seqlen_k);
                const int64_t ce = fm_causal_row_end(causal, offset, seqlen_q, j);
                fm_run runs[3];
                int n = 0;
                int64_t run_start = -1; /* start of the masked run being read, -1 if none */
                for (int64_t i = 0; i < seqlen_q; i++) {
                    uint8_t a = plane[i * seqlen_k + j];
                    if (a > 1) {
                        fm_mask_free(&m);
                        return fm_fail(FM_ERR_INVALID,
                                       "from_dense: b=%lld head=%lld row=%lld column=%lld: "
                                       "value %u is not 0 (masked) or 1 (allowed)",
                                       (long long)b, (long long)h, (long long)i, (long long)j,
                                       (unsigned)a);
                    }
                    if (i < ce) { /* the causal rule masks this row: it must not be allowed */
                        if (a) {
                            fm_mask_free(&m);
                            return fm_fail(FM_ERR_NOT_REPRESENTABLE,
                                           "from_dense: b=%lld head=%lld column=%lld: row %lld "
                                           "is allowed but causal=%s masks it (rows < %lld)",
                                           (long long)b, (long long)h, (long long)j,
                                           (long long)i, fm_causal_name(causal), (long long)ce);
                        }
                        continue;
                    }
                    if (!a && run_start < 0) run_start = i;
                    if ((a || i == seqlen_q - 1) && run_start >= 0) {
                        int64_t end = a ? i : seqlen_q; /* the run ends here or at the bottom */
                        if (n < 3) runs[n] = (fm_run){run_start, end};
                        n++;
                        run_start = -1;
                    }
                }
                if (n > 2) {
                    fm_mask_free(&m);
                    return fm_fail(FM_ERR_NOT_REPRESENTABLE,
                                   "from_dense: b=%lld head=%lld column=%lld has %d masked runs "
                                   "outside the causal part (rows [%lld,%lld), [%lld,%lld), "
                                   "[%lld,%lld)%s); at most 2 are representable",
                                   (long long)b, (long long)h, (long long)j, n,
                                   (long long)runs[0].start, (long long)runs[0].end,
                                   (long long)runs[1].start, (long long)runs[1].end,
                                   (long long)runs[2].start, (long long)runs[2].end,
                                   n > 3 ? ", ..." : "");
                }
                fm_canonical_bounds(runs, n, causal, seqlen_q, fm_mask_column(&m, b, h, j));
            }
    *out = m;
    return FM_OK;
}
