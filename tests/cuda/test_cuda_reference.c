/* tests/cuda/test_cuda_reference.c — the GPU float64 oracle (fm_cuda_reference_*) against the
 * CPU float64 reference (fm_forward / fm_backward with FM_IMPL_REFERENCE) on a GPU; skips
 * cleanly without one.
 * Agreement: per tensor, rel = max|gpu - cpu| / max(max|cpu|, term) <= 1e-12, and the
 * non-finite values (the -inf LSE of fully masked rows) equal, bit for bit (FM_REF_CUDA_TOL
 * overrides the bound, to probe how far below it the kernels are). `term` is the size of one
 * term of the tensor's sums (out: max|v|; lse: 1; dq: s max|k| max|dO| max|v|; dk: s max|q|
 * max|dO| max|v|; dv: max|dO|): it matters only where a whole tensor is cancellation noise
 * (a row with one allowed key has dS = P (dP - Delta) = 0 in exact arithmetic, so with
 * Sk = 1 dq and dk are rounding noise on both sides, different noise) and keeps the bound
 * relative to the inputs there instead of to the noise.
 *   - random cases (tests/common/prop.h: every family and random bounds, GQA/MQA, mask heads,
 *     Sq != Sk with both alignments, fully masked rows, odd lengths, D up to 256);
 *   - a fixed grid: every family x (Sq, Sk) in {1x1, 63x65, 65x63, 129x129} x D in
 *     {1, 8, 64, 100, 128, 256}, GQA, both alignments, both tile tiers (fm_cuda_reference_force_small_tiles);
 *   - through fm_forward / fm_backward (the `reference-cuda` implementation);
 *   - fully masked tiles are never loaded (NaN there changes nothing), two runs give the same
 *     bits, an LSE that does not fit its row is an error naming the row;
 *   - bad arguments to the device-pointer calls are errors naming the culprit, checked before
 *     any launch (so this runs on a CUDA build without a device too);
 *   - FM_REF_CUDA_GRID_STEP=k runs every k-th case of the grid (sanitizer runs);
 *   - FM_REF_CUDA_LONG=S: one head at S x S (full, causal_document) against the CPU;
 *   - FM_REF_CUDA_BIG=1 (about 70 GB of device memory): tensors past 2^31 elements, the last
 *     heads equal bit for bit a run of those heads alone (64-bit offsets).
 * Environment: FM_TRIALS, FM_SEED, FM_LIMITS (tests/common/prop.h).
 * Layer: tests of cuda/ (uses reference/, masks/, core/).
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expect_fail.h"
#include "prop.h"
#include "runs.h"

static double tolerance(void)
{
    const char *s = getenv("FM_REF_CUDA_TOL");
    return s && *s ? atof(s) : 1e-12;
}

/* max|a - b| / max(max|b|, term) over the finite values of b; a non-finite value of either
 * side must be the same value on the other (returns +inf otherwise). */
static double rel_err(const double *a, const double *b, size_t n, double term)
{
    double diff = 0.0, ref = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) {
            if (memcmp(&a[i], &b[i], sizeof(double)) != 0) return INFINITY;
            continue;
        }
        diff = fmax(diff, fabs(a[i] - b[i]));
        ref = fmax(ref, fabs(b[i]));
    }
    return diff / fmax(fmax(ref, term), DBL_MIN);
}

/* The relative errors of the last comparison (out, lse, dq, dk, dv), for the long test's log. */
static double last_rel[5];

/* GPU against CPU on one problem. The backward of both reads the CPU forward's out and lse, so
 * that each pass is judged on its own. Returns 1 when every tensor agrees; msg says which not. */
static int agrees(const fm_problem *p, const fm_mask *m, const double *q, const double *k,
                  const double *v, const double *dout, char *msg, size_t len)
{
    fm_tensors cpu = {0}, gpu = {0};
    fm_test_outputs_alloc(&cpu, p), fm_test_outputs_alloc(&gpu, p);
    int ok = 0;
    /* the CPU reference as fm_forward runs it (whichever form the library picks for the size) */
    fm_tensors tc = {q, k, v, dout, cpu.out, cpu.lse, cpu.dq, cpu.dk, cpu.dv};
    fm_status st = fm_forward(FM_IMPL_REFERENCE, p, m, &tc);
    if (st == FM_OK) st = fm_backward(FM_IMPL_REFERENCE, p, m, &tc);
    if (st != FM_OK) {
        snprintf(msg, len, "cpu reference failed: %s", fm_last_error());
        goto done;
    }
    fm_tensors tf = {q, k, v, dout, gpu.out, gpu.lse, NULL, NULL, NULL};
    fm_tensors tb = {q, k, v, dout, cpu.out, cpu.lse, gpu.dq, gpu.dk, gpu.dv};
    if ((st = fm_cuda_reference_forward_host(p, m, &tf)) != FM_OK ||
        (st = fm_cuda_reference_backward_host(p, m, &tb)) != FM_OK) {
        snprintf(msg, len, "gpu reference failed: %s", fm_last_error());
        goto done;
    }
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
    const double *g[5] = {gpu.out, gpu.lse, gpu.dq, gpu.dk, gpu.dv};
    const double *c[5] = {cpu.out, cpu.lse, cpu.dq, cpu.dk, cpu.dv};
    size_t n[5] = {nq, fm_problem_lse_elems(p), nq, nkv, nkv};
    const double tol = tolerance();
    const double mq = fm_max_abs(q, nq), mk = fm_max_abs(k, nkv), mv = fm_max_abs(v, nkv);
    const double mdo = fm_max_abs(dout, nq), s = p->scale;
    const double term[5] = {mv, 1.0, s * mk * mdo * mv, s * mq * mdo * mv, mdo};
    ok = 1;
    for (int i = 0; i < 5 && ok; i++) {
        double r = rel_err(g[i], c[i], n[i], term[i]);
        last_rel[i] = r;
        if (!(r <= tol)) {
            snprintf(msg, len, "%s: relative error %.3g > %.3g (B=%lld Hq=%lld Hk=%lld "
                     "Sq=%lld Sk=%lld D=%lld)", names[i], r, tol, (long long)p->batch,
                     (long long)p->q_heads, (long long)p->kv_heads, (long long)p->seqlen_q,
                     (long long)p->seqlen_k, (long long)p->head_dim);
            ok = 0;
        }
    }
done:
    fm_test_outputs_free(&cpu), fm_test_outputs_free(&gpu);
    return ok;
}

/* One case in two runs the small tiles (the instances a device with less shared memory per
 * block than Hopper runs), whatever this device would pick. */
static int prop_agrees(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    fm_cuda_reference_force_small_tiles((int)(c->seed & 1));
    int ok = agrees(&c->problem, &c->mask, c->q, c->k, c->v, c->dout, msg, len);
    if (!ok) {
        const size_t used = strlen(msg);
        snprintf(msg + used, len - used, " [small tiles %d]", (int)(c->seed & 1));
    }
    fm_cuda_reference_force_small_tiles(0);
    return ok;
}

static fm_property_test random_cases = {"gpu float64 reference equals the cpu reference",
                                        prop_agrees, .trials = 200, .max_seqlen = 300,
                                        .max_head_dim = 256, .needs_gpu = 1};
/* Longer sequences: many key tiles of every class per row block, and the jumps over masked
 * runs in the dK/dV walk. */
static fm_property_test random_long = {"gpu float64 reference equals the cpu reference (long)",
                                       prop_agrees, .trials = 24, .max_batch = 1,
                                       .max_q_heads = 2, .max_seqlen = 1100, .max_head_dim = 128,
                                       .needs_gpu = 1};

/* Opt-in (FM_REF_CUDA_LONG=S): one head, D = 128, S x S, full and causal_document (8
 * documents) against the CPU reference: thousands of tiles per row, the online softmax's
 * rescaling over all of them. */
static void test_long_opt_in(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    const char *env = getenv("FM_REF_CUDA_LONG");
    const int64_t S = env ? atoll(env) : 0;
    if (S < 1) {
        print_message("[  SKIP    ] set FM_REF_CUDA_LONG=S to compare at S x S\n");
        skip();
    }
    const int64_t D = 128;
    fm_problem p = fm_test_problem(1, 1, 1, S, S, D);
    size_t nq = fm_problem_q_elems(&p);
    fm_rng rng;
    fm_rng_seed(&rng, fm_test_seed() ^ (uint64_t)S);
    double *q = fm_test_normal(nq, &rng), *k = fm_test_normal(nq, &rng);
    double *v = fm_test_normal(nq, &rng), *dout = fm_test_normal(nq, &rng);
    const fm_family fams[2] = {FM_FAMILY_FULL, FM_FAMILY_CAUSAL_DOCUMENT};
    for (int f = 0; f < 2; f++) {
        fm_mask_params mp;
        fm_mask m;
        assert_int_equal(fm_mask_params_default(&mp, fams[f], S), FM_OK);
        assert_int_equal(fm_mask_build(&m, &mp, 1, 1, S, S, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
        fm_mask_params_free(&mp);
        char msg[512] = "";
        if (!agrees(&p, &m, q, k, v, dout, msg, sizeof msg))
            fail_msg("%s at S = %lld: %s", fm_family_name(fams[f]), (long long)S, msg);
        print_message("%s at S = %lld: relative errors out %.2g lse %.2g dq %.2g dk %.2g "
                      "dv %.2g\n", fm_family_name(fams[f]), (long long)S, last_rel[0],
                      last_rel[1], last_rel[2], last_rel[3], last_rel[4]);
        fm_mask_free(&m);
    }
    free(q), free(k), free(v), free(dout);
}

/* Every family on the sizes where tiles begin and end (1, 63, 65, 129) and the head
 * dimensions that pad (1, 8, 100) or fill (64, 128, 256) the kernels' tiles. */
static void test_grid(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    static const int64_t sizes[][2] = {{1, 1}, {63, 65}, {65, 63}, {129, 129}};
    static const int64_t dims[] = {1, 8, 64, 100, 128, 256};
    /* FM_REF_CUDA_GRID_STEP=k runs every k-th case (under compute-sanitizer) */
    const char *step_env = getenv("FM_REF_CUDA_GRID_STEP");
    const int step = step_env && atoi(step_env) > 1 ? atoi(step_env) : 1;
    int n = 0, failed = 0, index = 0;
    for (int f = 0; f < FM_FAMILY_COUNT; f++)
        for (int s = 0; s < 4; s++) {
            if (index++ % step) continue;
            const int64_t Sq = sizes[s][0], Sk = sizes[s][1], D = dims[(f + s) % 6];
            const fm_causal al = (f + s) & 1 ? FM_CAUSAL_TOP_LEFT : FM_CAUSAL_BOTTOM_RIGHT;
            fm_mask_params mp;
            fm_mask m;
            memset(&m, 0, sizeof m);
            if (fm_mask_params_default(&mp, (fm_family)f, Sk) != FM_OK) continue; /* too short */
            const int64_t hm = f == FM_FAMILY_RANDOM_EVICTION ? 2 : 1;
            fm_status st = fm_mask_build(&m, &mp, 1, hm, Sq, Sk, al);
            fm_mask_params_free(&mp);
            if (st != FM_OK) continue;
            fm_problem p;
            fm_problem_init(&p, 1, 4, (f & 1) ? 1 : 2, Sq, Sk, D); /* MQA or GQA */
            size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
            fm_rng rng;
            fm_rng_seed(&rng, fm_test_seed() + (uint64_t)(100 * f + s));
            double *q = fm_test_normal(nq, &rng), *k = fm_test_normal(nkv, &rng);
            double *v = fm_test_normal(nkv, &rng), *dout = fm_test_normal(nq, &rng);
            char msg[512] = "";
            for (int small = 0; small < 2; small++) { /* both tile tiers */
                fm_cuda_reference_force_small_tiles(small);
                if (!agrees(&p, &m, q, k, v, dout, msg, sizeof msg)) {
                    print_error("%s %s (small tiles %d): %s\n",
                                fm_family_name((fm_family)f), fm_causal_name(al), small, msg);
                    failed++;
                }
            }
            fm_cuda_reference_force_small_tiles(0);
            n++;
            free(q), free(k), free(v), free(dout);
            fm_mask_free(&m);
        }
    print_message("grid: %d cases, %d failed\n", n, failed);
    assert_true(n >= 40 / step);
    assert_int_equal(failed, 0);
}

/* The `reference-cuda` implementation of core's dispatch is the same computation. */
static void test_dispatch(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    fm_random_case c;
    fm_case_limits l = fm_case_limits_default();
    assert_int_equal(fm_random_case_make(&c, fm_test_seed() ^ 0x5eed, &l), FM_OK);
    fm_tensors a = {0}, b = {0};
    fm_test_outputs_alloc(&a, &c.problem), fm_test_outputs_alloc(&b, &c.problem);
    fm_tensors ta = {c.q, c.k, c.v, c.dout, a.out, a.lse, a.dq, a.dk, a.dv};
    fm_tensors tb = {c.q, c.k, c.v, c.dout, b.out, b.lse, b.dq, b.dk, b.dv};
    assert_int_equal(fm_forward(FM_IMPL_REFERENCE_CUDA, &c.problem, &c.mask, &ta), FM_OK);
    assert_int_equal(fm_backward(FM_IMPL_REFERENCE_CUDA, &c.problem, &c.mask, &ta), FM_OK);
    assert_int_equal(fm_cuda_reference_forward_host(&c.problem, &c.mask, &tb), FM_OK);
    assert_int_equal(fm_cuda_reference_backward_host(&c.problem, &c.mask, &tb), FM_OK);
    size_t nq = fm_problem_q_elems(&c.problem), nkv = fm_problem_kv_elems(&c.problem);
    assert_memory_equal(a.out, b.out, nq * 8);
    assert_memory_equal(a.lse, b.lse, fm_problem_lse_elems(&c.problem) * 8);
    assert_memory_equal(a.dq, b.dq, nq * 8);
    assert_memory_equal(a.dk, b.dk, nkv * 8);
    assert_memory_equal(a.dv, b.dv, nkv * 8);
    assert_int_equal(fm_impl_dtype(FM_IMPL_REFERENCE_CUDA, &c.problem), FM_FLOAT64);
    fm_test_outputs_free(&a), fm_test_outputs_free(&b);
    fm_random_case_free(&c);
}

/* The GPU oracle's forward and backward from t's host inputs into its outputs. */
static void run_gpu_reference(const fm_problem *p, const fm_mask *m, fm_tensors *t)
{
    assert_int_equal(fm_cuda_reference_forward_host(p, m, t), FM_OK);
    assert_int_equal(fm_cuda_reference_backward_host(p, m, t), FM_OK);
}

/* Two runs, same bits (no floating-point atomics anywhere): GQA so that dK/dV sum heads. */
static void test_deterministic(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    fm_random_case c;
    fm_case_limits l = fm_case_limits_default();
    l.max_q_heads = 8, l.max_seqlen = 700, l.max_head_dim = 128;
    assert_int_equal(fm_random_case_make(&c, 4242, &l), FM_OK);
    const fm_tensors in = {.q = c.q, .k = c.k, .v = c.v, .dout = c.dout};
    fm_test_assert_repeatable(run_gpu_reference, &c.problem, &c.mask, &in, 1);
    fm_random_case_free(&c);
}

/* A key block that every row masks is never loaded: NaN in its K and V changes nothing; and a
 * query row every key masks gets out = 0, lse = -inf, dq = 0. */
static void test_masked_tiles_and_rows(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    const int64_t S = 320, D = 64;
    fm_problem p = fm_test_problem(1, 2, 1, S, S, D);
    fm_mask m = fm_test_mask(1, 1, S, S, FM_CAUSAL_TOP_LEFT);
    /* Key block 1 (keys 64..127) masks every row; keys 0..63 mask row 100, which the causal
     * rule (top-left) already hides from keys past 100: row 100 sees nothing. */
    for (int64_t j = 0; j < 128; j++) {
        int32_t *col = fm_mask_column(&m, 0, 0, j);
        col[FM_LTS] = j < 64 ? 100 : 0, col[FM_LTE] = j < 64 ? 101 : (int32_t)S;
    }
    size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    fm_rng rng;
    fm_rng_seed(&rng, 11);
    double *q = fm_test_normal(nq, &rng), *k = fm_test_normal(nkv, &rng);
    double *v = fm_test_normal(nkv, &rng), *dout = fm_test_normal(nq, &rng);
    char msg[512] = "";
    if (!agrees(&p, &m, q, k, v, dout, msg, sizeof msg)) fail_msg("%s", msg);
    fm_tensors clean = {0}, poisoned = {0};
    fm_test_outputs_alloc(&clean, &p), fm_test_outputs_alloc(&poisoned, &p);
    for (int r = 0; r < 2; r++) {
        fm_tensors *o = r ? &poisoned : &clean;
        if (r)
            for (int64_t j = 64 * D; j < 128 * D; j++) k[j] = v[j] = NAN;
        fm_tensors t = {q, k, v, dout, o->out, o->lse, o->dq, o->dk, o->dv};
        assert_int_equal(fm_cuda_reference_forward_host(&p, &m, &t), FM_OK);
        assert_int_equal(fm_cuda_reference_backward_host(&p, &m, &t), FM_OK);
    }
    assert_memory_equal(clean.out, poisoned.out, nq * 8);
    assert_memory_equal(clean.dq, poisoned.dq, nq * 8);
    for (int64_t h = 0; h < 2; h++) {
        assert_true(clean.lse[h * S + 100] == -INFINITY);
        for (int64_t d = 0; d < D; d++) {
            assert_true(clean.out[(h * S + 100) * D + d] == 0.0);
            assert_true(clean.dq[(h * S + 100) * D + d] == 0.0);
        }
    }
    fm_test_outputs_free(&clean), fm_test_outputs_free(&poisoned);
    free(q), free(k), free(v), free(dout);
    fm_mask_free(&m);
}

/* As the CPU reference: an LSE of -inf on a row that has allowed keys is refused. */
static void test_bad_lse(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    fm_random_case c;
    fm_case_limits l = fm_case_limits_default();
    l.families_only = 1;
    assert_int_equal(fm_random_case_make(&c, 77, &l), FM_OK);
    fm_mask full =
        fm_test_mask(c.problem.batch, 1, c.problem.seqlen_q, c.problem.seqlen_k, FM_CAUSAL_NONE);
    fm_tensors o = {0};
    fm_test_outputs_alloc(&o, &c.problem);
    fm_tensors t = {c.q, c.k, c.v, c.dout, o.out, o.lse, o.dq, o.dk, o.dv};
    assert_int_equal(fm_cuda_reference_forward_host(&c.problem, &full, &t), FM_OK);
    o.lse[0] = -INFINITY;
    EXPECT_FAIL(fm_cuda_reference_backward_host(&c.problem, &full, &t), FM_ERR_INVALID, "row 0");
    fm_test_outputs_free(&o);
    fm_mask_free(&full);
    fm_random_case_free(&c);
}

/* The device-pointer calls check every argument before anything reaches the GPU, so these
 * run wherever the CUDA layer is built, device or not (a mask descriptor with placeholder
 * device pointers stands in for an uploaded one; no call here launches a kernel). */
static void test_bad_arguments(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 4, 2, 100, 90, 64);
    static double buf[16];
    double *ok = buf, *d = NULL;
    fm_cuda_mask dm;
    memset(&dm, 0, sizeof dm);
    dm.batch = 1, dm.heads = 1, dm.seqlen_q = 100, dm.seqlen_k = 90;
    dm.block_k = 64, dm.n_blocks = 2;
    dm.bounds = (int32_t *)buf, dm.summary = (int32_t *)buf; /* never dereferenced here */
    fm_status st = fm_cuda_reference_forward(&p, &dm, d, d, d, d, d, NULL);
    if (st == FM_ERR_UNAVAILABLE) { /* a build without the CUDA layer */
        print_message("[  SKIP    ] %s\n", fm_last_error());
        skip();
    }
    EXPECT_FAIL(st, FM_ERR_INVALID, "q is NULL");
    double *misaligned = (double *)((char *)buf + 4);
    EXPECT_FAIL(fm_cuda_reference_forward(&p, &dm, misaligned, ok, ok, ok, ok, NULL),
                FM_ERR_INVALID, "8-byte");
    EXPECT_FAIL(fm_cuda_reference_backward(&p, &dm, ok, ok, ok, ok, ok, ok, ok, ok, d, NULL),
                FM_ERR_INVALID, "dv is NULL");
    fm_problem bad = p;
    bad.head_dim = 300;
    EXPECT_FAIL(fm_cuda_reference_forward(&bad, &dm, ok, ok, ok, ok, ok, NULL),
                FM_ERR_INVALID, "300");
    bad = p, bad.seqlen_k = 91;
    EXPECT_FAIL(fm_cuda_reference_forward(&bad, &dm, ok, ok, ok, ok, ok, NULL),
                FM_ERR_INVALID, "100 x 90");
    bad = p, bad.kv_heads = 3;
    EXPECT_FAIL(fm_cuda_reference_forward(&bad, &dm, ok, ok, ok, ok, ok, NULL),
                FM_ERR_INVALID, "kv_heads = 3");
    bad = p, bad.scale = -1.0;
    EXPECT_FAIL(fm_cuda_reference_forward(&bad, &dm, ok, ok, ok, ok, ok, NULL),
                FM_ERR_INVALID, "scale");
    bad = p, bad.batch = 20000, bad.q_heads = 4; /* B * Hq = 80000: past the grid */
    fm_cuda_mask big = dm;
    big.batch = 20000;
    EXPECT_FAIL(fm_cuda_reference_forward(&bad, &big, ok, ok, ok, ok, ok, NULL),
                FM_ERR_OVERFLOW, "B*Hq");
    fm_cuda_mask none = dm;
    none.bounds = NULL;
    EXPECT_FAIL(fm_cuda_reference_forward(&p, &none, ok, ok, ok, ok, ok, NULL),
                FM_ERR_INVALID, "not uploaded");
}

/* Without a GPU (or a CUDA build) the oracle says why, through every entry point. */
static void test_unavailable_says_why(void **state)
{
    (void)state;
    if (fm_cuda_available() == FM_OK) skip();
    assert_int_equal(fm_impl_available(FM_IMPL_REFERENCE_CUDA), FM_ERR_UNAVAILABLE);
    assert_true(strlen(fm_last_error()) > 10);
    fm_random_case c;
    fm_case_limits l = fm_case_limits_default();
    assert_int_equal(fm_random_case_make(&c, 5, &l), FM_OK);
    fm_tensors o = {0};
    fm_test_outputs_alloc(&o, &c.problem);
    fm_tensors t = {c.q, c.k, c.v, c.dout, o.out, o.lse, o.dq, o.dk, o.dv};
    assert_int_equal(fm_forward(FM_IMPL_REFERENCE_CUDA, &c.problem, &c.mask, &t),
                     FM_ERR_UNAVAILABLE);
    assert_true(strlen(fm_last_error()) > 10);
    assert_int_equal(fm_cuda_reference_backward_host(&c.problem, &c.mask, &t),
                     FM_ERR_UNAVAILABLE);
    fm_test_outputs_free(&o);
    fm_random_case_free(&c);
}

/* Tensors past 2^31 elements (q, out, dout, dq: 32768 heads x 520 x 128, 17 GB each in float64,
 * on the host and the device): the last kv head's group of 64 query heads, the only non-zero
 * data, gives the same bits as a run of that group alone. A 32-bit offset anywhere would read
 * or write another head's rows. Opt-in (FM_REF_CUDA_BIG=1): about 75 GB of device and host
 * memory. */
static void test_offsets_past_2g(void **state)
{
    (void)state;
    fm_test_skip_without_gpu();
    const char *big = getenv("FM_REF_CUDA_BIG");
    if (!big || strcmp(big, "1") != 0) {
        print_message("[  SKIP    ] set FM_REF_CUDA_BIG=1 to run (75 GB of device memory)\n");
        skip();
    }
    const int64_t Hq = 32768, Hk = 512, G = Hq / Hk, S = 520, D = 128;
    fm_problem p, p1;
    fm_problem_init(&p, 1, Hq, Hk, S, S, D);
    fm_problem_init(&p1, 1, G, 1, S, S, D);
    assert_true(fm_problem_q_elems(&p) > ((size_t)1 << 31));
    fm_mask m = fm_test_mask(1, 1, S, S, FM_CAUSAL_BOTTOM_RIGHT);
    const size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    const size_t nq1 = fm_problem_q_elems(&p1), nkv1 = fm_problem_kv_elems(&p1);
    double *q = calloc(nq, 8), *k = calloc(nkv, 8), *v = calloc(nkv, 8), *dout = calloc(nq, 8);
    assert_true(q && k && v && dout);
    fm_rng rng;
    fm_rng_seed(&rng, 2024);
    /* the last group: query heads Hq - G .. Hq - 1, kv head Hk - 1 */
    fm_test_fill_normal(q + nq - nq1, nq1, &rng);
    fm_test_fill_normal(dout + nq - nq1, nq1, &rng);
    fm_test_fill_normal(k + nkv - nkv1, nkv1, &rng);
    fm_test_fill_normal(v + nkv - nkv1, nkv1, &rng);
    fm_tensors all = {0}, one = {0};
    fm_test_outputs_alloc(&all, &p), fm_test_outputs_alloc(&one, &p1);
    fm_tensors ta = {q, k, v, dout, all.out, all.lse, all.dq, all.dk, all.dv};
    fm_tensors t1 = {q + nq - nq1, k + nkv - nkv1, v + nkv - nkv1, dout + nq - nq1,
                     one.out, one.lse, one.dq, one.dk, one.dv};
    assert_int_equal(fm_cuda_reference_forward_host(&p, &m, &ta), FM_OK);
    assert_int_equal(fm_cuda_reference_backward_host(&p, &m, &ta), FM_OK);
    assert_int_equal(fm_cuda_reference_forward_host(&p1, &m, &t1), FM_OK);
    assert_int_equal(fm_cuda_reference_backward_host(&p1, &m, &t1), FM_OK);
    assert_memory_equal(all.out + nq - nq1, one.out, nq1 * 8);
    assert_memory_equal(all.lse + Hq * S - G * S, one.lse, (size_t)(G * S) * 8);
    assert_memory_equal(all.dq + nq - nq1, one.dq, nq1 * 8);
    assert_memory_equal(all.dk + nkv - nkv1, one.dk, nkv1 * 8);
    assert_memory_equal(all.dv + nkv - nkv1, one.dv, nkv1 * 8);
    fm_test_outputs_free(&all), fm_test_outputs_free(&one);
    free(q), free(k), free(v), free(dout);
    fm_mask_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unavailable_says_why),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_bad_lse),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_masked_tiles_and_rows),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_grid),
        fm_property_unit_test(random_cases),
        fm_property_unit_test(random_long),
        cmocka_unit_test(test_long_opt_in),
        cmocka_unit_test(test_offsets_past_2g),
    };
    /* No GPU: everything that needs one skipped; meson is told so (exit 77). */
    return fm_test_gpu_suite_exit(cmocka_run_group_tests(tests, NULL, NULL));
}
