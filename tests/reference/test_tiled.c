/* tests/reference/test_tiled.c — suite 'reference': the tiled float64 backend
 * (reference/tiled_*.c) against the dense one (reference/forward.c, backward.c), and the
 * automatic choice between them (reference/choose.c). docs/reference.md describes both.
 *
 * Properties (each on FM_TRIALS random cases of the shared harness, every family and random
 * bounds, MHA/GQA/MQA, mask heads, Sq != Sk under both alignments; random tile sizes from 1 to
 * 20 so that cases span many tiles of every class; a failure prints the seed to replay):
 *   agrees_with_dense   out, dq, dk, dv within 1e-12 of the dense backend relative to the
 *                       size of the terms summed (term_scales), lse within 1e-12 relative
 *                       elementwise; fully masked rows exactly O = +0,
 *                       LSE = -inf, dQ = +0 in both
 *   thread_invariant    1 thread and 2 threads give the same bits (cases up to 300 x 300)
 *   shares_assemble     3 shares (fm_ref_options.parts), each computing its rows of
 *                       fm_ref_share_of, assemble into the same bits as one call
 * plus the automatic choice (picks tiled for sizes the dense scratch cannot hold, without
 * allocating it), refused options, and a tiled run at Sq = Sk = 70000, beyond the dense limit.
 */
#include <math.h>
#include <omp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "expect_fail.h"
#include "prop.h"
#include "runs.h"

#define TOLERANCE 1e-12
#define FAIL(...) (snprintf(msg, msg_len, __VA_ARGS__), 0)

typedef struct result {
    double *out, *lse, *dq, *dk, *dv;
} result;

static void result_free(result *r)
{
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
}

static int result_alloc(result *r, const fm_problem *p)
{
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    r->out = calloc(nq, sizeof(double)), r->dq = calloc(nq, sizeof(double));
    r->lse = calloc(fm_problem_lse_elems(p), sizeof(double));
    r->dk = calloc(nkv, sizeof(double)), r->dv = calloc(nkv, sizeof(double));
    return r->out && r->lse && r->dq && r->dk && r->dv;
}

/* Forward, then backward from that forward's out and lse. */
static fm_status run(const fm_random_case *c, const fm_ref_options *o, result *r)
{
    const fm_problem *p = &c->problem;
    fm_status st = fm_ref_forward_opts(p, &c->mask, o, c->q, c->k, c->v, r->out, r->lse);
    if (st == FM_OK)
        st = fm_ref_backward_opts(p, &c->mask, o, c->q, c->k, c->v, r->out, r->lse, c->dout,
                                  r->dq, r->dk, r->dv);
    return st;
}

/* Tile sizes drawn from the case's seed, 1..20 each. */
static fm_ref_options tiled_options(const fm_random_case *c)
{
    fm_rng rng;
    fm_rng_seed(&rng, c->seed ^ 0x7113d5eedull);
    fm_ref_options o = {.backend = FM_REF_TILED};
    o.block_q = 1 + (int64_t)fm_rng_below(&rng, 20);
    o.block_k = 1 + (int64_t)fm_rng_below(&rng, 20);
    return o;
}

/* The scale each tensor's error is measured against: the largest sum of absolute terms that
 * make up one of its elements (the quantity float64 summation error is proportional to), from
 * the dense result's LSE. With P_ij = exp(s q_i.k_j - LSE_i) on allowed (i, j) and
 * A_ij = P_ij (|dO_i . v_j| + |dO_i . O_i|) (the size of dS_ij before its cancellation):
 *   out  max_{i,d} sum_j P_ij |v_jd|        dv  max_{j,d} sum_i P_ij |dO_id|
 *   dq   max_{i,d} s sum_j A_ij |k_jd|      dk  max_{j,d} s sum_i A_ij |q_id|
 * (dk and dv summed over the query heads of the kv head). A relative error against max|T|
 * instead would fail on gradients that cancel to rounding noise (Sk = 1 gives dQ = 0). */
typedef struct scales {
    double out, dq, dk, dv;
} scales;

static int term_scales(const fm_random_case *c, const result *ref, scales *sc)
{
    const fm_problem *p = &c->problem;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const size_t nkv = fm_problem_kv_elems(p);
    double *tk = calloc(nkv, sizeof(double)), *tv = calloc(nkv, sizeof(double));
    double *pa = malloc((size_t)Sk * 2 * sizeof(double));
    if (!tk || !tv || !pa) return free(tk), free(tv), free(pa), 0;
    memset(sc, 0, sizeof *sc);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++) {
            const int64_t hk = h / (p->q_heads / p->kv_heads);
            const int64_t mh = h / (p->q_heads / c->mask.heads);
            const double *K = c->k + (b * p->kv_heads + hk) * Sk * D;
            const double *V = c->v + (b * p->kv_heads + hk) * Sk * D;
            for (int64_t i = 0; i < Sq; i++) {
                const size_t row = (size_t)((b * p->q_heads + h) * Sq + i);
                const double *qi = c->q + row * D, *doi = c->dout + row * D;
                const double *oi = ref->out + row * D;
                if (!isfinite(ref->lse[row])) continue;
                double delta = 0;
                for (int64_t d = 0; d < D; d++) delta += doi[d] * oi[d];
                for (int64_t j = 0; j < Sk; j++) {
                    double dot = 0, dp = 0;
                    for (int64_t d = 0; d < D; d++)
                        dot += qi[d] * K[j * D + d], dp += doi[d] * V[j * D + d];
                    double P = fm_mask_is_masked(&c->mask, b, mh, i, j)
                                   ? 0 : exp(p->scale * dot - ref->lse[row]);
                    pa[2 * j] = P, pa[2 * j + 1] = P * (fabs(dp) + fabs(delta));
                }
                for (int64_t d = 0; d < D; d++) {
                    double to = 0, tq = 0;
                    for (int64_t j = 0; j < Sk; j++) {
                        to += pa[2 * j] * fabs(V[j * D + d]);
                        tq += p->scale * pa[2 * j + 1] * fabs(K[j * D + d]);
                        const size_t kv = (size_t)((b * p->kv_heads + hk) * Sk + j) * D + d;
                        tv[kv] += pa[2 * j] * fabs(doi[d]);
                        tk[kv] += p->scale * pa[2 * j + 1] * fabs(qi[d]);
                    }
                    sc->out = fmax(sc->out, to), sc->dq = fmax(sc->dq, tq);
                }
            }
        }
    for (size_t x = 0; x < nkv; x++) sc->dk = fmax(sc->dk, tk[x]), sc->dv = fmax(sc->dv, tv[x]);
    free(tk), free(tv), free(pa);
    return 1;
}

/* max|a - b| <= TOLERANCE * scale (a zero scale: exact agreement); equal infinities. */
static int close_enough(const char *name, const double *a, const double *b, size_t n,
                        double scale, char *msg, size_t msg_len)
{
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i]) || !isfinite(a[i])) {
            if (!(a[i] == b[i])) return FAIL("%s[%zu]: tiled %g, dense %g", name, i, a[i], b[i]);
            continue;
        }
        double d = fabs(a[i] - b[i]);
        if (d > worst) worst = d, at = i;
    }
    if (worst > TOLERANCE * scale)
        return FAIL("%s[%zu]: tiled %.17g, dense %.17g: |diff| %.3g > %.0e * scale %.3g", name,
                    at, a[at], b[at], worst, TOLERANCE, scale);
    return 1;
}

/* LSE elementwise: |a - b| <= TOLERANCE * max(1, |b|). */
static int lse_close(const double *a, const double *b, size_t n, char *msg, size_t msg_len)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(b[i]) || !isfinite(a[i])) {
            if (!(a[i] == b[i])) return FAIL("lse[%zu]: tiled %g, dense %g", i, a[i], b[i]);
        } else if (fabs(a[i] - b[i]) > TOLERANCE * fmax(1, fabs(b[i]))) {
            return FAIL("lse[%zu]: tiled %.17g, dense %.17g", i, a[i], b[i]);
        }
    }
    return 1;
}

/* Fully masked rows (LSE = -inf in the dense result): O and dQ rows exactly +0 in both. */
static int masked_rows_exact(const fm_problem *p, const result *t, const result *d, char *msg,
                             size_t msg_len)
{
    const size_t rows = fm_problem_lse_elems(p), D = (size_t)p->head_dim;
    for (size_t r = 0; r < rows; r++) {
        if (d->lse[r] != -INFINITY) continue;
        if (t->lse[r] != -INFINITY)
            return FAIL("row %zu: tiled LSE %g, expected -inf", r, t->lse[r]);
        for (size_t x = r * D; x < (r + 1) * D; x++)
            if (t->out[x] != 0 || signbit(t->out[x]) || t->dq[x] != 0 || signbit(t->dq[x]) ||
                signbit(d->out[x]) || signbit(d->dq[x]))
                return FAIL("fully masked row %zu: out/dq not +0 (tiled %g, %g)", r, t->out[x],
                            t->dq[x]);
    }
    return 1;
}

typedef struct coverage {
    int trials, masked_rows, multi_tile;
} coverage;

static int prop_agrees_with_dense(const fm_random_case *c, void *vctx, char *msg, size_t msg_len)
{
    coverage *cov = vctx;
    const fm_problem *p = &c->problem;
    const fm_ref_options dense = {.backend = FM_REF_DENSE}, tiled = tiled_options(c);
    result d = {0}, t = {0};
    int ok = result_alloc(&d, p) && result_alloc(&t, p);
    if (!ok) ok = FAIL("out of memory");
    if (ok && run(c, &dense, &d) != FM_OK) ok = FAIL("dense failed: %s", fm_last_error());
    if (ok && run(c, &tiled, &t) != FM_OK) ok = FAIL("tiled failed: %s", fm_last_error());
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    scales sc;
    if (ok && !term_scales(c, &d, &sc)) ok = FAIL("out of memory");
    if (ok) ok = close_enough("out", t.out, d.out, nq, sc.out, msg, msg_len);
    if (ok) ok = lse_close(t.lse, d.lse, nl, msg, msg_len);
    if (ok) ok = close_enough("dq", t.dq, d.dq, nq, sc.dq, msg, msg_len);
    if (ok) ok = close_enough("dk", t.dk, d.dk, nkv, sc.dk, msg, msg_len);
    if (ok) ok = close_enough("dv", t.dv, d.dv, nkv, sc.dv, msg, msg_len);
    if (ok) ok = masked_rows_exact(p, &t, &d, msg, msg_len);
    if (ok) {
        cov->trials++;
        for (size_t r = 0; r < nl; r++)
            if (d.lse[r] == -INFINITY) {
                cov->masked_rows++;
                break;
            }
        cov->multi_tile += tiled.block_q < p->seqlen_q && tiled.block_k < p->seqlen_k;
    }
    if (!ok) fprintf(stderr, "tiles %lld x %lld\n", (long long)tiled.block_q,
                     (long long)tiled.block_k);
    result_free(&d), result_free(&t);
    return ok;
}

static int same_bits(const char *name, const double *a, const double *b, size_t lo, size_t hi,
                     char *msg, size_t msg_len)
{
    for (size_t i = lo; i < hi; i++)
        if (memcmp(&a[i], &b[i], sizeof(double)))
            return FAIL("%s[%zu]: %.17g vs %.17g (bits differ)", name, i, a[i], b[i]);
    return 1;
}

static int same_result(const fm_problem *p, const result *a, const result *b, char *msg,
                       size_t msg_len)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    return same_bits("out", a->out, b->out, 0, nq, msg, msg_len) &&
           same_bits("lse", a->lse, b->lse, 0, fm_problem_lse_elems(p), msg, msg_len) &&
           same_bits("dq", a->dq, b->dq, 0, nq, msg, msg_len) &&
           same_bits("dk", a->dk, b->dk, 0, nkv, msg, msg_len) &&
           same_bits("dv", a->dv, b->dv, 0, nkv, msg, msg_len);
}

static int prop_thread_invariant(const fm_random_case *c, void *vctx, char *msg, size_t msg_len)
{
    int *threaded = vctx; /* cases large enough for the backend to use threads */
    *threaded += c->problem.batch * c->problem.q_heads * c->problem.seqlen_q *
                     c->problem.seqlen_k >= ((int64_t)1 << 16);
    const fm_problem *p = &c->problem;
    const fm_ref_options o = tiled_options(c);
    result one = {0}, two = {0};
    int ok = result_alloc(&one, p) && result_alloc(&two, p);
    if (!ok) ok = FAIL("out of memory");
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    if (ok && run(c, &o, &one) != FM_OK) ok = FAIL("1 thread: %s", fm_last_error());
    omp_set_num_threads(2);
    if (ok && run(c, &o, &two) != FM_OK) ok = FAIL("2 threads: %s", fm_last_error());
    omp_set_num_threads(saved);
    if (ok) ok = same_result(p, &one, &two, msg, msg_len);
    result_free(&one), result_free(&two);
    return ok;
}

/* Three shares computed separately, each copied over its rows of fm_ref_share_of. The backward
 * of share r reads the assembled forward (as the MPI tool gathers it before the backward). */
static int prop_shares_assemble(const fm_random_case *c, void *vctx, char *msg, size_t msg_len)
{
    (void)vctx;
    const fm_problem *p = &c->problem;
    const int parts = 3;
    const size_t D = (size_t)p->head_dim;
    fm_ref_options o = tiled_options(c);
    result whole = {0}, part = {0}, asm_ = {0};
    int ok = result_alloc(&whole, p) && result_alloc(&part, p) && result_alloc(&asm_, p);
    if (!ok) ok = FAIL("out of memory");
    if (ok && run(c, &o, &whole) != FM_OK) ok = FAIL("whole: %s", fm_last_error());
    fm_ref_share s[3];
    int64_t q_next = 0, kv_next = 0;
    for (int r = 0; ok && r < parts; r++) {
        o.part = r, o.parts = parts;
        if (fm_ref_share_of(p, &c->mask, &o, &s[r]) != FM_OK)
            ok = FAIL("share: %s", fm_last_error());
        if (ok && (s[r].q_lo != q_next || s[r].kv_lo != kv_next || s[r].q_hi < s[r].q_lo ||
                   s[r].kv_hi < s[r].kv_lo))
            ok = FAIL("share %d: rows [%lld, %lld) / [%lld, %lld) do not follow the last", r,
                      (long long)s[r].q_lo, (long long)s[r].q_hi, (long long)s[r].kv_lo,
                      (long long)s[r].kv_hi);
        if (ok) q_next = s[r].q_hi, kv_next = s[r].kv_hi;
        if (ok &&
            fm_ref_forward_opts(p, &c->mask, &o, c->q, c->k, c->v, part.out, part.lse) != FM_OK)
            ok = FAIL("forward share %d: %s", r, fm_last_error());
        if (ok) {
            memcpy(asm_.out + s[r].q_lo * D, part.out + s[r].q_lo * D,
                   (size_t)(s[r].q_hi - s[r].q_lo) * D * sizeof(double));
            memcpy(asm_.lse + s[r].q_lo, part.lse + s[r].q_lo,
                   (size_t)(s[r].q_hi - s[r].q_lo) * sizeof(double));
        }
    }
    if (ok && ((size_t)q_next != fm_problem_lse_elems(p) ||
               (size_t)kv_next * D != fm_problem_kv_elems(p)))
        ok = FAIL("the shares do not cover every row");
    for (int r = 0; ok && r < parts; r++) {
        o.part = r, o.parts = parts;
        if (fm_ref_backward_opts(p, &c->mask, &o, c->q, c->k, c->v, asm_.out, asm_.lse, c->dout,
                                 part.dq, part.dk, part.dv) != FM_OK)
            ok = FAIL("backward share %d: %s", r, fm_last_error());
        if (ok) {
            memcpy(asm_.dq + s[r].q_lo * D, part.dq + s[r].q_lo * D,
                   (size_t)(s[r].q_hi - s[r].q_lo) * D * sizeof(double));
            memcpy(asm_.dk + s[r].kv_lo * D, part.dk + s[r].kv_lo * D,
                   (size_t)(s[r].kv_hi - s[r].kv_lo) * D * sizeof(double));
            memcpy(asm_.dv + s[r].kv_lo * D, part.dv + s[r].kv_lo * D,
                   (size_t)(s[r].kv_hi - s[r].kv_lo) * D * sizeof(double));
        }
    }
    if (ok) ok = same_result(p, &whole, &asm_, msg, msg_len);
    result_free(&whole), result_free(&part), result_free(&asm_);
    return ok;
}

static fm_case_limits large_limits(void)
{
    fm_case_limits l = fm_case_limits_default();
    l.max_batch = 2, l.max_q_heads = 4, l.max_seqlen = 96, l.max_head_dim = 40;
    return l;
}

static void test_agrees_with_dense(void **state)
{
    (void)state;
    coverage cov = {0};
    fm_case_limits small = fm_case_limits_default(), large = large_limits();
    fm_check_property("tiled agrees_with_dense", prop_agrees_with_dense, &cov, 400, &small);
    fm_check_property("tiled agrees_with_dense (large)", prop_agrees_with_dense, &cov, 40, &large);
    /* the property must have had fully masked rows and many-tile cases to bite on */
    assert_true(cov.masked_rows > 0);
    assert_true(cov.multi_tile > cov.trials / 4);
}

static void test_thread_invariant(void **state)
{
    (void)state;
    /* the backend uses threads from B*Hq*Sq*Sk = 2^16 on: cases up to 2 x 4 x 300 x 300 */
    fm_case_limits big = large_limits();
    big.max_seqlen = 300;
    int threaded = 0;
    fm_check_property("tiled thread_invariant", prop_thread_invariant, &threaded, 20, &big);
    assert_true(threaded > 0);
}

static void test_shares_assemble(void **state)
{
    (void)state;
    fm_case_limits small = fm_case_limits_default(), large = large_limits();
    fm_check_property("tiled shares_assemble", prop_shares_assemble, NULL, 100, &small);
    fm_check_property("tiled shares_assemble (large)", prop_shares_assemble, NULL, 20, &large);
}

/* The automatic choice reads sizes only. */
static void test_auto_choice(void **state)
{
    (void)state;
    const uint64_t gib = UINT64_C(1) << 30;
    fm_problem p = fm_test_problem(1, 1, 1, 128, 128, 64);
    assert_int_equal(fm_ref_pick_backend_for(&p, FM_REF_AUTO, 24 * gib), FM_REF_DENSE);
    assert_int_equal(fm_ref_pick_backend_for(&p, FM_REF_TILED, 24 * gib), FM_REF_TILED);
    /* 32K: two 8 GiB matrices do not fit in a quarter of 24 GiB, but do in 256 GiB */
    fm_problem_init(&p, 1, 1, 1, 32768, 32768, 128);
    assert_int_equal(fm_ref_pick_backend_for(&p, FM_REF_AUTO, 24 * gib), FM_REF_TILED);
    assert_int_equal(fm_ref_pick_backend_for(&p, FM_REF_AUTO, 256 * gib), FM_REF_DENSE);
    assert_int_equal(fm_ref_pick_backend_for(&p, FM_REF_DENSE, 24 * gib), FM_REF_DENSE);
    /* 128K: above the dense backend's size limit whatever the memory */
    fm_problem_init(&p, 1, 1, 1, 131072, 131072, 128);
    assert_int_equal(fm_ref_pick_backend_for(&p, FM_REF_AUTO, UINT64_MAX / 2), FM_REF_TILED);
    assert_int_equal(fm_ref_pick_backend(&p, FM_REF_AUTO), FM_REF_TILED);
    /* Sq * Sk overflowing size_t */
    fm_problem_init(&p, 1, 1, 1, INT64_C(1) << 40, INT64_C(1) << 40, 1);
    assert_int_equal(fm_ref_pick_backend_for(&p, FM_REF_AUTO, UINT64_MAX), FM_REF_TILED);

    fm_ref_backend b;
    assert_int_equal(fm_ref_backend_from_name("tiled", &b), FM_OK);
    assert_int_equal(b, FM_REF_TILED);
    EXPECT_FAIL(fm_ref_backend_from_name("sparse", &b), FM_ERR_INVALID, "sparse");
    assert_string_equal(fm_ref_backend_name(FM_REF_DENSE), "dense");
}

/* Sq = Sk = 70000 (4.9e9 scores: the dense backend refuses, above its 2^31 limit), a sliding
 * window of 8 keys: the automatic call runs tiled, visiting only the diagonal tiles, and
 * matches a direct float64 loop on the rows it checks. */
static void test_beyond_dense(void **state)
{
    (void)state;
    const int64_t S = 70000, D = 2, W = 8;
    fm_problem p = fm_test_problem(1, 1, 1, S, S, D);
    fm_mask_params mp;
    fm_mask m = {0};
    assert_int_equal(fm_mask_params_default(&mp, FM_FAMILY_SLIDING_WINDOW, S), FM_OK);
    mp.window = W;
    assert_int_equal(fm_mask_build(&m, &mp, 1, 1, S, S, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    double *x = malloc((size_t)(S * D) * sizeof(double) * 3);
    double *out = malloc((size_t)(S * D) * sizeof(double));
    double *lse = malloc((size_t)S * sizeof(double));
    assert_non_null(x), assert_non_null(out), assert_non_null(lse);
    fm_rng rng;
    fm_rng_seed(&rng, 70000);
    for (int64_t i = 0; i < 3 * S * D; i++) x[i] = fm_rng_normal(&rng);
    const double *q = x, *k = x + S * D, *v = x + 2 * S * D;
    const fm_ref_options dense = {.backend = FM_REF_DENSE};
    assert_int_equal(fm_ref_forward_opts(&p, &m, &dense, q, k, v, out, lse), FM_ERR_OVERFLOW);
    assert_int_equal(fm_ref_forward(&p, &m, q, k, v, out, lse), FM_OK);
    for (int64_t i = 0; i < S; i += 6997) {
        double mx = -INFINITY, sum = 0, o[2] = {0, 0};
        for (int64_t j = 0; j < S; j++)
            if (!fm_mask_is_masked(&m, 0, 0, i, j))
                mx = fmax(mx, p.scale * (q[i * D] * k[j * D] + q[i * D + 1] * k[j * D + 1]));
        for (int64_t j = 0; j < S; j++) {
            if (fm_mask_is_masked(&m, 0, 0, i, j)) continue;
            double e = exp(p.scale * (q[i * D] * k[j * D] + q[i * D + 1] * k[j * D + 1]) - mx);
            sum += e, o[0] += e * v[j * D], o[1] += e * v[j * D + 1];
        }
        assert_true(fabs(lse[i] - (mx + log(sum))) <= 1e-12 * fmax(1, fabs(lse[i])));
        for (int d = 0; d < 2; d++) assert_true(fabs(out[i * D + d] - o[d] / sum) <= 1e-12);
    }
    free(x), free(out), free(lse);
    fm_mask_free(&m);
    fm_mask_params_free(&mp);
}

/* Options that make no sense are refused with a message naming them; auto with shares runs
 * the tiled backend. */
static void test_option_errors(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 1, 1, 4, 4, 2);
    fm_mask m = fm_test_mask(1, 1, 4, 4, FM_CAUSAL_NONE);
    double x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, out[8], lse[4];
    fm_ref_options o = {.backend = FM_REF_DENSE, .part = 0, .parts = 2};
    EXPECT_FAIL(fm_ref_forward_opts(&p, &m, &o, x, x, x, out, lse), FM_ERR_INVALID, "tiled");
    o.backend = FM_REF_AUTO, o.part = 2;
    EXPECT_FAIL(fm_ref_forward_opts(&p, &m, &o, x, x, x, out, lse), FM_ERR_INVALID, "share 2 of 2");
    fm_ref_share sh;
    assert_int_equal(fm_ref_share_of(&p, &m, &o, &sh), FM_ERR_INVALID);
    o.part = 1; /* auto with shares: tiled, the second share's rows */
    assert_int_equal(fm_ref_forward_opts(&p, &m, &o, x, x, x, out, lse), FM_OK);
    assert_int_equal(fm_ref_share_of(&p, &m, &o, &sh), FM_OK);
    assert_true(sh.q_hi == 4 && sh.kv_hi == 4);
    o = (fm_ref_options){.block_q = -1};
    EXPECT_FAIL(fm_ref_forward_opts(&p, &m, &o, x, x, x, out, lse), FM_ERR_INVALID, "tile");
    o = (fm_ref_options){.backend = (fm_ref_backend)7};
    EXPECT_FAIL(fm_ref_forward_opts(&p, &m, &o, x, x, x, out, lse), FM_ERR_INVALID, "backend 7");
    fm_mask_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auto_choice),
        cmocka_unit_test(test_option_errors),
        cmocka_unit_test(test_beyond_dense),
        cmocka_unit_test(test_agrees_with_dense),
        cmocka_unit_test(test_thread_invariant),
        cmocka_unit_test(test_shares_assemble),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
