/* fuzz/fuzz_mask.c — libFuzzer target for mask validation and conversion (masks/): the bytes
 * are sizes, a causal alignment and raw bounds (often invalid). Invalid masks must be refused
 * with a message; valid ones must survive dense and Paddle round trips unchanged, count their
 * allowed pairs exactly, and be classified soundly tile by tile. Any disagreement aborts. */
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "fuzz_bytes.h"

static void check_dense_round_trip(const fm_mask *m, const uint8_t *dense, size_t n)
{
    fm_mask back = {0};
    if (fm_mask_from_dense(&back, dense, m->batch, m->heads, m->seqlen_q, m->seqlen_k,
                           m->causal) != FM_OK)
        abort(); /* the dense image of a valid mask is always representable */
    uint8_t *again = malloc(n);
    if (!again || fm_mask_to_dense(&back, again) != FM_OK || memcmp(dense, again, n) != 0)
        abort();
    free(again);
    fm_mask_free(&back);
}

static void check_startend_round_trip(const fm_mask *m, const uint8_t *dense, size_t n)
{
    size_t cols = (size_t)(m->batch * m->heads * m->seqlen_k);
    int32_t *se = malloc(cols * 4 * sizeof(int32_t));
    uint8_t *again = malloc(n);
    if (!se || !again) abort();
    for (int c = 1; c <= 4; c *= 2) {
        if (fm_mask_to_startend(m, c, se) != FM_OK) continue; /* not every mask fits every C */
        fm_mask back = {0};
        if (fm_mask_from_startend(&back, se, m->batch, m->heads, m->seqlen_q, m->seqlen_k, c,
                                  m->causal) != FM_OK)
            abort();
        if (fm_mask_to_dense(&back, again) != FM_OK || memcmp(dense, again, n) != 0) abort();
        fm_mask_free(&back);
    }
    free(se);
    free(again);
}

static void check_tiles_and_pairs(const fm_mask *m, const uint8_t *dense, int64_t bq, int64_t bk)
{
    fm_block_summary s = {0};
    if (fm_block_summary_build(m, bk, &s) != FM_OK) abort();
    int64_t sq = m->seqlen_q, sk = m->seqlen_k;
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++) {
            const uint8_t *d = dense + (size_t)((b * m->heads + h) * sq * sk);
            int64_t pairs = 0;
            for (size_t e = 0; e < (size_t)(sq * sk); e++) pairs += d[e];
            if (pairs != fm_mask_allowed_pairs(m, b, h)) abort();
            for (int64_t qb = 0; qb * bq < sq; qb++)
                for (int64_t kb = 0; kb * bk < sk; kb++) {
                    fm_tile_class c = fm_block_summary_classify(&s, b, h, bq, qb, kb);
                    int64_t allowed = 0, total = 0;
                    for (int64_t i = qb * bq; i < sq && i < (qb + 1) * bq; i++)
                        for (int64_t j = kb * bk; j < sk && j < (kb + 1) * bk; j++)
                            allowed += d[i * sk + j], total++;
                    if (c == FM_TILE_MASKED && allowed != 0) abort();
                    if (c == FM_TILE_UNMASKED && allowed != total) abort();
                }
        }
    fm_block_summary_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fuzz_shape sh = fuzz_draw_shape(&data, &size, 16, 5);
    const int64_t batch = sh.batch, heads = sh.heads, sq = sh.sq, sk = sh.sk;
    const fm_causal causal = sh.causal;
    const int64_t bq = sh.bq, bk = sh.bk;

    fm_mask m = {0};
    if (fm_mask_init(&m, batch, heads, sq, sk, causal) != FM_OK) abort();
    size_t n_bounds = (size_t)(batch * heads * sk * FM_BOUNDS);
    for (size_t e = 0; e < n_bounds && size > 0; e++)
        m.bounds[e] = (int32_t)(next_byte(&data, &size) % (sq + 5)) - 2; /* [-2, Sq + 2] */

    if (fm_mask_validate(&m) != FM_OK) {
        if (fm_last_error()[0] == '\0') abort();
        fm_mask_free(&m);
        return 0;
    }
    size_t n = (size_t)(batch * heads * sq * sk);
    uint8_t *dense = malloc(n);
    if (!dense || fm_mask_to_dense(&m, dense) != FM_OK) abort();
    check_dense_round_trip(&m, dense, n);
    check_startend_round_trip(&m, dense, n);
    check_tiles_and_pairs(&m, dense, bq, bk);
    free(dense);
    fm_mask_free(&m);
    return 0;
}
