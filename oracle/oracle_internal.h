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

#endif
