/* flashmask/oracle.h — the oracle's verdict on a third party's attention results (docs/spec.md §5).
 *
 * Two pass rules, chosen by fm_check_options.rule; both judge out, the finite lse entries, dq,
 * dk, dv of a candidate computed in dtype X (float16, bfloat16, float32):
 *
 * FM_RULE_DERIVED (the default): element by element,
 *     |T_cand[e] - T_ref[e]| <= B_T[e]
 *   where B_T[e] is an upper bound, from forward error analysis, on the error of any
 *   implementation with FlashAttention's rounding points in X (inputs in X, float32 scores,
 *   softmax and accumulation in any order, P and dS rounded to X before their products, O
 *   stored in X and read back for Delta = dO.O, results rounded to X, a float32 lse). It is
 *   built from the unit roundoffs of X and float32 and |.| products such as sum_j P_ij |V_jd|,
 *   computed in float64 next to the reference (fm_oracle_bounds; every term is derived in
 *   docs/oracle.md). A correct implementation cannot exceed it; a bug that changes a value by
 *   more than the rounding could is caught at that element.
 *
 * FM_RULE_FA (FlashAttention's and Paddle FlashMask's own test rule), per tensor:
 *     max|T_cand - T_ref| <= bound = 2 * max|T_naive_X - T_ref| + atol_X
 *     atol_X = max|round_X(round_X(ref + 0.3) - 0.3) - ref|
 *   where T_naive_X is a naive computation in X (fm_naive_forward). It is statistical: on
 *   tiny problems and cancelling gradients a correct kernel can exceed twice the naive
 *   computation's one draw of rounding error (docs/oracle.md measures how often).
 *
 * Under both: NaN anywhere fails; a fully masked row must hold exactly 0 in out and -inf in lse
 * (+inf accepted on request, as FlashAttention-2 writes it).
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

/* The unit roundoff of X: 2^-11 (float16), 2^-8 (bfloat16), 2^-24 (float32), 2^-53 else. */
double fm_oracle_unit_roundoff(fm_dtype dtype);

/* The derived rule's per-element bounds (see the top of this file). `ref` holds the inputs the
 * candidate saw (q, k, v, dout, already in X) and the float64 reference's out and lse (and dq
 * for the backward). b_out [B,Hq,Sq,D] and b_lse [B,Hq,Sq] are always written; b_dq, b_dk, b_dv
 * (all three or none: b_dq == NULL means forward only) bound dq, dk, dv. Elements of fully
 * masked rows get bound 0 (they are held to exact values). Cost O(B*Hq*Sq*Sk*D), like the
 * reference; OpenMP over (batch, kv head), deterministic. */
fm_status fm_oracle_bounds(const fm_problem *p, const fm_mask *mask, fm_dtype dtype,
                           const fm_tensors *ref, double *b_out, double *b_lse, double *b_dq,
                           double *b_dk, double *b_dv);

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
    double naive_max_abs;  /* max |naive - ref|; 0 when naive_computed is 0 */
    double atol;           /* atol_X at the reference's magnitude */
    double bound;          /* FM_RULE_FA: 2 * naive_max_abs + atol. FM_RULE_DERIVED: the bound
                              of the element with the largest error/bound ratio */
    double ratio;          /* the largest |cand - ref| / bound over compared elements (pass
                              needs <= 1; under FM_RULE_FA max_abs / bound) */
    size_t ratio_at;       /* flat index of that element */
    size_t worst;          /* flat index of max_abs */
    size_t nan_count;      /* NaN in the candidate (anywhere) */
    size_t masked_bad;     /* exact-value elements that differ */
    int pass;
    size_t where;          /* flat index the failure reason points at (first NaN, first bad
                              masked element, or worst) */
    char why[240];         /* the first reason for a failure; "" on pass. fm_check_case appends
                              the index as coordinates, e.g. "[b=0, h=3, i=17, d=5]" */
    int naive_computed;    /* 1: naive_max_abs was measured. 0: the derived rule left the naive
                              computation out, since it could not overflow (so it could not
                              refuse) and decides nothing else (fm_check_options.naive) */
} fm_tensor_check;

/* The pass rules (see the top of this file). */
typedef enum fm_check_rule {
    FM_RULE_DERIVED = 0, /* per-element bound from forward error analysis (default) */
    FM_RULE_FA = 1       /* 2 * naive error + atol, per tensor (FlashAttention's tests) */
} fm_check_rule;

const char *fm_check_rule_name(fm_check_rule rule); /* "derived", "fa" */
/* "derived" or "fa" (also "flashattention"); FM_ERR_INVALID naming the text otherwise. */
fm_status fm_check_rule_from_name(const char *name, fm_check_rule *rule);

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

/* The same judgement under the derived rule: `elem_bound` (n values, from fm_oracle_bounds)
 * replaces the FA bound element by element (naive, atol and naive_max_abs are still reported
 * when `naive` is non-NULL; with `naive` NULL, naive_computed is 0 and no naive refusal can be
 * made: the caller has shown it cannot arise). elem_bound == NULL is exactly fm_check_tensor. */
fm_status fm_check_tensor_bounded(const char *name, fm_dtype dtype, size_t n, const double *cand,
                                  const double *ref, const double *naive,
                                  const double *elem_bound, const uint8_t *row_masked,
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
    int rule;               /* fm_check_rule: FM_RULE_DERIVED (0, the default) or FM_RULE_FA */
    int naive;              /* under FM_RULE_DERIVED, run the naive same-precision computation
                               even where it cannot change the verdict, to report naive_max_abs.
                               0 (default): it runs only where the inputs' magnitudes allow an
                               overflow in X, whose refusal it must then make (docs/oracle.md
                               §2.5). FM_RULE_FA always runs it (its bound is made of it) */
} fm_check_options;

/* dtype = X, every flag off, the derived rule. */
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

/* The rule on files (docs/spec.md §6): loads the case directory `case_dir` and the candidate's results
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
 * per tensor max_abs, mean_abs, rel_fro, naive_max_abs (null where not computed),
 * naive_computed, atol, bound, nan_count, masked_bad, pass, why. Non-finite numbers are
 * written as the strings "inf", "-inf", "nan". */
fm_status fm_check_report_to_json(const fm_check_report *report, char **json);

/* ---------------------------------------------------------------- the pass rule, dense */

/* docs/spec.md §5's rule with a dense mask [B, mask_heads, Sq, Sk]: fm_check_case's contract (ref holds
 * the inputs as the candidate saw them and optionally the reference results, computed here by
 * the dense oracle when NULL), with the naive same-precision computation run on the row blocks
 * of fm_rowsplit (exact for out, lse, dq; dk and dv sum the blocks' rounded results: see
 * oracle/dense_check.c). */
fm_status fm_check_dense(const fm_problem *p, const uint8_t *allowed, int64_t mask_heads,
                         const fm_tensors *ref, const fm_tensors *cand,
                         const fm_check_options *opt, fm_check_report *report);
/* fm_check_dirs for a dense-mask case directory (docs/sparse.md §5). */
fm_status fm_dense_check_dirs(const char *case_dir, const char *candidate_dir,
                              const fm_check_options *opt, fm_check_report *report,
                              char *summary, size_t summary_len);

#ifdef __cplusplus
}
#endif
#endif
