/* tests/reference/attn_run.h — test helper shared by tests/reference and tests/backends: run one
 * implementation's forward and backward through the public dispatch (fm_forward/fm_backward) on
 * float64 host tensors and keep the five results (out, lse, dq, dk, dv) together.
 * Header-only (static functions) so that each test executable stays one source file.
 */
#ifndef FM_TEST_ATTN_RUN_H
#define FM_TEST_ATTN_RUN_H

#include <stdlib.h>

#include "flashmask.h"

typedef struct fm_attn_result {
    double *out, *lse; /* [B,Hq,Sq,D], [B,Hq,Sq] */
    double *dq;        /* [B,Hq,Sq,D] */
    double *dk, *dv;   /* [B,Hk,Sk,D] */
} fm_attn_result;

static inline void fm_attn_result_free(fm_attn_result *r)
{
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
    r->out = r->lse = r->dq = r->dk = r->dv = NULL;
}

/* Forward then backward of `impl` (backward reads the same implementation's out and lse, as
 * docs/spec.md §1 says). On failure returns the status with fm_last_error() set and r freed. */
static inline fm_status fm_attn_run(fm_impl impl, const fm_problem *p, const fm_mask *m,
                                    const double *q, const double *k, const double *v,
                                    const double *dout, fm_attn_result *r)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    size_t nl = fm_problem_lse_elems(p);
    r->out = calloc(nq ? nq : 1, sizeof(double));
    r->lse = calloc(nl ? nl : 1, sizeof(double));
    r->dq = calloc(nq ? nq : 1, sizeof(double));
    r->dk = calloc(nkv ? nkv : 1, sizeof(double));
    r->dv = calloc(nkv ? nkv : 1, sizeof(double));
    if (!r->out || !r->lse || !r->dq || !r->dk || !r->dv) {
        fm_attn_result_free(r);
        return FM_ERR_NOMEM;
    }
    fm_tensors t = {.q = q, .k = k, .v = v, .dout = dout, .out = r->out, .lse = r->lse,
                    .dq = r->dq, .dk = r->dk, .dv = r->dv};
    fm_status st = fm_forward(impl, p, m, &t);
    if (st == FM_OK) st = fm_backward(impl, p, m, &t);
    if (st != FM_OK) fm_attn_result_free(r);
    return st;
}

/* Index of the first i with a[i] != b[i] (so -inf == -inf, NaN never equal), or n if none. */
static inline size_t fm_first_unequal(const double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i])) return i;
    return n;
}

/* A float64 copy of n values (NULL on allocation failure). */
static inline double *fm_dup(const double *x, size_t n)
{
    double *y = malloc((n ? n : 1) * sizeof(double));
    if (y)
        for (size_t i = 0; i < n; i++) y[i] = x[i];
    return y;
}

#endif
