/* tests/backends/test_backends.c — suite 'backends': every implementation against the float64
 * reference, in the spirit of ggml's test-backend-ops. One harness, one loop: for each
 * implementation that fm_impl_available() reports (others are skipped with the reason), run
 * fm_forward/fm_backward on random cases of the shared harness (tests/common/prop.h) and compare
 * O, LSE, dQ, dK, dV with the reference on the same inputs.
 *
 * Error of a tensor T:   err(T) = max_e |T_impl[e] - T_ref[e]| / max(1, max_e |T_ref[e]|)
 * (LSE over the rows the reference finds finite). Exact requirements besides: no NaN anywhere;
 * a row the reference finds fully masked has LSE = -inf, O = 0 and dQ = 0 exactly in the
 * implementation too. The inputs are rounded to the implementation's dtype first, so that the
 * error measured is the implementation's arithmetic, not the rounding of its inputs.
 * Tolerances are per implementation and dtype (the table `backends` below, docs/reference.md),
 * for accumulations of up to ACC_BASE terms; longer ones get tol * sqrt(length / ACC_BASE),
 * since rounding errors of random sign grow like the square root of the number of terms. That
 * matters where the exact value cancels to ~0 and the floor 1 makes the bound absolute: with
 * Sk = 1, dK is exactly 0 but float32 leaves dS ~ eps * |dO| |v| per row, summed over Sq * Hq/Hk
 * rows (measured 7.2e-5 at Sq = 142, Hq/Hk = 3, D = 61, s = 2: seed 1162450386954773700).
 * Also: the kernel options of fm_forward_opts (test_kernel_options).
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "attn_run.h"
#include "expect_fail.h"
#include "prop.h"
#include "runs.h"

/* One row per (implementation, dtype) under test. */
typedef struct backend {
    fm_impl impl;
    fm_dtype dtype;      /* the problem's dtype (only cuda reads it) */
    double tol_forward;  /* bound on err(O), err(LSE) */
    double tol_backward; /* bound on err(dQ), err(dK), err(dV) */
    int default_trials;
} backend;

static const backend backends[] = {
    /* cpu: float32 tiles with float32 accumulation and a float32 LSE; errors grow like
     * eps_32 * (a few) * log(Sk), far below these bounds at the harness's sizes. */
    {FM_IMPL_CPU, FM_FLOAT32, 1e-5, 5e-5, 400},
    /* cuda: a loose sanity bound only (half precision inputs and P, float32 accumulation):
     * the cuda suite applies docs/spec.md §5's pass rule against a naive same-precision computation. */
    {FM_IMPL_CUDA, FM_FLOAT16, 1e-2, 3e-2, 200},
    {FM_IMPL_CUDA, FM_BFLOAT16, 6e-2, 2e-1, 200},
};

#define ACC_BASE 64.0 /* accumulation length the nominal tolerances are stated for */

enum { T_OUT, T_LSE, T_DQ, T_DK, T_DV, T_COUNT };
static const char *const tensor_names[T_COUNT] = {"O", "LSE", "dQ", "dK", "dV"};

typedef struct backend_ctx {
    const backend *be;
    double worst[T_COUNT]; /* the largest err(T) seen, reported as the margin */
} backend_ctx;

#define FAIL(...) (snprintf(msg, msg_len, __VA_ARGS__), 0)

/* err(T) of the header; -inf entries of the reference are skipped when skip_neg_inf. */
static double tensor_error(const double *cand, const double *ref, size_t n, int skip_neg_inf)
{
    double diff = 0.0, mag = 1.0;
    for (size_t e = 0; e < n; e++) {
        if (skip_neg_inf && ref[e] == -INFINITY) continue;
        diff = fmax(diff, fabs(cand[e] - ref[e]));
        mag = fmax(mag, fabs(ref[e]));
    }
    return diff / mag;
}

/* First NaN of x, or n. */
static size_t first_nan(const double *x, size_t n)
{
    for (size_t e = 0; e < n; e++)
        if (isnan(x[e])) return e;
    return n;
}

/* The fully masked rows of the reference (LSE = -inf) must be exact in the candidate. */
static int check_fully_masked_rows(const fm_problem *p, const fm_attn_result *ref,
                                   const fm_attn_result *cand, char *msg, size_t msg_len)
{
    const size_t rows = fm_problem_lse_elems(p), D = (size_t)p->head_dim;
    for (size_t row = 0; row < rows; row++) {
        int ref_masked = ref->lse[row] == -INFINITY;
        int cand_masked = cand->lse[row] == -INFINITY;
        if (ref_masked != cand_masked)
            return FAIL("row %zu (flat b,h,i): LSE %.9g, reference %.9g: -inf must match "
                        "exactly (fully masked rows)", row, cand->lse[row], ref->lse[row]);
        for (size_t d = 0; ref_masked && d < D; d++)
            if (cand->out[row * D + d] != 0.0 || cand->dq[row * D + d] != 0.0)
                return FAIL("fully masked row %zu: O[%zu] = %g, dQ[%zu] = %g, must be 0", row,
                            d, cand->out[row * D + d], d, cand->dq[row * D + d]);
    }
    return 1;
}

static int prop_matches_reference(const fm_random_case *c, void *vctx, char *msg,
                                  size_t msg_len)
{
    backend_ctx *ctx = vctx;
    fm_problem p = c->problem;
    p.dtype = ctx->be->dtype;
    const fm_dtype dtype = fm_impl_dtype(ctx->be->impl, &p);
    size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    size_t nl = fm_problem_lse_elems(&p);

    /* Inputs rounded to what the implementation computes in; the reference sees the same. */
    double *q = fm_dup(c->q, nq), *k = fm_dup(c->k, nkv), *v = fm_dup(c->v, nkv);
    double *dout = fm_dup(c->dout, nq);
    fm_attn_result ref = {0}, cand = {0};
    int ok = q && k && v && dout;
    if (!ok) ok = FAIL("out of memory");
    for (size_t e = 0; ok && e < nq; e++) {
        q[e] = fm_round_to_dtype(q[e], dtype);
        dout[e] = fm_round_to_dtype(dout[e], dtype);
    }
    for (size_t e = 0; ok && e < nkv; e++) {
        k[e] = fm_round_to_dtype(k[e], dtype);
        v[e] = fm_round_to_dtype(v[e], dtype);
    }
    fm_status st;
    if (ok && (st = fm_attn_run(FM_IMPL_REFERENCE, &p, &c->mask, q, k, v, dout, &ref)))
        ok = FAIL("reference failed (%s): %s", fm_status_string(st), fm_last_error());
    if (ok && (st = fm_attn_run(ctx->be->impl, &p, &c->mask, q, k, v, dout, &cand)))
        ok = FAIL("%s failed (%s): %s", fm_impl_name(ctx->be->impl), fm_status_string(st),
                  fm_last_error());

    if (ok) {
        const double *cands[T_COUNT] = {cand.out, cand.lse, cand.dq, cand.dk, cand.dv};
        const double *refs[T_COUNT] = {ref.out, ref.lse, ref.dq, ref.dk, ref.dv};
        const size_t sizes[T_COUNT] = {nq, nl, nq, nkv, nkv};
        for (int t = 0; ok && t < T_COUNT; t++) {
            size_t at = first_nan(cands[t], sizes[t]);
            if (at < sizes[t]) ok = FAIL("%s[%zu] is NaN", tensor_names[t], at);
        }
        if (ok) ok = check_fully_masked_rows(&p, &ref, &cand, msg, msg_len);
        /* Terms summed into one element: O, LSE, dQ over the keys; dK, dV over the rows of
         * every query head sharing the kv head. */
        const double keys = (double)p.seqlen_k;
        const double rows = (double)(p.seqlen_q * (p.q_heads / p.kv_heads));
        const double acc_len[T_COUNT] = {keys, keys, keys, rows, rows};
        for (int t = 0; ok && t < T_COUNT; t++) {
            double err = tensor_error(cands[t], refs[t], sizes[t], t == T_LSE);
            double tol = t <= T_LSE ? ctx->be->tol_forward : ctx->be->tol_backward;
            tol *= fmax(1.0, sqrt(acc_len[t] / ACC_BASE));
            /* Reported margins are in units of the nominal bound. */
            ctx->worst[t] = fmax(ctx->worst[t], err / fmax(1.0, sqrt(acc_len[t] / ACC_BASE)));
            if (!(err <= tol))
                ok = FAIL("%s (%s): err(%s) = %.3g > %.3g  (max|diff| / max(1, max|ref|); "
                          "%.0f-term sums)", fm_impl_name(ctx->be->impl), fm_dtype_name(dtype),
                          tensor_names[t], err, tol, acc_len[t]);
        }
    }
    free(q), free(k), free(v), free(dout);
    fm_attn_result_free(&ref), fm_attn_result_free(&cand);
    return ok;
}

/* The cmocka test of backends[index]: skipped cleanly where the implementation is absent. */
static void run_backend(size_t index)
{
    const backend *be = &backends[index];
    fm_status st = fm_impl_available(be->impl);
    if (st != FM_OK) {
        printf("%s (%s): skipped: %s\n", fm_impl_name(be->impl), fm_dtype_name(be->dtype),
               fm_last_error());
        skip();
    }
    backend_ctx ctx = {.be = be};
    char name[64];
    snprintf(name, sizeof name, "%s_%s_vs_reference", fm_impl_name(be->impl),
             fm_dtype_name(be->dtype));
    /* Small cases in number, then larger ones that span several tiles of every layer. */
    fm_case_limits small = fm_case_limits_default();
    fm_case_limits large = small;
    large.max_seqlen = 200, large.max_head_dim = 64, large.max_q_heads = 4;
    fm_check_property(name, prop_matches_reference, &ctx, be->default_trials, &small);
    fm_check_property(name, prop_matches_reference, &ctx, be->default_trials / 10, &large);
    printf("%s: worst err / sqrt(max(1, length/64)): O %.2g LSE %.2g (bound %.0g), "
           "dQ %.2g dK %.2g dV %.2g (bound %.0g)\n",
           name, ctx.worst[T_OUT], ctx.worst[T_LSE], be->tol_forward, ctx.worst[T_DQ],
           ctx.worst[T_DK], ctx.worst[T_DV], be->tol_backward);
}

/* Kernel options (flashmask/cuda.h): specs read and written back, bad ones refused naming the
 * item, and options that choose CUDA kernels refused for an implementation that has one kernel
 * (not silently ignored). Needs no GPU. */
static void test_kernel_options(void **state)
{
    (void)state;
    static const char *const specs[] = {"auto", "fwd=mma,bwd=mma", "fwd=wgmma,bwd=wgmma",
                                        "fwd=mma,shape=8x2", "bwd=wgmma,wgs=1,deterministic",
                                        "shape=8x1", "wgs=2", "fwd=pingpong,bwd=wgmma",
                                        "fwd=wide", "bwd=pipelined",
                                        "fwd=wide,bwd=pipelined,deterministic"};
    for (size_t i = 0; i < sizeof specs / sizeof specs[0]; i++) {
        fm_kernel_options o;
        char back[128];
        assert_int_equal(fm_kernel_options_parse(specs[i], &o), FM_OK);
        fm_kernel_options_format(&o, back, sizeof back);
        assert_string_equal(back, specs[i]);
    }
    fm_kernel_options o;
    assert_int_equal(fm_kernel_options_parse("wgmma", &o), FM_OK);
    assert_int_equal(o.forward, FM_KERNEL_WGMMA);
    assert_int_equal(o.backward, FM_KERNEL_WGMMA);
    EXPECT_FAIL(fm_kernel_options_parse("fwd=mma,wgs=3", &o), FM_ERR_INVALID, "'wgs=3'");
    EXPECT_FAIL(fm_kernel_options_parse("fast", &o), FM_ERR_INVALID, "'fast'");
    /* pingpong is a forward kernel: not a backward choice, nor a bare word for both passes */
    assert_int_equal(fm_kernel_options_parse("fwd=pingpong", &o), FM_OK);
    assert_int_equal(o.forward, FM_KERNEL_PINGPONG);
    assert_int_equal(o.backward, FM_KERNEL_AUTO);
    EXPECT_FAIL(fm_kernel_options_parse("bwd=pingpong", &o), FM_ERR_INVALID, "'bwd=pingpong'");
    EXPECT_FAIL(fm_kernel_options_parse("pingpong", &o), FM_ERR_INVALID, "'pingpong'");
    assert_int_equal(fm_kernel_options_parse("fwd=wide", &o), FM_OK); /* so is wide */
    assert_int_equal(o.forward, FM_KERNEL_WIDE);
    EXPECT_FAIL(fm_kernel_options_parse("bwd=wide", &o), FM_ERR_INVALID, "'bwd=wide'");
    EXPECT_FAIL(fm_kernel_options_parse("wide", &o), FM_ERR_INVALID, "'wide'");
    /* pipelined is a backward kernel: not a forward choice, nor a bare word for both passes */
    assert_int_equal(fm_kernel_options_parse("bwd=pipelined", &o), FM_OK);
    assert_int_equal(o.backward, FM_KERNEL_PIPELINED);
    assert_int_equal(o.forward, FM_KERNEL_AUTO);
    EXPECT_FAIL(fm_kernel_options_parse("fwd=pipelined", &o), FM_ERR_INVALID, "'fwd=pipelined'");
    EXPECT_FAIL(fm_kernel_options_parse("pipelined", &o), FM_ERR_INVALID, "'pipelined'");
    assert_true(fm_kernel_options_is_default(NULL));

    fm_random_case c; /* under fm_case_limits_default() */
    assert_int_equal(fm_random_case_make(&c, 7, NULL), FM_OK);
    fm_tensors t = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout};
    fm_test_outputs_alloc(&t, &c.problem);
    assert_int_equal(fm_kernel_options_parse("fwd=mma", &o), FM_OK);
    EXPECT_FAIL(fm_forward_opts(FM_IMPL_CPU, &c.problem, &c.mask, &t, &o),
                FM_ERR_INVALID, "fwd=mma");
    fm_kernel_options_default(&o); /* all auto: the same as NULL for every implementation */
    assert_int_equal(fm_forward_opts(FM_IMPL_CPU, &c.problem, &c.mask, &t, &o), FM_OK);
    fm_test_outputs_free(&t);
    fm_random_case_free(&c);
}

static void test_cpu_float32(void **state) { (void)state; run_backend(0); }
static void test_cuda_float16(void **state) { (void)state; run_backend(1); }
static void test_cuda_bfloat16(void **state) { (void)state; run_backend(2); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kernel_options),
        cmocka_unit_test(test_cpu_float32),
        cmocka_unit_test(test_cuda_float16),
        cmocka_unit_test(test_cuda_bfloat16),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
