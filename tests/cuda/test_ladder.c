/* tests/cuda/test_ladder.c — every step of the CUDA kernel ladder (cuda/ladder/, the steps of
 * docs/cuda-ladder.md) against the oracle (docs/spec.md §5), on a GPU; skips cleanly without
 * one (exit 77, meson SKIP):
 *   - per step 1..5 and per dtype (float16, bfloat16), random cases over every family and
 *     random bounds, GQA/MQA, mask heads, Sq != Sk with both alignments, fully masked rows,
 *     head dims 1..256 (padded by the host path): forward step N, then backward step N (steps
 *     1, 2, 4, 5) from its own O and LSE, all five tensors judged by fm_check_case; step 3 has
 *     no backward and is judged on O and LSE. Step 5 runs at head dimension 128 only: its
 *     cases are the same cases with every row widened to 128 columns;
 *   - longer sequences (many tiles of every class per case) for every step;
 *   - every step skips what the mask hides: NaN in K/V of a key block that every row masks
 *     leaves every output equal to the run with zeros there;
 *   - bad step requests are errors naming the step (these need no device: they run here).
 * Environment: FM_TRIALS, FM_SEED, FM_LIMITS (tests/common/prop.h); FM_LADDER_STEPS=1,2,3
 * runs only those steps.
 * Layer: tests of cuda/ (uses oracle/, masks/, core/).
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
#include "expect_fail.h"
#include "prop.h"
#include "runs.h"

static int built(void)
{
    return !(fm_cuda_ladder_check(1, 0, 64) == FM_ERR_UNAVAILABLE &&
             strstr(fm_last_error(), "no CUDA layer"));
}

/* FM_LADDER_STEPS="1,2,3" limits the run to those steps (how the GPU script runs the slow
 * steps alone under compute-sanitizer); unset: every step. */
static int step_selected(int step)
{
    const char *e = getenv("FM_LADDER_STEPS");
    if (!e || !*e) return 1;
    for (const char *c = e; *c; c++)
        if (*c - '0' == step && (c == e || c[-1] == ',') && (c[1] == ',' || c[1] == 0)) return 1;
    return 0;
}

/* Whether this device and build run the step (step 5 needs Hopper and 90a), and it is selected;
 * fm_last_error() says why not when the device or build is the reason. */
static int step_runs_here(int step)
{
    return step_selected(step) && fm_cuda_ladder_check(step, 0, step == 5 ? 128 : 64) == FM_OK;
}

static int has_backward(int step) { return step != 3; }

/* The case's inputs widened to head dimension dw (column d of a row repeats column d mod D),
 * so that step 5, built for 128 columns only, runs on every case. */
static double *widen(const double *x, size_t rows, int64_t d, int64_t dw)
{
    double *y = malloc(rows * (size_t)dw * sizeof *y);
    if (!y) return NULL;
    for (size_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < dw; c++)
            y[r * (size_t)dw + (size_t)c] = x[r * (size_t)d + (size_t)(c % d)];
    return y;
}

typedef struct ladder_ctx {
    int step;
    fm_dtype dtype; /* FM_FLOAT64: alternate float16 and bfloat16 by seed */
} ladder_ctx;

/* Forward step, then backward step (where the ladder has one), judged by the oracle. */
static int step_passes(const fm_random_case *c, void *vctx, char *msg, size_t len)
{
    const ladder_ctx *ctx = vctx;
    fm_problem p = c->problem;
    p.dtype = ctx->dtype != FM_FLOAT64 ? ctx->dtype : (c->seed & 1) ? FM_BFLOAT16 : FM_FLOAT16;
    const int64_t d = p.head_dim, dw = ctx->step == 5 ? 128 : d;
    const size_t q_rows = fm_problem_lse_elems(&p);
    const size_t kv_rows = fm_problem_kv_elems(&p) / (size_t)d;
    p.head_dim = dw;
    if (dw != d) p.scale = 1.0 / sqrt((double)dw);
    double *wq = widen(c->q, q_rows, d, dw), *wk = widen(c->k, kv_rows, d, dw);
    double *wv = widen(c->v, kv_rows, d, dw), *wdo = widen(c->dout, q_rows, d, dw);
    fm_tensors in = {0}, got;
    const int rounded = fm_test_inputs_rounded(&in, &p, wq, wk, wv, wdo, p.dtype);
    free(wq), free(wk), free(wv), free(wdo);
    assert_true(rounded);
    got = in;
    fm_test_outputs_alloc(&got, &p);
    const int backward = has_backward(ctx->step);
    int ok = 0;
    fm_status st = fm_cuda_forward_host_step(ctx->step, &p, &c->mask, &got);
    if (st == FM_OK && backward) st = fm_cuda_backward_host_step(ctx->step, &p, &c->mask, &got);
    if (st != FM_OK) {
        snprintf(msg, len, "step %d %s failed: %s", ctx->step, fm_dtype_name(p.dtype),
                 fm_last_error());
    } else {
        fm_check_options opt = fm_check_options_default(p.dtype);
        opt.forward_only = !backward;
        char what[64];
        snprintf(what, sizeof what, "step %d %s D=%lld", ctx->step, fm_dtype_name(p.dtype),
                 (long long)dw);
        ok = fm_test_judge(&p, &c->mask, &in, &got, &opt, what, msg, len) == 1;
    }
    fm_test_inputs_free(&in);
    fm_test_outputs_free(&got);
    return ok;
}

static void run_step(int step, fm_dtype dtype, int trials, int64_t max_seqlen, int64_t max_d)
{
    fm_test_skip_without_gpu();
    if (!step_selected(step)) skip();
    if (!step_runs_here(step)) {
        print_message("[  SKIP    ] step %d: %s\n", step, fm_last_error());
        skip();
    }
    fm_case_limits l = fm_case_limits_default();
    l.max_batch = 2, l.max_q_heads = 4, l.max_seqlen = max_seqlen, l.max_head_dim = max_d;
    ladder_ctx ctx = {step, dtype};
    char name[96];
    snprintf(name, sizeof name, "ladder step %d (%s) passes the oracle", step,
             dtype == FM_FLOAT64 ? "float16/bfloat16" : fm_dtype_name(dtype));
    fm_check_property(name, step_passes, &ctx, trials, &l);
}

#define STEP_TESTS(N)                                                                        \
    static void test_step##N##_f16(void **s) { (void)s; run_step(N, FM_FLOAT16, 40, 300, 256); } \
    static void test_step##N##_bf16(void **s) { (void)s; run_step(N, FM_BFLOAT16, 40, 300, 256); } \
    static void test_step##N##_long(void **s) { (void)s; run_step(N, FM_FLOAT64, 6, 700, 128); }
STEP_TESTS(1)
STEP_TESTS(2)
STEP_TESTS(3)
STEP_TESTS(4)
STEP_TESTS(5)

/* Forward (and backward where the step has one) of `step` on the fixture's tensors; the
 * outputs go to `r` (allocated here). */
static void run_masked_block(int step, const fm_test_masked_block *f, fm_tensors *r)
{
    const fm_tensors in = {.q = f->q, .k = f->k, .v = f->v, .dout = f->dout};
    *r = in;
    fm_test_outputs_alloc(r, &f->p);
    assert_int_equal(fm_cuda_forward_host_step(step, &f->p, &f->m, r), FM_OK);
    if (has_backward(step))
        assert_int_equal(fm_cuda_backward_host_step(step, &f->p, &f->m, r), FM_OK);
}

/* A key block that every row masks is never read by any step: NaN there changes nothing. */
static void test_masked_tiles_not_read(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    fm_test_masked_block f;
    fm_test_masked_block_make(&f, 320, 128, FM_BFLOAT16, 11);
    for (int step = 1; step <= FM_CUDA_LADDER_STEPS; step++) {
        if (!step_runs_here(step)) continue;
        fm_tensors clean, poisoned;
        fm_test_masked_block_fill(&f, 0.0);
        run_masked_block(step, &f, &clean);
        fm_test_masked_block_fill(&f, NAN);
        run_masked_block(step, &f, &poisoned);
        print_message("step %d: comparing the clean and poisoned runs\n", step);
        fm_test_masked_block_assert_same(&f, &clean, &poisoned);
        fm_test_outputs_free(&clean), fm_test_outputs_free(&poisoned);
    }
    fm_test_masked_block_free(&f);
}

/* Bad requests name the step; they are decided before any device is touched. */
static void test_bad_steps(void **state)
{
    (void)state;
    if (!built()) skip();
    EXPECT_FAIL(fm_cuda_ladder_check(6, 0, 64), FM_ERR_INVALID, "step 6");
    assert_int_equal(fm_cuda_ladder_check(-1, 1, 64), FM_ERR_INVALID);
    EXPECT_FAIL(fm_cuda_ladder_check(3, 1, 64), FM_ERR_INVALID, "backward step 3");
    EXPECT_FAIL(fm_cuda_ladder_check(5, 0, 64), FM_ERR_INVALID, "128");
    /* A valid request: FM_OK where it runs, else why not (no device, not Hopper). */
    const fm_status st = fm_cuda_ladder_check(2, 0, 64);
    assert_true(st == FM_OK || (st == FM_ERR_UNAVAILABLE && strlen(fm_last_error()) > 10));
    if (fm_cuda_available() != FM_OK) return;
    /* Through the host path: a bad step stops before any work. */
    fm_random_case c;
    fm_case_limits l = fm_case_limits_default();
    assert_int_equal(fm_random_case_make(&c, 5, &l), FM_OK);
    fm_problem p = c.problem;
    p.dtype = FM_FLOAT16;
    double *out = malloc(fm_problem_q_elems(&p) * 8), *lse = malloc(fm_problem_lse_elems(&p) * 8);
    fm_tensors t = {c.q, c.k, c.v, c.dout, out, lse, NULL, NULL, NULL};
    EXPECT_FAIL(fm_cuda_forward_host_step(7, &p, &c.mask, &t), FM_ERR_INVALID, "step 7");
    free(out), free(lse);
    fm_random_case_free(&c);
}

#define STEP_ENTRIES(N)                                                                     \
    cmocka_unit_test(test_step##N##_f16), cmocka_unit_test(test_step##N##_bf16),            \
        cmocka_unit_test(test_step##N##_long)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_steps),
        cmocka_unit_test(test_masked_tiles_not_read),
        STEP_ENTRIES(1),
        STEP_ENTRIES(2),
        STEP_ENTRIES(3),
        STEP_ENTRIES(4),
        STEP_ENTRIES(5),
    };
    /* No GPU: everything that needs one skipped; meson is told so (exit 77). */
    return fm_test_gpu_suite_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
