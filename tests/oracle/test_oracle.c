/* tests/oracle/test_oracle.c — the oracle's pass rule (docs/spec.md §5): the reference and the naive
 * same-precision result pass on random problems (every family, GQA, mask heads, Sq != Sk), a
 * result pushed past the bound fails, a real semantic bug (wrong scale, wrong causal alignment)
 * fails, NaN fails anywhere, fully masked rows must be exactly 0 / -inf (+inf only on request),
 * forward-only mode, and invalid input is an error rather than a verdict.
 * Layer: tests of oracle/ (which sits on reference/, masks/, core/).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmask/oracle.h"
#include "flashmask/reference.h"
#include "expect_fail.h"
#include "prop.h"

static const fm_dtype candidate_dtypes[3] = {FM_FLOAT16, FM_BFLOAT16, FM_FLOAT32};

/* Reference results of a case, computed from its inputs rounded to X: what a candidate in X
 * that made no error beyond its input rounding would return. */
typedef struct results {
    double *q, *k, *v, *dout;     /* inputs rounded to X */
    double *out, *lse, *dq, *dk, *dv;
} results;

static void results_free(results *r)
{
    free(r->q), free(r->k), free(r->v), free(r->dout);
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
    memset(r, 0, sizeof *r);
}

static fm_status reference_of(const fm_problem *p, const fm_mask *m, const double *q,
                              const double *k, const double *v, const double *dout,
                              fm_dtype dtype, results *r)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    r->q = fm_rounded_copy(q, nq, dtype), r->k = fm_rounded_copy(k, nkv, dtype), r->v = fm_rounded_copy(v, nkv, dtype);
    r->dout = fm_rounded_copy(dout, nq, dtype);
    r->out = malloc(nq * sizeof(double)), r->lse = malloc(fm_problem_lse_elems(p) * sizeof(double));
    r->dq = malloc(nq * sizeof(double));
    r->dk = malloc(nkv * sizeof(double)), r->dv = malloc(nkv * sizeof(double));
    fm_status st = fm_ref_forward(p, m, r->q, r->k, r->v, r->out, r->lse);
    if (st == FM_OK)
        st = fm_ref_backward(p, m, r->q, r->k, r->v, r->out, r->lse, r->dout, r->dq, r->dk,
                             r->dv);
    return st;
}

static fm_tensors inputs_of(const results *r)
{
    fm_tensors t = {.q = r->q, .k = r->k, .v = r->v, .dout = r->dout};
    return t;
}

static fm_tensors outputs_of(const results *r)
{
    fm_tensors t = {.out = r->out, .lse = r->lse, .dq = r->dq, .dk = r->dk, .dv = r->dv};
    return t;
}

/* ---------------------------------------------------------------- properties */

/* The reference passes against itself (the oracle computes its own reference here), and the
 * naive same-precision result passes: the rule can never reject the computation it is built on. */
static int prop_reference_and_naive_pass(const fm_random_case *c, void *ctx, char *msg,
                                         size_t len)
{
    (void)ctx;
    const fm_problem *p = &c->problem;
    for (int di = 0; di < 3; di++) {
        fm_dtype x = candidate_dtypes[di];
        results r = {0};
        fm_status st = reference_of(p, &c->mask, c->q, c->k, c->v, c->dout, x, &r);
        fm_tensors in = inputs_of(&r), cand = outputs_of(&r);
        fm_check_options opt = fm_check_options_default(x);
        fm_check_report rep;
        if (st == FM_OK) st = fm_check_case(p, &c->mask, &in, &cand, &opt, &rep);
        if (st != FM_OK || !rep.pass) {
            snprintf(msg, len, "%s: reference as candidate: status %s (%s), pass %d",
                     fm_dtype_name(x), fm_status_string(st), fm_last_error(),
                     st == FM_OK ? rep.pass : -1);
            results_free(&r);
            return 0;
        }
        /* the naive X result as the candidate */
        size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
        double *o = malloc(nq * sizeof(double)), *l = malloc(fm_problem_lse_elems(p) * 8);
        double *dq = malloc(nq * 8), *dk = malloc(nkv * 8), *dv = malloc(nkv * 8);
        st = fm_naive_forward(p, &c->mask, x, r.q, r.k, r.v, o, l);
        if (st == FM_OK)
            st = fm_naive_backward(p, &c->mask, x, r.q, r.k, r.v, o, l, r.dout, dq, dk, dv);
        fm_tensors naive = {.out = o, .lse = l, .dq = dq, .dk = dk, .dv = dv};
        fm_tensors ref_full = in;
        ref_full.out = r.out, ref_full.lse = r.lse;
        ref_full.dq = r.dq, ref_full.dk = r.dk, ref_full.dv = r.dv;
        if (st == FM_OK) st = fm_check_case(p, &c->mask, &ref_full, &naive, &opt, &rep);
        int ok = st == FM_OK && rep.pass;
        if (!ok)
            snprintf(msg, len, "%s: naive as candidate: status %s (%s), pass %d",
                     fm_dtype_name(x), fm_status_string(st), fm_last_error(),
                     st == FM_OK ? rep.pass : -1);
        free(o), free(l), free(dq), free(dk), free(dv);
        results_free(&r);
        if (!ok) return 0;
    }
    return 1;
}

/* Pushing one element of each tensor just past its bound fails that tensor, and only it;
 * pushing it to half the bound still passes. */
static int prop_perturbation_caught(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    const fm_problem *p = &c->problem;
    fm_dtype x = candidate_dtypes[c->seed % 3];
    results r = {0};
    fm_status st = reference_of(p, &c->mask, c->q, c->k, c->v, c->dout, x, &r);
    fm_tensors in = inputs_of(&r), cand = outputs_of(&r);
    fm_check_options opt = fm_check_options_default(x);
    opt.rule = FM_RULE_FA; /* a per-tensor bound; the derived rule's are tested below */
    fm_check_report base;
    if (st == FM_OK) st = fm_check_case(p, &c->mask, &in, &cand, &opt, &base);
    if (st != FM_OK) {
        snprintf(msg, len, "check failed: %s", fm_last_error());
        results_free(&r);
        return 0;
    }
    double *tensors[FM_CHECK_TENSORS] = {r.out, r.lse, r.dq, r.dk, r.dv};
    size_t sizes[FM_CHECK_TENSORS] = {fm_problem_q_elems(p), fm_problem_lse_elems(p),
                                      fm_problem_q_elems(p), fm_problem_kv_elems(p),
                                      fm_problem_kv_elems(p)};
    int ok = 1;
    /* each tensor in turn: a copy of the reference results with one element moved (the
     * oracle computes its own reference from `in`) */
    for (int t = 0; t < FM_CHECK_TENSORS && ok; t++) {
        double *copy = malloc(sizes[t] * sizeof(double));
        memcpy(copy, tensors[t], sizes[t] * sizeof(double));
        fm_tensors cand2 = cand;
        double **slot[FM_CHECK_TENSORS] = {&cand2.out, &cand2.lse, &cand2.dq, &cand2.dk,
                                           &cand2.dv};
        *slot[t] = copy;
        size_t e = sizes[t];
        while (e > 0 && (!isfinite(copy[e - 1]) ||
                         (t == FM_CHECK_OUT && !isfinite(r.lse[(e - 1) / (size_t)p->head_dim]))))
            e--;
        if (e > 0) {
            e--;
            const double bound = base.tensor[t].bound;
            fm_check_report rep;
            copy[e] += 0.5 * bound;
            st = fm_check_case(p, &c->mask, &in, &cand2, &opt, &rep);
            if (st != FM_OK || !rep.pass) {
                snprintf(msg, len, "%s: tensor %s moved by half its bound %g fails",
                         fm_dtype_name(x), fm_check_tensor_name(t), bound);
                ok = 0;
            }
            copy[e] = tensors[t][e] + 1.01 * bound;
            if (copy[e] == tensors[t][e]) copy[e] = nextafter(copy[e], INFINITY); /* bound 0 */
            if (ok) st = fm_check_case(p, &c->mask, &in, &cand2, &opt, &rep);
            if (ok && (st != FM_OK || rep.pass || rep.tensor[t].pass)) {
                snprintf(msg, len, "%s: tensor %s moved past its bound %g at %zu passes",
                         fm_dtype_name(x), fm_check_tensor_name(t), bound, e);
                ok = 0;
            }
            for (int u = 0; ok && u < FM_CHECK_TENSORS; u++)
                if (u != t && !rep.tensor[u].pass) {
                    snprintf(msg, len, "perturbing %s failed %s too",
                             fm_check_tensor_name(t), fm_check_tensor_name(u));
                    ok = 0;
                }
        }
        free(copy);
    }
    results_free(&r);
    return ok;
}

/* The cpu layer (float32, tiled, online softmax in base 2, polynomial exp2) judged by the
 * oracle as a third party's kernel would be. Its results stored in float16 must pass the
 * float16 rule (a float32 kernel at least as accurate as naive float16 attention): a wrong mask,
 * scale or gradient fails that. Its float32 verdicts are counted and printed: the float32 rule
 * fails it on tiny shapes where the bound collapses (exact cancellation, see docs/oracle.md). */
typedef struct cpu_tally {
    int trials, pass32;
    double worst_ratio32; /* max over trials and tensors of max_abs / bound, float32 rule */
} cpu_tally;

static int prop_cpu_layer_passes(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    cpu_tally *tally = ctx;
    const fm_problem *p = &c->problem;
    results r = {0};
    fm_status st = reference_of(p, &c->mask, c->q, c->k, c->v, c->dout, FM_FLOAT16, &r);
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    fm_tensors t = inputs_of(&r);
    t.out = malloc(nq * 8), t.lse = malloc(fm_problem_lse_elems(p) * 8);
    t.dq = malloc(nq * 8), t.dk = malloc(nkv * 8), t.dv = malloc(nkv * 8);
    if (st == FM_OK) st = fm_forward(FM_IMPL_CPU, p, &c->mask, &t);
    if (st == FM_OK) st = fm_backward(FM_IMPL_CPU, p, &c->mask, &t);
    fm_tensors in = inputs_of(&r);
    fm_check_options opt = fm_check_options_default(FM_FLOAT32);
    fm_check_report rep, rep32;
    if (st == FM_OK) st = fm_check_case(p, &c->mask, &in, &t, &opt, &rep32);
    /* as a float16 kernel: its results stored in float16 (what such a kernel writes) */
    double *outs[5] = {t.out, t.lse, t.dq, t.dk, t.dv};
    size_t ns[5] = {nq, fm_problem_lse_elems(p), nq, nkv, nkv};
    for (int i = 0; i < 5; i++) fm_oracle_round_array(outs[i], ns[i], FM_FLOAT16);
    opt.dtype = FM_FLOAT16;
    if (st == FM_OK) st = fm_check_case(p, &c->mask, &in, &t, &opt, &rep);
    /* under the derived rule the float32 layer must pass as float32 too (the FA rule failed it
     * on cancelling gradients: docs/oracle.md section 2.3) */
    int ok = st == FM_OK && rep.pass && rep32.pass;
    if (st != FM_OK) snprintf(msg, len, "status %s: %s", fm_status_string(st), fm_last_error());
    else if (!ok)
        for (int i = 0; i < rep.n_tensors; i++) {
            if (!rep.tensor[i].pass) snprintf(msg, len, "cpu as float16 %s: %s",
                                              rep.tensor[i].name, rep.tensor[i].why);
            if (!rep32.tensor[i].pass) snprintf(msg, len, "cpu as float32 %s: %s",
                                                rep32.tensor[i].name, rep32.tensor[i].why);
        }
    if (st == FM_OK) {
        tally->trials++;
        tally->pass32 += rep32.pass;
        for (int i = 0; i < rep32.n_tensors; i++)
            tally->worst_ratio32 = fmax(tally->worst_ratio32, rep32.tensor[i].ratio);
    }
    free(t.out), free(t.lse), free(t.dq), free(t.dk), free(t.dv);
    results_free(&r);
    return ok;
}

/* ---------------------------------------------------------------- fixed cases */

/* A small problem with rows 0..3 fully masked: Sq = 8 > Sk = 4 with bottom-right causal. */
typedef struct fixture {
    fm_problem p;
    fm_mask m;
    double *q, *k, *v, *dout;
    results r;
} fixture;

static fixture fixture_make(fm_causal causal, int64_t sq, int64_t sk, fm_dtype x)
{
    fixture fx, *f = &fx;
    memset(f, 0, sizeof *f);
    fm_problem_init(&f->p, 1, 2, 1, sq, sk, 8);
    assert_int_equal(fm_mask_init(&f->m, 1, 1, sq, sk, causal), FM_OK);
    fm_rng rng;
    fm_rng_seed(&rng, 42);
    size_t nq = fm_problem_q_elems(&f->p), nkv = fm_problem_kv_elems(&f->p);
    f->q = malloc(nq * 8), f->k = malloc(nkv * 8), f->v = malloc(nkv * 8);
    f->dout = malloc(nq * 8);
    for (size_t i = 0; i < nq; i++) f->q[i] = fm_rng_normal(&rng), f->dout[i] = fm_rng_normal(&rng);
    for (size_t i = 0; i < nkv; i++) f->k[i] = fm_rng_normal(&rng), f->v[i] = fm_rng_normal(&rng);
    assert_int_equal(reference_of(&f->p, &f->m, f->q, f->k, f->v, f->dout, x, &f->r), FM_OK);
    return fx;
}

static void fixture_free(fixture *f)
{
    free(f->q), free(f->k), free(f->v), free(f->dout);
    results_free(&f->r);
    fm_mask_free(&f->m);
}

static int check(fixture *f, const fm_tensors *cand, fm_check_options opt, fm_check_report *rep)
{
    fm_tensors in = inputs_of(&f->r);
    fm_status st = fm_check_case(&f->p, &f->m, &in, cand, &opt, rep);
    assert_int_equal(st, FM_OK);
    return rep->pass;
}

static void test_masked_rows_exact(void **state)
{
    (void)state;
    fixture f = fixture_make(FM_CAUSAL_BOTTOM_RIGHT, 8, 4, FM_FLOAT16);
    fm_check_options opt = fm_check_options_default(FM_FLOAT16);
    fm_check_report rep;
    fm_tensors cand = outputs_of(&f.r);
    assert_true(check(&f, &cand, opt, &rep));
    assert_int_equal(rep.masked_rows, 2 * 4); /* rows 0..3 of both query heads */
    assert_true(isinf(f.r.lse[0]) && f.r.lse[0] < 0);

    /* FlashAttention-2's +inf lse: fails by default, passes on request */
    f.r.lse[1] = INFINITY;
    assert_false(check(&f, &cand, opt, &rep));
    assert_false(rep.tensor[FM_CHECK_LSE].pass);
    assert_true(rep.tensor[FM_CHECK_OUT].pass);
    assert_non_null(strstr(rep.tensor[FM_CHECK_LSE].why, "fully masked"));
    opt.allow_fa2_inf_lse = 1;
    assert_true(check(&f, &cand, opt, &rep));
    f.r.lse[1] = -INFINITY;

    /* a tiny non-zero output in a masked row fails, however small */
    fixture g = fixture_make(FM_CAUSAL_BOTTOM_RIGHT, 8, 4, FM_FLOAT16);
    double *o = malloc(fm_problem_q_elems(&g.p) * 8);
    memcpy(o, g.r.out, fm_problem_q_elems(&g.p) * 8);
    o[3] = 1e-30; /* row 0, head 0 */
    fm_tensors cand2 = outputs_of(&g.r);
    cand2.out = o;
    assert_false(check(&g, &cand2, fm_check_options_default(FM_FLOAT16), &rep));
    assert_false(rep.tensor[FM_CHECK_OUT].pass);
    /* a finite lse in a masked row fails too */
    double *l = malloc(fm_problem_lse_elems(&g.p) * 8);
    memcpy(l, g.r.lse, fm_problem_lse_elems(&g.p) * 8);
    l[2] = 0.0;
    cand2.out = g.r.out, cand2.lse = l;
    assert_false(check(&g, &cand2, fm_check_options_default(FM_FLOAT16), &rep));
    assert_false(rep.tensor[FM_CHECK_LSE].pass);
    free(o), free(l);
    fixture_free(&g);
    fixture_free(&f);
}

static void test_nan_fails_anywhere(void **state)
{
    (void)state;
    fixture f = fixture_make(FM_CAUSAL_BOTTOM_RIGHT, 8, 4, FM_BFLOAT16);
    fm_check_report rep;
    double *slots[5] = {f.r.out, f.r.lse, f.r.dq, f.r.dk, f.r.dv};
    size_t where[5] = {0 /* masked row */, 7 /* a live row */, 60, 5, 9};
    for (int t = 0; t < 5; t++) {
        double saved = slots[t][where[t]];
        slots[t][where[t]] = NAN;
        /* `in` carries no reference results: the oracle computes its own, untouched */
        fm_tensors cand = outputs_of(&f.r);
        fm_tensors in = inputs_of(&f.r);
        fm_check_options opt = fm_check_options_default(FM_BFLOAT16);
        fm_status st = fm_check_case(&f.p, &f.m, &in, &cand, &opt, &rep);
        slots[t][where[t]] = saved;
        assert_int_equal(st, FM_OK);
        assert_false(rep.pass);
        assert_false(rep.tensor[t].pass);
        assert_true(rep.tensor[t].nan_count == 1);
        assert_non_null(strstr(rep.tensor[t].why, "NaN"));
    }
    fixture_free(&f);
}

/* Genuine bugs, not bound-sized nudges: a 2% wrong scale, and the other causal alignment. */
static void test_semantic_bugs_fail(void **state)
{
    (void)state;
    fixture f = fixture_make(FM_CAUSAL_TOP_LEFT, 12, 20, FM_FLOAT32);
    fm_check_report rep;
    size_t nq = fm_problem_q_elems(&f.p), nkv = fm_problem_kv_elems(&f.p);
    double *o = malloc(nq * 8), *l = malloc(fm_problem_lse_elems(&f.p) * 8);
    double *dq = malloc(nq * 8), *dk = malloc(nkv * 8), *dv = malloc(nkv * 8);
    fm_tensors cand = {.out = o, .lse = l, .dq = dq, .dk = dk, .dv = dv};

    fm_problem wrong = f.p;
    wrong.scale *= 1.02;
    assert_int_equal(fm_ref_forward(&wrong, &f.m, f.r.q, f.r.k, f.r.v, o, l), FM_OK);
    assert_int_equal(fm_ref_backward(&wrong, &f.m, f.r.q, f.r.k, f.r.v, o, l, f.r.dout, dq, dk,
                                     dv), FM_OK);
    assert_false(check(&f, &cand, fm_check_options_default(FM_FLOAT32), &rep));
    assert_false(rep.tensor[FM_CHECK_OUT].pass);
    /* even judged as bfloat16 (the loosest bound) a 2% scale error is caught on lse */
    assert_false(check(&f, &cand, fm_check_options_default(FM_BFLOAT16), &rep));

    fm_mask other;
    assert_int_equal(fm_mask_copy(&other, &f.m), FM_OK);
    other.causal = FM_CAUSAL_BOTTOM_RIGHT;
    assert_int_equal(fm_ref_forward(&f.p, &other, f.r.q, f.r.k, f.r.v, o, l), FM_OK);
    assert_int_equal(fm_ref_backward(&f.p, &other, f.r.q, f.r.k, f.r.v, o, l, f.r.dout, dq, dk,
                                     dv), FM_OK);
    assert_false(check(&f, &cand, fm_check_options_default(FM_BFLOAT16), &rep));
    assert_false(rep.tensor[FM_CHECK_OUT].pass);
    fm_mask_free(&other);
    free(o), free(l), free(dq), free(dk), free(dv);
    fixture_free(&f);
}

static void test_forward_only_and_invalid_input(void **state)
{
    (void)state;
    fixture f = fixture_make(FM_CAUSAL_NONE, 5, 7, FM_FLOAT16);
    fm_check_report rep;
    fm_tensors cand = {.out = f.r.out, .lse = f.r.lse}; /* no gradients */
    fm_tensors in = inputs_of(&f.r);
    in.dout = NULL;
    fm_check_options opt = fm_check_options_default(FM_FLOAT16);
    opt.forward_only = 1;
    assert_int_equal(fm_check_case(&f.p, &f.m, &in, &cand, &opt, &rep), FM_OK);
    assert_true(rep.pass);
    assert_int_equal(rep.n_tensors, 2);
    /* without forward-only, missing gradients are invalid input, not a failing verdict */
    opt.forward_only = 0;
    in.dout = f.r.dout;
    EXPECT_FAIL(fm_check_case(&f.p, &f.m, &in, &cand, &opt, &rep), FM_ERR_INVALID, "dq");
    /* float64 is not a candidate precision */
    cand = outputs_of(&f.r);
    opt = fm_check_options_default(FM_FLOAT64);
    assert_int_equal(fm_check_case(&f.p, &f.m, &in, &cand, &opt, &rep), FM_ERR_INVALID);
    /* NaN in an input is a broken case */
    opt = fm_check_options_default(FM_FLOAT16);
    double saved = f.r.q[3];
    f.r.q[3] = NAN;
    in = inputs_of(&f.r);
    assert_int_equal(fm_check_case(&f.p, &f.m, &in, &cand, &opt, &rep), FM_ERR_NONFINITE);
    f.r.q[3] = saved;
    fixture_free(&f);
}

/* atol_X and the naive errors have the sizes the formats imply. */
static void test_tolerances(void **state)
{
    (void)state;
    /* values in [-2, 2): each of the two roundings loses at most half an ulp of [2, 4) */
    double vals[101];
    for (int i = 0; i < 101; i++) vals[i] = -2.0 + 0.0397 * i;
    double a16 = fm_oracle_atol(FM_FLOAT16, vals, 101);
    double a_bf = fm_oracle_atol(FM_BFLOAT16, vals, 101);
    double a32 = fm_oracle_atol(FM_FLOAT32, vals, 101);
    assert_true(a16 > 0.0 && a16 <= 0x1p-9);
    assert_true(a_bf > a16 && a_bf <= 0x1p-6);
    assert_true(a32 > 0.0 && a32 <= 0x1p-22);
    /* 1.0 round-trips exactly through float16 around the shift: atol 0 (the rule's degenerate
     * side, documented in docs/oracle.md) */
    double one = 1.0;
    assert_true(fm_oracle_atol(FM_FLOAT16, &one, 1) == 0.0);

    /* the naive errors, asked for (the derived rule leaves them out by default) */
    fm_check_options o_bf = fm_check_options_default(FM_BFLOAT16);
    fm_check_options o16 = fm_check_options_default(FM_FLOAT16);
    fm_check_options o32 = fm_check_options_default(FM_FLOAT32);
    o_bf.naive = o16.naive = o32.naive = 1;
    fixture f = fixture_make(FM_CAUSAL_NONE, 33, 47, FM_BFLOAT16);
    fm_check_report r16, r_bf, r32;
    fm_tensors cand = outputs_of(&f.r);
    check(&f, &cand, o_bf, &r_bf);
    fixture_free(&f);
    f = fixture_make(FM_CAUSAL_NONE, 33, 47, FM_FLOAT16);
    cand = outputs_of(&f.r);
    check(&f, &cand, o16, &r16);
    fixture_free(&f);
    f = fixture_make(FM_CAUSAL_NONE, 33, 47, FM_FLOAT32);
    cand = outputs_of(&f.r);
    check(&f, &cand, o32, &r32);
    fixture_free(&f);
    for (int t = 0; t < FM_CHECK_TENSORS; t++) {
        if (t == FM_CHECK_LSE) continue; /* lse is float32 in every naive computation */
        /* bfloat16 (8 bits) is looser than float16 (11), which is looser than float32 (24) */
        assert_true(r_bf.tensor[t].naive_max_abs > r16.tensor[t].naive_max_abs);
        assert_true(r16.tensor[t].naive_max_abs > r32.tensor[t].naive_max_abs);
        assert_true(r32.tensor[t].naive_max_abs < 1e-5);
        assert_true(r_bf.tensor[t].naive_max_abs < 0.1);
    }
}

/* The derived rule leaves the naive computation out where it cannot overflow (docs/oracle.md
 * §2.5), with the verdict and bounds it gives with the naive computation; where the inputs do
 * overflow X in it, the refusal is still made. */
static void test_naive_skip(void **state)
{
    (void)state;
    for (int x = 0; x < 3; x++) {
        const fm_dtype dt = candidate_dtypes[x];
        fixture f = fixture_make(FM_CAUSAL_NONE, 33, 47, dt);
        fm_tensors cand = outputs_of(&f.r);
        cand.dq[5] += 0.5; /* one failing tensor too: its verdict must not move either */
        fm_check_options opt = fm_check_options_default(dt);
        fm_check_report skip, full, fa;
        check(&f, &cand, opt, &skip);
        opt.naive = 1;
        check(&f, &cand, opt, &full);
        opt.naive = 0, opt.rule = FM_RULE_FA;
        check(&f, &cand, opt, &fa);
        assert_false(skip.pass);
        assert_int_equal(skip.pass, full.pass);
        for (int t = 0; t < FM_CHECK_TENSORS; t++) {
            const fm_tensor_check *a = &skip.tensor[t], *b = &full.tensor[t];
            assert_int_equal(a->naive_computed, 0);
            assert_true(a->naive_max_abs == 0.0);
            assert_int_equal(b->naive_computed, 1);
            assert_int_equal(fa.tensor[t].naive_computed, 1); /* the FA rule always runs it */
            if (t != FM_CHECK_LSE) assert_true(b->naive_max_abs > 0.0);
            assert_int_equal(a->pass, b->pass);
            assert_true(a->bound == b->bound && a->ratio == b->ratio && a->max_abs == b->max_abs);
            assert_int_equal(a->ratio_at, b->ratio_at);
            assert_string_equal(a->why, b->why);
        }
        assert_false(skip.tensor[FM_CHECK_DQ].pass);
        char *json = NULL;
        assert_int_equal(fm_check_report_to_json(&skip, &json), FM_OK);
        assert_non_null(strstr(json, "\"naive_max_abs\":null"));
        assert_non_null(strstr(json, "\"naive_computed\":false"));
        free(json);
        fixture_free(&f);
    }
    /* float16 v and dout of a few thousand: dP = dout.v reaches ~1e7 and P (dP - Delta) no
     * longer fits float16 in the naive computation; the check must still refuse */
    fixture f = fixture_make(FM_CAUSAL_NONE, 33, 47, FM_FLOAT16);
    const size_t nq = fm_problem_q_elems(&f.p), nkv = fm_problem_kv_elems(&f.p);
    for (size_t i = 0; i < nq; i++) f.r.dout[i] = fm_round_to_dtype(3000.0 * f.r.dout[i], FM_FLOAT16);
    for (size_t i = 0; i < nkv; i++) f.r.v[i] = fm_round_to_dtype(3000.0 * f.r.v[i], FM_FLOAT16);
    for (size_t i = 0; i < nq; i++) f.r.dout[i] = fmax(-65504.0, fmin(65504.0, f.r.dout[i]));
    for (size_t i = 0; i < nkv; i++) f.r.v[i] = fmax(-65504.0, fmin(65504.0, f.r.v[i]));
    fm_tensors in = inputs_of(&f.r), cand = outputs_of(&f.r);
    in.out = NULL, in.lse = NULL; /* the reference of these inputs, computed by the check */
    fm_check_options opt = fm_check_options_default(FM_FLOAT16);
    fm_check_report rep;
    EXPECT_FAIL(fm_check_case(&f.p, &f.m, &in, &cand, &opt, &rep), FM_ERR_NONFINITE,
                "the naive float16 computation gives");
    fixture_free(&f);
}

static void test_random_reference_and_naive_pass(void **state)
{
    (void)state;
    fm_check_property("reference and naive pass", prop_reference_and_naive_pass, NULL, 60, NULL);
}

static void test_random_perturbation_caught(void **state)
{
    (void)state;
    fm_check_property("perturbation caught", prop_perturbation_caught, NULL, 40, NULL);
}

static void test_random_cpu_layer_passes(void **state)
{
    (void)state;
    cpu_tally tally = {0};
    fm_check_property("cpu layer passes float16 rule", prop_cpu_layer_passes, &tally, 40, NULL);
    printf("cpu layer under the float32 rule: %d of %d cases pass, worst error/bound %.3g\n",
           tally.pass32, tally.trials, tally.worst_ratio32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tolerances),
        cmocka_unit_test(test_naive_skip),
        cmocka_unit_test(test_masked_rows_exact),
        cmocka_unit_test(test_nan_fails_anywhere),
        cmocka_unit_test(test_semantic_bugs_fail),
        cmocka_unit_test(test_forward_only_and_invalid_input),
        cmocka_unit_test(test_random_reference_and_naive_pass),
        cmocka_unit_test(test_random_perturbation_caught),
        cmocka_unit_test(test_random_cpu_layer_passes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
