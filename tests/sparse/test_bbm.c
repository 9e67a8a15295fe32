/* tests/sparse/test_bbm.c — properties of Binary Block Masking (masks/bbm.c), its front door
 * (masks/bbm_auto.c), the dense-mask oracle (reference/dense_mask.c) and the CPU BBM path
 * (cpu/bbm_*.c), on random cases of the shared harness with dense masks of every kind
 * (sparse_case.h): the dense round trip, sound and exact tile codes and full runs, the dense
 * oracle equal to the column oracle, and the CPU BBM result and tile counters against the
 * dense oracle. Layer: tests, suite 'sparse'.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "expect_fail.h"
#include "runs.h"
#include "sparse_case.h"

/* Tile size drawn from the case's rng: 1 .. 40, so that tiles are smaller than, equal to and
 * larger than the sequences. */
static int64_t draw_block(fm_rng *rng) { return 1 + (int64_t)fm_rng_below(rng, 40); }

/* A dense mask of a random kind for the case (sparse_case.h), drawn from the case's seed ^ salt,
 * and a buffer of its size for the way back; rng goes on from there. Returns 1, or 0 with msg
 * when out of memory (nothing left to free). */
typedef struct drawn_dense {
    fm_rng rng;
    int kind;
    int64_t B, H, Sq, Sk;
    size_t n;              /* B * H * Sq * Sk */
    uint8_t *dense, *back; /* NULL when out of memory */
} drawn_dense;

static void drawn_dense_free(drawn_dense *d) { free(d->dense), free(d->back); }

static int draw_dense(drawn_dense *d, const fm_random_case *c, uint64_t salt, char *msg,
                      size_t len)
{
    const fm_mask *m = &c->mask;
    fm_rng_seed(&d->rng, c->seed ^ salt);
    d->B = m->batch, d->H = m->heads, d->Sq = m->seqlen_q, d->Sk = m->seqlen_k;
    d->kind = (int)fm_rng_below(&d->rng, SP_KINDS);
    d->dense = sp_dense_mask(c, d->kind, &d->rng);
    d->n = (size_t)(d->B * d->H) * (size_t)d->Sq * (size_t)d->Sk;
    d->back = malloc(d->n);
    if (d->dense && d->back) return 1;
    drawn_dense_free(d);
    return sp_fail(msg, len, "out of memory");
}

static int prop_round_trip_and_codes(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    drawn_dense d;
    if (!draw_dense(&d, c, 0x5eed, msg, len)) return 0;
    const int64_t bq = draw_block(&d.rng), bk = draw_block(&d.rng);
    fm_bbm bbm = {0};
    int ok = 0;
    if (fm_bbm_from_dense(&bbm, d.dense, d.B, d.H, d.Sq, d.Sk, bq, bk) != FM_OK) {
        sp_fail(msg, len, "fm_bbm_from_dense: %s", fm_last_error());
        goto done;
    }
    /* 1. the way back is exact, and so are lookup and the pair count */
    if (fm_bbm_to_dense(&bbm, d.back) != FM_OK || memcmp(d.dense, d.back, d.n) != 0) {
        sp_fail(msg, len, "kind %d, tiles %lldx%lld: to_dense differs from the input", d.kind,
                (long long)bq, (long long)bk);
        goto done;
    }
    int64_t allowed = 0;
    for (size_t e = 0; e < d.n; e++) allowed += d.dense[e];
    if (fm_bbm_total_allowed_pairs(&bbm) != allowed) {
        sp_fail(msg, len, "allowed pairs %lld, expected %lld",
                (long long)fm_bbm_total_allowed_pairs(&bbm), (long long)allowed);
        goto done;
    }
    /* 2. codes are exact: empty = none allowed, full = all allowed, partial = both; the run of
     *    full tiles is all full and as long as the longest such run of its row */
    fm_tile_stats st = {0};
    for (int64_t b = 0; b < d.B; b++)
        for (int64_t h = 0; h < d.H; h++)
            for (int64_t qb = 0; qb < bbm.n_q_blocks; qb++) {
                int64_t longest = 0, cur = 0;
                for (int64_t kb = 0; kb < bbm.n_k_blocks; kb++) {
                    int64_t yes = 0, all = 0;
                    for (int64_t i = qb * bbm.block_q; i < (qb + 1) * bbm.block_q && i < d.Sq; i++)
                        for (int64_t j = kb * bbm.block_k; j < (kb + 1) * bbm.block_k && j < d.Sk;
                             j++, all++)
                            yes += d.dense[((size_t)(b * d.H + h) * (size_t)d.Sq + (size_t)i) *
                                             (size_t)d.Sk + (size_t)j];
                    fm_tile_class want = yes == 0     ? FM_TILE_MASKED
                                         : yes == all ? FM_TILE_UNMASKED
                                                      : FM_TILE_PARTIAL;
                    fm_tile_class got = fm_bbm_tile(&bbm, b, h, qb, kb);
                    if (got != want) {
                        sp_fail(msg, len, "tile b=%lld h=%lld (%lld,%lld): code %d, %lld of "
                                "%lld allowed", (long long)b, (long long)h, (long long)qb,
                                (long long)kb, (int)got, (long long)yes, (long long)all);
                        goto done;
                    }
                    st.total++, st.masked += want == FM_TILE_MASKED;
                    st.partial += want == FM_TILE_PARTIAL, st.unmasked += want == FM_TILE_UNMASKED;
                    cur = want == FM_TILE_UNMASKED ? cur + 1 : 0;
                    if (cur > longest) longest = cur;
                }
                const int64_t row = (b * d.H + h) * bbm.n_q_blocks + qb;
                const int32_t rs = bbm.run_start[row], re = bbm.run_end[row];
                if (re - rs != longest) {
                    sp_fail(msg, len, "query tile %lld: full run [%d,%d), longest is %lld",
                            (long long)qb, rs, re, (long long)longest);
                    goto done;
                }
                for (int32_t kb = rs; kb < re; kb++)
                    if (fm_bbm_tile(&bbm, b, h, qb, kb) != FM_TILE_UNMASKED) {
                        sp_fail(msg, len, "full run [%d,%d) holds non-full tile %d", rs, re, kb);
                        goto done;
                    }
            }
    fm_tile_stats got;
    if (fm_bbm_tile_stats(&bbm, &got) != FM_OK || got.total != st.total ||
        got.masked != st.masked || got.partial != st.partial || got.unmasked != st.unmasked) {
        sp_fail(msg, len, "fm_bbm_tile_stats disagrees with the tile codes");
        goto done;
    }
    ok = 1;
done:
    fm_bbm_free(&bbm), drawn_dense_free(&d);
    return ok;
}

/* The front door: a column mask made dense comes back in the column form with the same dense
 * picture; every other kind comes back in a form whose dense picture is the input. */
static int prop_auto_form(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    drawn_dense d;
    if (!draw_dense(&d, c, 0xa070, msg, len)) return 0;
    fm_any_mask any = {0};
    int ok = 0;
    fm_causal causal = d.kind == SP_FROM_COLUMNS ? c->mask.causal : FM_CAUSAL_NONE;
    if (fm_mask_from_dense_auto(&any, d.dense, d.B, d.H, d.Sq, d.Sk, causal, 16, 16) != FM_OK) {
        sp_fail(msg, len, "from_dense_auto: %s", fm_last_error());
        goto done;
    }
    if (d.kind == SP_FROM_COLUMNS && any.form != FM_FORM_COLUMNS) {
        sp_fail(msg, len, "a column mask made dense came back as %s", fm_mask_form_name(any.form));
        goto done;
    }
    fm_status st = any.form == FM_FORM_COLUMNS ? fm_mask_to_dense(&any.columns, d.back)
                                               : fm_bbm_to_dense(&any.bbm, d.back);
    if (st != FM_OK || memcmp(d.back, d.dense, d.n) != 0) {
        sp_fail(msg, len, "kind %d: the %s form does not hold the input mask", d.kind,
                fm_mask_form_name(any.form));
        goto done;
    }
    ok = 1;
done:
    fm_any_mask_free(&any), drawn_dense_free(&d);
    return ok;
}

/* The dense-mask oracle on a column mask made dense equals the column oracle (to rounding:
 * the row-at-a-time BLAS calls sum in another order). */
static int prop_dense_reference_equals_column_reference(const fm_random_case *c, void *ctx,
                                                        char *msg, size_t len)
{
    (void)ctx;
    const fm_problem *p = &c->problem;
    sp_run want = {0}, got = {0};
    uint8_t *dense = sp_dense_mask(c, SP_FROM_COLUMNS, NULL);
    int ok = 0;
    if (!dense || !sp_run_alloc(&want, p) || !sp_run_alloc(&got, p)) {
        sp_fail(msg, len, "out of memory");
        goto done;
    }
    fm_tensors t = sp_tensors(c, &want);
    if (fm_forward(FM_IMPL_REFERENCE, p, &c->mask, &t) != FM_OK ||
        fm_backward(FM_IMPL_REFERENCE, p, &c->mask, &t) != FM_OK ||
        sp_dense_reference(c, dense, c->mask.heads, &got) != FM_OK) {
        sp_fail(msg, len, "reference failed: %s", fm_last_error());
        goto done;
    }
    /* want: the column oracle; got: the dense one */
    ok = sp_runs_agree(p, &got, &want, 1e-10, "column oracle as the dense one", msg, len);
done:
    free(dense);
    sp_run_free(&want), sp_run_free(&got);
    return ok;
}

/* max |a - b| / max(max |b|, floor) over n; equal infinities skipped, NaN gives inf. */
static double rel_err(const double *a, const double *b, size_t n, double floor)
{
    double diff = 0.0, mag = floor;
    for (size_t e = 0; e < n; e++) {
        if (isnan(a[e])) return INFINITY;
        if (a[e] == b[e]) continue;
        double d = fabs(a[e] - b[e]);
        if (!(d <= diff)) diff = d;
        if (isfinite(b[e]) && fabs(b[e]) > mag) mag = fabs(b[e]);
    }
    if (mag == 0.0) return diff == 0.0 ? 0.0 : INFINITY;
    return diff / mag;
}

/* The CPU BBM path (through fm_forward_any / fm_backward_any) against the dense oracle on the
 * same float32-rounded inputs, with the CPU layer's bounds (tests/cpu/cpu_compare.h: 1e-5
 * relative forward, 5e-5 backward with floor 1); masked rows exactly 0 / -inf; and the tile
 * counters equal to the BBM's tile stats times Hq / Hm. */
static int prop_cpu_bbm_matches_reference(const fm_random_case *cc, void *ctx, char *msg,
                                          size_t len)
{
    (void)ctx;
    fm_random_case c = *cc;
    const fm_problem *p = &c.problem;
    const size_t nq = fm_problem_q_elems(p), nk = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    fm_rng rng;
    fm_rng_seed(&rng, c.seed ^ 0xc0de);
    const int kind = (int)fm_rng_below(&rng, SP_KINDS);
    uint8_t *dense = sp_dense_mask(&c, kind, &rng);
    double *q = malloc(nq * 8), *k = malloc(nk * 8), *v = malloc(nk * 8), *d = malloc(nq * 8);
    float *qf = malloc(nq * 4), *kf = malloc(nk * 4), *vf = malloc(nk * 4), *df = malloc(nq * 4);
    float *of = malloc(nq * 4), *lf = malloc(nl * 4), *dqf = malloc(nq * 4);
    float *dkf = malloc(nk * 4), *dvf = malloc(nk * 4);
    sp_run want = {0}, got = {0};
    fm_bbm bbm = {0};
    int ok = 0;
    if (!dense || !q || !k || !v || !d || !qf || !kf || !vf || !df || !of || !lf || !dqf ||
        !dkf || !dvf || !sp_run_alloc(&want, p) || !sp_run_alloc(&got, p)) {
        sp_fail(msg, len, "out of memory");
        goto done;
    }
    /* float32-rounded inputs for both sides */
    for (size_t e = 0; e < nq; e++) q[e] = qf[e] = (float)c.q[e], d[e] = df[e] = (float)c.dout[e];
    for (size_t e = 0; e < nk; e++) k[e] = kf[e] = (float)c.k[e], v[e] = vf[e] = (float)c.v[e];
    c.q = q, c.k = k, c.v = v, c.dout = d;
    const int64_t bq = 1 + (int64_t)fm_rng_below(&rng, 48),
                  bk = 1 + (int64_t)fm_rng_below(&rng, 48);
    if (fm_bbm_from_dense(&bbm, dense, p->batch, c.mask.heads, p->seqlen_q, p->seqlen_k, bq,
                          bk) != FM_OK ||
        sp_dense_reference(&c, dense, c.mask.heads, &want) != FM_OK) {
        sp_fail(msg, len, "setup: %s", fm_last_error());
        goto done;
    }
    fm_tile_stats fs, bs, want_stats;
    if (fm_cpu_forward_bbm(p, &bbm, qf, kf, vf, of, lf, &fs) != FM_OK ||
        fm_cpu_backward_bbm(p, &bbm, qf, kf, vf, of, lf, df, dqf, dkf, dvf, &bs) != FM_OK) {
        sp_fail(msg, len, "cpu bbm: %s", fm_last_error());
        goto done;
    }
    for (size_t e = 0; e < nq; e++) got.out[e] = of[e], got.dq[e] = dqf[e];
    for (size_t e = 0; e < nl; e++) got.lse[e] = lf[e];
    for (size_t e = 0; e < nk; e++) got.dk[e] = dkf[e], got.dv[e] = dvf[e];
    for (size_t row = 0; row < nl; row++) {
        if ((want.lse[row] == -INFINITY) != (got.lse[row] == -INFINITY)) {
            sp_fail(msg, len, "row %zu: lse %g, reference %g", row, got.lse[row], want.lse[row]);
            goto done;
        }
        if (want.lse[row] == -INFINITY)
            for (int64_t e = 0; e < p->head_dim; e++)
                if (got.out[row * p->head_dim + e] != 0.0 || got.dq[row * p->head_dim + e] != 0.0) {
                    sp_fail(msg, len, "fully masked row %zu: out or dq not 0", row);
                    goto done;
                }
    }
    const struct { const char *name; double err, tol; } checks[] = {
        {"out", rel_err(got.out, want.out, nq, 0.0), 1e-5},
        {"lse", rel_err(got.lse, want.lse, nl, 0.0), 1e-5},
        {"dq", rel_err(got.dq, want.dq, nq, 1.0), 5e-5},
        {"dk", rel_err(got.dk, want.dk, nk, 1.0), 5e-5},
        {"dv", rel_err(got.dv, want.dv, nk, 1.0), 5e-5},
    };
    for (size_t i = 0; i < 5; i++)
        if (!(checks[i].err <= checks[i].tol)) {
            sp_fail(msg, len, "kind %d, tiles %lldx%lld: %s relative error %.3g > %.0g", kind,
                    (long long)bq, (long long)bk, checks[i].name, checks[i].err, checks[i].tol);
            goto done;
        }
    fm_bbm_tile_stats(&bbm, &want_stats);
    const int64_t g = p->q_heads / c.mask.heads;
    if (fs.total != g * want_stats.total || fs.masked != g * want_stats.masked ||
        bs.masked != g * want_stats.masked || fs.partial != g * want_stats.partial) {
        sp_fail(msg, len, "tile counters %lld/%lld masked, expected %lld", (long long)fs.masked,
                (long long)bs.masked, (long long)(g * want_stats.masked));
        goto done;
    }
    /* the dispatch over forms gives the same answer on the BBM form (float64 in and out) */
    fm_any_mask any = {.form = FM_FORM_BBM, .bbm = bbm};
    fm_tensors t = sp_tensors(&c, &got);
    if (fm_forward_any(FM_IMPL_CPU, p, &any, &t) != FM_OK) {
        sp_fail(msg, len, "fm_forward_any: %s", fm_last_error());
        goto done;
    }
    for (size_t e = 0; e < nq; e++)
        if (got.out[e] != (double)of[e]) {
            sp_fail(msg, len, "fm_forward_any(cpu) differs from fm_cpu_forward_bbm at %zu", e);
            goto done;
        }
    ok = 1;
done:
    free(dense), free(q), free(k), free(v), free(d), free(qf), free(kf), free(vf), free(df);
    free(of), free(lf), free(dqf), free(dkf), free(dvf);
    sp_run_free(&want), sp_run_free(&got);
    fm_bbm_free(&bbm);
    return ok;
}

static fm_property_test round_trip_and_codes = {
    "bbm_round_trip_and_codes", prop_round_trip_and_codes, .trials = 150, .max_seqlen = 70};
static fm_property_test auto_form = {"bbm_auto_form", prop_auto_form, .trials = 150};
static fm_property_test dense_reference = {"dense_reference_equals_column_reference",
                                           prop_dense_reference_equals_column_reference,
                                           .trials = 100};
static fm_property_test cpu_bbm = {"cpu_bbm_matches_reference", prop_cpu_bbm_matches_reference,
                                   .trials = 60, .max_seqlen = 100, .max_head_dim = 16};

/* Hostile inputs are refused with a message naming the element or the size. */
static void test_bbm_refusals(void **state)
{
    (void)state;
    uint8_t bad[6] = {0, 1, 1, 0, 7, 1};
    fm_bbm m;
    EXPECT_FAIL(fm_bbm_from_dense(&m, bad, 1, 1, 2, 3, 2, 2), FM_ERR_INVALID, "row=1 col=1");
    EXPECT_FAIL(fm_bbm_from_dense(&m, bad, 1, 1, 2, 3, 0, 2), FM_ERR_INVALID, "block_q");
    assert_int_equal(fm_bbm_from_dense(&m, NULL, 1, 1, 2, 3, 2, 2), FM_ERR_INVALID);
    fm_any_mask any;
    assert_int_equal(fm_mask_from_dense_auto(&any, bad, 1, 1, 2, 3, FM_CAUSAL_NONE, 2, 2),
                     FM_ERR_INVALID);
    /* three masked runs in column 0 go to BBM; the problem check names the mismatch */
    uint8_t three[5] = {0, 1, 0, 1, 0};
    assert_int_equal(fm_mask_from_dense_auto(&any, three, 1, 1, 5, 1, FM_CAUSAL_NONE, 2, 2), FM_OK);
    assert_int_equal(any.form, FM_FORM_BBM);
    fm_problem p = fm_test_problem(1, 1, 1, 4, 1, 4);
    assert_int_equal(fm_bbm_check_problem(&p, &any.bbm), FM_ERR_INVALID);
    fm_any_mask_free(&any);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bbm_refusals),
        fm_property_unit_test(round_trip_and_codes),
        fm_property_unit_test(auto_form),
        fm_property_unit_test(dense_reference),
        fm_property_unit_test(cpu_bbm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
