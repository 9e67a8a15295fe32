/* oracle/oracle_internal.h — what the column-mask oracle (oracle/check.c) shares with the
 * dense-mask oracle (oracle/dense_check.c): the last step of a verdict. Not installed.
 * Layer: oracle <- reference, masks <- core.
 */
#ifndef FM_ORACLE_INTERNAL_H
#define FM_ORACLE_INTERNAL_H

#include "flashmask/oracle.h"

/* Ends a report whose report->n_tensors tensors have been judged: appends the coordinates
 * [b, h, i or j, d] of each failing tensor's worst element to its `why`, and sets report->pass
 * when every tensor passed. `backward`: dq, dk and dv were judged too. */
void fm_check_report_finish(const fm_problem *p, int backward, fm_check_report *report);

/* The derived rule's bounds (oracle/bound.c) under either mask form: the column mask `columns`,
 * or (columns NULL) the dense mask `dense` [B, mask_heads, Sq, Sk]. `t` holds the inputs (as the
 * candidate saw them) and the float64 reference's out, lse (and dout, dq for the backward);
 * b_dq == NULL computes the forward bounds only. Outputs are laid out like the tensors they
 * bound. The problem and the mask are checked by the caller. */
typedef struct fm_oracle_bound_args {
    const fm_problem *p;
    fm_dtype dtype;
    const fm_tensors *t;
    const fm_mask *columns;
    const uint8_t *dense;
    int64_t mask_heads; /* of the dense mask */
    double *b_out, *b_lse, *b_dq, *b_dk, *b_dv;
} fm_oracle_bound_args;

fm_status fm_oracle_bounds_with(const fm_oracle_bound_args *args);

/* 1 when no intermediate of the naive computation in `dtype` (oracle/naive.c) can overflow on
 * these inputs (in->q, k, v, and dout when `backward`), so that every naive result is finite;
 * 0 when that cannot be shown from the inputs' largest magnitudes (oracle/naive_guard.c). */
int fm_naive_cannot_overflow(const fm_problem *p, fm_dtype dtype, const fm_tensors *in,
                             int backward);

#endif
