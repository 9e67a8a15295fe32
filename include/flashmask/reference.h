/* flashmask/reference.h — the oracle: naive dense O(Sq*Sk) attention in float64, forward and
 * backward, exactly as docs/spec.md §1 states it (GQA/MQA, mask heads, any scale, fully masked rows give
 * out = 0, lse = -inf and no gradient). Clarity and exactness over speed.
 * Layer: reference <- masks <- core. The native calls below do not check finiteness;
 * fm_forward/fm_backward (core.h) do.
 */
#ifndef FLASHMASK_REFERENCE_H
#define FLASHMASK_REFERENCE_H

#include "flashmask/masks.h"
#include "flashmask/bbm.h"

#ifdef __cplusplus
extern "C" {
#endif

fm_status fm_ref_forward(const fm_problem *p, const fm_mask *mask, const double *q,
                         const double *k, const double *v, double *out, double *lse);

fm_status fm_ref_backward(const fm_problem *p, const fm_mask *mask, const double *q,
                          const double *k, const double *v, const double *out,
                          const double *lse, const double *dout, double *dq, double *dk,
                          double *dv);

/* ---------------------------------------------------------------- dense and BBM masks */

/* The float64 oracle with a dense mask `allowed` [B, mask_heads, Sq, Sk] (1 = allowed; values
 * other than 0/1 refused). Query head h uses mask head h / (Hq/mask_heads). */
fm_status fm_ref_forward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                               const double *q, const double *k, const double *v, double *out,
                               double *lse);
fm_status fm_ref_backward_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                                const double *q, const double *k, const double *v,
                                const double *out, const double *lse, const double *dout,
                                double *dq, double *dk, double *dv);

/* The oracle on a BBM mask (through its dense form). */
fm_status fm_ref_forward_bbm(const fm_problem *p, const fm_bbm *mask, const double *q,
                             const double *k, const double *v, double *out, double *lse);
fm_status fm_ref_backward_bbm(const fm_problem *p, const fm_bbm *mask, const double *q,
                              const double *k, const double *v, const double *out,
                              const double *lse, const double *dout, double *dq, double *dk,
                              double *dv);

#ifdef __cplusplus
}
#endif
#endif
