/* fuzz/fuzz_dense.c — libFuzzer target for the dense-mask entry points (masks/dense.c, bbm.c,
 * bbm_auto.c): a dense [B, Hm, Sq, Sk] mask from the bytes (one bit per element, or raw bytes
 * that may hold values other than 0/1), converted to the column form, to Binary Block Masking
 * with fuzzed tile sizes, and through the auto front door. Refusals must carry a message; what is
 * accepted must convert back to the same dense mask, count its allowed pairs exactly and give
 * sound tile codes (an empty tile has no allowed element, a full tile no masked one). */
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "fuzz_bytes.h"

static void check_bbm(const fm_bbm *m, const uint8_t *dense, size_t n)
{
    uint8_t *again = malloc(n);
    if (!again || fm_bbm_to_dense(m, again) != FM_OK || memcmp(again, dense, n) != 0) abort();
    free(again);
    int64_t pairs = 0;
    for (size_t e = 0; e < n; e++) pairs += dense[e];
    if (pairs != fm_bbm_total_allowed_pairs(m)) abort();
    const int64_t sq = m->seqlen_q, sk = m->seqlen_k;
    for (int64_t b = 0; b < m->batch; b++)
        for (int64_t h = 0; h < m->heads; h++) {
            const uint8_t *plane = dense + (size_t)((b * m->heads + h) * sq * sk);
            for (int64_t qb = 0; qb < m->n_q_blocks; qb++)
                for (int64_t kb = 0; kb < m->n_k_blocks; kb++) {
                    int64_t allowed = 0, total = 0;
                    for (int64_t i = qb * m->block_q; i < sq && i < (qb + 1) * m->block_q; i++)
                        for (int64_t j = kb * m->block_k; j < sk && j < (kb + 1) * m->block_k;
                             j++) {
                            allowed += plane[i * sk + j], total++;
                            if (fm_bbm_is_allowed(m, b, h, i, j) != plane[i * sk + j]) abort();
                        }
                    fm_tile_class c = fm_bbm_tile(m, b, h, qb, kb);
                    if (c == FM_TILE_MASKED && allowed != 0) abort();
                    if (c == FM_TILE_UNMASKED && allowed != total) abort();
                }
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const fuzz_shape sh = fuzz_draw_shape(&data, &size, 20, 24);
    const int64_t batch = sh.batch, heads = sh.heads, sq = sh.sq, sk = sh.sk;
    const fm_causal causal = sh.causal;
    const int64_t bq = sh.bq, bk = sh.bk;
    int raw = next_byte(&data, &size) % 8 == 0; /* raw bytes: values > 1 must be refused */

    size_t n = (size_t)(batch * heads * sq * sk);
    uint8_t *dense = malloc(n);
    if (!dense) return 0;
    uint8_t bits = 0;
    for (size_t e = 0; e < n; e++) {
        if (raw) {
            dense[e] = next_byte(&data, &size) % 3;
        } else {
            if (e % 8 == 0) bits = size ? next_byte(&data, &size) : 0xff;
            dense[e] = (bits >> (e % 8)) & 1;
        }
    }

    /* column form: exact, or refused as not representable / not boolean */
    fm_mask m = {0};
    fm_status st = fm_mask_from_dense(&m, dense, batch, heads, sq, sk, causal);
    if (st == FM_OK) {
        uint8_t *again = malloc(n);
        if (!again || fm_mask_to_dense(&m, again) != FM_OK || memcmp(again, dense, n) != 0)
            abort();
        free(again);
        fm_mask_free(&m);
    } else if (fm_last_error()[0] == '\0') {
        abort();
    }

    /* BBM: any boolean dense mask is accepted */
    fm_bbm bbm = {0};
    st = fm_bbm_from_dense(&bbm, dense, batch, heads, sq, sk, bq, bk);
    if (st == FM_OK) {
        check_bbm(&bbm, dense, n);
        fm_bbm_free(&bbm);
    } else if (!raw || fm_last_error()[0] == '\0') {
        abort(); /* only non-boolean values may be refused */
    }

    /* the front door agrees with the two */
    fm_any_mask any = {0};
    st = fm_mask_from_dense_auto(&any, dense, batch, heads, sq, sk, causal, bq, bk);
    if (st == FM_OK) {
        uint8_t *again = malloc(n);
        if (!again) abort();
        if (any.form == FM_FORM_COLUMNS) st = fm_mask_to_dense(&any.columns, again);
        else st = fm_bbm_to_dense(&any.bbm, again);
        if (st != FM_OK) abort();
        /* the BBM form ignores `causal`: it holds the dense mask as given */
        if (memcmp(again, dense, n) != 0) abort();
        free(again);
        fm_any_mask_free(&any);
    } else if (fm_last_error()[0] == '\0') {
        abort();
    }
    free(dense);
    return 0;
}
