/* tests/cli/test_case.c — case directories (io/case.c, docs/spec.md §6) and mask parameters as JSON
 * (io/params_json.c), suite 'cli': save/load round trips, Paddle's [B,Hm,Sk,C] masks, every
 * family's parameters through JSON and --param overrides, and hostile cases — case.json with
 * missing, unknown, repeated or mistyped keys, mismatched or truncated tensors, inputs not
 * rounded to the case's dtype, NaN — each refused with a message naming the file and field.
 * Also: results appear atomically and a refused save leaves nothing behind. Layer: tests of io.
 */
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
#include "prop.h"
#include "test_fs.h"

static void tmp_path(char *out, size_t cap, const char *name)
{
    fm_test_path(out, cap, fm_test_tmpdir, name);
}

/* A small case of family f with reference outputs, in memory. */
static void make_case(fm_case *c, fm_family f, fm_dtype dtype, int64_t sq, int64_t sk)
{
    fm_case_init(c);
    assert_int_equal(fm_mask_params_default(&c->mask_params, f, sk), FM_OK);
    assert_int_equal(fm_mask_build(&c->mask, &c->mask_params, 2, 2, sq, sk,
                                   FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    c->has_params = 1;
    snprintf(c->mask_kind, sizeof c->mask_kind, "%s", fm_family_name(f));
    c->seed = 7;
    fm_problem_init(&c->problem, 2, 4, 2, sq, sk, 8);
    c->problem.dtype = dtype;
    fm_problem *p = &c->problem;
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    c->q = calloc(nq, 8), c->k = calloc(nkv, 8), c->v = calloc(nkv, 8), c->dout = calloc(nq, 8);
    c->out = calloc(nq, 8), c->lse = calloc(fm_problem_lse_elems(p), 8);
    c->dq = calloc(nq, 8), c->dk = calloc(nkv, 8), c->dv = calloc(nkv, 8);
    fm_rng rng;
    fm_rng_seed(&rng, 99);
    for (size_t i = 0; i < nq; i++) c->q[i] = fm_round_to_dtype(fm_rng_normal(&rng), dtype);
    for (size_t i = 0; i < nkv; i++) c->k[i] = fm_round_to_dtype(fm_rng_normal(&rng), dtype);
    for (size_t i = 0; i < nkv; i++) c->v[i] = fm_round_to_dtype(fm_rng_normal(&rng), dtype);
    for (size_t i = 0; i < nq; i++) c->dout[i] = fm_round_to_dtype(fm_rng_normal(&rng), dtype);
    fm_tensors t = {c->q, c->k, c->v, c->dout, c->out, c->lse, c->dq, c->dk, c->dv};
    assert_int_equal(fm_forward(FM_IMPL_REFERENCE, p, &c->mask, &t), FM_OK);
    assert_int_equal(fm_backward(FM_IMPL_REFERENCE, p, &c->mask, &t), FM_OK);
}

static void assert_same_doubles(const double *a, const double *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == b[i] || (isinf(a[i]) && a[i] == b[i])))
            fail_msg("element %zu: %.17g != %.17g", i, a[i], b[i]);
}

static void assert_cases_equal(const fm_case *a, const fm_case *b)
{
    const fm_problem *p = &a->problem;
    assert_int_equal(p->batch, b->problem.batch);
    assert_int_equal(p->q_heads, b->problem.q_heads);
    assert_int_equal(p->kv_heads, b->problem.kv_heads);
    assert_int_equal(p->seqlen_q, b->problem.seqlen_q);
    assert_int_equal(p->seqlen_k, b->problem.seqlen_k);
    assert_int_equal(p->head_dim, b->problem.head_dim);
    assert_true(p->scale == b->problem.scale);
    assert_int_equal(p->dtype, b->problem.dtype);
    assert_int_equal(a->mask.heads, b->mask.heads);
    assert_int_equal(a->mask.causal, b->mask.causal);
    assert_memory_equal(a->mask.bounds, b->mask.bounds,
                        (size_t)(a->mask.batch * a->mask.heads * a->mask.seqlen_k * 4) * 4);
    assert_string_equal(a->mask_kind, b->mask_kind);
    assert_int_equal(a->seed, b->seed);
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    assert_same_doubles(a->q, b->q, nq);
    assert_same_doubles(a->k, b->k, nkv);
    assert_same_doubles(a->v, b->v, nkv);
    assert_same_doubles(a->dout, b->dout, nq);
    assert_same_doubles(a->out, b->out, nq);
    assert_same_doubles(a->lse, b->lse, fm_problem_lse_elems(p));
    assert_same_doubles(a->dq, b->dq, nq);
    assert_same_doubles(a->dk, b->dk, nkv);
    assert_same_doubles(a->dv, b->dv, nkv);
}

/* ---------------------------------------------------------------- round trips */

static void test_case_round_trip_every_family(void **state)
{
    (void)state;
    char dir[512];
    tmp_path(dir, sizeof dir, "rt");
    fm_dtype dtypes[4] = {FM_FLOAT64, FM_FLOAT32, FM_FLOAT16, FM_BFLOAT16};
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        fm_case a, b;
        make_case(&a, (fm_family)f, dtypes[f % 4], f % 3 ? 24 : 17, 24);
        fm_status st = fm_case_save(dir, &a);
        if (st != FM_OK) fail_msg("%s: save: %s", fm_family_name((fm_family)f), fm_last_error());
        st = fm_case_load(dir, &b);
        if (st != FM_OK) fail_msg("%s: load: %s", fm_family_name((fm_family)f), fm_last_error());
        assert_cases_equal(&a, &b);
        /* the parameters came back through JSON */
        char *ja, *jb;
        assert_int_equal(b.has_params, 1);
        assert_int_equal(fm_mask_params_to_json(&a.mask_params, &ja), FM_OK);
        assert_int_equal(fm_mask_params_to_json(&b.mask_params, &jb), FM_OK);
        assert_string_equal(ja, jb);
        free(ja), free(jb);
        fm_case_free(&a);
        fm_case_free(&b);
        fm_test_remove_tree(dir);
    }
    assert_int_equal(fm_test_count_entries(fm_test_tmpdir), 0);
}

static void test_results_round_trip(void **state)
{
    (void)state;
    fm_case c;
    make_case(&c, FM_FAMILY_CAUSAL_DOCUMENT, FM_FLOAT32, 16, 16);
    char dir[512];
    tmp_path(dir, sizeof dir, "results");
    fm_results r = {c.out, c.lse, c.dq, c.dk, c.dv}, back;
    assert_int_equal(fm_results_save(dir, &c.problem, &r), FM_OK);
    assert_int_equal(fm_results_load(dir, &c.problem, &back), FM_OK);
    assert_same_doubles(back.out, c.out, fm_problem_q_elems(&c.problem));
    assert_same_doubles(back.lse, c.lse, fm_problem_lse_elems(&c.problem));
    fm_results_free(&back);
    /* a second save onto the non-empty directory is refused and changes nothing */
    EXPECT_FAIL(fm_results_save(dir, &c.problem, &r), FM_ERR_IO, "already exists");
    assert_int_equal(fm_test_count_entries(dir), 5);
    assert_int_equal(fm_test_count_entries(fm_test_tmpdir), 1);
    fm_test_remove_tree(dir);
    /* an existing empty directory is replaced */
    mkdir(dir, 0755);
    assert_int_equal(fm_results_save(dir, &c.problem, &r), FM_OK);
    assert_int_equal(fm_test_count_entries(dir), 5);
    fm_test_remove_tree(dir);
    /* a directory without results is refused */
    mkdir(dir, 0755);
    assert_int_equal(fm_results_load(dir, &c.problem, &back), FM_ERR_IO);
    rmdir(dir);
    fm_case_free(&c);
}

/* float32 results (fm_results_save_f32) come back through fm_results_load as the same values,
 * and a directory that exists and is not empty is refused. */
static void test_results_f32_round_trip(void **state)
{
    (void)state;
    fm_case c;
    make_case(&c, FM_FAMILY_CAUSAL_DOCUMENT, FM_FLOAT32, 16, 16);
    const size_t nq = fm_problem_q_elems(&c.problem), nl = fm_problem_lse_elems(&c.problem);
    const size_t nkv = fm_problem_kv_elems(&c.problem);
    float *x[5] = {malloc(nq * sizeof(float)), malloc(nl * sizeof(float)),
                   malloc(nq * sizeof(float)), malloc(nkv * sizeof(float)),
                   malloc(nkv * sizeof(float))};
    const double *src[5] = {c.out, c.lse, c.dq, c.dk, c.dv};
    const size_t n[5] = {nq, nl, nq, nkv, nkv};
    for (int t = 0; t < 5; t++) {
        assert_non_null(x[t]);
        for (size_t i = 0; i < n[t]; i++) x[t][i] = (float)src[t][i];
    }
    char dir[512];
    tmp_path(dir, sizeof dir, "results32");
    fm_results32 r = {x[0], x[1], x[2], x[3], x[4]};
    fm_results back;
    assert_int_equal(fm_results_save_f32(dir, &c.problem, &r), FM_OK);
    assert_int_equal(fm_test_count_entries(dir), 5);
    assert_int_equal(fm_results_load(dir, &c.problem, &back), FM_OK);
    double *got[5] = {back.out, back.lse, back.dq, back.dk, back.dv};
    for (int t = 0; t < 5; t++)
        for (size_t i = 0; i < n[t]; i++) assert_true(got[t][i] == (double)x[t][i]);
    fm_results_free(&back);
    EXPECT_FAIL(fm_results_save_f32(dir, &c.problem, &r), FM_ERR_IO, "already exists");
    EXPECT_FAIL(fm_results_save_f32(dir, NULL, &r), FM_ERR_INVALID, "NULL");
    fm_test_remove_tree(dir);
    assert_int_equal(fm_test_count_entries(fm_test_tmpdir), 0);
    for (int t = 0; t < 5; t++) free(x[t]);
    fm_case_free(&c);
}

/* Paddle's startend_row_indices [B,Hm,Sk,C], C in {1,2}, read with the case's causal flag,
 * give the same mask as the native [B,Hm,Sk,4]. */
static void test_paddle_mask_columns(void **state)
{
    (void)state;
    struct {
        fm_family f;
        int columns;
    } cases[] = {{FM_FAMILY_CAUSAL_DOCUMENT, 1}, {FM_FAMILY_SLIDING_WINDOW, 1},
                 {FM_FAMILY_CAUSAL_BLOCKWISE, 2}, {FM_FAMILY_PREFIX_LM_CAUSAL, 2},
                 {FM_FAMILY_DOCUMENT, 4}};
    char dir[512], mask_path[600];
    tmp_path(dir, sizeof dir, "paddle");
    snprintf(mask_path, sizeof mask_path, "%s/mask.npy", dir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fm_case a, b;
        make_case(&a, cases[i].f, FM_FLOAT32, 32, 32);
        assert_int_equal(fm_case_save(dir, &a), FM_OK);
        const fm_mask *m = &a.mask;
        size_t cols = (size_t)(m->batch * m->heads * m->seqlen_k);
        int32_t *se = calloc(cols * (size_t)cases[i].columns, sizeof(int32_t));
        fm_status st = fm_mask_to_startend(m, cases[i].columns, se);
        if (st != FM_OK) fail_msg("%s: to_startend: %s", fm_family_name(cases[i].f),
                                  fm_last_error());
        int64_t shape[4] = {m->batch, m->heads, m->seqlen_k, cases[i].columns};
        assert_int_equal(fm_npy_write(mask_path, FM_NPY_I4, 4, shape, se), FM_OK);
        free(se);
        /* the same mask in another file form is still a changed file (C < 4): the digest
         * would refuse it; this test is about the forms, so the digest goes */
        assert_int_equal(fm_test_unseal(dir), 0);
        st = fm_case_load(dir, &b);
        if (st != FM_OK) fail_msg("%s C=%d: %s", fm_family_name(cases[i].f), cases[i].columns,
                                  fm_last_error());
        /* the same mask element by element (the canonical forms may differ) */
        size_t n = (size_t)(m->batch * m->heads * m->seqlen_q * m->seqlen_k);
        uint8_t *da = malloc(n), *db = malloc(n);
        assert_int_equal(fm_mask_to_dense(&a.mask, da), FM_OK);
        assert_int_equal(fm_mask_to_dense(&b.mask, db), FM_OK);
        assert_memory_equal(da, db, n);
        free(da), free(db);
        /* C = 3 is not a Paddle form */
        int32_t three[2 * 2 * 32 * 3] = {0};
        int64_t shape3[4] = {2, 2, 32, 3};
        fm_case_free(&b);
        assert_int_equal(fm_npy_write(mask_path, FM_NPY_I4, 4, shape3, three), FM_OK);
        EXPECT_FAIL(fm_case_load(dir, &b), FM_ERR_FORMAT, "C = 3");
        fm_case_free(&a);
        fm_test_remove_tree(dir);
    }
}

/* ---------------------------------------------------------------- parameters as JSON */

static void test_params_json(void **state)
{
    (void)state;
    for (int f = 0; f < FM_FAMILY_COUNT; f++) {
        fm_mask_params p, q;
        char *json;
        assert_int_equal(fm_mask_params_default(&p, (fm_family)f, 100), FM_OK);
        assert_int_equal(fm_mask_params_to_json(&p, &json), FM_OK);
        fm_status st = fm_mask_params_from_json(&q, (fm_family)f, json, "test");
        if (st != FM_OK) fail_msg("%s: %s: %s", fm_family_name((fm_family)f), json,
                                  fm_last_error());
        char *again;
        assert_int_equal(fm_mask_params_to_json(&q, &again), FM_OK);
        assert_string_equal(json, again);
        free(json), free(again);
        fm_mask_params_free(&p), fm_mask_params_free(&q);
    }
    fm_mask_params p;
    const struct {
        fm_family f;
        const char *json, *needle;
    } bad[] = {
        {FM_FAMILY_SLIDING_WINDOW, "{}", "needs 'window'"},
        {FM_FAMILY_SLIDING_WINDOW, "{\"window\": 4, \"prefix\": 2}", "'prefix' is not"},
        {FM_FAMILY_SLIDING_WINDOW, "{\"window\": 4, \"window\": 5}", "twice"},
        {FM_FAMILY_SLIDING_WINDOW, "{\"window\": -4}", "[0, 2^53]"},
        {FM_FAMILY_SLIDING_WINDOW, "{\"window\": 4.5}", "4.5"},
        {FM_FAMILY_SLIDING_WINDOW, "{\"window\": \"4\"}", "not a number"},
        {FM_FAMILY_SLIDING_WINDOW, "{\"window\": 1e300}", "[0, 2^53]"},
        {FM_FAMILY_CAUSAL_DOCUMENT, "{\"doc_lens\": 4}", "not a list"},
        {FM_FAMILY_CAUSAL_DOCUMENT, "{\"doc_lens\": [4, null]}", "doc_lens[1]"},
        {FM_FAMILY_PREFIX_LM_DOCUMENT, "{\"doc_lens\": [4, 4], \"doc_prefix\": [1]}",
         "same length"},
        {FM_FAMILY_QK_SPARSE, "{\"span_offset\": [1], \"span_len\": [1, 2]}", "same length"},
        {FM_FAMILY_FULL, "{\"window\": 1}", "(none)"},
        {FM_FAMILY_FULL, "[]", "not a JSON object"},
        {FM_FAMILY_FULL, "{", "invalid JSON"},
        {FM_FAMILY_FULL, "{} x", "invalid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fm_status st = fm_mask_params_from_json(&p, bad[i].f, bad[i].json, "test");
        if (st == FM_OK || !strstr(fm_last_error(), bad[i].needle))
            fail_msg("%s %s: status %d, message '%s' (want '%s')", fm_family_name(bad[i].f),
                     bad[i].json, st, fm_last_error(), bad[i].needle);
        assert_null(p.doc_lens);
    }
}

static void test_params_apply(void **state)
{
    (void)state;
    fm_mask_params p;
    assert_int_equal(fm_mask_params_default(&p, FM_FAMILY_PREFIX_LM_DOCUMENT, 10), FM_OK);
    /* both lists of a shared length change together */
    const char *both[2] = {"doc_prefix=2,2,2", "doc_lens=2,3,5"};
    assert_int_equal(fm_mask_params_apply(&p, 2, both), FM_OK);
    assert_int_equal(p.n_docs, 3);
    assert_int_equal(p.doc_lens[2], 5);
    assert_int_equal(p.doc_prefix[0], 2);
    /* one alone with a new length is refused, and p is unchanged */
    const char *one[1] = {"doc_lens=5,5"};
    EXPECT_FAIL(fm_mask_params_apply(&p, 1, one), FM_ERR_FORMAT, "same length");
    assert_int_equal(p.n_docs, 3);
    const char *bad[] = {"doc_lens", "=3", "doc_lens=", "doc_lens=1,,2", "doc_lens=-1",
                         "doc_lens=1 ,2", "window=3", "doc_lens=99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fm_status st = fm_mask_params_apply(&p, 1, &bad[i]);
        if (st == FM_OK) fail_msg("--param %s was accepted", bad[i]);
        assert_int_equal(p.n_docs, 3);
    }
    fm_mask_params_free(&p);

    assert_int_equal(fm_mask_params_default(&p, FM_FAMILY_GLOBAL_SLIDING_WINDOW, 64), FM_OK);
    const char *gsw[2] = {"global_tokens=2", "right_window=1"};
    assert_int_equal(fm_mask_params_apply(&p, 2, gsw), FM_OK);
    assert_int_equal(p.global_tokens, 2);
    assert_int_equal(p.right_window, 1);
    const char *list_for_scalar[1] = {"left_window=1,2"};
    assert_int_equal(fm_mask_params_apply(&p, 1, list_for_scalar), FM_ERR_INVALID);
    fm_mask_params_free(&p);
}

/* ---------------------------------------------------------------- hostile case.json */

static const char *good_json =
    "{\"format\": \"flashmask-case\", \"version\": 1, \"batch\": 1, \"q_heads\": 2, "
    "\"kv_heads\": 1, \"mask_heads\": 1, \"seqlen_q\": 8, \"seqlen_k\": 8, \"head_dim\": 4, "
    "\"scale\": 0.5, \"causal\": \"bottom_right\", \"dtype\": \"float32\", "
    "\"mask_kind\": \"sliding_window\", \"mask_params\": {\"window\": 3}, \"seed\": 1}";

/* good_json with `from` replaced by `to`. */
static void expect_json_fail(const char *from, const char *to, const char *needle)
{
    char text[2048];
    const char *at = strstr(good_json, from);
    assert_non_null(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - good_json), good_json, to,
             at + strlen(from));
    fm_case c;
    fm_case_init(&c);
    fm_status st = fm_case_parse_json(text, strlen(text), "case.json", &c);
    if (st == FM_OK || !strstr(fm_last_error(), needle) || !strstr(fm_last_error(), "case.json"))
        fail_msg("'%s' -> '%s': status %d, message '%s' (want '%s')", from, to, st,
                 fm_last_error(), needle);
    assert_null(c.mask_params.doc_lens);
}

static void test_case_json(void **state)
{
    (void)state;
    fm_case c;
    fm_case_init(&c);
    assert_int_equal(fm_case_parse_json(good_json, strlen(good_json), "case.json", &c), FM_OK);
    assert_int_equal(c.problem.kv_heads, 1);
    assert_int_equal(c.mask.causal, FM_CAUSAL_BOTTOM_RIGHT);
    assert_int_equal(c.mask_params.window, 3);
    assert_true(c.problem.scale == 0.5);
    fm_case_free(&c);

    expect_json_fail("\"version\": 1", "\"version\": 2", "version 2");
    expect_json_fail("flashmask-case", "flashmask-cas", "format");
    expect_json_fail("\"batch\": 1, ", "", "'batch' is missing");
    expect_json_fail("\"batch\": 1", "\"batch\": 0", "'batch' = 0");
    expect_json_fail("\"batch\": 1", "\"batch\": -1", "'batch'");
    expect_json_fail("\"batch\": 1", "\"batch\": 1.5", "'batch'");
    expect_json_fail("\"batch\": 1", "\"batch\": \"1\"", "'batch'");
    expect_json_fail("\"batch\": 1", "\"batch\": 1, \"batch\": 1", "twice");
    expect_json_fail("\"batch\": 1", "\"batch\": 1, \"comment\": 1", "unknown key 'comment'");
    expect_json_fail("\"scale\": 0.5", "\"scale\": 0", "scale");
    expect_json_fail("\"scale\": 0.5", "\"scale\": \"x\"", "scale");
    expect_json_fail("bottom_right", "bottom-right", "causal 'bottom-right'");
    expect_json_fail("float32", "float8", "dtype 'float8'");
    expect_json_fail("sliding_window", "sliding_windw", "mask_kind 'sliding_windw'");
    expect_json_fail("{\"window\": 3}", "{\"widow\": 3}", "'widow' is not a parameter");
    expect_json_fail("{\"window\": 3}", "[]", "mask_params");
    expect_json_fail("\"seed\": 1}", "\"seed\": 1e17}", "seed");
    expect_json_fail("\"seed\": 1}", "\"seed\": 1} {}", "after the JSON");
    expect_json_fail("\"seed\": 1}", "\"seed\": 1", "invalid JSON");
    expect_json_fail("{\"format\"", "[{\"format\"", "invalid JSON");

    /* "custom" masks carry free-form params; whitespace after the object is fine */
    char text[2048];
    const char *kind = strstr(good_json, "sliding_window");
    snprintf(text, sizeof text, "%.*scustom%s\n\n", (int)(kind - good_json), good_json,
             kind + strlen("sliding_window"));
    fm_case_init(&c);
    fm_status st = fm_case_parse_json(text, strlen(text), "case.json", &c);
    if (st != FM_OK) fail_msg("%s: %s", text, fm_last_error());
    assert_int_equal(c.has_params, 0);
    assert_string_equal(c.mask_kind, "custom");
    fm_case_free(&c);
    /* embedded NUL: the parser must stop, not read past the given size */
    assert_int_not_equal(fm_case_parse_json("{\"format\"\0}", 11, "case.json", &c), FM_OK);
    assert_int_not_equal(fm_case_parse_json("", 0, "case.json", &c), FM_OK);
}

/* ---------------------------------------------------------------- hostile case directories */

/* Saves a good case, applies `damage` to it, and expects fm_case_load to fail with `want` and
 * a message containing `needle`. */
typedef void (*damage_fn)(const char *dir, const fm_case *c);

static void expect_load_fail(damage_fn damage, fm_status want, const char *needle)
{
    char dir[512];
    tmp_path(dir, sizeof dir, "damaged");
    fm_case a, b;
    make_case(&a, FM_FAMILY_CAUSAL_DOCUMENT, FM_FLOAT16, 16, 16);
    assert_int_equal(fm_case_save(dir, &a), FM_OK);
    damage(dir, &a);
    fm_status st = fm_case_load(dir, &b);
    if (st != want || !strstr(fm_last_error(), needle))
        fail_msg("status %d (want %d), message '%s' (want '%s')", st, want, fm_last_error(),
                 needle);
    assert_null(b.q);
    fm_case_free(&a);
    fm_test_remove_tree(dir);
}

static void truncate_q(const char *dir, const fm_case *c)
{
    (void)c;
    char p[600];
    fm_test_path(p, sizeof p, dir, "q.npy");
    assert_int_equal(truncate(p, 200), 0);
}

static void remove_k(const char *dir, const fm_case *c)
{
    (void)c;
    char p[600];
    fm_test_path(p, sizeof p, dir, "k.npy");
    unlink(p);
}

static void reshape_v(const char *dir, const fm_case *c)
{
    char p[600];
    fm_test_path(p, sizeof p, dir, "v.npy");
    int64_t shape[4] = {2, 2, 16, 4}; /* D = 4 instead of 8: same file, wrong shape */
    assert_int_equal(fm_npy_write(p, FM_NPY_F8, 4, shape, c->v), FM_OK);
}

/* Writes dir/name as a copy of the case's [2, 4, 16, 8] tensor x with element e set to value. */
static void write_changed(const char *dir, const char *name, const fm_case *c, const double *x,
                          size_t e, double value)
{
    char p[600];
    fm_test_path(p, sizeof p, dir, name);
    size_t n = fm_problem_q_elems(&c->problem);
    double *y = malloc(n * sizeof(double));
    assert_non_null(y);
    memcpy(y, x, n * sizeof(double));
    y[e] = value;
    int64_t shape[4] = {2, 4, 16, 8};
    assert_int_equal(fm_npy_write(p, FM_NPY_F8, 4, shape, y), FM_OK);
    free(y);
}

static void q_not_rounded(const char *dir, const fm_case *c)
{
    write_changed(dir, "q.npy", c, c->q, 3, c->q[3] + 1e-6); /* not a float16 value any more */
}

static void q_nan(const char *dir, const fm_case *c)
{
    write_changed(dir, "do.npy", c, c->dout, 5, NAN);
}

static void mask_out_of_range(const char *dir, const fm_case *c)
{
    char p[600];
    fm_test_path(p, sizeof p, dir, "mask.npy");
    size_t n = (size_t)(c->mask.batch * c->mask.heads * c->mask.seqlen_k * 4);
    int32_t *b = malloc(n * sizeof(int32_t));
    memcpy(b, c->mask.bounds, n * sizeof(int32_t));
    b[4 * 5 + FM_LTE] = 17; /* Sq = 16 */
    int64_t shape[4] = {2, 2, 16, 4};
    assert_int_equal(fm_npy_write(p, FM_NPY_I4, 4, shape, b), FM_OK);
    free(b);
}

static void mask_float(const char *dir, const fm_case *c)
{
    char p[600];
    fm_test_path(p, sizeof p, dir, "mask.npy");
    double zeros[2 * 2 * 16 * 4] = {0};
    int64_t shape[4] = {2, 2, 16, 4};
    (void)c;
    assert_int_equal(fm_npy_write(p, FM_NPY_F8, 4, shape, zeros), FM_OK);
}

static void heads_not_dividing(const char *dir, const fm_case *c)
{
    (void)c;
    char p[600];
    fm_test_path(p, sizeof p, dir, "case.json");
    FILE *f = fopen(p, "r");
    char text[4096];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    char *at = strstr(text, "\"kv_heads\":\t2");
    assert_non_null(at);
    at[strlen("\"kv_heads\":\t")] = '3';
    f = fopen(p, "w");
    fputs(text, f);
    fclose(f);
}

static void lse_truncated(const char *dir, const fm_case *c)
{
    (void)c;
    char p[600];
    fm_test_path(p, sizeof p, dir, "lse.npy");
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_int_equal(truncate(p, sb.st_size - 1), 0);
}

static void test_case_load_refusals(void **state)
{
    (void)state;
    expect_load_fail(truncate_q, FM_ERR_FORMAT, "q.npy: truncated");
    expect_load_fail(remove_k, FM_ERR_IO, "k.npy: cannot open");
    expect_load_fail(reshape_v, FM_ERR_FORMAT, "v.npy: shape (2, 2, 16, 4)");
    expect_load_fail(q_not_rounded, FM_ERR_FORMAT, "not a float16 value");
    expect_load_fail(q_nan, FM_ERR_NONFINITE, "do.npy: element 5 is nan");
    expect_load_fail(mask_out_of_range, FM_ERR_INVALID, "mask.npy");
    expect_load_fail(mask_float, FM_ERR_FORMAT, "expected <i4");
    expect_load_fail(heads_not_dividing, FM_ERR_INVALID, "kv_heads = 3");
    expect_load_fail(lse_truncated, FM_ERR_FORMAT, "lse.npy: truncated");
    fm_case c;
    assert_int_equal(fm_case_load("/nonexistent-fm-case", &c), FM_ERR_IO);
    assert_int_equal(fm_test_count_entries(fm_test_tmpdir), 0);
}

/* An oversized case.json shape: sizes whose product overflows are refused before allocation */
static void test_case_overflow(void **state)
{
    (void)state;
    char dir[512], p[600];
    tmp_path(dir, sizeof dir, "overflow");
    fm_case a;
    make_case(&a, FM_FAMILY_FULL, FM_FLOAT32, 8, 8);
    assert_int_equal(fm_case_save(dir, &a), FM_OK);
    fm_test_path(p, sizeof p, dir, "case.json");
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"format\": \"flashmask-case\", \"version\": 1, \"batch\": 2, \"q_heads\": 4, "
               "\"kv_heads\": 2, \"mask_heads\": 2, \"seqlen_q\": 1073741824, "
               "\"seqlen_k\": 8, \"head_dim\": 4503599627370496, \"scale\": 0.5, "
               "\"causal\": \"none\", \"dtype\": \"float32\", \"mask_kind\": \"full\", "
               "\"mask_params\": {}, \"seed\": 1}");
    fclose(f);
    fm_case b;
    fm_status st = fm_case_load(dir, &b);
    assert_int_not_equal(st, FM_OK);
    assert_int_equal(fm_status_exit_code(st), 2);
    fm_case_free(&a);
    fm_test_remove_tree(dir);
}

/* fm_case_save refuses inputs that are not values of the case's dtype, and writes nothing. */
static void test_case_save_refusals(void **state)
{
    (void)state;
    char dir[512];
    tmp_path(dir, sizeof dir, "refused");
    fm_case a;
    make_case(&a, FM_FAMILY_CAUSAL, FM_BFLOAT16, 8, 8);
    a.k[0] = 0.1; /* not a bfloat16 value */
    assert_int_equal(fm_case_save(dir, &a), FM_ERR_FORMAT);
    assert_int_equal(fm_test_count_entries(fm_test_tmpdir), 0);
    a.k[0] = 0.5;
    a.mask.bounds[0] = 9; /* LTS > Sq = 8 */
    assert_int_not_equal(fm_case_save(dir, &a), FM_OK);
    assert_int_equal(fm_test_count_entries(fm_test_tmpdir), 0);
    a.mask.bounds[0] = 8;
    assert_int_equal(fm_case_save("", &a), FM_ERR_INVALID); /* no directory named */
    fm_case_free(&a);
}

/* ---------------------------------------------------------------- random cases */

/* Property: any valid random case (shapes incl. length 1 and odd lengths, GQA, mask heads,
 * Sq != Sk with both alignments, family masks or random interval vectors incl. fully masked
 * columns), saved in a random dtype and loaded back, is the same case: mask bounds, problem,
 * family parameters, and inputs rounded to the dtype, bit for bit. */
static int prop_case_round_trip(const fm_random_case *rc, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    char dir[512];
    tmp_path(dir, sizeof dir, "prop");
    fm_case a, b;
    fm_case_init(&a);
    fm_case_init(&b);
    int ok = 0;
    a.problem = rc->problem;
    a.problem.dtype = (fm_dtype)(rc->seed % 4);
    a.seed = rc->seed >> 11; /* case.json holds integers up to 2^53 */
    if (fm_mask_copy(&a.mask, &rc->mask) != FM_OK) goto out;
    /* random_eviction's random parameters draw 64-bit seeds, which case.json refuses (tested
     * below); such a mask is saved as "custom" (mask.npy is what defines a case's mask) */
    int params_fit = !(rc->kind == FM_CASE_FAMILY &&
                       rc->params.family == FM_FAMILY_RANDOM_EVICTION &&
                       rc->params.seed > (1ull << 53));
    if (rc->kind == FM_CASE_FAMILY && params_fit) {
        a.has_params = 1;
        if (fm_mask_params_copy(&a.mask_params, &rc->params) != FM_OK) goto out;
        snprintf(a.mask_kind, sizeof a.mask_kind, "%s", fm_family_name(rc->params.family));
    } else {
        snprintf(a.mask_kind, sizeof a.mask_kind, "custom");
    }
    size_t nq = fm_problem_q_elems(&a.problem), nkv = fm_problem_kv_elems(&a.problem);
    double **dst[4] = {&a.q, &a.k, &a.v, &a.dout};
    const double *src[4] = {rc->q, rc->k, rc->v, rc->dout};
    size_t n[4] = {nq, nkv, nkv, nq};
    for (int t = 0; t < 4; t++) {
        if (!(*dst[t] = malloc(n[t] * sizeof(double)))) goto out;
        for (size_t i = 0; i < n[t]; i++)
            (*dst[t])[i] = fm_round_to_dtype(src[t][i], a.problem.dtype);
    }
    if (fm_case_save(dir, &a) != FM_OK || fm_case_load(dir, &b) != FM_OK) {
        snprintf(msg, len, "save/load: %s", fm_last_error());
        goto out;
    }
    size_t nb = (size_t)(a.mask.batch * a.mask.heads * a.mask.seqlen_k * 4);
    if (memcmp(a.mask.bounds, b.mask.bounds, nb * sizeof(int32_t)) != 0 ||
        a.mask.causal != b.mask.causal || a.mask.heads != b.mask.heads) {
        snprintf(msg, len, "mask differs after the round trip");
        goto out;
    }
    if (a.problem.scale != b.problem.scale || a.problem.kv_heads != b.problem.kv_heads ||
        a.problem.dtype != b.problem.dtype || a.has_params != b.has_params) {
        snprintf(msg, len, "problem or parameters differ after the round trip");
        goto out;
    }
    const double *back[4] = {b.q, b.k, b.v, b.dout};
    for (int t = 0; t < 4; t++)
        if (memcmp(*dst[t], back[t], n[t] * sizeof(double)) != 0) {
            snprintf(msg, len, "input %d differs after the round trip", t);
            goto out;
        }
    ok = 1;
out:
    fm_case_free(&a);
    fm_case_free(&b);
    fm_test_remove_tree(dir);
    return ok;
}

/* Numbers that cJSON's own printing would round: the scale to the last bit, 2^53 itself; and
 * values case.json cannot hold exactly are refused when saving rather than written. */
static void test_exact_numbers(void **state)
{
    (void)state;
    char dir[512];
    tmp_path(dir, sizeof dir, "exact");
    fm_case a, b;
    make_case(&a, FM_FAMILY_RANDOM_EVICTION, FM_FLOAT32, 8, 8);
    a.problem.scale = 1.0 / sqrt(6.0); /* 0.40824829046386307: 17 digits needed */
    a.seed = 1ull << 53;
    a.mask_params.seed = (1ull << 53) - 1;
    assert_int_equal(fm_case_save(dir, &a), FM_OK);
    assert_int_equal(fm_case_load(dir, &b), FM_OK);
    assert_true(b.problem.scale == a.problem.scale);
    assert_true(b.seed == a.seed);
    assert_true(b.mask_params.seed == a.mask_params.seed);
    fm_case_free(&b);
    fm_test_remove_tree(dir);
    a.seed = (1ull << 53) + 1;
    EXPECT_FAIL(fm_case_save(dir, &a), FM_ERR_INVALID, "seed");
    a.seed = 0;
    a.mask_params.seed = UINT64_MAX;
    EXPECT_FAIL(fm_case_save(dir, &a), FM_ERR_INVALID, "'seed' = 18446744073709551615");
    char *json = NULL;
    assert_int_equal(fm_mask_params_to_json(&a.mask_params, &json), FM_ERR_INVALID);
    assert_null(json);
    assert_int_equal(fm_test_count_entries(fm_test_tmpdir), 0);
    fm_case_free(&a);
}

/* A case whose mask_kind names a family but carries no parameters is described by mask.npy
 * alone: it is saved as "custom", so that what fm_case_save writes fm_case_load reads back. */
static void test_family_kind_without_params(void **state)
{
    (void)state;
    char dir[512];
    tmp_path(dir, sizeof dir, "noparams");
    fm_case a, b;
    make_case(&a, FM_FAMILY_CAUSAL, FM_FLOAT32, 8, 8);
    a.has_params = 0;
    snprintf(a.mask_kind, sizeof a.mask_kind, "causal");
    assert_int_equal(fm_case_save(dir, &a), FM_OK);
    assert_int_equal(fm_case_load(dir, &b), FM_OK);
    assert_string_equal(b.mask_kind, "custom");
    assert_int_equal(b.has_params, 0);
    fm_case_free(&b);
    fm_case_free(&a);
    fm_test_remove_tree(dir);
}

static void test_random_case_round_trip(void **state)
{
    (void)state;
    fm_case_limits limits = fm_case_limits_default();
    int trials = fm_check_property("case save/load round trip", prop_case_round_trip, NULL, 1000,
                                   &limits);
    assert_true(trials > 0);
    assert_int_equal(fm_test_count_entries(fm_test_tmpdir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_case_round_trip_every_family),
        cmocka_unit_test(test_results_round_trip),
        cmocka_unit_test(test_results_f32_round_trip),
        cmocka_unit_test(test_paddle_mask_columns),
        cmocka_unit_test(test_params_json),
        cmocka_unit_test(test_params_apply),
        cmocka_unit_test(test_case_json),
        cmocka_unit_test(test_case_load_refusals),
        cmocka_unit_test(test_case_overflow),
        cmocka_unit_test(test_case_save_refusals),
        cmocka_unit_test(test_exact_numbers),
        cmocka_unit_test(test_family_kind_without_params),
        cmocka_unit_test(test_random_case_round_trip),
    };
    return cmocka_run_group_tests(tests, fm_test_tmpdir_setup,
                                  fm_test_tmpdir_teardown);
}
