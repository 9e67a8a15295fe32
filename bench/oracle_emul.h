/* bench/oracle_emul.h — a FlashAttention-2-order emulation in a candidate precision X, with
 * planted bugs, for measuring the oracle's false alarms and detection power
 * (bench/oracle_rates.c; tests/oracle/test_rule_power.c).
 *
 * The correct emulation: key tiles of 16, row blocks of 16, tiles fully masked for a whole row
 * block skipped; online softmax in float32 (running max, rescale of the row sum and of the
 * accumulator), P rounded to X before P.V, O = acc / l rounded to X, lse = m + log(l) in
 * float32; backward from its own X-rounded O and float32 lse: P = exp(S - lse), Delta = dO.O
 * (d ascending), dP = dO.v (d descending: another order), P and dS rounded to X before the
 * products, dQ/dK/dV accumulated in float32 and rounded to X once.
 * Layer: bench, above oracle/ and masks/ (uses only the public API and rules.h).
 */
#ifndef FM_BENCH_ORACLE_EMUL_H
#define FM_BENCH_ORACLE_EMUL_H

#include "flashmask/masks.h"

typedef enum emul_bug {
    BUG_NONE = 0,
    BUG_LTS_OFF,      /* LTS read one row late: the lower interval starts at LTS + 1 */
    BUG_LTE_OFF,      /* LTE one row late: the lower interval ends at LTE + 1 */
    BUG_UTS_OFF,      /* UTS + 1 */
    BUG_UTE_OFF,      /* UTE + 1 */
    BUG_CAUSAL_DIAG,  /* causal rule masks the diagonal (j >= i + offset) */
    BUG_ALIGNMENT,    /* the other causal alignment (top-left <-> bottom-right) */
    BUG_NO_RESCALE,   /* the accumulator is not rescaled when the running max grows */
    BUG_SCALE_TWICE,  /* scores multiplied by scale twice */
    BUG_NO_SCALE,     /* scores not multiplied by scale */
    BUG_TILE_SKIP,    /* unsound skip: a tile is skipped when its corner element is masked */
    BUG_STALE_ACC,    /* the accumulator is not zeroed between row blocks */
    BUG_LSE_BASE2,    /* lse written in base 2 */
    BUG_DQ_NO_SCALE,  /* dQ missing the softmax scale */
    BUG_GQA_MAP,      /* kv head h % Hk instead of h / (Hq/Hk) */
    BUG_DKDV_SWAP,    /* dK and dV written to each other's place */
    BUG_MASKED_NAN,   /* no guard for a row with no allowed key yet: exp(-inf - -inf) = NaN */
    BUG_SOME_HEADS,   /* the last query head is never written (zeros) */
    BUG_COUNT
} emul_bug;

const char *emul_bug_name(emul_bug bug);

/* Forward and backward in X with `bug`; outputs float64 arrays (X values, lse float32) laid
 * out as fm_tensors. Inputs must already hold X values. Returns FM_OK or FM_ERR_NOMEM. */
fm_status emul_run(const fm_problem *p, const fm_mask *mask, fm_dtype x, emul_bug bug,
                   const double *q, const double *k, const double *v, const double *dout,
                   double *out, double *lse, double *dq, double *dk, double *dv);

#endif
