/* flashmask/oracle.h — the oracle's verdict on a third party's attention results (BRIEF 5).
 *
 * A candidate computed in dtype X (float16, bfloat16, float32) passes on a tensor T (out, the
 * finite lse entries, dq, dk, dv) iff
 *
 *     max|T_cand - T_ref| <= bound = 2 * max|T_naive_X - T_ref| + atol_X
 *     atol_X = max|round_X(round_X(ref + 0.3) - 0.3) - ref|
 *
 * where T_ref is the float64 reference and T_naive_X a naive computation in the candidate's own
 * precision (emulated here in C, see fm_naive_forward). The rule is strict on degenerate
 * tensors (a few values that round-trip exactly through X, gradients that vanish by exact
 * cancellation): there the bound can be 0 or tiny; docs/oracle.md discusses it.
 * NaN anywhere fails; a fully masked row must hold exactly 0 in out and -inf in lse (+inf
 * accepted on request, as FlashAttention-2 writes it). This is the rule of FlashAttention's and
 * Paddle FlashMask's own test suites.
 *
 * Layer: oracle <- reference, masks <- core. Masked/allowed decisions come from
 * flashmask/rules.h; rounding from fm_round_to_dtype (core).
 */
#ifndef FLASHMASK_ORACLE_H
#define FLASHMASK_ORACLE_H

#include <stdio.h>

#include "flashmask/masks.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- the naive computation */

/* The naive same-precision forward in dtype X (FM_FLOAT64 is refused: use the reference).
 * Rounding points: q, k, v are rounded to X; scores S = s * q.k, the row max, exp, the row sum
 * and lse are float32 (sequential float32 accumulation); P = exp(S - max) / sum is rounded to X
 * before P.V; O is accumulated in float32 and rounded to X. lse stays float32 (every kernel we
 * know writes a float32 lse). Fully masked rows: out = 0, lse = -inf. Inputs and outputs are
 * float64 arrays laid out as in fm_tensors. */
fm_status fm_naive_forward(const fm_problem *p, const fm_mask *mask, fm_dtype dtype,
                           const double *q, const double *k, const double *v, double *out,
                           double *lse);

/* The naive same-precision backward, from the naive forward's out and lse. Rounding points:
 * q, k, v, out, dout rounded to X; P recomputed in float32 as exp(S - lse); Delta = dout.out,
 * dP = dout.v and dS = P * (dP - Delta) in float32; P and dS rounded to X before the matmuls
 * dV = P^T dout, dQ = s dS K, dK = s dS^T Q, which accumulate in float32 (over the query heads
 * of a GQA group too) and are rounded to X once at the end. Fully masked rows pass nothing. */
fm_status fm_naive_backward(const fm_problem *p, const fm_mask *mask, fm_dtype dtype,
                            const double *q, const double *k, const double *v, const double *out,
                            const double *lse, const double *dout, double *dq, double *dk,
                            double *dv);

/* Rounds n values in place to dtype with fm_round_to_dtype (for bindings: one call, not n). */
void fm_oracle_round_array(double *x, size_t n, fm_dtype dtype);

/* 1 per query row (b, h, i) with no allowed key, else 0: rows [B*Hq*Sq]. */
fm_status fm_oracle_masked_rows(const fm_problem *p, const fm_mask *mask, uint8_t *rows);

/* ---------------------------------------------------------------- one tensor */

/* What a fully masked row must hold exactly. */
typedef enum fm_masked_rule {
    FM_MASKED_FREE = 0,       /* nothing exact: masked rows are compared by the bound (dq...) */
    FM_MASKED_ZERO = 1,       /* exactly 0 (out) */
    FM_MASKED_NEG_INF = 2,    /* exactly -inf (lse) */
    FM_MASKED_ANY_INF = 3     /* -inf or +inf (lse, FlashAttention-2 accepted on request) */
} fm_masked_rule;

typedef struct fm_tensor_check {
    char name[8];          /* "out", "lse", "dq", "dk", "dv" or the caller's name */
    fm_dtype dtype;        /* X */
    size_t elements;       /* elements of the tensor */
    size_t compared;       /* elements in the statistics: finite reference, not in a masked row
                              whose value is fixed by the rule */
    size_t masked_checked; /* elements held to an exact value (masked rows, -inf lse) */
    double max_abs;        /* max |cand - ref| over compared elements */
    double mean_abs;       /* mean |cand - ref| */
    double rel_fro;        /* ||cand - ref||_F / ||ref||_F (0 if both are 0) */
    double naive_max_abs;  /* max |naive - ref| */
    double atol;           /* atol_X at the reference's magnitude */
    double bound;          /* 2 * naive_max_abs + atol */
    size_t worst;          /* flat index of max_abs */
    size_t nan_count;      /* NaN in the candidate (anywhere) */
    size_t masked_bad;     /* exact-value elements that differ */
    int pass;
    size_t where;          /* flat index the failure reason points at (first NaN, first bad
                              masked element, or worst) */
    char why[240];         /* the first reason for a failure; "" on pass. fm_check_case appends
                              the index as coordinates, e.g. "[b=0, h=3, i=17, d=5]" */
} fm_tensor_check;

/* atol_X over n reference values (non-finite ones are skipped). */
double fm_oracle_atol(fm_dtype dtype, const double *ref, size_t n);

/* Judges one tensor of n elements. `row_masked` (may be NULL) flags fully masked rows of
 * `row_len` consecutive elements each; `rule` says what they must hold. Independently of
 * row_masked, a non-finite reference element (-inf lse) must be matched exactly by the
 * candidate (or by +inf under FM_MASKED_ANY_INF). `naive` is the same tensor from
 * fm_naive_forward/backward. Returns FM_OK when the judgement was made (verdict in out->pass),
 * an error for invalid arguments. */
fm_status fm_check_tensor(const char *name, fm_dtype dtype, size_t n, const double *cand,
                          const double *ref, const double *naive, const uint8_t *row_masked,
                          size_t row_len, fm_masked_rule rule, fm_tensor_check *out);

/* ---------------------------------------------------------------- one case */

enum { FM_CHECK_OUT = 0, FM_CHECK_LSE, FM_CHECK_DQ, FM_CHECK_DK, FM_CHECK_DV, FM_CHECK_TENSORS };

const char *fm_check_tensor_name(int which); /* "out", "lse", "dq", "dk", "dv" */

typedef struct fm_check_options {
    fm_dtype dtype;         /* X, the precision the candidate computed in (not float64) */
    int allow_fa2_inf_lse;  /* accept +inf lse for fully masked rows */
    int forward_only;       /* judge out and lse only */
    int recompute;          /* fm_check_dirs: judge against the reference recomputed from the
                               case's inputs, not its stored expected outputs (done anyway for
                               a small case, fm_case_is_small, and one without a digest) */
} fm_check_options;

/* dtype = X, both flags off. */
fm_check_options fm_check_options_default(fm_dtype dtype);

typedef struct fm_check_report {
    fm_check_options options;
    int n_tensors;                             /* 2 forward-only, else 5 */
    fm_tensor_check tensor[FM_CHECK_TENSORS];  /* in FM_CHECK_* order */
    int64_t masked_rows;                       /* fully masked query rows (b, h, i) */
    int pass;                                  /* every judged tensor passed */
} fm_check_report;

/* The whole rule on one problem. `ref` holds the inputs q, k, v (and dout unless forward-only),
 * as the candidate saw them (already rounded to X), and optionally the reference results:
 * when ref->out (resp. ref->dq) is NULL the reference forward (backward) is computed here.
 * `cand` holds the candidate's out and lse (and dq, dk, dv unless forward-only); its input
 * pointers are not read. FM_OK means a verdict was reached (report->pass); errors mean
 * invalid input (bad problem, mask, NULL tensor, NaN in the inputs). */
fm_status fm_check_case(const fm_problem *p, const fm_mask *mask, const fm_tensors *ref,
                        const fm_tensors *cand, const fm_check_options *opt,
                        fm_check_report *report);

/* ---------------------------------------------------------------- case directories */

/* The rule on files (BRIEF 6): loads the case directory `case_dir` and the candidate's results
 * in `candidate_dir` (out.npy, lse.npy and, unless forward-only, dq/dk/dv.npy), and judges.
 * opt->dtype == FM_FLOAT64 means "the case's dtype" (a float64 case then needs an explicit
 * dtype). Expected outputs missing from the case are computed by the reference. `summary`
 * (may be NULL) receives one line describing the case ("B=1 Hq=4 ... mask causal ...").
 * Any missing file, wrong shape or dtype, or broken case is an error status (the CLI's exit 2);
 * FM_OK means a verdict was reached. */
fm_status fm_check_dirs(const char *case_dir, const char *candidate_dir,
                        const fm_check_options *opt, fm_check_report *report, char *summary,
                        size_t summary_len);

/* The table a person reads: one line per tensor (max abs, mean abs, rel. Frobenius, naive
 * error, atol, bound, verdict), the reasons of failures, and the overall verdict. */
void fm_check_report_print(const fm_check_report *report, FILE *out);

/* The report as a JSON object (malloc'd text, free()): dtype, options, masked_rows, pass and
 * per tensor max_abs, mean_abs, rel_fro, naive_max_abs, atol, bound, nan_count, masked_bad,
 * pass, why. Non-finite numbers are written as the strings "inf", "-inf", "nan". */
fm_status fm_check_report_to_json(const fm_check_report *report, char **json);

#ifdef __cplusplus
}
#endif
#endif
