/* tests/robustness/test_files.c — hostile files at the io/ entry points (suite 'robustness',
 * docs/robustness.md): case directories with missing, truncated, mistyped, mis-shaped, lying or special
 * files (a FIFO, a directory, a device planted where a .npy belongs), NaN/Inf tensors, case.json
 * sizes that overflow or heads that do not divide, and result directories that cannot be
 * written. Each must be refused with the documented status and a message naming the file (and
 * the element, for NaN/Inf); nothing may block, and a refused save must leave nothing behind.
 * (The .npy grammar itself is covered byte by byte in tests/cli/test_npy.c and by fuzz_npy.)
 * Layer: tests over io/ (public API only).
 */
#include <dirent.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "flashmask.h"
#include "expect_fail.h"
#include "runs.h"
#include "test_fs.h"

static char root[256]; /* a fresh temporary directory for this run */
static char good[300]; /* a valid case directory inside it */

/* A copy of the good case under `name`, returned in out. */
static void copy_case(const char *name, char *out, size_t cap)
{
    fm_test_path(out, cap, root, name);
    fm_test_remove_tree(out);
    assert_int_equal(mkdir(out, 0777), 0);
    const char *files[] = {"case.json", "mask.npy", "q.npy",  "k.npy", "v.npy",
                           "do.npy",    "out.npy",  "lse.npy", "dq.npy", "dk.npy", "dv.npy"};
    for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
        char from[600], to[600];
        fm_test_path(from, sizeof from, good, files[f]);
        fm_test_path(to, sizeof to, out, files[f]);
        FILE *a = fopen(from, "rb"), *b = fopen(to, "wb");
        assert_non_null(a);
        assert_non_null(b);
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, a)) > 0) assert_int_equal(fwrite(buf, 1, n, b), n);
        fclose(a);
        fclose(b);
    }
}

/* B=1, Hq=2, Hk=1, Hm=1, Sq=5, Sk=6, D=4, causal bottom_right, float32, with expected outputs. */
static int make_good_case(void **state)
{
    (void)state;
    snprintf(root, sizeof root, "/tmp/fm-robust-files-XXXXXX");
    if (!mkdtemp(root)) return -1;
    fm_test_path(good, sizeof good, root, "good");
    fm_case c;
    fm_case_init(&c);
    fm_problem_init(&c.problem, 1, 2, 1, 5, 6, 4);
    if (fm_mask_params_default(&c.mask_params, FM_FAMILY_CAUSAL, 6) != FM_OK) return -1;
    if (fm_mask_build(&c.mask, &c.mask_params, 1, 1, 5, 6, FM_CAUSAL_BOTTOM_RIGHT) != FM_OK)
        return -1;
    c.has_params = 1;
    snprintf(c.mask_kind, sizeof c.mask_kind, "causal");
    size_t nq = fm_problem_q_elems(&c.problem), nkv = fm_problem_kv_elems(&c.problem);
    size_t nl = fm_problem_lse_elems(&c.problem);
    double **bufs[9] = {&c.q, &c.k, &c.v, &c.dout, &c.out, &c.lse, &c.dq, &c.dk, &c.dv};
    size_t sizes[9] = {nq, nkv, nkv, nq, nq, nl, nq, nkv, nkv};
    fm_rng rng;
    fm_rng_seed(&rng, 11);
    for (int t = 0; t < 9; t++) {
        *bufs[t] = calloc(sizes[t], sizeof(double));
        if (!*bufs[t]) return -1;
        if (t < 4)
            for (size_t i = 0; i < sizes[t]; i++)
                (*bufs[t])[i] = fm_round_to_dtype(fm_rng_normal(&rng), FM_FLOAT32);
    }
    fm_tensors t = {c.q, c.k, c.v, c.dout, c.out, c.lse, c.dq, c.dk, c.dv};
    if (fm_forward(FM_IMPL_REFERENCE, &c.problem, &c.mask, &t) != FM_OK) return -1;
    if (fm_backward(FM_IMPL_REFERENCE, &c.problem, &c.mask, &t) != FM_OK) return -1;
    fm_status st = fm_case_save(good, &c);
    fm_case_free(&c);
    return st == FM_OK ? 0 : -1;
}

static int remove_root(void **state)
{
    (void)state;
    fm_test_remove_tree(root);
    return 0;
}

/* Overwrites dir/name with a float32 tensor of the given shape filled with `fill`, element
 * `at` set to `special`. */
static void write_f32(const char *dir, const char *name, int ndim, const int64_t *shape,
                      size_t at, float special)
{
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    float *x = calloc(n, sizeof(float));
    assert_non_null(x);
    for (size_t i = 0; i < n; i++) x[i] = 0.5f;
    if (at < n) x[at] = special;
    char p[600];
    fm_test_path(p, sizeof p, dir, name);
    assert_int_equal(fm_npy_write(p, FM_NPY_F4, ndim, shape, x), FM_OK);
    free(x);
}

/* ------------------------------------------------------------ the good case loads */

static void test_good_case_loads(void **state)
{
    (void)state;
    fm_case c;
    assert_int_equal(fm_case_load(good, &c), FM_OK);
    assert_non_null(c.out);
    fm_case_free(&c);
}

/* ------------------------------------------------------------ missing things */

static void test_missing(void **state)
{
    (void)state;
    fm_case c;
    char dir[600], p[700];
    fm_test_path(dir, sizeof dir, root, "does-not-exist");
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_IO, "does-not-exist/case.json: cannot open");
    const char *required[] = {"case.json", "mask.npy", "q.npy", "k.npy", "v.npy", "do.npy"};
    for (size_t f = 0; f < sizeof required / sizeof required[0]; f++) {
        copy_case("missing", dir, sizeof dir);
        fm_test_path(p, sizeof p, dir, required[f]);
        assert_int_equal(remove(p), 0);
        char text[64];
        snprintf(text, sizeof text, "%s: cannot open", required[f]);
        EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_IO, text);
    }
    /* expected outputs are optional: a case without them loads */
    copy_case("no-expected", dir, sizeof dir);
    fm_test_path(p, sizeof p, dir, "dq.npy");
    assert_int_equal(remove(p), 0);
    /* ... when written so: removed from a case whose digest lists it, it is refused */
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "dq.npy was removed after the case was");
    /* a case without a digest (written before digests) loads without its expected outputs */
    assert_int_equal(fm_test_unseal(dir), 0);
    assert_int_equal(fm_case_load(dir, &c), FM_OK);
    assert_null(c.dq);
    assert_null(c.dk);
    assert_non_null(c.q);
    fm_case_free(&c);
    /* results: a directory with none of the five files */
    fm_problem p5 = fm_test_problem(1, 2, 1, 5, 6, 4);
    fm_results r;
    fm_test_path(dir, sizeof dir, root, "empty-results");
    assert_int_equal(mkdir(dir, 0777), 0);
    EXPECT_FAIL(fm_results_load(dir, &p5, &r), FM_ERR_IO, "none of out.npy");
}

/* ------------------------------------------------------------ special files */

/* A FIFO where a file belongs used to block the reader forever (open(2) waits for a writer);
 * a directory or a device must be refused as well. */
static void test_special_files(void **state)
{
    (void)state;
    fm_case c;
    fm_npy a;
    char dir[600], p[700];
    const char *targets[] = {"case.json", "mask.npy", "q.npy", "lse.npy"};
    for (size_t f = 0; f < sizeof targets / sizeof targets[0]; f++) {
        copy_case("fifo", dir, sizeof dir);
        fm_test_path(p, sizeof p, dir, targets[f]);
        assert_int_equal(remove(p), 0);
        assert_int_equal(mkfifo(p, 0600), 0);
        char text[64];
        snprintf(text, sizeof text, "%s: not a regular file", targets[f]);
        EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_IO, text);

        copy_case("subdir", dir, sizeof dir);
        fm_test_path(p, sizeof p, dir, targets[f]);
        assert_int_equal(remove(p), 0);
        assert_int_equal(mkdir(p, 0777), 0);
        EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_IO, text);

        copy_case("device", dir, sizeof dir);
        fm_test_path(p, sizeof p, dir, targets[f]);
        assert_int_equal(remove(p), 0);
        assert_int_equal(symlink("/dev/zero", p), 0); /* endless bytes: must not be read */
        EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_IO, text);
    }
    EXPECT_FAIL(fm_npy_read("/dev/null", &a), FM_ERR_IO, "not a regular file");
    EXPECT_FAIL(fm_npy_read(root, &a), FM_ERR_IO, "not a regular file");
}

/* ------------------------------------------------------------ truncated and lying files */

static void test_truncated_and_lying(void **state)
{
    (void)state;
    fm_case c;
    char dir[600], p[700];
    /* every input truncated by one byte */
    const char *inputs[] = {"mask.npy", "q.npy", "k.npy", "v.npy", "do.npy", "out.npy"};
    for (size_t f = 0; f < sizeof inputs / sizeof inputs[0]; f++) {
        copy_case("trunc", dir, sizeof dir);
        fm_test_path(p, sizeof p, dir, inputs[f]);
        struct stat sb;
        assert_int_equal(stat(p, &sb), 0);
        assert_int_equal(truncate(p, sb.st_size - 1), 0);
        char text[64];
        snprintf(text, sizeof text, "%s: truncated", inputs[f]);
        EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, text);
    }
    /* trailing bytes after the data */
    copy_case("trailing", dir, sizeof dir);
    fm_test_path(p, sizeof p, dir, "k.npy");
    FILE *f = fopen(p, "ab");
    assert_non_null(f);
    fputs("junk", f);
    fclose(f);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "k.npy: trailing bytes");
    /* a header that promises a huge shape over a tiny file (the reader must not allocate it) */
    copy_case("lying", dir, sizeof dir);
    fm_test_path(p, sizeof p, dir, "v.npy");
    f = fopen(p, "wb");
    assert_non_null(f);
    const char header[] = "{'descr': '<f8', 'fortran_order': False, "
                          "'shape': (1000000000, 1000000000), }";
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0,
                             (unsigned char)(sizeof header), 0};
    fwrite(pre, 1, 10, f);
    fwrite(header, 1, sizeof header - 1, f);
    fputc('\n', f);
    fputs("12345678", f);
    fclose(f);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "v.npy");
    /* case.json cut in the middle */
    copy_case("json-cut", dir, sizeof dir);
    fm_test_path(p, sizeof p, dir, "case.json");
    assert_int_equal(truncate(p, 40), 0);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "case.json: invalid JSON");
    /* an empty case.json */
    assert_int_equal(truncate(p, 0), 0);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "case.json");
}

/* ------------------------------------------------------------ wrong dtype and shape */

static void test_wrong_dtype_and_shape(void **state)
{
    (void)state;
    fm_case c;
    char dir[600], p[700];
    /* q as int32 */
    copy_case("dtype", dir, sizeof dir);
    fm_test_path(p, sizeof p, dir, "q.npy");
    int32_t qi[1 * 2 * 5 * 4] = {0};
    int64_t qshape[4] = {1, 2, 5, 4};
    assert_int_equal(fm_npy_write(p, FM_NPY_I4, 4, qshape, qi), FM_OK);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "q.npy: dtype <i4, expected a float");
    /* mask as float32 */
    copy_case("mask-dtype", dir, sizeof dir);
    int64_t mshape[4] = {1, 1, 6, 4};
    write_f32(dir, "mask.npy", 4, mshape, 0, 0.0f);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "mask.npy: dtype <f4, expected <i4");
    /* k with Sk = 7 instead of 6 */
    copy_case("shape", dir, sizeof dir);
    int64_t kshape[4] = {1, 1, 7, 4};
    write_f32(dir, "k.npy", 4, kshape, 99, 0.0f);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "(Sk: 7, expected 6)");
    /* do.npy with three dimensions */
    copy_case("ndim", dir, sizeof dir);
    int64_t d3[3] = {2, 5, 4};
    write_f32(dir, "do.npy", 3, d3, 99, 0.0f);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "do.npy: shape (2, 5, 4) has 3 dimensions");
    /* mask with C = 3 */
    copy_case("mask-c3", dir, sizeof dir);
    fm_test_path(p, sizeof p, dir, "mask.npy");
    int32_t m3[6 * 3] = {0};
    int64_t m3shape[4] = {1, 1, 6, 3};
    assert_int_equal(fm_npy_write(p, FM_NPY_I4, 4, m3shape, m3), FM_OK);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "C = 3");
    /* a mask bound outside [0, Sq] */
    copy_case("mask-bound", dir, sizeof dir);
    int32_t mb[6 * 4];
    for (int j = 0; j < 6; j++)
        mb[j * 4] = 5, mb[j * 4 + 1] = 5, mb[j * 4 + 2] = 0, mb[j * 4 + 3] = 0;
    mb[2 * 4 + 1] = 6; /* column 2: LTE = 6 > Sq = 5 */
    assert_int_equal(fm_npy_write(p, FM_NPY_I4, 4, mshape, mb), FM_OK);
    fm_test_path(p, sizeof p, dir, "mask.npy");
    assert_int_equal(fm_npy_write(p, FM_NPY_I4, 4, mshape, mb), FM_OK);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_INVALID, "column=2: bound LTE = 6");
}

/* ------------------------------------------------------------ loading for a run */

/* fm_case_load_inputs (what `run` loads): the inputs only, as float32 when asked, with the same
 * checks; the digest is verified for what it reads (a changed input is refused), and the
 * expected outputs, which it does not read, are checked for presence only. */
static void test_load_inputs(void **state)
{
    (void)state;
    fm_case c, full;
    fm_case_inputs32 in;
    char dir[600], p[700];
    assert_int_equal(fm_case_load(good, &full), FM_OK);
    assert_int_equal(fm_case_load_inputs(good, &c, &in), FM_OK);
    assert_null(c.q);
    assert_null(c.out);
    assert_null(c.dq);
    const size_t nq = fm_problem_q_elems(&c.problem), nkv = fm_problem_kv_elems(&c.problem);
    for (size_t i = 0; i < nq; i++) {
        assert_true((double)in.q[i] == full.q[i]);
        assert_true((double)in.dout[i] == full.dout[i]);
    }
    for (size_t i = 0; i < nkv; i++) {
        assert_true((double)in.k[i] == full.k[i]);
        assert_true((double)in.v[i] == full.v[i]);
    }
    fm_case_inputs32_free(&in);
    fm_case_free(&c);
    /* without in32: the float64 inputs, still no expected outputs */
    assert_int_equal(fm_case_load_inputs(good, &c, NULL), FM_OK);
    assert_non_null(c.v);
    assert_null(c.lse);
    for (size_t i = 0; i < nkv; i++) assert_true(c.v[i] == full.v[i]);
    fm_case_free(&c);
    fm_case_free(&full);

    /* a changed input is refused, and so is NaN in it (named before the digest) */
    int64_t kshape[4] = {1, 1, 6, 4};
    copy_case("inputs-k", dir, sizeof dir);
    write_f32(dir, "k.npy", 4, kshape, 3, 0.25f);
    EXPECT_FAIL(fm_case_load_inputs(dir, &c, &in), FM_ERR_FORMAT,
                "k.npy changed after the case was written");
    assert_null(in.q); /* nothing handed back on refusal */
    write_f32(dir, "k.npy", 4, kshape, 3, NAN);
    EXPECT_FAIL(fm_case_load_inputs(dir, &c, &in), FM_ERR_NONFINITE, "k.npy: element 3 is nan");
    /* an expected output changed: not read here, so accepted (check refuses it) */
    int64_t qshape[4] = {1, 2, 5, 4};
    copy_case("inputs-out", dir, sizeof dir);
    write_f32(dir, "out.npy", 4, qshape, 1, 0.125f);
    assert_int_equal(fm_case_load_inputs(dir, &c, &in), FM_OK);
    fm_case_inputs32_free(&in);
    fm_case_free(&c);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "out.npy changed after the case was");
    /* ... but one removed is still refused: the digest's list of files is checked */
    fm_test_path(p, sizeof p, dir, "dv.npy");
    assert_int_equal(remove(p), 0);
    EXPECT_FAIL(fm_case_load_inputs(dir, &c, &in), FM_ERR_FORMAT, "dv.npy was removed");
    /* inputs must be values of the case's dtype on the float32 path too: the same case
     * declared float16 (0.5 is a float16 value, 0.1f is not) */
    copy_case("inputs-round", dir, sizeof dir);
    assert_int_equal(fm_test_unseal(dir), 0);
    fm_test_path(p, sizeof p, dir, "case.json");
    char *json = NULL;
    size_t size = 0;
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    size = (size_t)ftell(f);
    rewind(f);
    json = calloc(size + 1, 1);
    assert_non_null(json);
    assert_int_equal(fread(json, 1, size, f), size);
    fclose(f);
    char *at = strstr(json, "\"float32\"");
    assert_non_null(at);
    memcpy(at, "\"float16\"", 9);
    f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(json, 1, size, f), size);
    fclose(f);
    free(json);
    const char *inputs[4] = {"q.npy", "k.npy", "v.npy", "do.npy"};
    for (int t = 0; t < 4; t++) write_f32(dir, inputs[t], 4, t == 1 || t == 2 ? kshape : qshape,
                                          99, 0.5f);
    assert_int_equal(fm_case_load_inputs(dir, &c, &in), FM_OK);
    fm_case_inputs32_free(&in);
    fm_case_free(&c);
    write_f32(dir, "v.npy", 4, kshape, 5, 0.1f);
    EXPECT_FAIL(fm_case_load_inputs(dir, &c, &in), FM_ERR_FORMAT,
                "v.npy: element 5 = 0.10000000149011612 is not a float16 value");
}

/* ------------------------------------------------------------ NaN and Inf */

/* Documented behaviour: inputs (q, k, v, do) must be finite (FM_ERR_NONFINITE, naming the file
 * and the flat element index); expected outputs must be finite except lse, which may be -inf
 * (fully masked rows) but not +inf or NaN. A candidate's results are NOT checked on load: NaN
 * there is a failed check (exit 1), not invalid input. */
static void test_nonfinite(void **state)
{
    (void)state;
    fm_case c;
    char dir[600];
    int64_t qshape[4] = {1, 2, 5, 4}, kshape[4] = {1, 1, 6, 4}, lshape[3] = {1, 2, 5};
    struct {
        const char *file;
        const int64_t *shape;
        int ndim;
        float value;
        const char *text;
    } cases[] = {
        {"q.npy", qshape, 4, NAN, "q.npy: element 7 is nan"},
        {"k.npy", kshape, 4, INFINITY, "k.npy: element 7 is inf"},
        {"v.npy", kshape, 4, -INFINITY, "v.npy: element 7 is -inf"},
        {"do.npy", qshape, 4, NAN, "do.npy: element 7 is nan"},
        {"out.npy", qshape, 4, INFINITY, "out.npy: element 7 is inf"},
        {"lse.npy", lshape, 3, INFINITY, "lse.npy: element 7 is inf"},
        {"lse.npy", lshape, 3, NAN, "lse.npy: element 7 is nan"},
        {"dk.npy", kshape, 4, NAN, "dk.npy: element 7 is nan"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        copy_case("nonfinite", dir, sizeof dir);
        write_f32(dir, cases[i].file, cases[i].ndim, cases[i].shape, 7, cases[i].value);
        EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_NONFINITE, cases[i].text);
    }
    /* -inf in the expected lse is a fully masked row: accepted */
    copy_case("neg-inf-lse", dir, sizeof dir);
    write_f32(dir, "lse.npy", 3, lshape, 7, -INFINITY);
    EXPECT_FAIL(fm_case_load(dir, &c), FM_ERR_FORMAT, "lse.npy changed after the case was written");
    assert_int_equal(fm_test_unseal(dir), 0);
    assert_int_equal(fm_case_load(dir, &c), FM_OK);
    fm_case_free(&c);
    /* a candidate's results load with NaN (the checker reports it as a failure) */
    fm_problem p = fm_test_problem(1, 2, 1, 5, 6, 4);
    fm_results r;
    copy_case("cand-nan", dir, sizeof dir);
    write_f32(dir, "out.npy", 4, qshape, 3, NAN);
    assert_int_equal(fm_results_load(dir, &p, &r), FM_OK);
    assert_true(isnan(r.out[3]));
    fm_results_free(&r);
}

/* ------------------------------------------------------------ case.json sizes */

static fm_status load_with_json(const char *name, const char *json)
{
    char dir[600], p[700];
    copy_case(name, dir, sizeof dir);
    fm_test_path(p, sizeof p, dir, "case.json");
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
    fm_case c;
    fm_status st = fm_case_load(dir, &c);
    if (st == FM_OK) fm_case_free(&c);
    return st;
}

#define CASE_JSON(B, HQ, HK, HM, SQ, SK, D)                                                  \
    "{\"format\": \"flashmask-case\", \"version\": 1, \"batch\": " B ", \"q_heads\": " HQ   \
    ", \"kv_heads\": " HK ", \"mask_heads\": " HM ", \"seqlen_q\": " SQ ", \"seqlen_k\": " SK \
    ", \"head_dim\": " D ", \"scale\": 0.5, \"causal\": \"bottom_right\", \"dtype\": "      \
    "\"float32\", \"mask_kind\": \"custom\", \"mask_params\": {}, \"seed\": 0}"

static void test_case_json_sizes(void **state)
{
    (void)state;
    /* the good case's sizes pass */
    assert_int_equal(load_with_json("json-ok", CASE_JSON("1", "2", "1", "1", "5", "6", "4")),
                     FM_OK);
    /* heads that do not divide */
    EXPECT_FAIL(load_with_json("json-kv", CASE_JSON("1", "2", "3", "1", "5", "6", "4")),
                FM_ERR_INVALID, "kv_heads = 3 does not divide q_heads = 2");
    /* sizes far beyond the files: refused by a size check or the first shape check, never an
     * allocation of the claimed size */
    EXPECT_FAIL(load_with_json("json-huge",
                               CASE_JSON("1", "2", "1", "1", "5", "9007199254740992", "4")),
                FM_ERR_FORMAT, "(Sk: 6, expected 9007199254740992)");
    EXPECT_FAIL(load_with_json("json-prod", CASE_JSON("4194304", "4194304", "1", "1", "5", "6",
                                                      "4194304")),
                FM_ERR_FORMAT, "mask.npy");
    /* not integers / out of range */
    EXPECT_FAIL(load_with_json("json-neg", CASE_JSON("1", "2", "1", "1", "-5", "6", "4")),
                FM_ERR_FORMAT, "seqlen_q");
    EXPECT_FAIL(load_with_json("json-frac", CASE_JSON("1", "2", "1", "1", "5", "6", "4.5")),
                FM_ERR_FORMAT, "head_dim");
    EXPECT_FAIL(load_with_json("json-big", CASE_JSON("1", "2", "1", "1", "5", "6", "1e300")),
                FM_ERR_FORMAT, "head_dim");
    EXPECT_FAIL(load_with_json("json-zero", CASE_JSON("0", "2", "1", "1", "5", "6", "4")),
                FM_ERR_FORMAT, "batch");
    EXPECT_FAIL(load_with_json("json-str", CASE_JSON("\"1\"", "2", "1", "1", "5", "6", "4")),
                FM_ERR_FORMAT, "batch");
}

/* ------------------------------------------------------------ unwritable outputs */

static void test_unwritable_outputs(void **state)
{
    (void)state;
    fm_case c;
    assert_int_equal(fm_case_load(good, &c), FM_OK);
    fm_results r = {c.out, c.lse, c.dq, c.dk, c.dv};
    char out[600], file[600];
    /* target exists as a regular file */
    fm_test_path(file, sizeof file, root, "a-file");
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    fclose(f);
    EXPECT_FAIL(fm_results_save(file, &c.problem, &r), FM_ERR_IO, "already exists");
    EXPECT_FAIL(fm_case_save(file, &c), FM_ERR_IO, "already exists");
    /* target exists as a non-empty directory (the good case itself) */
    EXPECT_FAIL(fm_results_save(good, &c.problem, &r), FM_ERR_IO, "already exists");
    /* parent is a regular file: cannot create anything there */
    fm_test_path(out, sizeof out, file, "results");
    EXPECT_FAIL(fm_results_save(out, &c.problem, &r), FM_ERR_IO, "cannot create");
    /* a read-only file system */
    EXPECT_FAIL(fm_results_save("/proc/fm-robustness-results", &c.problem, &r), FM_ERR_IO,
                "cannot create");
    /* empty path, '.', '/' */
    EXPECT_FAIL(fm_results_save("", &c.problem, &r), FM_ERR_INVALID, "empty path");
    EXPECT_FAIL(fm_results_save(".", &c.problem, &r), FM_ERR_INVALID, "name a new directory");
    EXPECT_FAIL(fm_results_save("/", &c.problem, &r), FM_ERR_INVALID, "name a new directory");
    /* nothing was left behind in root: good, the file, earlier test dirs, no .tmp- */
    DIR *d = opendir(root);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) assert_null(strstr(e->d_name, ".tmp-"));
    closedir(d);
    assert_true(fm_test_count_entries(good) == 11);
    /* an empty directory as target is fine and gets the results */
    fm_test_path(out, sizeof out, root, "empty-target");
    assert_int_equal(mkdir(out, 0777), 0);
    assert_int_equal(fm_results_save(out, &c.problem, &r), FM_OK);
    assert_int_equal(fm_test_count_entries(out), 5);
    fm_case_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_case_loads),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_special_files),
        cmocka_unit_test(test_truncated_and_lying),
        cmocka_unit_test(test_wrong_dtype_and_shape),
        cmocka_unit_test(test_nonfinite),
        cmocka_unit_test(test_load_inputs),
        cmocka_unit_test(test_case_json_sizes),
        cmocka_unit_test(test_unwritable_outputs),
    };
    return cmocka_run_group_tests_name("robustness-files", tests, make_good_case, remove_root);
}
