/* flashmask/reference.h — the oracle: attention in float64, forward and backward, exactly as
 * docs/spec.md §1 states it (GQA/MQA, mask heads, any scale, fully masked rows give out = 0,
 * lse = -inf and no gradient). Clarity and exactness over speed.
 *
 * Two backends compute the same function (docs/reference.md):
 *   dense  holds one Sq x Sk float64 matrix per (batch, head) — forward.c, backward.c;
 *   tiled  walks query-row blocks x key blocks, skips fully masked tiles from the block
 *          summaries and holds only O((Sq + Sk) D) — tiled_forward.c, tiled_backward.c.
 * fm_ref_forward / fm_ref_backward pick one automatically (fm_ref_pick_backend); the _opts
 * variants let the caller force one, choose the tile sizes, or compute one share of the work
 * (what the MPI build of the `flashmask` tool gives each rank).
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

/* Which float64 algorithm computes the reference. New backends (a GPU one) append values. */
typedef enum fm_ref_backend {
    FM_REF_AUTO = 0,  /* dense when its scratch fits (fm_ref_pick_backend), else tiled */
    FM_REF_DENSE = 1, /* O(Sq*Sk) scratch, one big dgemm per product */
    FM_REF_TILED = 2  /* O((Sq+Sk)*D) memory, tile skipping, OpenMP over tiles of work */
} fm_ref_backend;

const char *fm_ref_backend_name(fm_ref_backend b); /* "auto", "dense", "tiled" */
fm_status fm_ref_backend_from_name(const char *name, fm_ref_backend *out);

/* The tiled backend's default tile: FM_REF_TILE query rows x FM_REF_TILE keys. */
#define FM_REF_TILE 128

/* Auto picks dense iff the dense backward's two Sq x Sk float64 matrices take at most
 * 1/FM_REF_DENSE_MEMORY_DIVISOR of the machine's physical memory (and the dense size limit). */
#define FM_REF_DENSE_MEMORY_DIVISOR 4

typedef struct fm_ref_options {
    fm_ref_backend backend; /* FM_REF_AUTO by default (a zeroed struct) */
    int64_t block_q;        /* tiled: query rows per tile, 0 = FM_REF_TILE */
    int64_t block_k;        /* tiled: keys per tile, 0 = FM_REF_TILE */
    int part, parts;        /* tiled: compute only share `part` of `parts` (parts <= 1: all;
                               auto then means tiled, dense is refused); rows outside the
                               share (fm_ref_share_of) are left untouched */
    /* tiled: called now and then (from one thread at a time) with the tasks done out of
       `total` in this pass ("forward", "backward dK dV", "backward dQ"); NULL: none */
    void (*progress)(void *ctx, const char *pass, int64_t done, int64_t total);
    void *progress_ctx;
} fm_ref_options;

/* What share `o->part` of `o->parts` computes, as half-open ranges of flat rows: query rows
 * [q_lo, q_hi) of the [B*Hq*Sq] rows of out/lse/dq (row r is elements [r*D, (r+1)*D) of out
 * and dq, element r of lse) and key rows [kv_lo, kv_hi) of the [B*Hk*Sk] rows of dk/dv. The
 * shares are contiguous, disjoint, cover every row, follow whole tiles of work, and are
 * balanced by the number of tiles that are not fully masked. */
typedef struct fm_ref_share {
    int64_t q_lo, q_hi, kv_lo, kv_hi;
} fm_ref_share;

fm_status fm_ref_share_of(const fm_problem *p, const fm_mask *mask, const fm_ref_options *o,
                          fm_ref_share *out);

/* The backend `requested` resolves to for p: dense or tiled, never auto. Only reads sizes:
 * nothing is allocated. */
fm_ref_backend fm_ref_pick_backend(const fm_problem *p, fm_ref_backend requested);
/* The same rule for a machine with `memory_bytes` of physical memory (tests use it). */
fm_ref_backend fm_ref_pick_backend_for(const fm_problem *p, fm_ref_backend requested,
                                       uint64_t memory_bytes);

/* The reference with the automatic choice of backend. */
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
/* The reference with options (NULL = defaults). Both backends agree to about 1e-15 relative;
 * the tiled one is bit-identical whatever the number of threads or shares. */
fm_status fm_ref_forward_opts(const fm_problem *p, const fm_mask *mask, const fm_ref_options *o,
                              const double *q, const double *k, const double *v, double *out,
                              double *lse);

fm_status fm_ref_backward_opts(const fm_problem *p, const fm_mask *mask,
                               const fm_ref_options *o, const double *q, const double *k,
                               const double *v, const double *out, const double *lse,
                               const double *dout, double *dq, double *dk, double *dv);

#ifdef __cplusplus
}
#endif
#endif
