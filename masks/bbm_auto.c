/* masks/bbm_auto.c — the front door for dense masks: the FlashMask column-wise form when the
 * dense mask fits it (every column's masked rows outside the causal part form at most two
 * runs), Binary Block Masking otherwise. The dense mask is the truth either way; `causal` only
 * says how the column form should express it (a dense mask that allows what `causal` masks is
 * not column-representable with that alignment, and goes to BBM, which holds it exactly).
 * Layer: masks <- core. Declared in flashmask/bbm.h.
 */
#include <string.h>

#include "flashmask/bbm.h"
#include "fm_internal.h"

const char *fm_mask_form_name(fm_mask_form form)
{
    switch (form) {
    case FM_FORM_COLUMNS: return "columns";
    case FM_FORM_BBM: return "bbm";
    }
    return "unknown";
}

fm_status fm_mask_from_dense_auto(fm_any_mask *out, const uint8_t *allowed, int64_t batch,
                                  int64_t heads, int64_t seqlen_q, int64_t seqlen_k,
                                  fm_causal causal, int64_t block_q, int64_t block_k)
{
    fm_clear_error();
    if (!out) return fm_fail(FM_ERR_INVALID, "from_dense_auto: NULL output");
    memset(out, 0, sizeof *out);
    fm_status st = fm_mask_from_dense(&out->columns, allowed, batch, heads, seqlen_q, seqlen_k,
                                      causal);
    if (st == FM_OK) {
        out->form = FM_FORM_COLUMNS;
        return FM_OK;
    }
    if (st != FM_ERR_NOT_REPRESENTABLE) return st; /* bad sizes or values: not a form question */
    out->form = FM_FORM_BBM;
    return fm_bbm_from_dense(&out->bbm, allowed, batch, heads, seqlen_q, seqlen_k, block_q,
                             block_k);
}

void fm_any_mask_free(fm_any_mask *m)
{
    if (!m) return;
    fm_mask_free(&m->columns);
    fm_bbm_free(&m->bbm);
}
