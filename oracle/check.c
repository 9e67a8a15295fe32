/* oracle/check.c — the pass rules (flashmask/oracle.h), per tensor and per case:
 *   derived (default): |cand - ref| <= B[e] element by element, B from oracle/bound.c;
 *   fa:  max|cand - ref| <= 2 * max|naive_X - ref| + atol_X,
 *        atol_X = max|round_X(round_X(ref + 0.3) - 0.3) - ref|;
 * under both NaN anywhere fails, fully masked rows hold exactly 0 (out) and -inf (lse).
 * The float64 reference comes from reference/ (or the case files), the naive same-precision
 * result from oracle/naive.c, the rounding from fm_round_to_dtype.
 *
 * Layer: oracle <- reference, masks <- core.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/oracle.h"
#include "flashmask/reference.h"
#include "fm_internal.h"
#include "oracle_internal.h"

static const char *const tensor_names[FM_CHECK_TENSORS] = {"out", "lse", "dq", "dk", "dv"};

const char *fm_check_tensor_name(int which)
{
    return (which >= 0 && which < FM_CHECK_TENSORS) ? tensor_names[which] : "unknown";
}

fm_check_options fm_check_options_default(fm_dtype dtype)
{
    fm_check_options o = {.dtype = dtype, .allow_fa2_inf_lse = 0, .forward_only = 0,
                          .recompute = 0, .rule = FM_RULE_DERIVED};
    return o;
}

const char *fm_check_rule_name(fm_check_rule rule)
{
    return rule == FM_RULE_FA ? "fa" : rule == FM_RULE_DERIVED ? "derived" : "unknown";
}

fm_status fm_check_rule_from_name(const char *name, fm_check_rule *rule)
{
    if (name && rule && strcmp(name, "derived") == 0) return *rule = FM_RULE_DERIVED, FM_OK;
    if (name && rule && (strcmp(name, "fa") == 0 || strcmp(name, "flashattention") == 0))
        return *rule = FM_RULE_FA, FM_OK;
    return fm_fail(FM_ERR_INVALID, "rule '%s': expected derived or fa", name ? name : "(null)");
}

/* The rounding error of X at the magnitude of r: two roundings to X around a shift by 0.3,
 * as FlashAttention's tests write `(out_ref + 0.3 - 0.3 - out_ref).abs().max()`. The 0.3 keeps
 * values near 0 from getting a vanishing (subnormal-scale) tolerance. */
static double atol_at(fm_dtype dtype, double r)
{
    double shifted = fm_round_to_dtype(r + 0.3, dtype);
    return fabs(fm_round_to_dtype(shifted - 0.3, dtype) - r);
}

double fm_oracle_atol(fm_dtype dtype, const double *ref, size_t n)
{
    double atol = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(ref[i])) atol = fmax(atol, atol_at(dtype, ref[i]));
    return atol;
}

/* Does candidate value c satisfy the exact requirement of a masked-row element? */
static int masked_value_ok(fm_masked_rule rule, double c)
{
    switch (rule) {
    case FM_MASKED_ZERO: return c == 0.0;
    case FM_MASKED_NEG_INF: return c == -INFINITY;
    case FM_MASKED_ANY_INF: return isinf(c);
    default: return 1;
    }
}

static const char *masked_rule_text(fm_masked_rule rule)
{
    switch (rule) {
    case FM_MASKED_ZERO: return "exactly 0";
    case FM_MASKED_NEG_INF: return "exactly -inf";
    case FM_MASKED_ANY_INF: return "-inf or +inf";
    default: return "anything";
    }
}

fm_status fm_check_tensor(const char *name, fm_dtype dtype, size_t n, const double *cand,
                          const double *ref, const double *naive, const uint8_t *row_masked,
                          size_t row_len, fm_masked_rule rule, fm_tensor_check *out)
{
    return fm_check_tensor_bounded(name, dtype, n, cand, ref, naive, NULL, row_masked, row_len,
                                   rule, out);
}

fm_status fm_check_tensor_bounded(const char *name, fm_dtype dtype, size_t n, const double *cand,
                                  const double *ref, const double *naive,
                                  const double *elem_bound, const uint8_t *row_masked,
                                  size_t row_len, fm_masked_rule rule, fm_tensor_check *out)
{
    fm_clear_error();
    if (!out) return fm_fail(FM_ERR_INVALID, "check: NULL result");
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", name ? name : "tensor");
    if (dtype != FM_FLOAT32 && dtype != FM_FLOAT16 && dtype != FM_BFLOAT16)
        return fm_fail(FM_ERR_INVALID, "check %s: dtype %s is not a candidate precision",
                       out->name, fm_dtype_name(dtype));
    if (n > 0 && (!cand || !ref || (!naive && !elem_bound)))
        return fm_fail(FM_ERR_INVALID, "check %s: NULL candidate, reference or naive tensor",
                       out->name);
    if (row_masked && row_len == 0)
        return fm_fail(FM_ERR_INVALID, "check %s: row_len is 0 with a row mask", out->name);
    out->dtype = dtype;
    out->elements = n;
    out->naive_computed = naive != NULL;

    double sum_abs = 0.0, sum_sq = 0.0, ref_sq = 0.0;
    size_t first_nan = 0, first_bad = 0, over = 0;
    for (size_t i = 0; i < n; i++) {
        const double c = cand[i], r = ref[i];
        if (isnan(c) && out->nan_count++ == 0) first_nan = i;
        if (isnan(r))
            return fm_fail(FM_ERR_NONFINITE, "check %s: the reference holds NaN at index %zu",
                           out->name, i);
        const int in_masked_row = row_masked && row_masked[i / row_len];
        if (in_masked_row && rule != FM_MASKED_FREE) {
            /* a fully masked row: held to its exact value, not to the bound */
            out->masked_checked++;
            if (!masked_value_ok(rule, c) && out->masked_bad++ == 0) first_bad = i;
            continue;
        }
        if (!isfinite(r)) {
            /* -inf lse of a masked row (found without a row mask): the candidate must match */
            out->masked_checked++;
            int ok = c == r || (rule == FM_MASKED_ANY_INF && isinf(c));
            if (!ok && out->masked_bad++ == 0) first_bad = i;
            continue;
        }
        const double nv = naive ? naive[i] : r;
        if (!isfinite(nv))
            return fm_fail(FM_ERR_NONFINITE,
                           "check %s: the naive %s computation gives %g at index %zu (the "
                           "inputs overflow %s): no bound can be set",
                           out->name, fm_dtype_name(dtype), nv, i, fm_dtype_name(dtype));
        out->compared++;
        out->naive_max_abs = fmax(out->naive_max_abs, fabs(nv - r));
        out->atol = fmax(out->atol, atol_at(dtype, r));
        ref_sq += r * r;
        if (isnan(c)) continue; /* counted above; keeps the statistics of the rest finite */
        const double diff = fabs(c - r);
        if (diff > out->max_abs || out->compared == 1) {
            out->max_abs = diff;
            out->worst = i;
        }
        sum_abs += diff;
        sum_sq += diff * diff;
        if (elem_bound) {
            /* derived rule: this element against its own bound */
            const double b = elem_bound[i];
            const double ratio = diff == 0.0 ? 0.0 : b > 0.0 ? diff / b : INFINITY;
            if (diff > b) over++;
            if (ratio > out->ratio || out->compared == 1) {
                out->ratio = ratio;
                out->ratio_at = i;
                out->bound = b;
            }
        }
    }
    out->mean_abs = out->compared ? sum_abs / (double)out->compared : 0.0;
    out->rel_fro = ref_sq > 0.0 ? sqrt(sum_sq) / sqrt(ref_sq) : (sum_sq > 0.0 ? INFINITY : 0.0);
    int within;
    size_t judged_at;
    if (elem_bound) {
        within = over == 0;
        judged_at = out->ratio_at;
    } else {
        out->bound = 2.0 * out->naive_max_abs + out->atol;
        out->ratio = out->max_abs == 0.0 ? 0.0
                     : out->bound > 0.0  ? out->max_abs / out->bound
                                         : INFINITY;
        out->ratio_at = out->worst;
        within = out->max_abs <= out->bound;
        judged_at = out->worst;
    }

    out->pass = out->nan_count == 0 && out->masked_bad == 0 && within;
    out->where = out->nan_count ? first_nan : out->masked_bad ? first_bad : judged_at;
    if (out->nan_count)
        snprintf(out->why, sizeof out->why, "%zu NaN, first at index %zu", out->nan_count,
                 first_nan);
    else if (out->masked_bad)
        snprintf(out->why, sizeof out->why,
                 "%zu element(s) of fully masked rows not %s, first at index %zu: %g",
                 out->masked_bad, masked_rule_text(rule == FM_MASKED_FREE ? FM_MASKED_NEG_INF
                                                                          : rule),
                 first_bad, cand[first_bad]);
    else if (!out->pass && elem_bound)
        snprintf(out->why, sizeof out->why,
                 "%zu element(s) over their bound; worst: error %.3e > bound %.3e (%.3g x) at "
                 "index %zu (candidate %.9g, reference %.9g)",
                 over, fabs(cand[judged_at] - ref[judged_at]), out->bound, out->ratio, judged_at,
                 cand[judged_at], ref[judged_at]);
    else if (!out->pass)
        snprintf(out->why, sizeof out->why,
                 "max abs error %.3e > bound %.3e at index %zu (candidate %.9g, reference %.9g)",
                 out->max_abs, out->bound, out->worst, cand[out->worst], ref[out->worst]);
    return FM_OK;
}

/* ---------------------------------------------------------------- one case */

static fm_status require(const void *ptr, const char *what)
{
    return ptr ? FM_OK : fm_fail(FM_ERR_INVALID, "check: tensor %s is NULL", what);
}

static fm_status check_inputs_finite(const char *name, const double *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return fm_fail(FM_ERR_NONFINITE, "check: input %s holds %g at index %zu", name,
                           x[i], i);
    return FM_OK;
}

/* Everything fm_check_case allocates, freed in one place. */
typedef struct work {
    double *rq, *rk, *rv, *rdo;              /* inputs rounded to X (for a computed reference) */
    double *ref_out, *ref_lse, *ref_dq, *ref_dk, *ref_dv; /* computed reference */
    double *nv_out, *nv_lse, *nv_dq, *nv_dk, *nv_dv;      /* naive X */
    double *b_out, *b_lse, *b_dq, *b_dk, *b_dv;           /* derived bounds */
    uint8_t *rows;
} work;

static void work_free(work *w)
{
    free(w->rq), free(w->rk), free(w->rv), free(w->rdo);
    free(w->ref_out), free(w->ref_lse), free(w->ref_dq), free(w->ref_dk), free(w->ref_dv);
    free(w->nv_out), free(w->nv_lse), free(w->nv_dq), free(w->nv_dk), free(w->nv_dv);
    free(w->b_out), free(w->b_lse), free(w->b_dq), free(w->b_dk), free(w->b_dv);
    free(w->rows);
}

static double *rounded_copy(const double *x, size_t n, fm_dtype dtype, const char *what)
{
    double *y = fm_alloc(n, sizeof(double), what);
    if (y)
        for (size_t i = 0; i < n; i++) y[i] = fm_round_to_dtype(x[i], dtype);
    return y;
}

static fm_status validate_case(const fm_problem *p, const fm_mask *mask, const fm_tensors *ref,
                               const fm_tensors *cand, const fm_check_options *opt)
{
    fm_status st = fm_problem_validate(p, mask);
    if (st != FM_OK) return st;
    if (!ref || !cand || !opt)
        return fm_fail(FM_ERR_INVALID, "check: NULL reference, candidate or options");
    if (opt->dtype != FM_FLOAT32 && opt->dtype != FM_FLOAT16 && opt->dtype != FM_BFLOAT16)
        return fm_fail(FM_ERR_INVALID,
                       "check: candidate dtype %s; expected float32, float16 or bfloat16",
                       fm_dtype_name(opt->dtype));
    if (opt->rule != FM_RULE_DERIVED && opt->rule != FM_RULE_FA)
        return fm_fail(FM_ERR_INVALID, "check: rule %d; expected FM_RULE_DERIVED or FM_RULE_FA",
                       opt->rule);
    const int bwd = !opt->forward_only;
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    if ((st = require(ref->q, "q")) || (st = require(ref->k, "k")) || (st = require(ref->v, "v")))
        return st;
    if (bwd && (st = require(ref->dout, "dout"))) return st;
    if ((st = require(cand->out, "candidate out")) || (st = require(cand->lse, "candidate lse")))
        return st;
    if (bwd && ((st = require(cand->dq, "candidate dq")) || (st = require(cand->dk, "candidate dk"))
                || (st = require(cand->dv, "candidate dv"))))
        return st;
    if (ref->out && !ref->lse) return fm_fail(FM_ERR_INVALID, "check: reference out without lse");
    if (bwd && ref->dq && (!ref->dk || !ref->dv || !ref->out))
        return fm_fail(FM_ERR_INVALID, "check: reference dq without dk, dv, out");
    if ((st = check_inputs_finite("q", ref->q, nq)) || (st = check_inputs_finite("k", ref->k, nkv))
        || (st = check_inputs_finite("v", ref->v, nkv)))
        return st;
    if (bwd && (st = check_inputs_finite("dout", ref->dout, nq))) return st;
    return FM_OK;
}

/* The reference results the candidate is judged against: given, or computed here from the
 * inputs rounded to X (what a candidate computing in X actually received). Computed by the
 * tiled backend: every thread works (the dense one runs its products on one BLAS thread) and
 * fully masked tiles are skipped; it differs from the dense one in the last bits only, far
 * below any bound (docs/reference.md). */
static fm_status reference_results(const fm_problem *p, const fm_mask *mask, const fm_tensors *ref,
                                   const fm_check_options *opt, work *w, fm_tensors *r)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    const int bwd = !opt->forward_only;
    const fm_ref_options tiled = {.backend = FM_REF_TILED};
    *r = *ref;
    if (ref->out && (!bwd || ref->dq)) return FM_OK;
    if (!(w->rq = rounded_copy(ref->q, nq, opt->dtype, "check q")) ||
        !(w->rk = rounded_copy(ref->k, nkv, opt->dtype, "check k")) ||
        !(w->rv = rounded_copy(ref->v, nkv, opt->dtype, "check v")))
        return FM_ERR_NOMEM;
    fm_status st;
    if (!ref->out) {
        if (!(w->ref_out = fm_alloc(nq, sizeof(double), "reference out")) ||
            !(w->ref_lse = fm_alloc(nl, sizeof(double), "reference lse")))
            return FM_ERR_NOMEM;
        st = fm_ref_forward_opts(p, mask, &tiled, w->rq, w->rk, w->rv, w->ref_out, w->ref_lse);
        if (st != FM_OK) return st;
        r->out = w->ref_out;
        r->lse = w->ref_lse;
    }
    if (bwd && !ref->dq) {
        if (!(w->rdo = rounded_copy(ref->dout, nq, opt->dtype, "check dout")) ||
            !(w->ref_dq = fm_alloc(nq, sizeof(double), "reference dq")) ||
            !(w->ref_dk = fm_alloc(nkv, sizeof(double), "reference dk")) ||
            !(w->ref_dv = fm_alloc(nkv, sizeof(double), "reference dv")))
            return FM_ERR_NOMEM;
        st = fm_ref_backward_opts(p, mask, &tiled, w->rq, w->rk, w->rv, r->out, r->lse, w->rdo,
                                  w->ref_dq, w->ref_dk, w->ref_dv);
        if (st != FM_OK) return st;
        r->dq = w->ref_dq;
        r->dk = w->ref_dk;
        r->dv = w->ref_dv;
    }
    return FM_OK;
}

/* Appends the coordinates of t->where to t->why: [b, h, i, d] for [B,H,S,D] tensors
 * (`heads`, `rows`, `d` give the shape; `row_name` is i for query rows, j for keys),
 * [b, h, i] for lse (d == 0). */
static void append_coordinates(fm_tensor_check *t, int64_t heads, int64_t rows, int64_t d,
                               const char *row_name)
{
    if (t->pass) return;
    size_t len = strlen(t->why), x = t->where;
    int64_t col = d ? (int64_t)(x % (size_t)d) : 0;
    size_t row_index = d ? x / (size_t)d : x;
    int64_t i = (int64_t)(row_index % (size_t)rows);
    int64_t h = (int64_t)((row_index / (size_t)rows) % (size_t)heads);
    int64_t b = (int64_t)(row_index / (size_t)rows / (size_t)heads);
    if (d)
        snprintf(t->why + len, sizeof t->why - len, " [b=%lld, h=%lld, %s=%lld, d=%lld]",
                 (long long)b, (long long)h, row_name, (long long)i, (long long)col);
    else
        snprintf(t->why + len, sizeof t->why - len, " [b=%lld, h=%lld, %s=%lld]", (long long)b,
                 (long long)h, row_name, (long long)i);
}

void fm_check_report_finish(const fm_problem *p, int backward, fm_check_report *report)
{
    fm_tensor_check *t = report->tensor;
    append_coordinates(&t[FM_CHECK_OUT], p->q_heads, p->seqlen_q, p->head_dim, "i");
    append_coordinates(&t[FM_CHECK_LSE], p->q_heads, p->seqlen_q, 0, "i");
    if (backward) {
        append_coordinates(&t[FM_CHECK_DQ], p->q_heads, p->seqlen_q, p->head_dim, "i");
        append_coordinates(&t[FM_CHECK_DK], p->kv_heads, p->seqlen_k, p->head_dim, "j");
        append_coordinates(&t[FM_CHECK_DV], p->kv_heads, p->seqlen_k, p->head_dim, "j");
    }
    report->pass = 1;
    for (int i = 0; i < report->n_tensors; i++) report->pass &= t[i].pass;
}

fm_status fm_check_case(const fm_problem *p, const fm_mask *mask, const fm_tensors *ref,
                        const fm_tensors *cand, const fm_check_options *opt,
                        fm_check_report *report)
{
    fm_clear_error();
    if (!report) return fm_fail(FM_ERR_INVALID, "check: NULL report");
    memset(report, 0, sizeof *report);
    fm_status st = validate_case(p, mask, ref, cand, opt);
    if (st != FM_OK) return st;
    report->options = *opt;
    const int bwd = !opt->forward_only;
    const fm_dtype x = opt->dtype;
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p), d = (size_t)p->head_dim;

    work w = {0};
    fm_tensors r;
    st = reference_results(p, mask, ref, opt, &w, &r);
    if (st != FM_OK) goto done;

    st = FM_ERR_NOMEM;
    if (!(w.rows = fm_alloc(nl, sizeof(uint8_t), "masked rows"))) goto done;
    /* the naive computation in X, from the same inputs: the FA rule's bound is made of it;
     * under the derived rule it decides only the refusal on overflow, so it is left out where
     * no overflow is possible (oracle/naive_guard.c), unless asked for */
    const int naive = opt->rule == FM_RULE_FA || opt->naive ||
                      !fm_naive_cannot_overflow(p, x, ref, bwd);
    if (naive && (!(w.nv_out = fm_alloc(nq, sizeof(double), "naive out")) ||
                  !(w.nv_lse = fm_alloc(nl, sizeof(double), "naive lse"))))
        goto done;
    if (naive && (st = fm_naive_forward(p, mask, x, ref->q, ref->k, ref->v, w.nv_out, w.nv_lse)))
        goto done;
    if (naive && bwd) {
        st = FM_ERR_NOMEM;
        if (!(w.nv_dq = fm_alloc(nq, sizeof(double), "naive dq")) ||
            !(w.nv_dk = fm_alloc(nkv, sizeof(double), "naive dk")) ||
            !(w.nv_dv = fm_alloc(nkv, sizeof(double), "naive dv")))
            goto done;
        if ((st = fm_naive_backward(p, mask, x, ref->q, ref->k, ref->v, w.nv_out, w.nv_lse,
                                    ref->dout, w.nv_dq, w.nv_dk, w.nv_dv)))
            goto done;
    }
    if ((st = fm_oracle_masked_rows(p, mask, w.rows))) goto done;
    if (opt->rule == FM_RULE_DERIVED) {
        st = FM_ERR_NOMEM;
        if (!(w.b_out = fm_alloc(nq, sizeof(double), "bound out")) ||
            !(w.b_lse = fm_alloc(nl, sizeof(double), "bound lse")))
            goto done;
        if (bwd && (!(w.b_dq = fm_alloc(nq, sizeof(double), "bound dq")) ||
                    !(w.b_dk = fm_alloc(nkv, sizeof(double), "bound dk")) ||
                    !(w.b_dv = fm_alloc(nkv, sizeof(double), "bound dv"))))
            goto done;
        fm_tensors bt = r;
        bt.q = ref->q, bt.k = ref->k, bt.v = ref->v, bt.dout = ref->dout;
        if ((st = fm_oracle_bounds(p, mask, x, &bt, w.b_out, w.b_lse, w.b_dq, w.b_dk, w.b_dv)))
            goto done;
    }
    for (size_t i = 0; i < nl; i++) report->masked_rows += w.rows[i];

    /* out: masked rows exactly 0; lse: exactly -inf (or +inf on request); gradients: bound */
    const fm_masked_rule lse_rule = opt->allow_fa2_inf_lse ? FM_MASKED_ANY_INF : FM_MASKED_NEG_INF;
    fm_tensor_check *t = report->tensor;
    if ((st = fm_check_tensor_bounded("out", x, nq, cand->out, r.out, w.nv_out, w.b_out, w.rows,
                                      d, FM_MASKED_ZERO, &t[FM_CHECK_OUT])) ||
        (st = fm_check_tensor_bounded("lse", x, nl, cand->lse, r.lse, w.nv_lse, w.b_lse, w.rows,
                                      1, lse_rule, &t[FM_CHECK_LSE])))
        goto done;
    report->n_tensors = 2;
    if (bwd) {
        if ((st = fm_check_tensor_bounded("dq", x, nq, cand->dq, r.dq, w.nv_dq, w.b_dq, w.rows,
                                          d, FM_MASKED_FREE, &t[FM_CHECK_DQ])) ||
            (st = fm_check_tensor_bounded("dk", x, nkv, cand->dk, r.dk, w.nv_dk, w.b_dk, NULL, 0,
                                          FM_MASKED_FREE, &t[FM_CHECK_DK])) ||
            (st = fm_check_tensor_bounded("dv", x, nkv, cand->dv, r.dv, w.nv_dv, w.b_dv, NULL, 0,
                                          FM_MASKED_FREE, &t[FM_CHECK_DV])))
            goto done;
        report->n_tensors = 5;
    }
    fm_check_report_finish(p, bwd, report);
    st = FM_OK;
done:
    work_free(&w);
    return st;
}
