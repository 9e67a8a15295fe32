/* masks/startend.c — Paddle's compact mask form, flashmask_attention(startend_row_indices=...):
 * int32 [B, Hm, Sk, C], C in {1, 2, 4}, read together with a causal flag (BRIEF 2 table):
 *
 *   causal  C  columns             implied
 *   yes     1  LTS                 LTE = Sq, no UT
 *   yes     2  LTS, LTE            no UT
 *   no      2  LTS, UTE            LTE = Sq, UTS = 0
 *   no/yes  4  LTS, LTE, UTS, UTE
 *
 * Layer: masks <- core. Our causal alignment "none" is Paddle's causal=False; either aligned
 * causal rule is causal=True (Paddle's own tests use bottom_right).
 *
 * Reading (from_startend) accepts every row of the table with either alignment: it is also our
 * own compact form. Writing (to_startend) produces only what Paddle's flashmask_attention reads
 * as the same mask, and refuses with FM_ERR_NOT_REPRESENTABLE and a message saying how to
 * convert: Paddle applies causal=True bottom-right, so a top_left mask with Sq != Sk would be
 * read as another mask; and Paddle raises for causal=True with C = 4 (its causal forms are C = 1
 * and 2). docs/masks.md §6 has the conversions.
 */
#include <string.h>

#include "flashmask/masks.h"
#include "fm_internal.h"
#include "mask_internal.h"

/* Names of the C values of a row of the compact form, for messages. */
static const char *column_name(int columns, int causal, int k)
{
    static const char *const four[4] = {"LTS", "LTE", "UTS", "UTE"};
    if (columns == 4) return four[k];
    if (columns == 1) return "LTS";
    return k == 0 ? "LTS" : causal ? "LTE" : "UTE";
}

/* Is (columns, causal) one of the rows of the table? */
static fm_status check_form(int columns, fm_causal causal, const char *who)
{
    if ((unsigned)causal > FM_CAUSAL_TOP_LEFT)
        return fm_fail(FM_ERR_INVALID, "%s: unknown causal alignment %d", who, (int)causal);
    if (columns != 1 && columns != 2 && columns != 4)
        return fm_fail(FM_ERR_INVALID, "%s: C = %d columns, expected 1, 2 or 4", who, columns);
    if (columns == 1 && causal == FM_CAUSAL_NONE)
        return fm_fail(FM_ERR_INVALID,
                       "%s: C = 1 (LTS only) is defined only with causal=True; without causal "
                       "use C = 2 (LTS, UTE) or 4",
                       who);
    return FM_OK;
}

fm_status fm_mask_from_startend(fm_mask *out, const int32_t *startend, int64_t batch,
                                int64_t heads, int64_t seqlen_q, int64_t seqlen_k, int columns,
                                fm_causal causal)
{
    if (!out) return fm_fail(FM_ERR_INVALID, "from_startend: NULL output");
    memset(out, 0, sizeof *out);
    fm_status st = check_form(columns, causal, "from_startend");
    if (st != FM_OK) return st;
    if (!startend) return fm_fail(FM_ERR_INVALID, "from_startend: NULL startend_row_indices");
    fm_mask m;
    if ((st = fm_mask_init(&m, batch, heads, seqlen_q, seqlen_k, causal)) != FM_OK) return st;
    const int is_causal = causal != FM_CAUSAL_NONE;
    const int32_t sq = (int32_t)seqlen_q;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++)
            for (int64_t j = 0; j < seqlen_k; j++) {
                const int32_t *v = startend + ((b * heads + h) * seqlen_k + j) * columns;
                /* Users' values are checked, never clipped: each in [0, Sq]. */
                for (int k = 0; k < columns; k++)
                    if (v[k] < 0 || v[k] > sq) {
                        fm_mask_free(&m);
                        return fm_fail(FM_ERR_INVALID,
                                       "startend_row_indices: b=%lld head=%lld column=%lld: "
                                       "bound %s (index %d of C=%d) = %d is outside [0, Sq=%d]",
                                       (long long)b, (long long)h, (long long)j,
                                       column_name(columns, is_causal, k), k, columns,
                                       (int)v[k], (int)sq);
                    }
                int32_t *col = fm_mask_column(&m, b, h, j);
                switch (columns) {
                case 1: col[FM_LTS] = v[0]; col[FM_LTE] = sq; break;
                case 2:
                    if (is_causal) {
                        col[FM_LTS] = v[0];
                        col[FM_LTE] = v[1];
                    } else {
                        col[FM_LTS] = v[0];
                        col[FM_LTE] = sq;
                        col[FM_UTS] = 0;
                        col[FM_UTE] = v[1];
                    }
                    break;
                default: memcpy(col, v, FM_BOUNDS * sizeof *v); break;
                }
            }
    /* start <= end for every interval (e.g. LTS > LTE in the causal two-column form): the
     * mask's validation names b, head, column and the bounds. */
    if ((st = fm_mask_validate(&m)) != FM_OK) {
        fm_mask_free(&m);
        return st;
    }
    *out = m;
    return FM_OK;
}

fm_status fm_mask_to_startend(const fm_mask *m, int columns, int32_t *startend)
{
    fm_status st = fm_mask_validate(m);
    if (st != FM_OK) return st;
    if ((st = check_form(columns, m->causal, "to_startend")) != FM_OK) return st;
    if (!startend) return fm_fail(FM_ERR_INVALID, "to_startend: NULL output");
    if (m->causal == FM_CAUSAL_TOP_LEFT && m->seqlen_q != m->seqlen_k)
        return fm_fail(FM_ERR_NOT_REPRESENTABLE,
                       "to_startend: the mask is causal top_left with Sq=%lld != Sk=%lld, but "
                       "Paddle applies causal=True bottom-right and would read these vectors as "
                       "another mask; build it bottom_right if that is what you mean, or convert "
                       "it to causal none first (from_dense(to_dense(mask), none)) and write C=2 "
                       "or 4",
                       (long long)m->seqlen_q, (long long)m->seqlen_k);
    if (m->causal != FM_CAUSAL_NONE && columns == 4)
        return fm_fail(FM_ERR_NOT_REPRESENTABLE,
                       "to_startend: C=4 with causal=True is not a form Paddle accepts (it raises: "
                       "causal forms are C=1 and C=2); write C=1 or 2, or convert the mask to "
                       "causal none first (from_dense(to_dense(mask), none)) and write C=4");
    const int64_t sq = m->seqlen_q;
    const int64_t offset = fm_causal_offset(m->causal, m->seqlen_q, m->seqlen_k);
    const int is_causal = m->causal != FM_CAUSAL_NONE;
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++)
            for (int64_t j = 0; j < m->seqlen_k; j++) {
                const int32_t *col = fm_mask_column(m, b, h, j);
                int32_t *v = startend + ((b * m->heads + h) * m->seqlen_k + j) * columns;
                if (columns == 4) { /* the same four vectors: copy them as they are */
                    memcpy(v, col, FM_BOUNDS * sizeof *v);
                    continue;
                }
                /* Fewer columns: write the column's masked set in canonical form, then check
                 * that the form's implied values hold. */
                fm_run runs[2];
                int n = fm_column_runs(col, fm_causal_row_end(m->causal, offset, sq, j), sq,
                                       runs);
                int32_t c[FM_BOUNDS];
                fm_canonical_bounds(runs, n, m->causal, sq, c);
                const int lt_empty = c[FM_LTS] == c[FM_LTE], ut_empty = c[FM_UTS] == c[FM_UTE];
                const char *why = NULL;
                if (is_causal && !ut_empty)
                    why = "two masked runs outside the causal part, but causal forms have no UT";
                else if (columns == 1 && !lt_empty && c[FM_LTE] != sq)
                    why = "its masked run stops before Sq, but C=1 implies LTE = Sq";
                else if (!is_causal && !lt_empty && c[FM_LTE] != sq)
                    why = "its lower run stops before Sq, but C=2 without causal implies LTE = Sq";
                else if (!is_causal && !ut_empty && c[FM_UTS] != 0)
                    why = "its upper run starts after row 0, but C=2 without causal implies "
                          "UTS = 0";
                if (why)
                    return fm_fail(FM_ERR_NOT_REPRESENTABLE,
                                   "to_startend: b=%lld head=%lld column=%lld (LT [%d,%d), UT "
                                   "[%d,%d), causal=%s) does not fit C=%d: %s",
                                   (long long)b, (long long)h, (long long)j, (int)col[FM_LTS],
                                   (int)col[FM_LTE], (int)col[FM_UTS], (int)col[FM_UTE],
                                   fm_causal_name(m->causal), columns, why);
                if (columns == 1) {
                    v[0] = c[FM_LTS]; /* Sq when nothing is masked: [Sq, Sq) */
                } else if (is_causal) {
                    v[0] = c[FM_LTS];
                    v[1] = c[FM_LTE];
                } else {
                    v[0] = c[FM_LTS]; /* LT = [LTS, Sq): Sq when empty */
                    v[1] = c[FM_UTE]; /* UT = [0, UTE): 0 when empty */
                }
            }
    return FM_OK;
}
