/* reference/backend.c — which backend computes the reference (dense or tiled,
 * docs/reference.md "Choosing a backend") and the checks every entry point makes on the problem
 * and the options. Called by the entry points (choose.c) and by the tiled backend's shares
 * (tiled_common.c); calls neither.
 * Layer: reference <- masks <- core.
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
fm_ref_backend fm_ref_backend_of(const fm_problem *p, const fm_ref_options *o)
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
    if (o->parts > 1 && fm_ref_backend_of(p, o) != FM_REF_TILED)
        return fm_fail(FM_ERR_INVALID,
                       "reference %s: shares (parts = %d) need the tiled backend; the dense one "
                       "computes whole heads", pass, o->parts);
    return FM_OK;
}
