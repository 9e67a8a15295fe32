/* tests/sparse/test_sparse_attn.c — properties of the pipelines that reorder or drop tokens:
 * Reverse Cuthill-McKee (masks/rcm.c, sparse/rcm_run.c), QK-sparse and Hash-sparse
 * (sparse/qk_sparse.c, sparse/hash_sparse.c), each against the dense-mask oracle with the
 * equivalent dense mask, on the reference and the CPU layer; dropped queries give exactly
 * out 0, lse -inf, dq 0 and dropped keys exactly dk = dv = 0; refusals of bad inputs.
 * Layer: tests, suite 'sparse'.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "expect_fail.h"
#include "runs.h"
#include "sparse_case.h"

/* Tolerance of a pipeline against the dense oracle: float64 reference runs differ only in
 * summation order; the CPU layer's float32 (inputs unit normal, values O(1..10)) gets 1e-3
 * absolute, well above its measured errors and far below any wrong-mask difference. */
static double tolerance(fm_impl impl) { return impl == FM_IMPL_REFERENCE ? 1e-10 : 1e-3; }

/* ---------------------------------------------------------------- RCM */

static int is_permutation(const int32_t *x, int64_t n)
{
    uint8_t *seen = calloc((size_t)n, 1);
    int ok = seen != NULL;
    for (int64_t i = 0; ok && i < n; i++) {
        if (x[i] < 0 || x[i] >= n || seen[x[i]]) ok = 0;
        else seen[x[i]] = 1;
    }
    free(seen);
    return ok;
}

static int prop_rcm(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    const fm_problem *p = &c->problem;
    fm_rng rng;
    fm_rng_seed(&rng, c->seed ^ 0x7c3);
    const int64_t H = c->mask.heads, Sq = p->seqlen_q, Sk = p->seqlen_k;
    const int kind = (int)fm_rng_below(&rng, SP_KINDS);
    const fm_impl impl = fm_rng_below(&rng, 2) ? FM_IMPL_CPU : FM_IMPL_REFERENCE;
    uint8_t *dense = sp_dense_mask(c, kind, &rng);
    const size_t n = (size_t)(p->batch * H) * (size_t)Sq * (size_t)Sk;
    uint8_t *perm = malloc(n), *back = malloc(n);
    sp_run want = {0}, got = {0};
    fm_rcm r = {0};
    int ok = 0;
    if (!dense || !perm || !back || !sp_run_alloc(&want, p) || !sp_run_alloc(&got, p)) {
        sp_fail(msg, len, "out of memory");
        goto done;
    }
    if (fm_rcm_build(&r, dense, p->batch, H, Sq, Sk) != FM_OK ||
        fm_rcm_apply_mask(&r, dense, H, perm) != FM_OK) {
        sp_fail(msg, len, "rcm: %s", fm_last_error());
        goto done;
    }
    /* the permutations are permutations, and undoing them restores the mask exactly */
    for (int64_t b = 0; b < p->batch; b++)
        if (!is_permutation(r.row_perm + b * Sq, Sq) || !is_permutation(r.col_perm + b * Sk, Sk)) {
            sp_fail(msg, len, "batch %lld: row or column order is not a permutation", (long long)b);
            goto done;
        }
    for (int64_t bh = 0; bh < p->batch * H; bh++) {
        const int32_t *rp = r.row_perm + (bh / H) * Sq, *cp = r.col_perm + (bh / H) * Sk;
        for (int64_t i = 0; i < Sq; i++)
            for (int64_t j = 0; j < Sk; j++)
                back[((size_t)bh * (size_t)Sq + (size_t)rp[i]) * (size_t)Sk + (size_t)cp[j]] =
                    perm[((size_t)bh * (size_t)Sq + (size_t)i) * (size_t)Sk + (size_t)j];
    }
    if (memcmp(back, dense, n) != 0) {
        sp_fail(msg, len, "undoing the permutation does not restore the mask");
        goto done;
    }
    /* attention through RCM equals attention without it */
    if (sp_dense_reference(c, dense, H, &want) != FM_OK) {
        sp_fail(msg, len, "reference: %s", fm_last_error());
        goto done;
    }
    fm_tensors t = sp_tensors(c, &got);
    const int64_t bq = 1 + (int64_t)fm_rng_below(&rng, 32),
                  bk = 1 + (int64_t)fm_rng_below(&rng, 32);
    if (fm_rcm_forward(impl, p, dense, H, bq, bk, &t) != FM_OK ||
        fm_rcm_backward(impl, p, dense, H, bq, bk, &t) != FM_OK) {
        sp_fail(msg, len, "rcm run (%s): %s", fm_impl_name(impl), fm_last_error());
        goto done;
    }
    char what[64];
    snprintf(what, sizeof what, "kind %d, %s: RCM run", kind, fm_impl_name(impl));
    ok = sp_runs_agree(p, &got, &want, tolerance(impl), what, msg, len);
done:
    free(dense), free(perm), free(back);
    fm_rcm_free(&r);
    sp_run_free(&want), sp_run_free(&got);
    return ok;
}

/* A band of width 5 on 256 positions, scrambled by a random permutation: 32x32 tiles are
 * nearly all non-empty before RCM and few after (the case the BBM paper reorders for). */
static void test_rcm_reduces_tiles_of_scrambled_band(void **state)
{
    (void)state;
    const int64_t S = 256;
    uint8_t *a = malloc((size_t)(S * S));
    int64_t perm[256];
    fm_rng rng;
    fm_rng_seed(&rng, fm_test_seed());
    for (int64_t x = 0; x < S; x++) perm[x] = x;
    for (int64_t x = S - 1; x > 0; x--) {
        int64_t y = (int64_t)fm_rng_below(&rng, (uint64_t)x + 1), t = perm[x];
        perm[x] = perm[y], perm[y] = t;
    }
    for (int64_t i = 0; i < S; i++)
        for (int64_t j = 0; j < S; j++) a[i * S + j] = llabs(perm[i] - perm[j]) <= 2;
    fm_rcm_report rep;
    assert_int_equal(fm_rcm_tile_report(a, 1, 1, S, S, 32, 32, &rep), FM_OK);
    int64_t before = rep.before.total - rep.before.masked;
    int64_t after = rep.after.total - rep.after.masked;
    printf("scrambled band, 256x256, 32x32 tiles: non-empty tiles %lld -> %lld of %lld\n",
           (long long)before, (long long)after, (long long)rep.before.total);
    assert_true(after * 2 < before);
    free(a);
}

/* ---------------------------------------------------------------- row splitting */

/* Every kind of dense mask through row blocks equals the dense oracle; a column mask made
 * dense (causal none) is one block. */
static int prop_rowsplit(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    const fm_problem *p = &c->problem;
    fm_rng rng;
    fm_rng_seed(&rng, c->seed ^ 0x5b1);
    const int kind = (int)fm_rng_below(&rng, SP_KINDS);
    const fm_impl impl = fm_rng_below(&rng, 2) ? FM_IMPL_CPU : FM_IMPL_REFERENCE;
    uint8_t *dense = sp_dense_mask(c, kind, &rng);
    sp_run want = {0}, got = {0};
    int ok = 0;
    if (!dense || !sp_run_alloc(&want, p) || !sp_run_alloc(&got, p)) {
        sp_fail(msg, len, "out of memory");
        goto done;
    }
    int64_t blocks;
    if (fm_rowsplit_blocks(p, dense, c->mask.heads, &blocks) != FM_OK ||
        sp_dense_reference(c, dense, c->mask.heads, &want) != FM_OK) {
        sp_fail(msg, len, "setup: %s", fm_last_error());
        goto done;
    }
    if (kind == SP_FROM_COLUMNS && c->mask.causal == FM_CAUSAL_NONE && blocks != 1) {
        sp_fail(msg, len, "a causal-free column mask was split into %lld blocks",
                (long long)blocks);
        goto done;
    }
    if (blocks < 1 || blocks > p->seqlen_q) {
        sp_fail(msg, len, "%lld blocks for %lld rows", (long long)blocks, (long long)p->seqlen_q);
        goto done;
    }
    fm_tensors t = sp_tensors(c, &got);
    if (fm_rowsplit_forward(impl, p, dense, c->mask.heads, &t) != FM_OK ||
        fm_rowsplit_backward(impl, p, dense, c->mask.heads, &t) != FM_OK) {
        sp_fail(msg, len, "rowsplit (%s): %s", fm_impl_name(impl), fm_last_error());
        goto done;
    }
    char what[80];
    snprintf(what, sizeof what, "kind %d, %s, %lld blocks", kind, fm_impl_name(impl),
             (long long)blocks);
    ok = sp_runs_agree(p, &got, &want, tolerance(impl), what, msg, len);
done:
    free(dense);
    sp_run_free(&want), sp_run_free(&got);
    return ok;
}

static fm_property_test rowsplit = {"rowsplit_equals_dense_reference", prop_rowsplit,
                                    .trials = 80, .max_seqlen = 60};

/* Row splitting on the CUDA layer (skipped where it is not available), directly and (every
 * fourth case) through fm_forward_any with a BBM mask: float16 and bfloat16,
 * head dims the kernels take, every kind of dense mask, against the dense oracle with a bound
 * relative to the tensor's magnitude (floor 1): 2e-2 for float16, 6e-2 for bfloat16 — many
 * times the same-precision rounding of unit-normal attention, far below a wrong-mask error. */
static void test_rowsplit_cuda(void **state)
{
    (void)state;
    if (fm_impl_available(FM_IMPL_CUDA) != FM_OK) {
        printf("rowsplit on cuda: skipped (%s)\n", fm_last_error());
        return;
    }
    const int64_t dims[] = {32, 64, 128};
    const int trials = fm_test_trials(12);
    fm_case_limits l = fm_case_limits_default();
    l.max_seqlen = 200, l.max_head_dim = 1;
    double worst = 0.0;
    for (int trial = 0; trial < trials; trial++) {
        fm_random_case c;
        const uint64_t seed = fm_test_seed() + 7919u * (uint64_t)trial;
        assert_int_equal(fm_random_case_make(&c, seed, &l), FM_OK);
        fm_rng rng;
        fm_rng_seed(&rng, seed);
        /* redraw the inputs at a head dim the kernels take */
        fm_problem *p = &c.problem;
        p->head_dim = dims[trial % 3];
        p->scale = 1.0 / sqrt((double)p->head_dim);
        p->dtype = trial % 2 ? FM_FLOAT16 : FM_BFLOAT16;
        const size_t nq = fm_problem_q_elems(p), nk = fm_problem_kv_elems(p);
        double *x[4];
        const size_t n[4] = {nq, nk, nk, nq};
        for (int i = 0; i < 4; i++) {
            x[i] = malloc(n[i] * sizeof(double));
            assert_non_null(x[i]);
            for (size_t e = 0; e < n[i]; e++)
                x[i][e] = fm_round_to_dtype(fm_rng_normal(&rng), p->dtype);
        }
        free(c.q), free(c.k), free(c.v), free(c.dout);
        c.q = x[0], c.k = x[1], c.v = x[2], c.dout = x[3];
        const int kind = trial % SP_KINDS;
        uint8_t *dense = sp_dense_mask(&c, kind, &rng);
        sp_run want = {0}, got = {0};
        assert_non_null(dense);
        assert_true(sp_run_alloc(&want, p) && sp_run_alloc(&got, p));
        assert_int_equal(sp_dense_reference(&c, dense, c.mask.heads, &want), FM_OK);
        fm_tensors t = sp_tensors(&c, &got);
        fm_status st;
        if (trial % 4 == 3) { /* through the dispatch over forms, with the mask as BBM */
            fm_any_mask any = {.form = FM_FORM_BBM};
            st = fm_bbm_from_dense(&any.bbm, dense, p->batch, c.mask.heads, p->seqlen_q,
                                   p->seqlen_k, 16, 16);
            if (st == FM_OK) st = fm_forward_any(FM_IMPL_CUDA, p, &any, &t);
            if (st == FM_OK) st = fm_backward_any(FM_IMPL_CUDA, p, &any, &t);
            fm_any_mask_free(&any);
        } else {
            st = fm_rowsplit_forward(FM_IMPL_CUDA, p, dense, c.mask.heads, &t);
            if (st == FM_OK) st = fm_rowsplit_backward(FM_IMPL_CUDA, p, dense, c.mask.heads, &t);
        }
        if (st != FM_OK) printf("case seed %llu: %s\n", (unsigned long long)seed, fm_last_error());
        assert_int_equal(st, FM_OK);
        const size_t nl = fm_problem_lse_elems(p);
        const double bound = p->dtype == FM_FLOAT16 ? 2e-2 : 6e-2;
        const struct { const char *name; const double *a, *b; size_t n; } ts[] = {
            {"out", got.out, want.out, nq}, {"lse", got.lse, want.lse, nl},
            {"dq", got.dq, want.dq, nq},    {"dk", got.dk, want.dk, nk},
            {"dv", got.dv, want.dv, nk},
        };
        for (size_t i = 0; i < 5; i++) {
            double diff = 0.0, mag = 1.0;
            for (size_t e = 0; e < ts[i].n; e++) {
                if (ts[i].a[e] == ts[i].b[e]) continue; /* equal, -inf included */
                double d = fabs(ts[i].a[e] - ts[i].b[e]);
                if (!(d <= diff)) diff = isnan(d) ? INFINITY : d;
                if (isfinite(ts[i].b[e]) && fabs(ts[i].b[e]) > mag) mag = fabs(ts[i].b[e]);
            }
            if (diff / mag > worst) worst = diff / mag;
            if (!(diff / mag <= bound))
                printf("case seed %llu, kind %d, %s, D=%lld: %s relative error %.3g > %.0g\n",
                       (unsigned long long)seed, kind, fm_dtype_name(p->dtype),
                       (long long)p->head_dim, ts[i].name, diff / mag, bound);
            assert_true(diff / mag <= bound);
        }
        free(dense);
        sp_run_free(&want), sp_run_free(&got);
        fm_random_case_free(&c);
    }
    printf("rowsplit on cuda: %d cases, largest relative error %.3g\n", trials, worst);
}

/* ---------------------------------------------------------------- QK-sparse and Hash-sparse */

/* Dropped queries: out 0, lse -inf, dq 0 exactly; dropped keys: dk = dv = 0 exactly. */
static int check_dropped(const fm_problem *p, const sp_run *got, const uint8_t *q_keep,
                         const uint8_t *k_keep, char *msg, size_t len)
{
    const int64_t D = p->head_dim;
    for (int64_t r = 0; r < p->batch * p->q_heads * p->seqlen_q; r++) {
        if (q_keep[r]) continue;
        if (got->lse[r] != -INFINITY)
            return sp_fail(msg, len, "dropped query %lld: lse %g", (long long)r, got->lse[r]);
        for (int64_t d = 0; d < D; d++)
            if (got->out[r * D + d] != 0.0 || got->dq[r * D + d] != 0.0)
                return sp_fail(msg, len, "dropped query %lld: out or dq not 0", (long long)r);
    }
    for (int64_t r = 0; r < p->batch * p->kv_heads * p->seqlen_k; r++) {
        if (k_keep[r]) continue;
        for (int64_t d = 0; d < D; d++)
            if (got->dk[r * D + d] != 0.0 || got->dv[r * D + d] != 0.0)
                return sp_fail(msg, len, "dropped key %lld: dk or dv not 0", (long long)r);
    }
    return 1;
}

static int prop_qk_or_hash(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    const int hash = *(const int *)ctx;
    const fm_problem *p = &c->problem;
    fm_rng rng;
    fm_rng_seed(&rng, c->seed ^ (hash ? 0x4a54 : 0x9b));
    const fm_causal alignment = (fm_causal)fm_rng_below(&rng, 3);
    const fm_impl impl = fm_rng_below(&rng, 2) ? FM_IMPL_CPU : FM_IMPL_REFERENCE;
    const size_t nqr = (size_t)(p->batch * p->q_heads * p->seqlen_q);
    const size_t nkr = (size_t)(p->batch * p->kv_heads * p->seqlen_k);
    uint8_t *q_keep = malloc(nqr), *k_keep = malloc(nkr);
    int32_t *qb = malloc(nqr * 4), *kb = malloc(nkr * 4);
    uint8_t *dense = malloc(nqr * (size_t)p->seqlen_k);
    sp_run want = {0}, got = {0};
    int ok = 0;
    if (!q_keep || !k_keep || !qb || !kb || !dense || !sp_run_alloc(&want, p) ||
        !sp_run_alloc(&got, p)) {
        sp_fail(msg, len, "out of memory");
        goto done;
    }
    const double pq = fm_rng_uniform(&rng), pk = fm_rng_uniform(&rng);
    for (size_t r = 0; r < nqr; r++) q_keep[r] = fm_rng_uniform(&rng) < pq;
    for (size_t r = 0; r < nkr; r++) k_keep[r] = fm_rng_uniform(&rng) < pk;
    const int64_t nb = 2 * (1 + (int64_t)fm_rng_below(&rng, 4));
    fm_status st;
    if (hash) {
        st = fm_hash_buckets(p, c->q, c->k, nb, c->seed, qb, kb);
        if (st == FM_OK) st = fm_hash_sparse_dense_mask(p, alignment, qb, kb, nb, dense);
    } else {
        st = fm_qk_sparse_dense_mask(p, alignment, q_keep, k_keep, dense);
    }
    if (st == FM_OK) st = sp_dense_reference(c, dense, p->q_heads, &want);
    if (st != FM_OK) {
        sp_fail(msg, len, "setup: %s", fm_last_error());
        goto done;
    }
    fm_tensors t = sp_tensors(c, &got);
    if (hash) {
        st = fm_hash_sparse_forward(impl, p, alignment, qb, kb, nb, &t);
        if (st == FM_OK) st = fm_hash_sparse_backward(impl, p, alignment, qb, kb, nb, &t);
    } else {
        st = fm_qk_sparse_forward(impl, p, alignment, q_keep, k_keep, &t);
        if (st == FM_OK) st = fm_qk_sparse_backward(impl, p, alignment, q_keep, k_keep, &t);
    }
    if (st != FM_OK) {
        sp_fail(msg, len, "%s run: %s", hash ? "hash" : "qk", fm_last_error());
        goto done;
    }
    char what[80];
    snprintf(what, sizeof what, "%s-sparse on %s, alignment %s", hash ? "hash" : "qk",
             fm_impl_name(impl), fm_causal_name(alignment));
    if (!sp_runs_agree(p, &got, &want, tolerance(impl), what, msg, len)) goto done;
    if (!hash && !check_dropped(p, &got, q_keep, k_keep, msg, len)) goto done;
    ok = 1;
done:
    free(q_keep), free(k_keep), free(qb), free(kb), free(dense);
    sp_run_free(&want), sp_run_free(&got);
    return ok;
}

static fm_property_test rcm = {"rcm_undone_exactly", prop_rcm, .trials = 80, .max_seqlen = 60};
static int qk_flag = 0, hash_flag = 1; /* prop_qk_or_hash's context: which sparsity */
static fm_property_test qk_sparse = {"qk_sparse_equals_dense_reference", prop_qk_or_hash,
                                     &qk_flag, 120, .max_seqlen = 60};
static fm_property_test hash_sparse = {"hash_sparse_equals_dense_reference", prop_qk_or_hash,
                                       &hash_flag, 120, .max_seqlen = 60};

/* Bad inputs are refused, naming the value. */
static void test_refusals(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 2, 1, 3, 3, 2);
    double x[12] = {0};
    int32_t qb[6] = {0, 1, 0, 1, 0, 1}, kb[3] = {0, 1, 2};
    uint8_t qk[6] = {1, 1, 1, 1, 2, 1}, kk[3] = {1, 1, 1};
    uint8_t dense[18];
    EXPECT_FAIL(fm_hash_sparse_dense_mask(&p, FM_CAUSAL_TOP_LEFT, qb, kb, 2, dense),
                FM_ERR_INVALID, "key bucket 2");
    EXPECT_FAIL(fm_hash_buckets(&p, x, x, 3, 1, qb, kb), FM_ERR_INVALID, "n_buckets = 3");
    x[5] = NAN;
    EXPECT_FAIL(fm_hash_buckets(&p, x, x, 2, 1, qb, kb), FM_ERR_NONFINITE, "tensor q: element 5");
    EXPECT_FAIL(fm_qk_sparse_dense_mask(&p, FM_CAUSAL_TOP_LEFT, qk, kk, dense),
                FM_ERR_INVALID, "query keep flag 2");
    p.kv_heads = 0;
    assert_int_equal(fm_qk_sparse_dense_mask(&p, FM_CAUSAL_TOP_LEFT, qk, kk, dense),
                     FM_ERR_INVALID);
    fm_rcm r;
    uint8_t bad[4] = {1, 0, 3, 1};
    EXPECT_FAIL(fm_rcm_build(&r, bad, 1, 1, 2, 2), FM_ERR_INVALID, "value 3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_rcm_reduces_tiles_of_scrambled_band),
        fm_property_unit_test(rcm),
        fm_property_unit_test(rowsplit),
        cmocka_unit_test(test_rowsplit_cuda),
        fm_property_unit_test(qk_sparse),
        fm_property_unit_test(hash_sparse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
