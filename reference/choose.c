/* reference/choose.c — the oracle's entry points: check the problem and the pointers once, pick
 * the backend (dense or tiled, docs/reference.md "Choosing a backend") and call it.
 * Layer: reference <- masks <- core; fm_forward/fm_backward(FM_IMPL_REFERENCE, ...) call the
 * automatic fm_ref_forward/fm_ref_backward. The choice itself and the option checks are
 * reference/backend.c's (which the tiled backend calls too).
 */
#include "flashmask/reference.h"
#include "ref_internal.h"

fm_status fm_ref_forward_opts(const fm_problem *p, const fm_mask *mask, const fm_ref_options *o,
                              const double *q, const double *k, const double *v, double *out,
                              double *lse)
{
    fm_clear_error();
    const fm_ref_options defaults = {0};
    if (!o) o = &defaults;
    fm_status st = fm_ref_check_options("forward", p, mask, o);
    if (st != FM_OK) return st;
    if (!q || !k || !v || !out || !lse)
        return fm_fail(FM_ERR_INVALID, "reference forward: NULL tensor (q, k, v, out or lse)");
    if (fm_ref_backend_of(p, o) == FM_REF_DENSE) {
        /* one BLAS thread, so that the sums do not depend on the thread count (ref_internal.h) */
        const int threads = fm_ref_blas_serial_begin();
        st = fm_ref_dense_forward(p, mask, o, q, k, v, out, lse);
        fm_ref_blas_serial_end(threads);
        return st;
    }
    return fm_ref_tiled_forward(p, mask, o, q, k, v, out, lse);
}

fm_status fm_ref_backward_opts(const fm_problem *p, const fm_mask *mask,
                               const fm_ref_options *o, const double *q, const double *k,
                               const double *v, const double *out, const double *lse,
                               const double *dout, double *dq, double *dk, double *dv)
{
    fm_clear_error();
    const fm_ref_options defaults = {0};
    if (!o) o = &defaults;
    fm_status st = fm_ref_check_options("backward", p, mask, o);
    if (st != FM_OK) return st;
    if (!q || !k || !v || !out || !lse || !dout || !dq || !dk || !dv)
        return fm_fail(FM_ERR_INVALID,
                       "reference backward: NULL tensor (q, k, v, out, lse, dout, dq, dk or dv)");
    if (fm_ref_backend_of(p, o) == FM_REF_DENSE) {
        const int threads = fm_ref_blas_serial_begin();
        st = fm_ref_dense_backward(p, mask, o, q, k, v, out, lse, dout, dq, dk, dv);
        fm_ref_blas_serial_end(threads);
        return st;
    }
    return fm_ref_tiled_backward(p, mask, o, q, k, v, out, lse, dout, dq, dk, dv);
}

fm_status fm_ref_forward(const fm_problem *p, const fm_mask *mask, const double *q,
                         const double *k, const double *v, double *out, double *lse)
{
    return fm_ref_forward_opts(p, mask, NULL, q, k, v, out, lse);
}

fm_status fm_ref_backward(const fm_problem *p, const fm_mask *mask, const double *q,
                          const double *k, const double *v, const double *out,
                          const double *lse, const double *dout, double *dq, double *dk,
                          double *dv)
{
    return fm_ref_backward_opts(p, mask, NULL, q, k, v, out, lse, dout, dq, dk, dv);
}
