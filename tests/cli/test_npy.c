/* tests/cli/test_npy.c — the strict .npy reader/writer of io/ (suite 'cli'): round trips, files
 * written by NumPy itself (tests/cli/data, made by make_fixtures.py), and hostile bytes —
 * every truncation of a valid file, trailing bytes, lying headers, unsupported dtypes, Fortran
 * order, shape overflow, non-ASCII headers and random mutations — each refused with the right
 * status and never a crash. Layer: tests of io. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "expect_fail.h"
#include "flashmask.h"
#include "test_fs.h"

#ifndef FM_TEST_DATA
#error "FM_TEST_DATA (the fixture directory) must be defined by tests/cli/meson.build"
#endif

/* A .npy file in memory: preamble v1.0 + header text (padded, '\n') + data bytes. */
static size_t make_npy(unsigned char *buf, size_t cap, const char *dict, const void *data,
                       size_t nbytes)
{
    size_t hlen = strlen(dict) + 1;
    size_t total = 10 + hlen;
    size_t pad = (64 - total % 64) % 64;
    hlen += pad;
    assert_true(10 + hlen + nbytes <= cap);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    buf[8] = (unsigned char)(hlen & 0xff);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, strlen(dict));
    memset(buf + 10 + strlen(dict), ' ', pad);
    buf[10 + hlen - 1] = '\n';
    if (nbytes) memcpy(buf + 10 + hlen, data, nbytes);
    return 10 + hlen + nbytes;
}

static fm_status parse(const unsigned char *buf, size_t n, fm_npy *a)
{
    return fm_npy_parse(buf, n, "test.npy", a);
}

static void expect_fail(const char *dict, const void *data, size_t nbytes, fm_status want,
                        const char *needle)
{
    unsigned char buf[1024];
    size_t n = make_npy(buf, sizeof buf, dict, data, nbytes);
    fm_npy a;
    fm_status st = parse(buf, n, &a);
    if (st != want || (needle && !strstr(fm_last_error(), needle)))
        fail_msg("header %s: status %d (want %d), message '%s' (want '%s')", dict, st, want,
                 fm_last_error(), needle ? needle : "");
    assert_null(a.data);
}

/* ---------------------------------------------------------------- valid files */

static void test_valid_headers(void **state)
{
    (void)state;
    double d[6] = {1, 2, 3, 4, 5, 6};
    const char *dicts[] = {
        "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
        "{'shape': (2, 3), 'fortran_order': False, 'descr': '<f8'}",
        "{\"descr\": \"<f8\", \"fortran_order\": False, \"shape\": (2,3,)}",
        "{'descr':'<f8','fortran_order':False,'shape':(6,)}",
    };
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++) {
        unsigned char buf[512];
        size_t n = make_npy(buf, sizeof buf, dicts[i], d, sizeof d);
        fm_npy a;
        fm_status st = parse(buf, n, &a);
        if (st != FM_OK) fail_msg("%s: %s", dicts[i], fm_last_error());
        assert_int_equal(a.dtype, FM_NPY_F8);
        assert_int_equal(a.count, 6);
        assert_memory_equal(a.data, d, sizeof d);
        fm_npy_free(&a);
    }
    /* version 2.0: 4-byte header length */
    unsigned char buf[512];
    size_t n = make_npy(buf + 2, sizeof buf - 2, "{'descr': '<f8', 'fortran_order': False, "
                        "'shape': (2, 3), }", d, sizeof d);
    unsigned hlen = buf[2 + 8] | (unsigned)buf[2 + 9] << 8;
    memcpy(buf, "\x93NUMPY\x02\x00", 8);
    buf[8] = (unsigned char)hlen, buf[9] = (unsigned char)(hlen >> 8), buf[10] = buf[11] = 0;
    fm_npy a;
    assert_int_equal(parse(buf, n + 2, &a), FM_OK);
    assert_memory_equal(a.data, d, sizeof d);
    fm_npy_free(&a);
}

static void path_in_tmp(char *out, size_t cap, const char *name)
{
    fm_test_path(out, cap, fm_test_tmpdir, name);
}

static void test_round_trip(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof path, "rt.npy");
    double d[6] = {1.5, -2, 3e300, -0.0, 1e-310, 6};
    float f[6] = {1.5f, -2, 3e30f, -0.0f, 1e-40f, 6};
    int32_t i4[6] = {0, -1, INT32_MAX, INT32_MIN, 7, 8};
    uint8_t u1[6] = {0, 1, 255, 3, 4, 5}, b1[6] = {0, 1, 1, 0, 0, 1};
    const void *datas[5] = {d, f, i4, u1, b1};
    fm_npy_dtype types[5] = {FM_NPY_F8, FM_NPY_F4, FM_NPY_I4, FM_NPY_U1, FM_NPY_B1};
    int64_t shapes[3][3] = {{2, 3, 0}, {6, 0, 0}, {1, 6, 1}};
    int ndims[3] = {2, 1, 3};
    for (int t = 0; t < 5; t++) {
        for (int s = 0; s < 3; s++) {
            assert_int_equal(fm_npy_write(path, types[t], ndims[s], shapes[s], datas[t]), FM_OK);
            fm_npy a;
            assert_int_equal(fm_npy_read(path, &a), FM_OK);
            assert_int_equal(a.dtype, types[t]);
            assert_int_equal(a.ndim, ndims[s]);
            assert_memory_equal(a.shape, shapes[s], sizeof(int64_t) * (size_t)ndims[s]);
            assert_memory_equal(a.data, datas[t], 6 * fm_npy_dtype_size(types[t]));
            fm_npy_free(&a);
        }
    }
    /* 0-d and empty arrays */
    assert_int_equal(fm_npy_write(path, FM_NPY_F8, 0, NULL, d), FM_OK);
    fm_npy a;
    assert_int_equal(fm_npy_read(path, &a), FM_OK);
    assert_int_equal(a.ndim, 0);
    assert_int_equal(a.count, 1);
    fm_npy_free(&a);
    int64_t empty[2] = {0, 3};
    assert_int_equal(fm_npy_write(path, FM_NPY_F4, 2, empty, f), FM_OK);
    assert_int_equal(fm_npy_read(path, &a), FM_OK);
    assert_int_equal(a.count, 0);
    fm_npy_free(&a);
    /* float16 is read only */
    assert_int_equal(fm_npy_write(path, FM_NPY_F2, 1, empty, f), FM_ERR_INVALID);
    unlink(path);
}

/* Files that NumPy wrote (tests/cli/make_fixtures.py). */
static void test_numpy_fixtures(void **state)
{
    (void)state;
    fm_npy a;
    assert_int_equal(fm_npy_read(FM_TEST_DATA "/f2.npy", &a), FM_OK);
    assert_int_equal(a.dtype, FM_NPY_F2);
    assert_int_equal(a.count, 6);
    for (size_t i = 0; i < 6; i++)
        assert_true(fm_half_to_float(((uint16_t *)a.data)[i]) == (float)i * 0.5f);
    fm_npy_free(&a);

    double *x;
    int64_t shape23[2] = {2, 3};
    assert_int_equal(fm_npy_load_f64(FM_TEST_DATA "/f2.npy", 2, shape23, "A,B", &x), FM_OK);
    assert_true(x[5] == 2.5);
    free(x);

    assert_int_equal(fm_npy_read(FM_TEST_DATA "/b1.npy", &a), FM_OK);
    assert_int_equal(a.dtype, FM_NPY_B1);
    assert_int_equal(((uint8_t *)a.data)[0], 1);
    assert_int_equal(((uint8_t *)a.data)[1], 0);
    fm_npy_free(&a);

    assert_int_equal(fm_npy_read(FM_TEST_DATA "/v2_i4.npy", &a), FM_OK);
    assert_int_equal(a.dtype, FM_NPY_I4);
    assert_int_equal(((int32_t *)a.data)[5], 5);
    fm_npy_free(&a);

    assert_int_equal(fm_npy_read(FM_TEST_DATA "/scalar.npy", &a), FM_OK);
    assert_int_equal(a.ndim, 0);
    assert_true(((double *)a.data)[0] == 3.5);
    fm_npy_free(&a);

    assert_int_equal(fm_npy_read(FM_TEST_DATA "/empty.npy", &a), FM_OK);
    assert_int_equal(a.count, 0);
    fm_npy_free(&a);

    assert_int_equal(fm_npy_read(FM_TEST_DATA "/u1.npy", &a), FM_OK);
    assert_int_equal(((uint8_t *)a.data)[4], 4);
    fm_npy_free(&a);

    EXPECT_FAIL(fm_npy_read(FM_TEST_DATA "/fortran.npy", &a), FM_ERR_FORMAT, "fortran_order");
    EXPECT_FAIL(fm_npy_read(FM_TEST_DATA "/big_endian.npy", &a), FM_ERR_FORMAT, ">f8");
    assert_int_equal(fm_npy_read(FM_TEST_DATA "/complex.npy", &a), FM_ERR_FORMAT);
    EXPECT_FAIL(fm_npy_read(FM_TEST_DATA "/i8.npy", &a), FM_ERR_FORMAT, "<i8");
    assert_int_equal(fm_npy_read(FM_TEST_DATA "/does-not-exist.npy", &a), FM_ERR_IO);
}

/* ---------------------------------------------------------------- hostile bytes */

static void test_truncated_and_oversized(void **state)
{
    (void)state;
    double d[12];
    for (int i = 0; i < 12; i++) d[i] = i;
    unsigned char buf[512];
    size_t n = make_npy(buf, sizeof buf, "{'descr': '<f8', 'fortran_order': False, "
                        "'shape': (3, 4), }", d, sizeof d);
    /* every proper prefix is refused, as a format error */
    for (size_t len = 0; len < n; len++) {
        fm_npy a;
        fm_status st = parse(buf, len, &a);
        if (st != FM_ERR_FORMAT) fail_msg("prefix of %zu/%zu bytes: status %d", len, n, st);
        assert_null(a.data);
    }
    /* data one element short says "truncated"; one byte too many says "trailing" */
    fm_npy a;
    EXPECT_FAIL(parse(buf, n - 8, &a), FM_ERR_FORMAT, "truncated");
    buf[n] = 0;
    EXPECT_FAIL(parse(buf, n + 1, &a), FM_ERR_FORMAT, "trailing");
}

static void test_lying_headers(void **state)
{
    (void)state;
    double d[6] = {0};
    const char *f8 = "'descr': '<f8', 'fortran_order': False";
    char dict[256];
    static const struct {
        const char *shape;
        fm_status want;
        const char *says;
    } lies[] = {
        /* the header promises more or fewer elements than the file holds */
        {"(2, 4)", FM_ERR_FORMAT, "truncated"},
        {"(2, 2)", FM_ERR_FORMAT, "trailing"},
        /* shapes whose products overflow size_t, or int64 */
        {"(4611686018427387904, 8)", FM_ERR_OVERFLOW, "overflow"},
        {"(2305843009213693952,)", FM_ERR_OVERFLOW, "overflow"},
        {"(99999999999999999999,)", FM_ERR_OVERFLOW, "int64"},
        /* a huge shape with a zero does not overflow: it is an empty array, and 48 bytes lie */
        {"(0, 9223372036854775807)", FM_ERR_FORMAT, "trailing"},
    };
    for (size_t i = 0; i < sizeof lies / sizeof lies[0]; i++) {
        snprintf(dict, sizeof dict, "{%s, 'shape': %s, }", f8, lies[i].shape);
        expect_fail(dict, d, sizeof d, lies[i].want, lies[i].says);
    }
    /* malformed shapes */
    const char *bad_shapes[] = {"(-1, 6)", "(6)", "[6]", "(6 6)", "(6,,)", "(6L,)", "(0x6,)",
                                "(6.0,)", "( ,)", "(1,1,1,1,1,1,1,1,6)", "6", "(6,", ""};
    for (size_t i = 0; i < sizeof bad_shapes / sizeof bad_shapes[0]; i++) {
        snprintf(dict, sizeof dict, "{%s, 'shape': %s}", f8, bad_shapes[i]);
        expect_fail(dict, d, sizeof d, FM_ERR_FORMAT, NULL);
    }
}

static void test_bad_dicts(void **state)
{
    (void)state;
    double d[6] = {0};
    const char *dicts[] = {
        "{'descr': '>f8', 'fortran_order': False, 'shape': (6,)}",   /* big-endian */
        "{'descr': '<c16', 'fortran_order': False, 'shape': (3,)}",  /* complex */
        "{'descr': '|O', 'fortran_order': False, 'shape': (6,)}",    /* objects */
        "{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (6,)}", /* structured */
        "{'descr': '<f8', 'fortran_order': True, 'shape': (6,)}",
        "{'descr': '<f8', 'fortran_order': 0, 'shape': (6,)}",
        "{'descr': '<f8', 'fortran_order': False}",                  /* no shape */
        "{'descr': '<f8', 'shape': (6,)}",                            /* no fortran_order */
        "{'descr': '<f8', 'descr': '<f8', 'fortran_order': False, 'shape': (6,)}",
        "{'descr': '<f8', 'fortran_order': False, 'shape': (6,), 'extra': 1}",
        "{'descr': '<f8' 'fortran_order': False, 'shape': (6,)}",    /* missing comma */
        "{'descr': '<f8', 'fortran_order': False, 'shape': (6,)} x", /* text after */
        "{'descr': '<f\\x38', 'fortran_order': False, 'shape': (6,)}", /* escapes */
        "{'descr: '<f8', 'fortran_order': False, 'shape': (6,)}",
        "('descr', '<f8')",
        "{}",
        "",
    };
    for (size_t i = 0; i < sizeof dicts / sizeof dicts[0]; i++)
        expect_fail(dicts[i], d, sizeof d, FM_ERR_FORMAT, NULL);
    /* the message names an unsupported dtype */
    expect_fail(dicts[0], d, sizeof d, FM_ERR_FORMAT, ">f8");
    expect_fail(dicts[4], d, sizeof d, FM_ERR_FORMAT, "fortran_order");

    /* a bool byte other than 0/1 */
    uint8_t b[2] = {1, 2};
    expect_fail("{'descr': '|b1', 'fortran_order': False, 'shape': (2,)}", b, 2, FM_ERR_FORMAT,
                "bool");
}

static void test_bad_preamble(void **state)
{
    (void)state;
    double d[6] = {0};
    unsigned char buf[512], copy[512];
    size_t n = make_npy(buf, sizeof buf, "{'descr': '<f8', 'fortran_order': False, "
                        "'shape': (6,)}", d, sizeof d);
    fm_npy a;
    memcpy(copy, buf, n);
    copy[1] = 'X'; /* magic */
    assert_int_equal(parse(copy, n, &a), FM_ERR_FORMAT);
    memcpy(copy, buf, n);
    copy[6] = 3; /* version 3.0 (utf-8 headers) is not supported */
    EXPECT_FAIL(parse(copy, n, &a), FM_ERR_FORMAT, "3.0");
    memcpy(copy, buf, n);
    copy[8] = 0xff, copy[9] = 0xff; /* header length past the end */
    assert_int_equal(parse(copy, n, &a), FM_ERR_FORMAT);
    memcpy(copy, buf, n);
    copy[8] = 0, copy[9] = 0; /* empty header */
    assert_int_equal(parse(copy, n, &a), FM_ERR_FORMAT);
    memcpy(copy, buf, n);
    copy[10 + 3] = 0xc3; /* non-ASCII byte inside the header */
    EXPECT_FAIL(parse(copy, n, &a), FM_ERR_FORMAT, "ASCII");
    memcpy(copy, buf, n);
    copy[10 + 3] = '\0'; /* NUL inside the header */
    assert_int_equal(parse(copy, n, &a), FM_ERR_FORMAT);
    memcpy(copy, buf, n);
    unsigned hlen = buf[8] | (unsigned)buf[9] << 8;
    copy[10 + hlen - 1] = ' '; /* no final newline */
    assert_int_equal(parse(copy, n, &a), FM_ERR_FORMAT);
    assert_int_equal(fm_npy_parse(NULL, 0, "null.npy", &a), FM_ERR_FORMAT);
}

/* Random byte mutations of a valid file: any outcome but a crash; a success must describe
 * exactly the bytes present. Run under the sanitizers in CI. */
static void test_random_mutations(void **state)
{
    (void)state;
    int32_t x[12];
    for (int i = 0; i < 12; i++) x[i] = i;
    unsigned char buf[512], copy[512];
    size_t n = make_npy(buf, sizeof buf, "{'descr': '<i4', 'fortran_order': False, "
                        "'shape': (3, 4), }", x, sizeof x);
    fm_rng rng;
    fm_rng_seed(&rng, 12345);
    int accepted = 0;
    for (int trial = 0; trial < 20000; trial++) {
        memcpy(copy, buf, n);
        int flips = 1 + (int)fm_rng_below(&rng, 4);
        for (int k = 0; k < flips; k++) {
            size_t pos = fm_rng_below(&rng, n);
            /* mostly printable characters, so that the header parser is exercised deeply */
            copy[pos] = fm_rng_below(&rng, 4) ? (unsigned char)(32 + fm_rng_below(&rng, 95))
                                              : (unsigned char)fm_rng_below(&rng, 256);
        }
        size_t len = fm_rng_below(&rng, 8) ? n : fm_rng_below(&rng, n + 1);
        fm_npy a;
        if (fm_npy_parse(copy, len, "mutant.npy", &a) == FM_OK) {
            accepted++;
            assert_true(a.count * fm_npy_dtype_size(a.dtype) <= len);
            fm_npy_free(&a);
        } else {
            assert_null(a.data);
            assert_true(fm_last_error()[0] != '\0');
        }
    }
    print_message("random mutations: %d of 20000 still parse (mutated data bytes)\n", accepted);
    assert_true(accepted > 0); /* mutations of data bytes must still parse */
}

static void test_check_shape_message(void **state)
{
    (void)state;
    fm_npy a = {.dtype = FM_NPY_F8, .ndim = 4, .shape = {1, 2, 16, 8}};
    int64_t want[4] = {1, 2, 16, 16};
    EXPECT_FAIL(fm_npy_check_shape(&a, "q.npy", 4, want, "B,Hq,Sq,D"), FM_ERR_FORMAT, "q.npy");
    assert_non_null(strstr(fm_last_error(), "D: 8, expected 16"));
    int64_t want3[3] = {1, 2, 16};
    EXPECT_FAIL(fm_npy_check_shape(&a, "lse.npy", 3, want3, "B,Hq,Sq"),
                FM_ERR_FORMAT, "4 dimensions");
    int64_t any[4] = {1, 2, 16, -1};
    assert_int_equal(fm_npy_check_shape(&a, "mask.npy", 4, any, "B,Hm,Sk,C"), FM_OK);

    /* load_f64 refuses an integer file where floats are expected */
    char path[512];
    path_in_tmp(path, sizeof path, "ints.npy");
    int32_t ints[4] = {0};
    int64_t shape[1] = {4};
    double *x = NULL;
    assert_int_equal(fm_npy_write(path, FM_NPY_I4, 1, shape, ints), FM_OK);
    assert_int_equal(fm_npy_load_f64(path, 1, shape, "N", &x), FM_ERR_FORMAT);
    assert_null(x);
    assert_non_null(strstr(fm_last_error(), "<i4"));
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_headers),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_numpy_fixtures),
        cmocka_unit_test(test_truncated_and_oversized),
        cmocka_unit_test(test_lying_headers),
        cmocka_unit_test(test_bad_dicts),
        cmocka_unit_test(test_bad_preamble),
        cmocka_unit_test(test_random_mutations),
        cmocka_unit_test(test_check_shape_message),
    };
    return cmocka_run_group_tests(tests, fm_test_tmpdir_setup,
                                  fm_test_tmpdir_teardown);
}
