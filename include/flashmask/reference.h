/* flashmask/reference.h — the oracle: naive dense O(Sq*Sk) attention in float64, forward and
 * backward, exactly as docs/spec.md §1 states it (GQA/MQA, mask heads, any scale, fully masked rows give
 * out = 0, lse = -inf and no gradient). Clarity and exactness over speed.
 * Layer: reference <- masks <- core. The native calls below do not check finiteness;
 * fm_forward/fm_backward (core.h) do.
 */
#ifndef FLASHMASK_REFERENCE_H
#define FLASHMASK_REFERENCE_H

#include "flashmask/masks.h"

#ifdef __cplusplus
extern "C" {
#endif

fm_status fm_ref_forward(const fm_problem *p, const fm_mask *mask, const double *q,
                         const double *k, const double *v, double *out, double *lse);

fm_status fm_ref_backward(const fm_problem *p, const fm_mask *mask, const double *q,
                          const double *k, const double *v, const double *out,
                          const double *lse, const double *dout, double *dq, double *dk,
                          double *dv);

#ifdef __cplusplus
}
#endif
#endif
