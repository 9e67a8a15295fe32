/* reference/choose.c — the oracle's entry points: check the problem and the pointers once, pick
 * the backend (dense or tiled, docs/reference.md "Choosing a backend") and call it.
 * Layer: reference <- masks <- core; fm_forward/fm_backward(FM_IMPL_REFERENCE, ...) call the
 * automatic fm_ref_forward/fm_ref_backward.
 *
 * The automatic choice depends only on the problem's sizes and the machine's physical memory
 * (not on the memory free at the moment), so one machine always makes the same choice for one
 * problem and a case regenerated there comes out bit for bit the same.
 */
#include <string.h>
#include <unistd.h>

#include "flashmask/reference.h"
#include "ref_internal.h"

static const char *const backend_names[] = {"auto", "dense", "tiled"};

const char *fm_ref_backend_name(fm_ref_backend b)
{
    return (unsigned)b < sizeof backend_names / sizeof *backend_names ? backend_names[b] : "?";
}

fm_status fm_ref_backend_from_name(const char *name, fm_ref_backend *out)
{
    for (unsigned b = 0; name && b < sizeof backend_names / sizeof *backend_names; b++)
        if (!strcmp(name, backend_names[b])) {
            *out = (fm_ref_backend)b;
            return FM_OK;
        }
    return fm_fail(FM_ERR_INVALID, "reference backend '%s': expected auto, dense or tiled",
                   name ? name : "(null)");
}

fm_ref_backend fm_ref_pick_backend_for(const fm_problem *p, fm_ref_backend requested,
                                       uint64_t memory_bytes)
{
    if (requested != FM_REF_AUTO) return requested;
    /* The dense backward holds two Sq x Sk float64 matrices (P and dP) at once. */
    size_t elems;
    if (fm_mul_size(&elems, p->seqlen_q, p->seqlen_k) || elems > FM_REF_MAX_SCRATCH_ELEMS)
        return FM_REF_TILED;
    const double dense_bytes = 2.0 * (double)elems * sizeof(double);
    return dense_bytes <= (double)memory_bytes / FM_REF_DENSE_MEMORY_DIVISOR ? FM_REF_DENSE
                                                                             : FM_REF_TILED;
}

fm_ref_backend fm_ref_pick_backend(const fm_problem *p, fm_ref_backend requested)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t memory = pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 0;
    return fm_ref_pick_backend_for(p, requested, memory);
}

/* The backend a call with options o runs: shares (parts > 1) exist only in the tiled one. */
static fm_ref_backend backend_of(const fm_problem *p, const fm_ref_options *o)
{
    if (o->parts > 1 && o->backend == FM_REF_AUTO) return FM_REF_TILED;
    return fm_ref_pick_backend(p, o->backend);
}

/* Checks shared by every entry point: the problem against the mask, head_dim, the options. */
fm_status fm_ref_check_options(const char *pass, const fm_problem *p, const fm_mask *mask,
                               const fm_ref_options *o)
{
    fm_status st = fm_problem_validate(p, mask);
    if (st != FM_OK) return st;
    if (p->head_dim > INT32_MAX)
        return fm_fail(FM_ERR_OVERFLOW, "reference %s: head_dim = %lld exceeds BLAS int", pass,
                       (long long)p->head_dim);
    if ((unsigned)o->backend > FM_REF_TILED)
        return fm_fail(FM_ERR_INVALID, "reference %s: backend %d is not auto, dense or tiled",
                       pass, (int)o->backend);
    if (o->block_q < 0 || o->block_k < 0 || o->block_q > INT32_MAX || o->block_k > INT32_MAX)
        return fm_fail(FM_ERR_INVALID,
                       "reference %s: tile %lld x %lld: sizes must be in [1, 2^31) (0: default)",
                       pass, (long long)o->block_q, (long long)o->block_k);
    if (o->parts > 1 && (o->part < 0 || o->part >= o->parts))
        return fm_fail(FM_ERR_INVALID, "reference %s: share %d of %d does not exist", pass,
                       o->part, o->parts);
    if (o->parts > 1 && backend_of(p, o) != FM_REF_TILED)
        return fm_fail(FM_ERR_INVALID,
                       "reference %s: shares (parts = %d) need the tiled backend; the dense one "
                       "computes whole heads", pass, o->parts);
    return FM_OK;
}

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
    if (backend_of(p, o) == FM_REF_DENSE) {
        /* one BLAS thread, so that the sums do not depend on the thread count (ref_internal.h) */
        const int threads = fm_ref_blas_serial_begin();
        st = fm_ref_dense_forward(p, mask, q, k, v, out, lse);
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
    if (backend_of(p, o) == FM_REF_DENSE) {
        const int threads = fm_ref_blas_serial_begin();
        st = fm_ref_dense_backward(p, mask, q, k, v, out, lse, dout, dq, dk, dv);
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
