/* tests/robustness/test_api.c — hostile input at the C API (suite 'robustness'):
 * NULL pointers, a mask that does not belong to the problem, heads that do not divide, sizes
 * whose products overflow size_t or the int32/BLAS index limits, NaN/Inf inputs, out-of-range
 * enums, and block sizes near INT64_MAX. Every call must return the documented status with a
 * message naming the offending value, and must do so before it reads any tensor (the overflow
 * tests pass one-element buffers for tensors that would hold billions of elements: reading them
 * would be caught by ASan in the sanitized CI pass, or crash).
 * Layer: tests over core/, masks/, reference/, cpu/, sparse/ (the public API only).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmask.h"
#include "flashmask/oracle.h"
#include "expect_fail.h"
#include "runs.h"

/* ------------------------------------------------------------ a small valid problem */

/* B=1, Hq=2, Hk=1 (GQA), Sq=5, Sk=7, D=4, mask heads 1, causal bottom_right. */
typedef struct fixture {
    fm_problem p;
    fm_mask mask;
    double q[1 * 2 * 5 * 4], k[1 * 1 * 7 * 4], v[1 * 1 * 7 * 4], dout[1 * 2 * 5 * 4];
    double out[1 * 2 * 5 * 4], lse[1 * 2 * 5], dq[1 * 2 * 5 * 4], dk[1 * 1 * 7 * 4],
        dv[1 * 1 * 7 * 4];
    fm_tensors t;
} fixture;

static void fixture_make(fixture *f)
{
    memset(f, 0, sizeof *f);
    fm_problem_init(&f->p, 1, 2, 1, 5, 7, 4);
    assert_int_equal(fm_mask_init(&f->mask, 1, 1, 5, 7, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    fm_rng rng;
    fm_rng_seed(&rng, 7);
    for (size_t i = 0; i < sizeof f->q / sizeof f->q[0]; i++) f->q[i] = fm_rng_normal(&rng);
    for (size_t i = 0; i < sizeof f->k / sizeof f->k[0]; i++) f->k[i] = fm_rng_normal(&rng);
    for (size_t i = 0; i < sizeof f->v / sizeof f->v[0]; i++) f->v[i] = fm_rng_normal(&rng);
    for (size_t i = 0; i < sizeof f->dout / sizeof f->dout[0]; i++)
        f->dout[i] = fm_rng_normal(&rng);
    f->t = (fm_tensors){f->q, f->k, f->v, f->dout, f->out, f->lse, f->dq, f->dk, f->dv};
}

static int setup(void **state)
{
    fixture *f = malloc(sizeof *f);
    if (!f) return -1;
    fixture_make(f);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    fm_mask_free(&f->mask);
    free(f);
    return 0;
}

static const fm_impl host_impls[] = {FM_IMPL_REFERENCE, FM_IMPL_CPU};

/* ------------------------------------------------------------ NULL pointers */

static void test_null_pointers(void **state)
{
    fixture *f = *state;
    for (size_t n = 0; n < sizeof host_impls / sizeof host_impls[0]; n++) {
        fm_impl impl = host_impls[n];
        EXPECT_FAIL(fm_forward(impl, NULL, &f->mask, &f->t), FM_ERR_INVALID, "NULL descriptor");
        EXPECT_FAIL(fm_forward(impl, &f->p, NULL, &f->t), FM_ERR_INVALID, "NULL mask");
        EXPECT_FAIL(fm_forward(impl, &f->p, &f->mask, NULL), FM_ERR_INVALID, "NULL bundle");
        EXPECT_FAIL(fm_backward(impl, &f->p, &f->mask, NULL), FM_ERR_INVALID, "NULL bundle");
        /* each tensor pointer in turn */
        const char *names[] = {"q", "k", "v"};
        for (int which = 0; which < 3; which++) {
            fm_tensors t = f->t;
            const double **slot[] = {&t.q, &t.k, &t.v};
            *slot[which] = NULL;
            char text[32];
            snprintf(text, sizeof text, "tensor %s: NULL", names[which]);
            EXPECT_FAIL(fm_forward(impl, &f->p, &f->mask, &t), FM_ERR_INVALID, text);
        }
        fm_tensors t = f->t;
        t.out = NULL;
        EXPECT_FAIL(fm_forward(impl, &f->p, &f->mask, &t), FM_ERR_INVALID, "NULL out or lse");
        t = f->t;
        t.lse = NULL;
        EXPECT_FAIL(fm_forward(impl, &f->p, &f->mask, &t), FM_ERR_INVALID, "NULL out or lse");
        /* backward: run a real forward first so that out/lse are the forward's */
        assert_int_equal(fm_forward(impl, &f->p, &f->mask, &f->t), FM_OK);
        t = f->t;
        t.dout = NULL;
        EXPECT_FAIL(fm_backward(impl, &f->p, &f->mask, &t), FM_ERR_INVALID, "tensor dout: NULL");
        for (int which = 0; which < 3; which++) {
            t = f->t;
            double **slot[] = {&t.dq, &t.dk, &t.dv};
            *slot[which] = NULL;
            EXPECT_FAIL(fm_backward(impl, &f->p, &f->mask, &t), FM_ERR_INVALID,
                        "NULL dq, dk or dv");
        }
    }
    /* a mask whose bounds array is NULL */
    fm_mask hollow = f->mask;
    hollow.bounds = NULL;
    EXPECT_FAIL(fm_forward(FM_IMPL_REFERENCE, &f->p, &hollow, &f->t), FM_ERR_INVALID,
                "NULL bounds");
    /* the native entry points check their own pointers */
    EXPECT_FAIL(fm_ref_forward(&f->p, &f->mask, f->q, NULL, f->v, f->out, f->lse),
                FM_ERR_INVALID, "NULL tensor");
    EXPECT_FAIL(fm_ref_backward(&f->p, &f->mask, f->q, f->k, f->v, f->out, f->lse, f->dout,
                                f->dq, f->dk, NULL),
                FM_ERR_INVALID, "NULL tensor");
    float x[64] = {0};
    EXPECT_FAIL(fm_cpu_forward(&f->p, &f->mask, x, x, NULL, x, x, NULL), FM_ERR_INVALID,
                "NULL tensor");
    EXPECT_FAIL(fm_cpu_backward(&f->p, &f->mask, x, x, x, x, x, x, x, NULL, x, NULL),
                FM_ERR_INVALID, "NULL tensor");
    EXPECT_FAIL(fm_cpu_forward(NULL, &f->mask, x, x, x, x, x, NULL), FM_ERR_INVALID,
                "NULL descriptor");
    /* library helpers */
    EXPECT_FAIL(fm_mask_validate(NULL), FM_ERR_INVALID, "NULL mask");
    EXPECT_FAIL(fm_mask_init(NULL, 1, 1, 1, 1, FM_CAUSAL_NONE), FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_mask_copy(NULL, &f->mask), FM_ERR_INVALID, "NULL");
    fm_mask m;
    EXPECT_FAIL(fm_mask_from_startend(&m, NULL, 1, 1, 4, 4, 2, FM_CAUSAL_NONE), FM_ERR_INVALID,
                "NULL");
    EXPECT_FAIL(fm_mask_from_dense(&m, NULL, 1, 1, 4, 4, FM_CAUSAL_NONE), FM_ERR_INVALID,
                "NULL");
    EXPECT_FAIL(fm_mask_to_dense(&f->mask, NULL), FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_mask_to_startend(&f->mask, 4, NULL), FM_ERR_INVALID, "NULL");
    fm_bbm bbm;
    EXPECT_FAIL(fm_bbm_from_dense(&bbm, NULL, 1, 1, 4, 4, 2, 2), FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_block_summary_build(&f->mask, 4, NULL), FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_mask_tile_stats(&f->mask, 4, 4, NULL), FM_ERR_INVALID, "NULL");
    fm_npy a;
    EXPECT_FAIL(fm_npy_parse(NULL, 10, "x.npy", &a), FM_ERR_INVALID, "NULL");
    fm_case c;
    fm_case_init(&c);
    EXPECT_FAIL(fm_case_parse_json(NULL, 3, "case.json", &c), FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_impl_from_name(NULL, &(fm_impl){0}), FM_ERR_INVALID, "(null)");
    /* io and parameter helpers (each of these used to dereference the NULL) */
    fm_results r = {0};
    EXPECT_FAIL(fm_results_save("/tmp/fm-robustness-never", NULL, &r), FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_results_save("/tmp/fm-robustness-never", &f->p, NULL), FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_results_load("/tmp", NULL, &r), FM_ERR_INVALID, "NULL");
    int64_t shape1[1] = {4};
    EXPECT_FAIL(fm_npy_write("/tmp/fm-robustness-never.npy", FM_NPY_F8, 1, NULL, f->q),
                FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_npy_write("/tmp/fm-robustness-never.npy", FM_NPY_F8, 1, shape1, NULL),
                FM_ERR_INVALID, "NULL");
    EXPECT_FAIL(fm_npy_load_f64("/tmp/fm-robustness-never.npy", 1, shape1, "x", NULL),
                FM_ERR_INVALID, "NULL");
    const char *assign[] = {"window=3"};
    EXPECT_FAIL(fm_mask_params_apply(NULL, 1, assign), FM_ERR_INVALID, "NULL");
    fm_mask_params mp = {0};
    assert_int_equal(fm_mask_params_default(&mp, FM_FAMILY_SLIDING_WINDOW, 8), FM_OK);
    EXPECT_FAIL(fm_mask_params_apply(&mp, 1, NULL), FM_ERR_INVALID, "NULL");
    char *json = NULL;
    EXPECT_FAIL(fm_mask_params_to_json(NULL, &json), FM_ERR_INVALID, "NULL");
    fm_mask_params_free(&mp);
    assert_int_equal(fm_impl_dtype(FM_IMPL_CUDA, NULL), FM_FLOAT16);
    fm_mask zero_heads = f->mask;
    zero_heads.heads = 0; /* would divide by zero */
    assert_true(fm_problem_flops(&f->p, &zero_heads, 0) == 0.0);
    EXPECT_FAIL(fm_causal_from_name(NULL, &(fm_causal){0}), FM_ERR_INVALID, "(null)");
}

/* ------------------------------------------------------------ problem vs mask */

static void test_mismatched_problem_and_mask(void **state)
{
    fixture *f = *state;
    fm_problem p = f->p;
    for (size_t n = 0; n < sizeof host_impls / sizeof host_impls[0]; n++) {
        fm_impl impl = host_impls[n];
        p = f->p;
        p.batch = 2;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "mask batch = 1");
        p = f->p;
        p.seqlen_q = 6;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "mask is 5 x 7");
        p = f->p;
        p.seqlen_k = 5;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "mask is 5 x 7");
        p = f->p;
        p.kv_heads = 3; /* 3 does not divide 2 */
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID,
                    "kv_heads = 3 does not divide q_heads = 2");
        p = f->p;
        p.kv_heads = 0;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "kv_heads = 0");
        p = f->p;
        p.head_dim = -4;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "head_dim = -4");
        p = f->p;
        p.scale = NAN;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "scale");
        p.scale = INFINITY;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "scale");
        p.scale = -1.0;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "scale");
        p = f->p;
        p.dtype = (fm_dtype)9;
        EXPECT_FAIL(fm_forward(impl, &p, &f->mask, &f->t), FM_ERR_INVALID, "unknown dtype 9");
    }
    /* mask heads that do not divide q_heads */
    fm_mask m3 = fm_test_mask(1, 3, 5, 7, FM_CAUSAL_NONE);
    EXPECT_FAIL(fm_forward(FM_IMPL_REFERENCE, &f->p, &m3, &f->t), FM_ERR_INVALID,
                "mask heads = 3 does not divide q_heads = 2");
    fm_mask_free(&m3);
    /* an unknown implementation, after the inputs were found valid */
    EXPECT_FAIL(fm_forward((fm_impl)7, &f->p, &f->mask, &f->t), FM_ERR_INVALID,
                "unknown implementation 7");
    EXPECT_FAIL(fm_backward((fm_impl)-1, &f->p, &f->mask, &f->t), FM_ERR_INVALID,
                "unknown implementation");
    EXPECT_FAIL(fm_impl_available((fm_impl)42), FM_ERR_INVALID, "unknown implementation 42");
    /* a corrupted mask: causal tag, bounds */
    fm_mask bad = f->mask;
    bad.causal = (fm_causal)5;
    EXPECT_FAIL(fm_forward(FM_IMPL_CPU, &f->p, &bad, &f->t), FM_ERR_INVALID,
                "unknown causal alignment 5");
    f->mask.bounds[3 * FM_BOUNDS + FM_LTE] = 6; /* column 3: LTE > Sq = 5 */
    EXPECT_FAIL(fm_forward(FM_IMPL_CPU, &f->p, &f->mask, &f->t), FM_ERR_INVALID,
                "column=3: bound LTE = 6 is outside [0, Sq=5]");
    f->mask.bounds[3 * FM_BOUNDS + FM_LTE] = 1; /* LTS = 5 > LTE = 1 */
    EXPECT_FAIL(fm_forward(FM_IMPL_REFERENCE, &f->p, &f->mask, &f->t), FM_ERR_INVALID,
                "bound LTS = 5 > LTE = 1");
    f->mask.bounds[3 * FM_BOUNDS + FM_LTE] = 5;
    f->mask.bounds[2 * FM_BOUNDS + FM_UTS] = -1;
    EXPECT_FAIL(fm_forward(FM_IMPL_REFERENCE, &f->p, &f->mask, &f->t), FM_ERR_INVALID,
                "column=2: bound UTS = -1");
    f->mask.bounds[2 * FM_BOUNDS + FM_UTS] = 0;
    assert_int_equal(fm_forward(FM_IMPL_REFERENCE, &f->p, &f->mask, &f->t), FM_OK);
}

/* ------------------------------------------------------------ sizes that overflow */

static void test_size_overflow(void **state)
{
    fixture *f = *state;
    double one[1] = {0};
    fm_tensors t = {one, one, one, one, one, one, one, one, one};
    fm_mask m;

    /* B*Hq*Sq*D overflows size_t (each factor alone is fine) */
    fm_problem p = fm_test_problem(INT64_C(1) << 20, 1 << 20, 1, 1 << 20, 1 << 20, 1 << 20);
    assert_int_equal(fm_mask_init(&m, 1, 1, 1, 1, FM_CAUSAL_NONE), FM_OK);
    EXPECT_FAIL(fm_problem_validate(&p, &m), FM_ERR_OVERFLOW, "B*Hq*Sq*D");
    EXPECT_FAIL(fm_forward(FM_IMPL_CPU, &p, &m, &t), FM_ERR_OVERFLOW, "overflows");
    /* fits size_t as elements but not as bytes of doubles */
    fm_problem_init(&p, INT64_C(1) << 31, 1, 1, 1 << 30, 1 << 30, 1);
    EXPECT_FAIL(fm_problem_validate(&p, &m), FM_ERR_OVERFLOW, "B*Hq*Sq*D");
    /* K side alone overflowing */
    fm_problem_init(&p, 1, 1 << 30, 1 << 30, 1, 1 << 30, 1 << 30);
    EXPECT_FAIL(fm_problem_validate(&p, &m), FM_ERR_OVERFLOW, "B*Hk*Sk*D");
    fm_mask_free(&m);

    /* sequence lengths above int32 (row bounds are int32) */
    fm_problem_init(&p, 1, 1, 1, INT64_C(1) << 31, 1, 1);
    EXPECT_FAIL(fm_problem_validate(&p, &f->mask), FM_ERR_OVERFLOW, "must be <= 2147483647");
    EXPECT_FAIL(fm_mask_init(&m, 1, 1, INT64_C(1) << 31, 4, FM_CAUSAL_NONE), FM_ERR_OVERFLOW,
                "seqlen_q = 2147483648 exceeds INT32_MAX");
    EXPECT_FAIL(fm_mask_init(&m, 1, 1, 4, INT64_C(3) << 31, FM_CAUSAL_NONE), FM_ERR_OVERFLOW,
                "seqlen_k = 6442450944 exceeds INT32_MAX");
    /* B*Hm*Sk*4 bounds overflow */
    EXPECT_FAIL(fm_mask_init(&m, INT64_C(1) << 40, INT64_C(1) << 20, 4, 1 << 20, FM_CAUSAL_NONE),
                FM_ERR_OVERFLOW, "B*Hm*Sk*4");

    /* The reference's dense Sq x Sk scratch (the dense backend forced; the automatic choice
     * takes the tiled one): Sq = Sk = 65536 is 2^32 doubles per matrix, above its 2^31 limit.
     * The inputs are tiny (B = H = D = 1), so this is what refuses. */
    const fm_ref_options dense = {.backend = FM_REF_DENSE};
    const int64_t S = 65536;
    fm_problem_init(&p, 1, 1, 1, S, S, 1);
    assert_int_equal(fm_mask_init(&m, 1, 1, S, S, FM_CAUSAL_NONE), FM_OK);
    double *x = calloc((size_t)S, sizeof(double)), *lse = calloc((size_t)S, sizeof(double));
    double *o = calloc((size_t)S, sizeof(double));
    assert_non_null(x);
    assert_non_null(lse);
    assert_non_null(o);
    EXPECT_FAIL(fm_ref_forward_opts(&p, &m, &dense, x, x, x, o, lse), FM_ERR_OVERFLOW,
                "Sq*Sk = 65536*65536 doubles");
    EXPECT_FAIL(fm_ref_backward_opts(&p, &m, &dense, x, x, x, o, lse, x, o, o, o),
                FM_ERR_OVERFLOW, "Sq*Sk = 65536*65536 doubles");
    free(x), free(lse), free(o);
    /* the dense conversions of that mask: B*Hm*Sq*Sk bytes is fine (4 GiB) but we never get
     * there with a NULL buffer; with Sq*Sk overflowing size_t they refuse before reading */
    fm_mask_free(&m);

    /* head_dim above the BLAS int limit: the reference and the cpu layer call BLAS with int
     * sizes, so D = 2^31 must be refused before any tensor is touched (one-element buffers). */
    fm_problem_init(&p, 1, 1, 1, 1, 1, INT64_C(1) << 31);
    assert_int_equal(fm_mask_init(&m, 1, 1, 1, 1, FM_CAUSAL_NONE), FM_OK);
    float onef[1] = {0};
    EXPECT_FAIL(fm_ref_forward(&p, &m, one, one, one, one, one), FM_ERR_OVERFLOW, "head_dim");
    EXPECT_FAIL(fm_cpu_forward(&p, &m, onef, onef, onef, onef, onef, NULL), FM_ERR_OVERFLOW,
                "head_dim");
    EXPECT_FAIL(fm_cpu_backward(&p, &m, onef, onef, onef, onef, onef, onef, onef, onef, onef,
                                NULL),
                FM_ERR_OVERFLOW, "head_dim");
    fm_mask_free(&m);
}

/* The CUDA layer's mask upload refuses sequence lengths its kernels' 32-bit row walks could
 * overflow, before it looks for a device (so this runs on every build): a build without the
 * layer says so instead. */
static void test_cuda_upload_refuses_huge_sequences(void **state)
{
    (void)state;
    fm_mask m = fm_test_mask(1, 1, INT32_MAX, 4, FM_CAUSAL_NONE);
    fm_cuda_mask dm;
    const fm_status st = fm_cuda_mask_upload(&m, &dm);
    if (!(st == FM_ERR_UNAVAILABLE && strstr(fm_last_error(), "no CUDA layer"))) {
        EXPECT_FAIL(st, FM_ERR_OVERFLOW, "Sq = 2147483647");
    }
    assert_null(dm.bounds);
    fm_mask_free(&m);
}

/* Device tensors off a 16-byte boundary (an offset view into a tensor) are refused before any
 * launch: the kernels' 16-byte copies would fault on the device. The check comes before the
 * device is touched, so it runs on every CUDA build; the mask here is a stand-in with the
 * problem's shape (its pointers are never read). */
static void test_cuda_refuses_misaligned_tensors(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 1, 1, 8, 8, 64);
    p.dtype = FM_BFLOAT16;
    fm_cuda_mask dm = {0};
    dm.batch = 1, dm.heads = 1, dm.seqlen_q = 8, dm.seqlen_k = 8, dm.block_k = 64;
    dm.n_blocks = 1;
    static _Alignas(16) unsigned char fake[1024];
    dm.bounds = (int32_t *)fake, dm.summary = (int32_t *)fake;
    const void *ok = fake, *off = fake + 2; /* one bfloat16 element past a 16-byte boundary */
    float *lse = (float *)(fake + 16);
    fm_status st = fm_cuda_forward(&p, &dm, ok, off, ok, (void *)ok, lse, NULL, NULL);
    if (st == FM_ERR_UNAVAILABLE && strstr(fm_last_error(), "no CUDA layer")) return;
    EXPECT_FAIL(st, FM_ERR_INVALID, "k = ");
    assert_non_null(strstr(fm_last_error(), "16-byte aligned"));
    st = fm_cuda_backward(&p, &dm, ok, ok, ok, ok, lse, ok, (void *)ok, (void *)ok, (void *)off,
                          NULL, NULL);
    EXPECT_FAIL(st, FM_ERR_INVALID, "dv = ");
    st = fm_cuda_forward(&p, &dm, ok, ok, ok, (void *)ok, (float *)(fake + 2), NULL, NULL);
    EXPECT_FAIL(st, FM_ERR_INVALID, "lse = ");
}

/* ------------------------------------------------------------ block sizes */

/* Block and tile sizes near INT64_MAX: a block wider than the sequence is one block. Without
 * care, (S + block - 1) / block overflows int64 (undefined behaviour; UBSan reports it). */
static void test_huge_block_sizes(void **state)
{
    fixture *f = *state;
    const int64_t huge = INT64_MAX;
    fm_block_summary s;
    assert_int_equal(fm_block_summary_build(&f->mask, huge, &s), FM_OK);
    assert_int_equal(s.n_blocks, 1);
    fm_tile_class c = fm_block_summary_classify(&s, 0, 0, huge, 0, 0);
    assert_int_equal(c, FM_TILE_PARTIAL); /* causal over the whole 5 x 7: some masked */
    fm_block_summary_free(&s);

    fm_tile_stats st;
    assert_int_equal(fm_mask_tile_stats(&f->mask, huge, huge, &st), FM_OK);
    assert_int_equal(st.total, 1);
    assert_int_equal(fm_mask_tile_stats(&f->mask, huge - 1, 3, &st), FM_OK);
    assert_int_equal(st.total, 3);

    fm_flex_block_mask fb;
    assert_int_equal(fm_mask_to_flex_blocks(&f->mask, huge, huge, &fb), FM_OK);
    assert_int_equal(fb.n_q_blocks, 1);
    assert_int_equal(fb.n_kv_blocks, 1);
    fm_flex_block_mask_free(&fb);

    EXPECT_FAIL(fm_block_summary_build(&f->mask, 0, &s), FM_ERR_INVALID, "block_k = 0");
    EXPECT_FAIL(fm_mask_tile_stats(&f->mask, -1, 4, &st), FM_ERR_INVALID, "block_q = -1");
    EXPECT_FAIL(fm_mask_to_flex_blocks(&f->mask, 0, 4, &fb), FM_ERR_INVALID, "q_block = 0");

    uint8_t dense[5 * 7];
    memset(dense, 1, sizeof dense);
    fm_bbm bbm;
    assert_int_equal(fm_bbm_from_dense(&bbm, dense, 1, 1, 5, 7, huge, huge), FM_OK);
    fm_bbm_free(&bbm);
    EXPECT_FAIL(fm_bbm_from_dense(&bbm, dense, 1, 1, 5, 7, 0, 4), FM_ERR_INVALID, "block_q = 0");
}

/* ------------------------------------------------------------ compact and dense forms */

static void test_conversions_refuse(void **state)
{
    (void)state;
    fm_mask m;
    int32_t se[4 * 4] = {0};
    EXPECT_FAIL(fm_mask_from_startend(&m, se, 1, 1, 4, 4, 3, FM_CAUSAL_NONE), FM_ERR_INVALID,
                "C = 3");
    EXPECT_FAIL(fm_mask_from_startend(&m, se, 1, 1, 4, 4, 1, FM_CAUSAL_NONE), FM_ERR_INVALID,
                "C = 1");
    EXPECT_FAIL(fm_mask_from_startend(&m, se, 1, 1, 4, 4, 2, (fm_causal)3), FM_ERR_INVALID,
                "unknown causal");
    se[5] = 9; /* column 2, index 1 (UTE without causal) = 9 > Sq */
    EXPECT_FAIL(fm_mask_from_startend(&m, se, 1, 1, 4, 4, 2, FM_CAUSAL_NONE), FM_ERR_INVALID,
                "column=2: bound UTE (index 1 of C=2) = 9 is outside [0, Sq=4]");
    se[5] = INT32_MIN;
    EXPECT_FAIL(fm_mask_from_startend(&m, se, 1, 1, 4, 4, 2, FM_CAUSAL_NONE), FM_ERR_INVALID,
                "= -2147483648 is outside");
    se[5] = 0;
    se[4] = 3, se[5] = 1; /* causal two-column form: LTS 3 > LTE 1 */
    EXPECT_FAIL(fm_mask_from_startend(&m, se, 1, 1, 4, 4, 2, FM_CAUSAL_TOP_LEFT), FM_ERR_INVALID,
                "LTS = 3 > LTE = 1");
    /* shapes: zero and overflowing sizes are refused before the array is read */
    EXPECT_FAIL(fm_mask_from_startend(&m, se, 0, 1, 4, 4, 4, FM_CAUSAL_NONE), FM_ERR_INVALID,
                "batch = 0");
    EXPECT_FAIL(fm_mask_from_startend(&m, se, INT64_C(1) << 40, INT64_C(1) << 40, 4, 4, 4,
                                      FM_CAUSAL_NONE),
                FM_ERR_OVERFLOW, "overflow");

    uint8_t dense[4 * 4];
    memset(dense, 1, sizeof dense);
    dense[5] = 2; /* not a boolean */
    EXPECT_FAIL(fm_mask_from_dense(&m, dense, 1, 1, 4, 4, FM_CAUSAL_NONE), FM_ERR_INVALID, "2");
    fm_bbm bbm;
    EXPECT_FAIL(fm_bbm_from_dense(&bbm, dense, 1, 1, 4, 4, 2, 2), FM_ERR_INVALID,
                "value 2 at b=0 head=0 row=1 col=1");
    EXPECT_FAIL(fm_mask_from_dense(&m, dense, INT64_C(1) << 32, 1, INT64_C(1) << 20,
                                   INT64_C(1) << 20, FM_CAUSAL_NONE),
                FM_ERR_OVERFLOW, "overflow");
    EXPECT_FAIL(fm_bbm_from_dense(&bbm, dense, INT64_C(1) << 32, 1, INT64_C(1) << 20,
                                  INT64_C(1) << 20, 64, 64),
                FM_ERR_OVERFLOW, "overflows");
    /* three masked runs in column 0 (rows 0, 2 masked; 1, 3 allowed... plus row 4) */
    uint8_t runs[5 * 1] = {0, 1, 0, 1, 0};
    EXPECT_FAIL(fm_mask_from_dense(&m, runs, 1, 1, 5, 1, FM_CAUSAL_NONE),
                FM_ERR_NOT_REPRESENTABLE, "column");
}

/* ------------------------------------------------------------ NaN and Inf */

/* Documented behaviour (docs/robustness.md): fm_forward/fm_backward refuse NaN or +-Inf in
 * q, k, v, dout, out with FM_ERR_NONFINITE naming the tensor and the flat element index; lse
 * may hold -inf (fully masked rows) but not +inf or NaN. Nothing is written on refusal. */
static void test_nonfinite_inputs(void **state)
{
    fixture *f = *state;
    for (size_t n = 0; n < sizeof host_impls / sizeof host_impls[0]; n++) {
        fm_impl impl = host_impls[n];
        double *bufs[] = {f->q, f->k, f->v};
        const char *names[] = {"q", "k", "v"};
        const double bad[] = {NAN, INFINITY, -INFINITY};
        for (int t = 0; t < 3; t++)
            for (int b = 0; b < 3; b++) {
                double keep = bufs[t][5];
                bufs[t][5] = bad[b];
                f->out[0] = 12345.0;
                char text[64];
                snprintf(text, sizeof text, "tensor %s: element 5 is", names[t]);
                EXPECT_FAIL(fm_forward(impl, &f->p, &f->mask, &f->t), FM_ERR_NONFINITE, text);
                assert_true(f->out[0] == 12345.0); /* refused before anything was written */
                bufs[t][5] = keep;
            }
        assert_int_equal(fm_forward(impl, &f->p, &f->mask, &f->t), FM_OK);
        /* backward: dout and out must be finite; lse may be -inf, not +inf or NaN */
        double keep = f->dout[39];
        f->dout[39] = NAN;
        EXPECT_FAIL(fm_backward(impl, &f->p, &f->mask, &f->t), FM_ERR_NONFINITE,
                    "tensor dout: element 39 is nan");
        f->dout[39] = keep;
        keep = f->out[2];
        f->out[2] = -INFINITY;
        EXPECT_FAIL(fm_backward(impl, &f->p, &f->mask, &f->t), FM_ERR_NONFINITE,
                    "tensor out: element 2 is -inf");
        f->out[2] = keep;
        keep = f->lse[9];
        f->lse[9] = INFINITY;
        EXPECT_FAIL(fm_backward(impl, &f->p, &f->mask, &f->t), FM_ERR_NONFINITE,
                    "tensor lse: element 9 is inf");
        f->lse[9] = NAN;
        EXPECT_FAIL(fm_backward(impl, &f->p, &f->mask, &f->t), FM_ERR_NONFINITE,
                    "tensor lse: element 9 is nan");
        f->lse[9] = keep;
        assert_int_equal(fm_backward(impl, &f->p, &f->mask, &f->t), FM_OK);
    }
    /* -inf lse on a row that has allowed keys: the reference refuses the mismatch */
    f->lse[0] = -INFINITY;
    EXPECT_FAIL(fm_backward(FM_IMPL_REFERENCE, &f->p, &f->mask, &f->t), FM_ERR_INVALID,
                "row 0");
}

/* ------------------------------------------------------------ exit codes */

static void test_exit_codes(void **state)
{
    (void)state;
    const fm_status invalid[] = {FM_ERR_INVALID,  FM_ERR_NOT_REPRESENTABLE, FM_ERR_OVERFLOW,
                                 FM_ERR_IO,       FM_ERR_FORMAT,            FM_ERR_NONFINITE};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        assert_int_equal(fm_status_exit_code(invalid[i]), 2);
    assert_int_equal(fm_status_exit_code(FM_OK), 0);
    assert_int_equal(fm_status_exit_code(FM_ERR_UNAVAILABLE), 3);
    assert_int_equal(fm_status_exit_code(FM_ERR_NOMEM), 1);
    assert_string_equal(fm_status_string((fm_status)99), "unknown status");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_null_pointers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mismatched_problem_and_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(test_size_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_block_sizes, setup, teardown),
        cmocka_unit_test(test_cuda_upload_refuses_huge_sequences),
        cmocka_unit_test(test_cuda_refuses_misaligned_tensors),
        cmocka_unit_test(test_conversions_refuse),
        cmocka_unit_test_setup_teardown(test_nonfinite_inputs, setup, teardown),
        cmocka_unit_test(test_exit_codes),
    };
    return cmocka_run_group_tests_name("robustness-api", tests, NULL, NULL);
}
