/* tests/cuda/test_cuda.c — the CUDA layer against the oracle (docs/spec.md §5) on a GPU; every test
 * skips cleanly (cmocka skip) where fm_cuda_available() says no device or no CUDA build.
 *   - >= 200 random cases per dtype (float16, bfloat16) over every family and random bounds,
 *     GQA/MQA, mask heads, Sq != Sk with both alignments, fully masked rows, head dims 1..256
 *     (padded to the kernels' 32/64/96/128/256): O, LSE, dQ, dK, dV pass fm_check_case;
 *   - larger multi-tile cases at the fast head dims 64 and 128;
 *   - fully masked tiles are never loaded: NaN in K/V of a key block that every row masks
 *     leaves every output finite and equal to the run with zeros there;
 *   - both dQ paths (float32 atomics; FM_FLAG_DETERMINISTIC) pass, and the deterministic one
 *     gives identical bits on two runs; on Hopper both wgmma dK/dV block shapes (the backward's
 *     default at D = 64 and 128) and all four forwards at D = 64 and 128 run (the random
 *     properties choose them per case through fm_kernel_options: mma.sync, wgmma, wgmma with
 *     ping-pong warpgroups, and that on 128-key stages, the default);
 *   - the ping-pong Hopper forward gives the same bits as the wgmma one (O and LSE), which
 *     computes the same products in the same order, on D = 64 and 128 cases of every kind, and
 *     both pass the oracle (the wgmma forward at D = 64 runs only when asked for);
 *   - the pipelined Hopper dK/dV kernel (bwd=pipelined) gives the same dK and dV bits as the
 *     two-warpgroup wgmma one (the same products in the same order), and in deterministic
 *     mode the same dQ too, on D = 64 and 128 cases of every kind, and passes the oracle; it
 *     also runs in the random properties, the masked-tile test and the repeatability test;
 *   - kernel options: specs read and written back, bad ones refused by name, a choice the
 *     call cannot run refused before any launch (these run without a GPU too);
 *   - the GPU summary and live-tile count equal masks/;
 *   - bad arguments (float32 dtype, head_dim 300) are errors naming the value.
 * Environment: FM_TRIALS, FM_SEED (tests/common/prop.h); FM_LIMITS overrides the shapes;
 * FM_FORWARD_ONLY=1 makes the random properties run and judge the forward only (O, LSE), for a
 * quick check of forward kernels; FM_TEST_FILTER runs only the tests whose names match a
 * cmocka pattern (e.g. "test_pingpong*").
 * Layer: tests of cuda/ (uses oracle/, masks/, core/).
 */
#include <inttypes.h>
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

/* Whether the Hopper forwards (fwd=wgmma, pingpong, wide) run here: a build with 90a and a
 * compute capability 9.0 device, found by asking for one on a tiny D = 128 problem. The Hopper
 * backward kernels (bwd=wgmma, pipelined) have the same conditions. */
static int hopper_forwards(void)
{
    static int known = -1;
    if (known >= 0) return known;
    fm_problem p;
    fm_problem_init(&p, 1, 1, 1, 8, 8, 128);
    p.dtype = FM_BFLOAT16;
    fm_mask m;
    assert_int_equal(fm_mask_init(&m, 1, 1, 8, 8, FM_CAUSAL_NONE), FM_OK);
    double q[8 * 128] = {0}, out[8 * 128], lse[8];
    fm_tensors t = {q, q, q, NULL, out, lse, NULL, NULL, NULL};
    fm_kernel_options o;
    assert_int_equal(fm_kernel_options_parse("fwd=wgmma", &o), FM_OK);
    known = fm_cuda_forward_host(&p, &m, &t, &o) == FM_OK;
    fm_mask_free(&m);
    return known;
}

/* Skips the calling test unless there is a GPU and the Hopper kernels run on it. */
static void skip_without_hopper(void)
{
    fm_test_skip_without_gpu();
    if (!hopper_forwards()) {
        print_message("[  SKIP    ] the Hopper kernels do not run here\n");
        skip();
    }
}

/* Whether the Hopper kernels serve the case: they run here and its head dim pads to 64 or 128. */
static int hopper_serves(const fm_random_case *c)
{
    const int64_t d = c->problem.head_dim;
    return ((d > 32 && d <= 64) || (d > 96 && d <= 128)) && fm_cuda_available() == FM_OK &&
           hopper_forwards();
}

/* The forward a random case runs: where the Hopper forwards serve it (head dims that pad to
 * 128 or 64, where auto is the wide kernel), one of auto, the wgmma one, the ping-pong one and
 * mma.sync by the seed; elsewhere auto or mma. */
static int32_t forward_choice(const fm_random_case *c)
{
    const int64_t d = c->problem.head_dim;
    const int d64 = d > 32 && d <= 64, d128 = d > 96 && d <= 128;
    if ((d64 || d128) && fm_cuda_available() == FM_OK && hopper_forwards()) {
        const int32_t four[4] = {FM_KERNEL_AUTO, FM_KERNEL_MMA, FM_KERNEL_WGMMA,
                                 FM_KERNEL_PINGPONG};
        return four[(c->seed >> 3) % 4];
    }
    return (c->seed & 8) ? FM_KERNEL_MMA : FM_KERNEL_AUTO;
}

/* Runs the CUDA forward and backward on the case (inputs rounded to `dtype`) and judges all
 * five tensors with the oracle. Returns 1 on pass; msg says why not. */
static int cuda_passes(const fm_random_case *c, fm_dtype dtype, char *msg, size_t len)
{
    fm_problem p = c->problem;
    p.dtype = dtype;
    if (c->seed & 2) p.flags |= FM_FLAG_DETERMINISTIC; /* both dQ paths, one case in two */
    /* Both shapes of the Hopper dK/dV kernel (one or two warpgroups per block), whatever the
     * case's size would pick (small cases pick one), and the four forwards at D = 64 and 128:
     * the wide Hopper one (auto), the ping-pong and wgmma ones on 64-key stages and forward.cu's
     * (mma). */
    fm_kernel_options kopt;
    fm_kernel_options_default(&kopt);
    kopt.bwd_warpgroups = (c->seed & 4) ? 2 : 1;
    kopt.forward = forward_choice(c);
    /* One Hopper case in three: the pipelined dK/dV kernel (its one block shape). */
    if (hopper_serves(c) && (c->seed >> 5) % 3 == 0) {
        kopt.backward = FM_KERNEL_PIPELINED;
        kopt.bwd_warpgroups = 0;
    }
    fm_tensors in = {0}, got;
    assert_true(fm_test_inputs_rounded(&in, &p, c->q, c->k, c->v, c->dout, dtype));
    got = in;
    fm_test_outputs_alloc(&got, &p);
    int ok = 0;
    const int forward_only = getenv("FM_FORWARD_ONLY") && atoi(getenv("FM_FORWARD_ONLY"));
    fm_status st = fm_cuda_forward_host(&p, &c->mask, &got, &kopt);
    if (st == FM_OK && !forward_only) st = fm_cuda_backward_host(&p, &c->mask, &got, &kopt);
    if (st != FM_OK) {
        snprintf(msg, len, "cuda %s failed: %s", fm_dtype_name(dtype), fm_last_error());
    } else {
        fm_check_options opt = fm_check_options_default(dtype);
        opt.forward_only = forward_only;
        ok = fm_test_judge(&p, &c->mask, &in, &got, &opt, fm_dtype_name(dtype), msg, len);
        if (ok == 0) {
            /* Tiny cases can fail by the rule's statistics rather than a defect
             * (docs/performance-cuda.md): the probe tells the two apart. */
            char spec[96];
            fm_kernel_options_format(&kopt, spec, sizeof spec);
            const size_t used = strlen(msg);
            snprintf(msg + used, len - used,
                     " [dissect: FM_LIMITS=<the replay line's> probe_backward_inputs "
                     "%" PRIu64 " %d %s]",
                     c->seed, dtype == FM_BFLOAT16, spec);
        }
    }
    fm_test_inputs_free(&in);
    fm_test_outputs_free(&got);
    return ok == 1;
}

/* ctx: the fm_dtype to run in. */
static int prop_cuda(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    return cuda_passes(c, *(const fm_dtype *)ctx, msg, len);
}

/* Small shapes that still span several tiles (128-row query blocks, 64-key blocks). */
static fm_dtype f16 = FM_FLOAT16, bf16 = FM_BFLOAT16;
static fm_property_test random_f16 = {"cuda float16 passes the oracle", prop_cuda, &f16, 200,
                                      .max_seqlen = 300, .max_head_dim = 256, .needs_gpu = 1};
static fm_property_test random_bf16 = {"cuda bfloat16 passes the oracle", prop_cuda, &bf16, 200,
                                       .max_seqlen = 300, .max_head_dim = 256, .needs_gpu = 1};

/* The fast head dimensions on longer sequences: many tiles of every class per case. */
static int prop_fast_dims(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    fm_random_case copy = *c;
    return cuda_passes(&copy, (c->seed & 1) ? FM_BFLOAT16 : FM_FLOAT16, msg, len);
}

static fm_property_test long_fast_dims = {"cuda long sequences pass the oracle", prop_fast_dims,
                                          .trials = 24, .max_batch = 1, .max_q_heads = 2,
                                          .max_seqlen = 700, .max_head_dim = 128,
                                          .needs_gpu = 1};

/* The ping-pong forward (fwd=pingpong) computes the wgmma forward's products in the same order,
 * only scheduled differently: on the case's shape and mask at D = 128 or 64 (inputs drawn here
 * from the case's seed) it gives the same bits, O and LSE, and both pass the oracle. */
static int prop_pingpong(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    const fm_problem *cp = &c->problem;
    fm_problem p;
    const int64_t d = (c->seed >> 1) & 1 ? 64 : 128;
    fm_problem_init(&p, cp->batch, cp->q_heads, cp->kv_heads, cp->seqlen_q, cp->seqlen_k, d);
    p.dtype = (c->seed & 1) ? FM_BFLOAT16 : FM_FLOAT16;
    const size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    const size_t nl = fm_problem_lse_elems(&p);
    double *x = malloc((nq + 2 * nkv) * sizeof *x);
    assert_non_null(x);
    fm_rng rng;
    fm_rng_seed(&rng, c->seed);
    for (size_t i = 0; i < nq + 2 * nkv; i++) x[i] = fm_rng_normal(&rng);
    double *q = fm_rounded_copy(x, nq, p.dtype), *k = fm_rounded_copy(x + nq, nkv, p.dtype);
    double *v = fm_rounded_copy(x + nq + nkv, nkv, p.dtype);
    double *out[2] = {malloc(nq * 8), malloc(nq * 8)}, *lse[2] = {malloc(nl * 8), malloc(nl * 8)};
    assert_true(q && k && v && out[0] && out[1] && lse[0] && lse[1]);
    static const char *const spec[2] = {"fwd=wgmma", "fwd=pingpong"};
    int ok = 1;
    for (int r = 0; r < 2 && ok; r++) {
        fm_kernel_options o;
        assert_int_equal(fm_kernel_options_parse(spec[r], &o), FM_OK);
        fm_tensors t = {q, k, v, NULL, out[r], lse[r], NULL, NULL, NULL};
        if (fm_cuda_forward_host(&p, &c->mask, &t, &o) != FM_OK) {
            snprintf(msg, len, "%s failed: %s", spec[r], fm_last_error());
            ok = 0;
        }
    }
    for (size_t i = 0; ok && i < nq; i++)
        if (memcmp(&out[0][i], &out[1][i], sizeof(double)) != 0) {
            snprintf(msg, len, "%s O[%zu] = %.9g, pingpong %.9g", fm_dtype_name(p.dtype), i,
                     out[0][i], out[1][i]);
            ok = 0;
        }
    for (size_t i = 0; ok && i < nl; i++)
        if (memcmp(&lse[0][i], &lse[1][i], sizeof(double)) != 0) {
            snprintf(msg, len, "%s LSE[%zu] = %.9g, pingpong %.9g", fm_dtype_name(p.dtype), i,
                     lse[0][i], lse[1][i]);
            ok = 0;
        }
    if (ok) {
        fm_check_options opt = fm_check_options_default(p.dtype);
        opt.forward_only = 1;
        fm_tensors ref = {q, k, v, NULL, NULL, NULL, NULL, NULL, NULL};
        fm_tensors cand = {NULL, NULL, NULL, NULL, out[1], lse[1], NULL, NULL, NULL};
        fm_check_report rep;
        if (fm_check_case(&p, &c->mask, &ref, &cand, &opt, &rep) != FM_OK) {
            snprintf(msg, len, "oracle error: %s", fm_last_error());
            ok = 0;
        } else if (!rep.pass) {
            const int w = rep.tensor[0].pass ? 1 : 0;
            snprintf(msg, len, "pingpong %s %s: %s", fm_dtype_name(p.dtype), rep.tensor[w].name,
                     rep.tensor[w].why);
            ok = 0;
        }
    }
    free(x), free(q), free(k), free(v);
    free(out[0]), free(out[1]), free(lse[0]), free(lse[1]);
    return ok;
}

static void test_pingpong_same_bits(void **state)
{
    (void)state;
    skip_without_hopper();
    fm_case_limits l = fm_case_limits_default();
    l.max_batch = 2, l.max_q_heads = 4, l.max_seqlen = 700, l.max_head_dim = 1;
    fm_check_property("pingpong forward equals the wgmma forward", prop_pingpong, NULL, 60, &l);
}

/* The pipelined dK/dV kernel (bwd=pipelined) computes the two-warpgroup wgmma kernel's
 * products in the same order (only its loads and synchronisation differ): on the case's shape
 * and mask at D = 128 or 64 (inputs drawn here from the case's seed), after one forward, both
 * backwards give the same dK and dV bits, and in deterministic mode (one case in two, where
 * dQ has its own kernel) the same dQ bits; where dQ is added by bulk reductions their order
 * varies, so dQ is judged by the oracle, which every tensor of the pipelined run passes. */
static int prop_pipelined(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    const fm_problem *cp = &c->problem;
    fm_problem p;
    const int64_t d = (c->seed >> 1) & 1 ? 64 : 128;
    fm_problem_init(&p, cp->batch, cp->q_heads, cp->kv_heads, cp->seqlen_q, cp->seqlen_k, d);
    p.dtype = (c->seed & 1) ? FM_BFLOAT16 : FM_FLOAT16;
    const int deterministic = (c->seed >> 2) & 1;
    if (deterministic) p.flags |= FM_FLAG_DETERMINISTIC;
    const size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    fm_rng rng;
    fm_rng_seed(&rng, c->seed);
    double *x = fm_test_normal(2 * nq + 2 * nkv, &rng);
    fm_tensors in = {0};
    assert_true(fm_test_inputs_rounded(&in, &p, x, x + nq, x + nq + nkv, x + nq + 2 * nkv,
                                       p.dtype));
    free(x);
    static const char *const spec[2] = {"bwd=wgmma,wgs=2", "bwd=pipelined"};
    fm_tensors got[2] = {in, in};
    fm_test_outputs_alloc(&got[0], &p), fm_test_outputs_alloc(&got[1], &p);
    int ok = 1;
    if (fm_cuda_forward_host(&p, &c->mask, &got[0], NULL) != FM_OK) {
        snprintf(msg, len, "forward failed: %s", fm_last_error());
        ok = 0;
    }
    memcpy(got[1].out, got[0].out, nq * sizeof(double));
    memcpy(got[1].lse, got[0].lse, fm_problem_lse_elems(&p) * sizeof(double));
    for (int r = 0; r < 2 && ok; r++) {
        fm_kernel_options o;
        assert_int_equal(fm_kernel_options_parse(spec[r], &o), FM_OK);
        if (fm_cuda_backward_host(&p, &c->mask, &got[r], &o) != FM_OK) {
            snprintf(msg, len, "%s failed: %s", spec[r], fm_last_error());
            ok = 0;
        }
    }
    const struct {
        const char *name;
        const double *a, *b;
        size_t n;
    } same[3] = {{"dK", got[0].dk, got[1].dk, nkv},
                 {"dV", got[0].dv, got[1].dv, nkv},
                 {"dQ", got[0].dq, got[1].dq, deterministic ? nq : 0}};
    for (int w = 0; w < 3 && ok; w++)
        for (size_t i = 0; ok && i < same[w].n; i++)
            if (memcmp(&same[w].a[i], &same[w].b[i], sizeof(double)) != 0) {
                snprintf(msg, len, "%s D=%d%s %s[%zu] = %.9g, pipelined %.9g",
                         fm_dtype_name(p.dtype), (int)d, deterministic ? " deterministic" : "",
                         same[w].name, i, same[w].a[i], same[w].b[i]);
                ok = 0;
            }
    if (ok) {
        fm_check_options opt = fm_check_options_default(p.dtype);
        char what[64];
        snprintf(what, sizeof what, "pipelined %s D=%d", fm_dtype_name(p.dtype), (int)d);
        ok = fm_test_judge(&p, &c->mask, &in, &got[1], &opt, what, msg, len) == 1;
    }
    fm_test_outputs_free(&got[0]), fm_test_outputs_free(&got[1]);
    fm_test_inputs_free(&in);
    return ok;
}

static void test_pipelined_backward(void **state)
{
    (void)state;
    skip_without_hopper();
    fm_case_limits l = fm_case_limits_default();
    l.max_batch = 2, l.max_q_heads = 4, l.max_seqlen = 700, l.max_head_dim = 1;
    fm_check_property("pipelined backward equals the wgmma backward", prop_pipelined, NULL, 60,
                      &l);
}

/* The GPU pre-pass computes exactly the summaries of masks/. */
static int prop_summary(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    fm_cuda_mask dm;
    fm_block_summary ref;
    if (fm_cuda_mask_upload(&c->mask, &dm) != FM_OK) {
        snprintf(msg, len, "upload: %s", fm_last_error());
        return 0;
    }
    assert_int_equal(fm_block_summary_build(&c->mask, dm.block_k, &ref), FM_OK);
    size_t n = (size_t)(ref.batch * ref.heads * ref.n_blocks * FM_SUMMARY_WIDTH);
    int32_t *got = malloc(n * sizeof *got);
    assert_non_null(got);
    int ok = fm_cuda_copy_summary(&dm, got) == FM_OK && ref.n_blocks == dm.n_blocks;
    for (size_t i = 0; ok && i < n; i++)
        if (got[i] != ref.minmax[i]) {
            snprintf(msg, len, "summary value %zu: gpu %d, masks/ %d", i, got[i], ref.minmax[i]);
            ok = 0;
        }
    if (!ok && !msg[0]) snprintf(msg, len, "summary copy failed: %s", fm_last_error());
    /* The live-tile count behind the backward's block shape: masks/ at 64 x 64 tiles. */
    fm_tile_stats ts;
    if (ok && fm_mask_tile_stats(&c->mask, 64, dm.block_k, &ts) == FM_OK) {
        const double live = (double)(ts.partial + ts.unmasked) /
                            (double)(ref.batch * ref.heads * ref.n_blocks);
        if (live != dm.live_per_kblock) {
            snprintf(msg, len, "live tiles per key block: gpu %.17g, masks/ %.17g",
                     dm.live_per_kblock, live);
            ok = 0;
        }
    }
    free(got);
    fm_block_summary_free(&ref);
    fm_cuda_mask_free(&dm);
    return ok;
}

static fm_property_test summary = {"gpu summary equals fm_block_summary_build", prop_summary,
                                   .trials = 100, .max_seqlen = 400, .needs_gpu = 1};

/* Forward + backward from t's host inputs into its outputs, with kernel options o (NULL: auto). */
static void run_both_with(const fm_problem *p, const fm_mask *m, fm_tensors *t,
                          const fm_kernel_options *o)
{
    assert_int_equal(fm_cuda_forward_host(p, m, t, o), FM_OK);
    assert_int_equal(fm_cuda_backward_host(p, m, t, o), FM_OK);
}
static const fm_kernel_options *run_both_options; /* run_both's options (NULL: auto) */
static void run_both(const fm_problem *p, const fm_mask *m, fm_tensors *t)
{
    run_both_with(p, m, t, run_both_options);
}

/* A key block that every row masks is never loaded: NaN there changes nothing. At D = 64 and
 * 128, with the default kernels (on Hopper the wide forward, whose 128-key stages pair the live
 * blocks on either side of the masked one and leave one slot empty where the count is odd)
 * and, where the Hopper kernels run, with fwd=pingpong (64-key stages) and with bwd=pipelined
 * (whose 128-key block holds the masked block beside a live one). */
static void test_masked_tiles_not_loaded(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    static const char *const specs[3] = {"auto", "fwd=pingpong", "bwd=pipelined"};
    for (int d = 64; d <= 128; d += 64)
        for (int s = 0; s < (hopper_forwards() ? 3 : 1); s++) {
            fm_kernel_options o;
            assert_int_equal(fm_kernel_options_parse(specs[s], &o), FM_OK);
            fm_test_masked_block f;
            fm_test_masked_block_make(&f, 320, d, FM_BFLOAT16, 7);
            const fm_tensors in = {.q = f.q, .k = f.k, .v = f.v, .dout = f.dout};
            fm_tensors clean = in, poisoned = in;
            fm_test_outputs_alloc(&clean, &f.p), fm_test_outputs_alloc(&poisoned, &f.p);
            fm_test_masked_block_fill(&f, 0.0);
            run_both_with(&f.p, &f.m, &clean, &o);
            fm_test_masked_block_fill(&f, NAN);
            run_both_with(&f.p, &f.m, &poisoned, &o);
            fm_test_masked_block_assert_same(&f, &clean, &poisoned);
            fm_test_outputs_free(&clean), fm_test_outputs_free(&poisoned);
            fm_test_masked_block_free(&f);
        }
}

/* Two backward runs in deterministic mode give identical bits (GQA: dK/dV summed over heads),
 * with the default kernels and, where the Hopper kernels run, with bwd=pipelined. */
static void test_deterministic(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    const fm_case_limits l = {.max_batch = 2, .max_q_heads = 8, .max_seqlen = 500,
                              .max_head_dim = 128, .allow_unequal_seqlens = 1};
    fm_random_case c;
    assert_int_equal(fm_random_case_make(&c, 12345, &l), FM_OK);
    fm_problem p = c.problem;
    p.dtype = FM_FLOAT16;
    p.flags |= FM_FLAG_DETERMINISTIC;
    const fm_tensors in = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout};
    fm_test_assert_repeatable(run_both, &p, &c.mask, &in, 0); /* dq, dk, dv */
    const int64_t d = p.head_dim;
    if (hopper_forwards() && ((d > 32 && d <= 64) || (d > 96 && d <= 128))) {
        fm_kernel_options o;
        assert_int_equal(fm_kernel_options_parse("bwd=pipelined", &o), FM_OK);
        run_both_options = &o;
        fm_test_assert_repeatable(run_both, &p, &c.mask, &in, 0);
        run_both_options = NULL;
    }
    fm_random_case_free(&c);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    fm_random_case c; /* under fm_case_limits_default() */
    assert_int_equal(fm_random_case_make(&c, 99, NULL), FM_OK);
    fm_tensors t = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout};
    fm_test_outputs_alloc(&t, &c.problem);
    double *out = t.out, *lse = t.lse; /* stand-ins for device pointers: nothing launches */
    fm_problem p = c.problem;
    p.dtype = FM_FLOAT32;
    EXPECT_FAIL(fm_cuda_forward_host(&p, &c.mask, &t, NULL), FM_ERR_INVALID, "float32");
    /* Device API: head_dim outside the built set is refused, naming the value. */
    fm_cuda_mask dm;
    assert_int_equal(fm_cuda_mask_upload(&c.mask, &dm), FM_OK);
    p.dtype = FM_FLOAT16;
    p.head_dim = 48;
    EXPECT_FAIL(fm_cuda_forward(&p, &dm, out, out, out, out, (float *)lse, NULL, NULL),
                FM_ERR_INVALID, "48");
    /* The wgmma kernels serve D = 64 and 128: forcing them elsewhere is refused before a launch
     * (or, where they cannot run at all, reported unavailable). */
    fm_kernel_options wg;
    assert_int_equal(fm_kernel_options_parse("wgmma", &wg), FM_OK);
    p.head_dim = 96;
    fm_status st = fm_cuda_forward(&p, &dm, out, out, out, out, (float *)lse, &wg, NULL);
    assert_true(st == FM_ERR_INVALID || st == FM_ERR_UNAVAILABLE);
    assert_non_null(strstr(fm_last_error(), "wgmma"));
    assert_int_equal(fm_kernel_options_parse("fwd=pingpong", &wg), FM_OK);
    st = fm_cuda_forward(&p, &dm, out, out, out, out, (float *)lse, &wg, NULL);
    assert_true(st == FM_ERR_INVALID || st == FM_ERR_UNAVAILABLE);
    assert_non_null(strstr(fm_last_error(), st == FM_ERR_INVALID ? "pingpong" : "wgmma"));
    /* pingpong is no backward kernel: refused by name when the struct says so */
    p.head_dim = 128;
    fm_kernel_options_default(&wg);
    wg.backward = FM_KERNEL_PINGPONG;
    st = fm_cuda_backward(&p, &dm, out, out, out, out, (float *)lse, out, out, out, out, &wg,
                          NULL);
    assert_int_equal(st, FM_ERR_INVALID);
    assert_non_null(strstr(fm_last_error(), "pingpong"));
    wg.backward = FM_KERNEL_WIDE; /* nor is wide */
    st = fm_cuda_backward(&p, &dm, out, out, out, out, (float *)lse, out, out, out, out, &wg,
                          NULL);
    assert_int_equal(st, FM_ERR_INVALID);
    assert_non_null(strstr(fm_last_error(), "wide"));
    /* pipelined is no forward kernel; as a backward one it serves D = 64 and 128 only (or,
     * where the Hopper kernels cannot run, is unavailable, naming the option), and has one
     * block shape (wgs=1 is refused) */
    fm_kernel_options_default(&wg);
    wg.forward = FM_KERNEL_PIPELINED;
    st = fm_cuda_forward(&p, &dm, out, out, out, out, (float *)lse, &wg, NULL);
    assert_int_equal(st, FM_ERR_INVALID);
    assert_non_null(strstr(fm_last_error(), "pipelined"));
    assert_int_equal(fm_kernel_options_parse("bwd=pipelined", &wg), FM_OK);
    p.head_dim = 96;
    st = fm_cuda_backward(&p, &dm, out, out, out, out, (float *)lse, out, out, out, out, &wg,
                          NULL);
    assert_true(st == FM_ERR_INVALID || st == FM_ERR_UNAVAILABLE);
    assert_non_null(strstr(fm_last_error(), "pipelined"));
    if (hopper_forwards()) {
        p.head_dim = 128;
        assert_int_equal(fm_kernel_options_parse("bwd=pipelined,wgs=1", &wg), FM_OK);
        st = fm_cuda_backward(&p, &dm, out, out, out, out, (float *)lse, out, out, out, out,
                              &wg, NULL);
        assert_int_equal(st, FM_ERR_INVALID);
        assert_non_null(strstr(fm_last_error(), "wgs=1"));
    }
    fm_cuda_mask_free(&dm);
    fm_test_outputs_free(&t);
    fm_random_case_free(&c);
}

/* Without a GPU (or without a CUDA build) the layer says why, as FM_ERR_UNAVAILABLE. */
static void test_unavailable_says_why(void **state)
{
    (void)state;
    fm_status st = fm_cuda_available();
    if (st == FM_OK) skip();
    assert_int_equal(st, FM_ERR_UNAVAILABLE);
    assert_true(strlen(fm_last_error()) > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unavailable_says_why),
        cmocka_unit_test(test_bad_arguments),
        fm_property_unit_test(summary),
        cmocka_unit_test(test_masked_tiles_not_loaded),
        cmocka_unit_test(test_deterministic),
        fm_property_unit_test(random_f16),
        fm_property_unit_test(random_bf16),
        fm_property_unit_test(long_fast_dims),
        cmocka_unit_test(test_pingpong_same_bits),
        cmocka_unit_test(test_pipelined_backward),
    };
    if (getenv("FM_TEST_FILTER")) cmocka_set_test_filter(getenv("FM_TEST_FILTER"));
    /* No GPU: everything that needs one skipped; meson is told so (exit 77). */
    return fm_test_gpu_suite_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
