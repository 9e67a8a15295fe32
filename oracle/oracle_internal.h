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

/* The derived rule's bounds (oracle/bound.c) for any mask given as a predicate: allowed(ctx, b,
 * h, i, j) says whether query row i of (batch b, query head h) sees key j. `t` holds the inputs
 * (as the candidate saw them) and the float64 reference's out, lse (and dout, dq for the
 * backward); b_dq == NULL computes the forward bounds only. Outputs are laid out like the
 * tensors they bound. The dense-mask checker can call it with its own predicate. */
typedef struct fm_oracle_bound_args {
    const fm_problem *p;
    fm_dtype dtype;
    const fm_tensors *t;
    int (*allowed)(const void *ctx, int64_t b, int64_t h, int64_t i, int64_t j);
    const void *ctx;
    double *b_out, *b_lse, *b_dq, *b_dk, *b_dv;
} fm_oracle_bound_args;

fm_status fm_oracle_bounds_with(const fm_oracle_bound_args *args);

#endif
