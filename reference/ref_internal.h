/* reference/ref_internal.h — pieces shared by the oracle's backends, dense (forward.c,
 * backward.c) and tiled (tiled_*.c): head mapping (GQA/MQA and mask heads), tensor offsets,
 * the dense O(Sq*Sk) scratch allocation with its size limit, the score matrix S = s * Q K^T
 * through OpenBLAS, and the result checks.
 * Layer: reference <- masks <- core. Private to reference/; not installed.
 */
#ifndef FM_REF_INTERNAL_H
#define FM_REF_INTERNAL_H

#include <cblas.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "flashmask/masks.h"
#include "flashmask/reference.h"
#include "fm_internal.h"

/* The oracle holds whole Sq x Sk matrices per (b, query head). Refuse scratch above this many
 * doubles (2^31 doubles = 16 GiB per matrix) with a clear message, instead of letting an
 * over-committing malloc succeed and the process die later. */
#define FM_REF_MAX_SCRATCH_ELEMS ((size_t)1 << 31)

/* Row loops run in parallel (OpenMP) only for matrices of at least this many elements: on
 * small ones the fork/join costs more than the work, and on a loaded machine a descheduled
 * thread stalls every barrier (the reference suite, thousands of tiny cases, took 4 min instead
 * of 7 s with 2 threads on the 2-core build machine under load). */
#define FM_REF_PARALLEL_MIN_ELEMS ((int64_t)1 << 16)

/* OpenBLAS splits a dgemm differently for different thread counts, and the split changes the
 * order of the sums: with OMP_NUM_THREADS=1 and =2 the same case's expected outputs differed
 * in the last bits (up to 8.9e-16). The reference's results must not depend on the machine's
 * thread count (a suite written on two machines must be bit-identical), so every reference
 * entry point runs its dgemms on one BLAS thread (its own row loops stay OpenMP-parallel: each
 * row is one thread's, in a fixed order) and restores the caller's setting afterwards. */
static inline int fm_ref_blas_serial_begin(void)
{
    int n = openblas_get_num_threads();
    if (n != 1) openblas_set_num_threads(1);
    return n;
}
static inline void fm_ref_blas_serial_end(int n)
{
    if (n != 1) openblas_set_num_threads(n);
}

/* Which key/value head and which mask head query head h reads (docs/spec.md §1 and 2):
 * kv head = h / (Hq/Hk), mask head = h / (Hq/Hm). One rule for MHA, GQA and MQA. */
typedef struct fm_ref_heads {
    int64_t kv_head;
    int64_t mask_head;
} fm_ref_heads;

static inline fm_ref_heads fm_ref_heads_of(const fm_problem *p, const fm_mask *mask, int64_t h)
{
    fm_ref_heads r;
    r.kv_head = h / (p->q_heads / p->kv_heads);
    r.mask_head = h / (p->q_heads / mask->heads);
    return r;
}

/* Offset of row 0 of (b, head) in a [B, H, S, D] tensor. */
static inline size_t fm_ref_offset(int64_t b, int64_t heads, int64_t head, int64_t seqlen,
                                   int64_t dim)
{
    return (((size_t)b * (size_t)heads + (size_t)head) * (size_t)seqlen) * (size_t)dim;
}

/* Allocates one Sq x Sk matrix of doubles, or fails with a message naming Sq and Sk. */
static inline double *fm_ref_alloc_matrix(const fm_problem *p, const char *what,
                                          fm_status *status)
{
    size_t n;
    if (fm_mul_size(&n, p->seqlen_q, p->seqlen_k) || n > FM_REF_MAX_SCRATCH_ELEMS) {
        *status = fm_fail(FM_ERR_OVERFLOW,
                          "reference: %s needs Sq*Sk = %lld*%lld doubles, above the oracle's "
                          "limit of %zu per matrix (it is dense O(Sq*Sk); use a smaller case)",
                          what, (long long)p->seqlen_q, (long long)p->seqlen_k,
                          FM_REF_MAX_SCRATCH_ELEMS);
        return NULL;
    }
    double *m = fm_alloc(n, sizeof(double), what);
    *status = m ? FM_OK : FM_ERR_NOMEM; /* fm_alloc recorded the message */
    return m;
}

/* S[Sq, Sk] = scale * Q[Sq, D] K[Sk, D]^T for one (b, query head), row-major. */
static inline void fm_ref_scores(const fm_problem *p, const double *q, const double *k,
                                 double *s)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)p->seqlen_q, (int)p->seqlen_k,
                (int)p->head_dim, p->scale, q, (int)p->head_dim, k, (int)p->head_dim, 0.0, s,
                (int)p->seqlen_k);
}

/* Is (i, j) masked for batch b and mask head mh? The rule itself lives in flashmask/rules.h. */
static inline int fm_ref_masked(const fm_mask *mask, int64_t b, int64_t mh, int64_t offset,
                                int64_t i, int64_t j)
{
    return fm_element_masked(fm_mask_column(mask, b, mh, j), mask->causal, offset, i, j);
}

/* Inputs are finite (fm_forward checks), but huge ones can overflow float64 on the way
 * (s * q.k, or sums of P v). The oracle then refuses rather than hand back inf or NaN as a
 * result: the first non-finite element of x (n values) is named. -inf passes where allowed
 * (the LSE of fully masked rows). Elements [lo, hi) of x are checked. */
static inline fm_status fm_ref_check_range(const char *what, const double *x, size_t lo,
                                           size_t hi, int allow_neg_inf)
{
    for (size_t e = lo; e < hi; e++) {
        if (isfinite(x[e]) || (allow_neg_inf && x[e] == -INFINITY)) continue;
        return fm_fail(FM_ERR_OVERFLOW,
                       "reference: %s[%zu] = %g: float64 overflowed (inputs too large in "
                       "magnitude for this scale)", what, e, x[e]);
    }
    return FM_OK;
}

static inline fm_status fm_ref_check_result(const char *what, const double *x, size_t n,
                                            int allow_neg_inf)
{
    return fm_ref_check_range(what, x, 0, n, allow_neg_inf);
}

/* Checks the problem against the mask, head_dim and the options; `pass` names the caller in
 * the message (choose.c). */
fm_status fm_ref_check_options(const char *pass, const fm_problem *p, const fm_mask *mask,
                               const fm_ref_options *o);

/* The two backends, one signature (choose.c calls the one fm_ref_backend_of picks): the
 * problem, mask and pointers already checked, `o` not NULL (the dense backend reads none of
 * it). Dense: forward.c, backward.c; tiled: tiled_forward.c, tiled_backward.c. */
typedef fm_status fm_ref_forward_fn(const fm_problem *p, const fm_mask *mask,
                                    const fm_ref_options *o, const double *q, const double *k,
                                    const double *v, double *out, double *lse);
typedef fm_status fm_ref_backward_fn(const fm_problem *p, const fm_mask *mask,
                                     const fm_ref_options *o, const double *q, const double *k,
                                     const double *v, const double *out, const double *lse,
                                     const double *dout, double *dq, double *dk, double *dv);
fm_ref_forward_fn fm_ref_dense_forward, fm_ref_tiled_forward;
fm_ref_backward_fn fm_ref_dense_backward, fm_ref_tiled_backward;

/* The backend a call with options o runs (shares, parts > 1, exist only in the tiled one). */
fm_ref_backend fm_ref_backend_of(const fm_problem *p, const fm_ref_options *o);

#endif
