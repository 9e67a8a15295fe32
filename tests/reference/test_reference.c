/* tests/reference/test_reference.c — suite 'reference': the properties that pin the float64
 * oracle (reference/) to docs/spec.md §1, on random cases of the shared harness (tests/common/prop.h),
 * plus hand-computed closed-form cases and the oracle's refusals. docs/reference.md explains
 * which property pins which formula.
 *
 * Properties (each on FM_TRIALS random cases; a failure prints the case seed to replay):
 *   naive_forward       O and LSE equal an independent element-by-element long double loop
 *   gradients_fd        dQ, dK, dV equal 4-point central differences of L = sum(O * dO)
 *   masked_kv           K, V rows masked for every query row of every head reading them do
 *                       not change O, LSE or dQ, and get dK = dV = 0
 *   key_permutation     permuting key columns with their bounds (and K, V rows) leaves O, LSE
 *                       and dQ unchanged and permutes dK, dV (on the mask without causal part)
 *   gqa_repeat          GQA/MQA equals explicitly repeated K/V heads; dK, dV are the sums
 *   fully_masked_rows   O = 0, LSE = -inf, dQ = 0, and Q/dO of those rows do not reach dK/dV
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "attn_run.h"
#include "expect_fail.h"
#include "prop.h"
#include "runs.h"

/* ------------------------------------------------------------------ small helpers */

typedef struct coverage {
    int trials;     /* cases the property ran on */
    int exercised;  /* cases where the property had something to bite on */
} coverage;

/* Every property draws from the case's own seed, so a printed seed replays it exactly. */
static void case_rng(fm_rng *rng, const fm_random_case *c, uint64_t salt)
{
    fm_rng_seed(rng, c->seed ^ (salt * 0x9e3779b97f4a7c15ull));
}

static int64_t mask_head_of(const fm_problem *p, const fm_mask *m, int64_t h)
{
    return h / (p->q_heads / m->heads);
}

static int64_t kv_head_of(const fm_problem *p, int64_t h)
{
    return h / (p->q_heads / p->kv_heads);
}

/* Is row i of query head h (batch b) fully masked? */
static int row_fully_masked(const fm_problem *p, const fm_mask *m, int64_t b, int64_t h,
                            int64_t i)
{
    for (int64_t j = 0; j < p->seqlen_k; j++)
        if (!fm_mask_is_masked(m, b, mask_head_of(p, m, h), i, j)) return 0;
    return 1;
}

#define FAIL(...) (snprintf(msg, msg_len, __VA_ARGS__), 0)

/* Every property runs twice: many small cases (the harness defaults), then fewer larger ones
 * whose sizes exceed the BLAS kernels' register and cache blocks. Returns trials run. */
#define LARGE_TRIAL_DIVISOR 10
static int check_small_and_large(const char *name, fm_property_fn prop, void *ctx,
                                 int default_trials)
{
    fm_case_limits small = fm_case_limits_default();
    fm_case_limits large = small;
    large.max_batch = 2, large.max_q_heads = 4, large.max_seqlen = 96, large.max_head_dim = 40;
    int trials = fm_check_property(name, prop, ctx, default_trials, &small);
    int large_trials = default_trials / LARGE_TRIAL_DIVISOR;
    return trials + fm_check_property(name, prop, ctx, large_trials ? large_trials : 1, &large);
}

/* ------------------------------------------------------------------ naive_forward */

/* An independent forward, written as docs/spec.md §1 reads, element by element in long double with no
 * BLAS and no shared helper: for each (b, h, i), the allowed j come from fm_mask_is_masked
 * (the masks/ module's public query), LSE = log sum exp(S_ij), O_i = sum P_ij v_j. It pins
 * the oracle's offsets, transposes and head mapping, which the other properties only compare
 * with the oracle itself. */
#define NAIVE_TOLERANCE 1e-13

static int prop_naive_forward(const fm_random_case *c, void *vctx, char *msg, size_t msg_len)
{
    coverage *cov = vctx;
    const fm_problem *p = &c->problem;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    size_t nq = fm_problem_q_elems(p), nl = fm_problem_lse_elems(p);
    double *out = malloc(nq * sizeof(double)), *lse = malloc(nl * sizeof(double));
    long double *scores = malloc((size_t)Sk * sizeof(long double));
    int ok = out && lse && scores;
    if (!ok) ok = FAIL("out of memory");
    if (ok && fm_ref_forward(p, &c->mask, c->q, c->k, c->v, out, lse) != FM_OK)
        ok = FAIL("reference failed: %s", fm_last_error());
    cov->trials++;
    for (int64_t b = 0; ok && b < p->batch; b++)
        for (int64_t h = 0; ok && h < p->q_heads; h++) {
            int64_t kh = kv_head_of(p, h), mh = mask_head_of(p, &c->mask, h);
            for (int64_t i = 0; ok && i < Sq; i++) {
                const double *qi = c->q + ((b * p->q_heads + h) * Sq + i) * D;
                long double max = -INFINITY, sum = 0;
                for (int64_t j = 0; j < Sk; j++) {
                    const double *kj = c->k + ((b * p->kv_heads + kh) * Sk + j) * D;
                    long double dot = 0;
                    for (int64_t d = 0; d < D; d++) dot += (long double)qi[d] * kj[d];
                    scores[j] = fm_mask_is_masked(&c->mask, b, mh, i, j)
                                    ? -INFINITY : (long double)p->scale * dot;
                    if (scores[j] > max) max = scores[j];
                }
                size_t row = (size_t)((b * p->q_heads + h) * Sq + i);
                if (max == -INFINITY) { /* fully masked row */
                    if (lse[row] != -INFINITY) ok = FAIL("row %zu: LSE %g, expected -inf", row,
                                                         lse[row]);
                    continue;
                }
                for (int64_t j = 0; j < Sk; j++) sum += expl(scores[j] - max);
                long double row_lse = max + logl(sum);
                for (int64_t j = 0; j < Sk; j++) scores[j] = expl(scores[j] - row_lse); /* P */
                if (!(fabsl(row_lse - lse[row]) <= NAIVE_TOLERANCE * fmaxl(1, fabsl(row_lse))))
                    ok = FAIL("row %zu: LSE %.17g, naive %.17Lg", row, lse[row], row_lse);
                for (int64_t d = 0; ok && d < D; d++) {
                    long double o = 0, vmax = 1;
                    for (int64_t j = 0; j < Sk; j++) {
                        long double vjd = c->v[((b * p->kv_heads + kh) * Sk + j) * D + d];
                        o += scores[j] * vjd;
                        vmax = fmaxl(vmax, fabsl(vjd));
                    }
                    double got = out[row * (size_t)D + d];
                    if (!(fabsl(o - got) <= NAIVE_TOLERANCE * vmax))
                        ok = FAIL("O[row %zu, d %lld] = %.17g, naive %.17Lg", row, (long long)d,
                                  got, o);
                }
            }
        }
    if (ok) cov->exercised++;
    free(out), free(lse), free(scores);
    return ok;
}

/* ------------------------------------------------------------------ gradients_fd */

/* The part of L = sum(O * dO) that the perturbed input can change, at the current q, k, v
 * (NAN if the forward fails): batch b and the query heads h with h / head_div == head. The
 * rest of L does not move, and leaving it out keeps |L|, hence the rounding error, small. */
static double loss(const fm_random_case *c, const double *q, const double *k, const double *v,
                   double *out, double *lse, int64_t b, int64_t head, int64_t head_div)
{
    const fm_problem *p = &c->problem;
    if (fm_ref_forward(p, &c->mask, q, k, v, out, lse) != FM_OK) return NAN;
    const size_t per_head = (size_t)(p->seqlen_q * p->head_dim);
    double sum = 0.0;
    for (int64_t h = 0; h < p->q_heads; h++) {
        if (h / head_div != head) continue;
        size_t at = (size_t)(b * p->q_heads + h) * per_head;
        for (size_t e = at; e < at + per_head; e++) sum += out[e] * c->dout[e];
    }
    return sum;
}

/* Step and sample count of the finite differences. The 6-point central stencil
 *   f'(x) ~ (-f(x-3h) + 9 f(x-2h) - 45 f(x-h) + 45 f(x+h) - 9 f(x+2h) + f(x+3h)) / (60 h)
 * has truncation error ~ h^6 f^(7) / 140 and rounding error ~ 1.8 * noise(L) / h, where
 * noise(L) ~ 1e-14 is the float64 rounding of one evaluation of L. FD_STEP is the step in
 * score units (h is divided by s * max|k| * sqrt(D) for q entries, likewise for k), chosen to
 * balance the two: measured worst relative error 4.5e-9 .. 8.2e-9 over 2000 cases per seed
 * (FM_TRIALS=1000, three seeds), against 3.7e-8 at 1e-2 and failures at 1e-1. */
#define FD_STEP 3e-2
#define FD_SAMPLES 6
#define FD_TOLERANCE 1e-7

typedef struct fd_ctx {
    coverage cov;
    double worst; /* largest relative error seen */
} fd_ctx;

static int prop_gradients_fd(const fm_random_case *c, void *vctx, char *msg, size_t msg_len)
{
    fd_ctx *ctx = vctx;
    const fm_problem *p = &c->problem;
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    fm_attn_result r;
    if (fm_attn_run(FM_IMPL_REFERENCE, p, &c->mask, c->q, c->k, c->v, c->dout, &r) != FM_OK)
        return FAIL("reference failed: %s", fm_last_error());
    double *q = fm_dup(c->q, nq), *k = fm_dup(c->k, nkv), *v = fm_dup(c->v, nkv);
    double *out = malloc(nq * sizeof(double));
    double *lse = malloc(fm_problem_lse_elems(p) * sizeof(double));
    int ok = q && k && v && out && lse;
    if (!ok) ok = FAIL("out of memory");

    double *inputs[3] = {q, k, v};
    const double *grads[3] = {r.dq, r.dk, r.dv};
    const size_t sizes[3] = {nq, nkv, nkv};
    const char *names[3] = {"dQ", "dK", "dV"};
    fm_rng rng;
    case_rng(&rng, c, 1);
    ctx->cov.trials++;
    /* Errors are relative to the entry, floored at 1e-3 of the largest gradient of all three
     * tensors: near-zero entries (and tensors that are zero in exact arithmetic, e.g. dQ when
     * Sk = 1) are judged on the problem's gradient scale rather than on rounding noise. */
    double scale = 0.0;
    for (int t = 0; t < 3; t++) scale = fmax(scale, fm_max_abs(grads[t], sizes[t]));
    /* The step in score units is s * |k| * h for a q entry (s * |q| * h for a k entry): scale
     * h down by that factor so that large scales and long vectors keep truncation small. O is
     * linear in V, where any step is exact. */
    const double steps_of[3] = {
        FD_STEP / fmax(1.0, p->scale * fm_max_abs(c->k, nkv) * sqrt((double)p->head_dim)),
        FD_STEP / fmax(1.0, p->scale * fm_max_abs(c->q, nq) * sqrt((double)p->head_dim)),
        FD_STEP};
    for (int t = 0; ok && t < 3; t++) {
        for (int s = 0; ok && s < FD_SAMPLES; s++) {
            size_t at = (size_t)fm_rng_below(&rng, sizes[t]);
            /* Which (batch, head) the entry belongs to; kv heads reach a group of q heads. */
            int64_t heads = t == 0 ? p->q_heads : p->kv_heads;
            int64_t seqlen = t == 0 ? p->seqlen_q : p->seqlen_k;
            int64_t bh = (int64_t)(at / (size_t)(seqlen * p->head_dim));
            int64_t head_div = t == 0 ? 1 : p->q_heads / p->kv_heads;
            double x = inputs[t][at], f[6], h = steps_of[t];
            const double steps[6] = {-3 * h, -2 * h, -h, h, 2 * h, 3 * h};
            for (int e = 0; e < 6; e++) {
                inputs[t][at] = x + steps[e];
                f[e] = loss(c, q, k, v, out, lse, bh / heads, bh % heads, head_div);
            }
            inputs[t][at] = x;
            double fd = (-f[0] + 9 * f[1] - 45 * f[2] + 45 * f[3] - 9 * f[4] + f[5]) / (60 * h);
            double g = grads[t][at];
            double denom = fmax(fabs(g), 1e-3 * scale);
            double err = denom > 0 ? fabs(fd - g) / denom : fabs(fd - g);
            if (denom > 0) ctx->cov.exercised++;
            if (err > ctx->worst) ctx->worst = err;
            if (!(err <= FD_TOLERANCE))
                ok = FAIL("%s[%zu] = %.17g but finite differences give %.17g (relative error "
                          "%.3g > %g)", names[t], at, g, fd, err, FD_TOLERANCE);
        }
    }
    free(q), free(k), free(v), free(out), free(lse);
    fm_attn_result_free(&r);
    return ok;
}

static void test_gradients_fd(void **state)
{
    (void)state;
    fd_ctx ctx = {{0, 0}, 0.0};
    check_small_and_large("gradients_fd", prop_gradients_fd, &ctx, 1000);
    printf("gradients_fd: %d cases, %d non-zero samples, worst relative error %.3g\n",
           ctx.cov.trials, ctx.cov.exercised, ctx.worst);
}

/* ------------------------------------------------------------------ masked_kv */

/* dead[(b*Hk + kh)*Sk + j] = 1 iff key j of kv head kh is masked for every row of every query
 * head that reads kv head kh. Returns the number of dead keys, or -1 on allocation failure. */
static int64_t dead_keys(const fm_problem *p, const fm_mask *m, uint8_t **dead_out)
{
    size_t n = (size_t)(p->batch * p->kv_heads * p->seqlen_k);
    uint8_t *dead = malloc(n);
    if (!dead) return -1;
    memset(dead, 1, n);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++)
            for (int64_t j = 0; j < p->seqlen_k; j++) {
                uint8_t *d = &dead[(b * p->kv_heads + kv_head_of(p, h)) * p->seqlen_k + j];
                for (int64_t i = 0; *d && i < p->seqlen_q; i++)
                    if (!fm_mask_is_masked(m, b, mask_head_of(p, m, h), i, j)) *d = 0;
            }
    int64_t count = 0;
    for (size_t i = 0; i < n; i++) count += dead[i];
    *dead_out = dead;
    return count;
}

static int prop_masked_kv(const fm_random_case *c, void *vctx, char *msg, size_t msg_len)
{
    coverage *cov = vctx;
    const fm_problem *p = &c->problem;
    const int64_t D = p->head_dim;
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    size_t nl = fm_problem_lse_elems(p);
    uint8_t *dead = NULL;
    int64_t n_dead = dead_keys(p, &c->mask, &dead);
    if (n_dead < 0) return FAIL("out of memory");
    cov->trials++;
    if (n_dead > 0) cov->exercised++;

    /* Replace K and V of dead keys by different (larger) random values. */
    double *k2 = fm_dup(c->k, nkv), *v2 = fm_dup(c->v, nkv);
    fm_attn_result a = {0}, r = {0};
    int ok = k2 && v2;
    if (!ok) ok = FAIL("out of memory");
    fm_rng rng;
    case_rng(&rng, c, 2);
    for (size_t key = 0; ok && key < nkv / (size_t)D; key++)
        if (dead[key])
            for (int64_t d = 0; d < D; d++) {
                k2[key * (size_t)D + d] = 5.0 * fm_rng_normal(&rng);
                v2[key * (size_t)D + d] = 5.0 * fm_rng_normal(&rng);
            }
    if (ok && fm_attn_run(FM_IMPL_REFERENCE, p, &c->mask, c->q, c->k, c->v, c->dout, &a))
        ok = FAIL("reference failed: %s", fm_last_error());
    if (ok && fm_attn_run(FM_IMPL_REFERENCE, p, &c->mask, c->q, k2, v2, c->dout, &r))
        ok = FAIL("reference failed: %s", fm_last_error());
    /* Exact equality: a dead key only meets P = 0 and dS = 0, and 0 * x adds nothing. */
    size_t at;
    if (ok && (at = fm_first_unequal(a.out, r.out, nq)) < nq)
        ok = FAIL("O[%zu] changed from %.17g to %.17g (%lld dead keys changed)", at, a.out[at],
                  r.out[at], (long long)n_dead);
    if (ok && (at = fm_first_unequal(a.lse, r.lse, nl)) < nl)
        ok = FAIL("LSE[%zu] changed from %.17g to %.17g", at, a.lse[at], r.lse[at]);
    if (ok && (at = fm_first_unequal(a.dq, r.dq, nq)) < nq)
        ok = FAIL("dQ[%zu] changed from %.17g to %.17g", at, a.dq[at], r.dq[at]);
    for (size_t key = 0; ok && key < nkv / (size_t)D; key++)
        for (int64_t d = 0; ok && dead[key] && d < D; d++) {
            size_t e = key * (size_t)D + d;
            if (r.dk[e] != 0.0 || r.dv[e] != 0.0)
                ok = FAIL("dead key row %zu: dK = %g, dV = %g, expected 0", key, r.dk[e],
                          r.dv[e]);
        }
    free(dead), free(k2), free(v2);
    fm_attn_result_free(&a), fm_attn_result_free(&r);
    return ok;
}

/* ------------------------------------------------------------------ key_permutation */

/* max|a - b| <= tol * max(1, max|b|), with -inf == -inf required exactly. */
static int close_enough(const double *a, const double *b, size_t n, double tol, size_t *where)
{
    double bound = tol * fmax(1.0, fm_max_abs(b, n));
    for (size_t i = 0; i < n; i++) {
        if (isinf(a[i]) || isinf(b[i])) {
            if (a[i] != b[i]) return *where = i, 0;
        } else if (!(fabs(a[i] - b[i]) <= bound)) {
            return *where = i, 0;
        }
    }
    return 1;
}

#define REORDER_TOLERANCE 1e-12 /* only the summation order changes */

static int prop_key_permutation(const fm_random_case *c, void *vctx, char *msg, size_t msg_len)
{
    coverage *cov = vctx;
    const fm_problem *p = &c->problem;
    const int64_t Sk = p->seqlen_k, D = p->head_dim;
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    size_t nl = fm_problem_lse_elems(p);
    /* Causal masking depends on j, so it does not commute with a permutation of keys: test
     * the same interval vectors without the causal part. */
    fm_mask base = {0}, perm_mask = {0};
    int64_t *perm = malloc((size_t)Sk * sizeof(int64_t));
    double *k2 = malloc(nkv * sizeof(double)), *v2 = malloc(nkv * sizeof(double));
    fm_attn_result a = {0}, r = {0};
    int ok = perm && k2 && v2 && fm_mask_copy(&base, &c->mask) == FM_OK &&
             fm_mask_copy(&perm_mask, &c->mask) == FM_OK;
    if (!ok) ok = FAIL("out of memory");
    cov->trials++;
    if (ok) {
        base.causal = perm_mask.causal = FM_CAUSAL_NONE;
        fm_rng rng;
        case_rng(&rng, c, 3);
        for (int64_t j = 0; j < Sk; j++) perm[j] = j; /* Fisher-Yates */
        for (int64_t j = Sk - 1; j > 0; j--) {
            int64_t s = (int64_t)fm_rng_below(&rng, (uint64_t)j + 1), tmp = perm[j];
            perm[j] = perm[s], perm[s] = tmp;
        }
        /* New key jn is old key perm[jn]: its K, V rows and its four bounds move together. */
        for (int64_t bh = 0; bh < p->batch * p->kv_heads; bh++)
            for (int64_t jn = 0; jn < Sk; jn++)
                for (int64_t d = 0; d < D; d++) {
                    k2[(bh * Sk + jn) * D + d] = c->k[(bh * Sk + perm[jn]) * D + d];
                    v2[(bh * Sk + jn) * D + d] = c->v[(bh * Sk + perm[jn]) * D + d];
                }
        for (int64_t b = 0; b < base.batch; b++)
            for (int64_t m = 0; m < base.heads; m++)
                for (int64_t jn = 0; jn < Sk; jn++)
                    memcpy(fm_mask_column(&perm_mask, b, m, jn),
                           fm_mask_column(&base, b, m, perm[jn]), FM_BOUNDS * sizeof(int32_t));
        if (Sk > 1) cov->exercised++;
    }
    if (ok && fm_attn_run(FM_IMPL_REFERENCE, p, &base, c->q, c->k, c->v, c->dout, &a))
        ok = FAIL("reference failed: %s", fm_last_error());
    if (ok && fm_attn_run(FM_IMPL_REFERENCE, p, &perm_mask, c->q, k2, v2, c->dout, &r))
        ok = FAIL("reference failed on the permuted case: %s", fm_last_error());
    size_t at;
    if (ok && !close_enough(r.out, a.out, nq, REORDER_TOLERANCE, &at))
        ok = FAIL("O[%zu]: %.17g after permuting keys, %.17g before", at, r.out[at], a.out[at]);
    if (ok && !close_enough(r.lse, a.lse, nl, REORDER_TOLERANCE, &at))
        ok = FAIL("LSE[%zu]: %.17g after permuting keys, %.17g before", at, r.lse[at],
                  a.lse[at]);
    if (ok && !close_enough(r.dq, a.dq, nq, REORDER_TOLERANCE, &at))
        ok = FAIL("dQ[%zu]: %.17g after permuting keys, %.17g before", at, r.dq[at], a.dq[at]);
    /* dK, dV: un-permute the new result, then compare. */
    for (int pass = 0; ok && pass < 2; pass++) {
        double *moved = pass ? r.dv : r.dk, *orig = pass ? a.dv : a.dk;
        double *back = malloc(nkv * sizeof(double));
        if (!back) {
            ok = FAIL("out of memory");
            break;
        }
        for (int64_t bh = 0; bh < p->batch * p->kv_heads; bh++)
            for (int64_t jn = 0; jn < Sk; jn++)
                for (int64_t d = 0; d < D; d++)
                    back[(bh * Sk + perm[jn]) * D + d] = moved[(bh * Sk + jn) * D + d];
        if (!close_enough(back, orig, nkv, REORDER_TOLERANCE, &at))
            ok = FAIL("%s[%zu]: %.17g after permuting keys (moved back), %.17g before",
                      pass ? "dV" : "dK", at, back[at], orig[at]);
        free(back);
    }
    free(perm), free(k2), free(v2);
    fm_mask_free(&base), fm_mask_free(&perm_mask);
    fm_attn_result_free(&a), fm_attn_result_free(&r);
    return ok;
}

/* ------------------------------------------------------------------ gqa_repeat */

#define GQA_SUM_TOLERANCE 1e-12 /* dK, dV: the sum over heads is taken in another order */

static int prop_gqa_repeat(const fm_random_case *c, void *vctx, char *msg, size_t msg_len)
{
    coverage *cov = vctx;
    const fm_problem *p = &c->problem;
    const int64_t Hq = p->q_heads, Hk = p->kv_heads, group = Hq / Hk;
    const size_t per_head = (size_t)(p->seqlen_k * p->head_dim);
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    size_t nl = fm_problem_lse_elems(p);
    cov->trials++;
    if (group > 1) cov->exercised++;

    /* The same problem with Hk = Hq: kv head h holds a copy of the original head h / group. */
    fm_problem rep = *p;
    rep.kv_heads = Hq;
    size_t nrep = fm_problem_kv_elems(&rep);
    double *k2 = malloc(nrep * sizeof(double)), *v2 = malloc(nrep * sizeof(double));
    double *sum = calloc(nkv ? nkv : 1, sizeof(double));
    fm_attn_result a = {0}, r = {0};
    int ok = k2 && v2 && sum;
    if (!ok) ok = FAIL("out of memory");
    for (int64_t b = 0; ok && b < p->batch; b++)
        for (int64_t h = 0; h < Hq; h++) {
            size_t from = (size_t)(b * Hk + h / group) * per_head;
            size_t to = (size_t)(b * Hq + h) * per_head;
            memcpy(k2 + to, c->k + from, per_head * sizeof(double));
            memcpy(v2 + to, c->v + from, per_head * sizeof(double));
        }
    if (ok && fm_attn_run(FM_IMPL_REFERENCE, p, &c->mask, c->q, c->k, c->v, c->dout, &a))
        ok = FAIL("reference failed: %s", fm_last_error());
    if (ok && fm_attn_run(FM_IMPL_REFERENCE, &rep, &c->mask, c->q, k2, v2, c->dout, &r))
        ok = FAIL("reference failed on repeated heads: %s", fm_last_error());
    /* The forward and dQ do identical arithmetic on identical operands: exactly equal. */
    size_t at;
    if (ok && (at = fm_first_unequal(a.out, r.out, nq)) < nq)
        ok = FAIL("O[%zu]: GQA %.17g, repeated heads %.17g", at, a.out[at], r.out[at]);
    if (ok && (at = fm_first_unequal(a.lse, r.lse, nl)) < nl)
        ok = FAIL("LSE[%zu]: GQA %.17g, repeated heads %.17g", at, a.lse[at], r.lse[at]);
    if (ok && (at = fm_first_unequal(a.dq, r.dq, nq)) < nq)
        ok = FAIL("dQ[%zu]: GQA %.17g, repeated heads %.17g", at, a.dq[at], r.dq[at]);
    /* dK, dV of a kv head = the sum of the repeated heads' dK, dV. */
    for (int pass = 0; ok && pass < 2; pass++) {
        const double *rep_grad = pass ? r.dv : r.dk, *gqa_grad = pass ? a.dv : a.dk;
        memset(sum, 0, nkv * sizeof(double));
        for (int64_t b = 0; b < p->batch; b++)
            for (int64_t h = 0; h < Hq; h++) {
                size_t from = (size_t)(b * Hq + h) * per_head;
                size_t to = (size_t)(b * Hk + h / group) * per_head;
                for (size_t e = 0; e < per_head; e++) sum[to + e] += rep_grad[from + e];
            }
        if (!close_enough(gqa_grad, sum, nkv, GQA_SUM_TOLERANCE, &at))
            ok = FAIL("%s[%zu]: GQA %.17g, sum over repeated heads %.17g (group %lld)",
                      pass ? "dV" : "dK", at, gqa_grad[at], sum[at], (long long)group);
    }
    free(k2), free(v2), free(sum);
    fm_attn_result_free(&a), fm_attn_result_free(&r);
    return ok;
}

/* ------------------------------------------------------------------ fully_masked_rows */

static int prop_fully_masked_rows(const fm_random_case *c, void *vctx, char *msg,
                                  size_t msg_len)
{
    coverage *cov = vctx;
    const fm_problem *p = &c->problem;
    const int64_t Sq = p->seqlen_q, D = p->head_dim;
    size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    size_t nl = fm_problem_lse_elems(p);
    uint8_t *masked_row = malloc(nl ? nl : 1);
    double *q2 = fm_dup(c->q, nq), *do2 = fm_dup(c->dout, nq);
    fm_attn_result a = {0}, r = {0};
    int ok = masked_row && q2 && do2;
    if (!ok) ok = FAIL("out of memory");
    int64_t n_masked = 0;
    fm_rng rng;
    case_rng(&rng, c, 4);
    /* Find the fully masked rows and give them new Q and dO rows. */
    for (int64_t b = 0; ok && b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++)
            for (int64_t i = 0; i < Sq; i++) {
                size_t row = (size_t)((b * p->q_heads + h) * Sq + i);
                masked_row[row] = (uint8_t)row_fully_masked(p, &c->mask, b, h, i);
                n_masked += masked_row[row];
                for (int64_t d = 0; masked_row[row] && d < D; d++) {
                    q2[row * (size_t)D + d] = 5.0 * fm_rng_normal(&rng);
                    do2[row * (size_t)D + d] = 5.0 * fm_rng_normal(&rng);
                }
            }
    cov->trials++;
    if (n_masked > 0) cov->exercised++;
    if (ok && fm_attn_run(FM_IMPL_REFERENCE, p, &c->mask, c->q, c->k, c->v, c->dout, &a))
        ok = FAIL("reference failed: %s", fm_last_error());
    if (ok && fm_attn_run(FM_IMPL_REFERENCE, p, &c->mask, q2, c->k, c->v, do2, &r))
        ok = FAIL("reference failed: %s", fm_last_error());
    for (size_t row = 0; ok && row < nl; row++) {
        if (!masked_row[row]) continue;
        if (!(isinf(r.lse[row]) && r.lse[row] < 0))
            ok = FAIL("fully masked row %zu: LSE = %.17g, expected -inf", row, r.lse[row]);
        for (int64_t d = 0; ok && d < D; d++) {
            size_t e = row * (size_t)D + d;
            if (r.out[e] != 0.0 || signbit(r.out[e]) || r.dq[e] != 0.0 || signbit(r.dq[e]))
                ok = FAIL("fully masked row %zu, d %lld: O = %g, dQ = %g, expected +0", row,
                          (long long)d, r.out[e], r.dq[e]);
        }
    }
    /* Other rows of O and LSE, and all of dK and dV, are untouched by the new Q and dO of
     * fully masked rows: exactly, as those rows only ever meet P = 0. */
    size_t at;
    if (ok && (at = fm_first_unequal(a.out, r.out, nq)) < nq)
        ok = FAIL("O[%zu] changed from %.17g to %.17g", at, a.out[at], r.out[at]);
    if (ok && (at = fm_first_unequal(a.lse, r.lse, nl)) < nl)
        ok = FAIL("LSE[%zu] changed from %.17g to %.17g", at, a.lse[at], r.lse[at]);
    if (ok && (at = fm_first_unequal(a.dk, r.dk, nkv)) < nkv)
        ok = FAIL("dK[%zu] changed from %.17g to %.17g by Q/dO of fully masked rows", at,
                  a.dk[at], r.dk[at]);
    if (ok && (at = fm_first_unequal(a.dv, r.dv, nkv)) < nkv)
        ok = FAIL("dV[%zu] changed from %.17g to %.17g by Q/dO of fully masked rows", at,
                  a.dv[at], r.dv[at]);
    free(masked_row), free(q2), free(do2);
    fm_attn_result_free(&a), fm_attn_result_free(&r);
    return ok;
}

/* ------------------------------------------------------------------ closed forms */

static double sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

#define TIGHT 1e-14

/* |got - want| <= tol, printing both on failure (this cmocka has no assert_double_equal). */
#define assert_near(got, want, tol) assert_near_at((got), (want), (tol), #got, __FILE__, __LINE__)
static void assert_near_at(double got, double want, double tol, const char *what,
                           const char *file, int line)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("%s = %.17g, expected %.17g (tolerance %g)\n", what, got, want, tol);
        _fail(file, line);
    }
}

/* Sq = Sk = 2, D = 1, scale 1/2, causal top_left: row 0 sees key 0, row 1 sees both.
 * q = (1, 2), k = (3, -1), v = (5, 7), dO = (1, -2).
 * Row 1 scores (3, -1), a = P_10 = sigmoid(4):  O_1 = 5a + 7(1-a),  LSE_1 = 3 + log(1 + e^-4).
 * dV = (P_00 dO_0 + P_10 dO_1, P_11 dO_1) = (1 - 2a, -2(1-a)).
 * Row 0 has one key: dS_00 = 1 * (dO_0 v_0 - dO_0 O_0) = 0, so dQ_0 = 0.
 * Row 1: dS_10 = -dS_11 = 4a(1-a); dQ_1 = s(dS_10 k_0 + dS_11 k_1) = 8a(1-a);
 * dK = s(dS_00 q_0 + dS_10 q_1, dS_11 q_1) = (4a(1-a), -4a(1-a)). */
static void test_closed_form_causal(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 1, 1, 2, 2, 1);
    p.scale = 0.5;
    fm_mask m = fm_test_mask(1, 1, 2, 2, FM_CAUSAL_TOP_LEFT);
    const double q[2] = {1, 2}, k[2] = {3, -1}, v[2] = {5, 7}, dout[2] = {1, -2};
    fm_attn_result r;
    assert_int_equal(fm_attn_run(FM_IMPL_REFERENCE, &p, &m, q, k, v, dout, &r), FM_OK);
    const double a = sigmoid(4.0), b = a * (1 - a);
    assert_near(r.out[0], 5.0, TIGHT);
    assert_near(r.out[1], 5 * a + 7 * (1 - a), TIGHT);
    assert_near(r.lse[0], 1.5, TIGHT);
    assert_near(r.lse[1], 3.0 + log1p(exp(-4.0)), TIGHT);
    assert_near(r.dv[0], 1 - 2 * a, TIGHT);
    assert_near(r.dv[1], -2 * (1 - a), TIGHT);
    assert_near(r.dq[0], 0.0, TIGHT);
    assert_near(r.dq[1], 8 * b, TIGHT);
    assert_near(r.dk[0], 4 * b, TIGHT);
    assert_near(r.dk[1], -4 * b, TIGHT);
    fm_attn_result_free(&r);
    fm_mask_free(&m);
}

/* Same tensors, causal none, LT interval [1, 2) on both keys: row 1 is fully masked.
 * Row 0 scores (1.5, -0.5), a = sigmoid(2): O_0 = 5a + 7(1-a), LSE_0 = 1.5 + log(1 + e^-2).
 * Row 1: O = 0, LSE = -inf, dQ = 0, and nothing reaches dK, dV from it.
 * dV = (a dO_0, (1-a) dO_0) = (a, 1-a). Delta_0 = dO_0 O_0 = 7 - 2a, dP_0j = dO_0 v_j:
 * dS_00 = a(5 - 7 + 2a) = -2a(1-a), dS_01 = (1-a)(7 - 7 + 2a) = +2a(1-a);
 * dQ_0 = s(dS_00 k_0 + dS_01 k_1) = 0.5 * (-2b)(3 - (-1)) = -4b (b = a(1-a));
 * dK = s q_0 (dS_00, dS_01) = (-b, b). */
static void test_closed_form_fully_masked_row(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 1, 1, 2, 2, 1);
    p.scale = 0.5;
    fm_mask m = fm_test_mask(1, 1, 2, 2, FM_CAUSAL_NONE);
    for (int j = 0; j < 2; j++) {
        fm_mask_column(&m, 0, 0, j)[FM_LTS] = 1;
        fm_mask_column(&m, 0, 0, j)[FM_LTE] = 2;
    }
    const double q[2] = {1, 2}, k[2] = {3, -1}, v[2] = {5, 7}, dout[2] = {1, -2};
    fm_attn_result r;
    assert_int_equal(fm_attn_run(FM_IMPL_REFERENCE, &p, &m, q, k, v, dout, &r), FM_OK);
    const double a = sigmoid(2.0), b = a * (1 - a);
    assert_near(r.out[0], 5 * a + 7 * (1 - a), TIGHT);
    assert_near(r.lse[0], 1.5 + log1p(exp(-2.0)), TIGHT);
    assert_true(r.out[1] == 0.0 && !signbit(r.out[1]));
    assert_true(isinf(r.lse[1]) && r.lse[1] < 0);
    assert_true(r.dq[1] == 0.0 && !signbit(r.dq[1]));
    assert_near(r.dq[0], -4 * b, TIGHT);
    assert_near(r.dk[0], -b, TIGHT);
    assert_near(r.dk[1], b, TIGHT);
    assert_near(r.dv[0], a, TIGHT);
    assert_near(r.dv[1], 1 - a, TIGHT);
    fm_attn_result_free(&r);
    fm_mask_free(&m);
}

/* MQA by hand: Hq = 2 heads share one kv head, Sk = 1 (so P = 1, O_i = v_0 whatever q is).
 * dV_0 = sum over both heads and rows of dO; dQ = dK = 0 (one key: dS = P(dP - Delta) = 0). */
static void test_closed_form_mqa(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 2, 1, 2, 1, 2);
    fm_mask m = fm_test_mask(1, 1, 2, 1, FM_CAUSAL_NONE);
    const double q[8] = {1, 2, 3, 4, 5, 6, 7, 8}, k[2] = {0.5, -1}, v[2] = {2, -3};
    const double dout[8] = {1, 0, 0, 1, 2, 2, -1, 3};
    fm_attn_result r;
    assert_int_equal(fm_attn_run(FM_IMPL_REFERENCE, &p, &m, q, k, v, dout, &r), FM_OK);
    for (int row = 0; row < 4; row++) {
        assert_near(r.out[2 * row], 2.0, TIGHT);
        assert_near(r.out[2 * row + 1], -3.0, TIGHT);
        assert_near(r.lse[row], (q[2 * row] * 0.5 - q[2 * row + 1]) / sqrt(2.0), TIGHT);
    }
    assert_near(r.dv[0], 1 + 0 + 2 - 1, TIGHT);
    assert_near(r.dv[1], 0 + 1 + 2 + 3, TIGHT);
    for (int e = 0; e < 8; e++) assert_near(r.dq[e], 0.0, TIGHT);
    assert_near(r.dk[0], 0.0, TIGHT);
    assert_near(r.dk[1], 0.0, TIGHT);
    fm_attn_result_free(&r);
    fm_mask_free(&m);
}

/* ------------------------------------------------------------------ refusals */

/* Backward with an LSE of -inf on a row that has allowed keys is refused, naming the row;
 * FlashAttention-2's +inf on a fully masked row is accepted (that row passes no gradient). */
static void test_backward_checks_lse(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 1, 1, 2, 2, 1);
    fm_mask m = fm_test_mask(1, 1, 2, 2, FM_CAUSAL_NONE);
    fm_mask_column(&m, 0, 0, 0)[FM_LTS] = 1; /* row 1 fully masked */
    fm_mask_column(&m, 0, 0, 0)[FM_LTE] = 2;
    fm_mask_column(&m, 0, 0, 1)[FM_LTS] = 1;
    fm_mask_column(&m, 0, 0, 1)[FM_LTE] = 2;
    const double q[2] = {1, 2}, k[2] = {3, -1}, v[2] = {5, 7}, dout[2] = {1, -2};
    double out[2], lse[2], dq[2], dk[2], dv[2], dq2[2], dk2[2], dv2[2];
    assert_int_equal(fm_ref_forward(&p, &m, q, k, v, out, lse), FM_OK);
    assert_int_equal(fm_ref_backward(&p, &m, q, k, v, out, lse, dout, dq, dk, dv), FM_OK);
    double fa2_lse[2] = {lse[0], INFINITY};
    assert_int_equal(fm_ref_backward(&p, &m, q, k, v, out, fa2_lse, dout, dq2, dk2, dv2), FM_OK);
    for (int e = 0; e < 2; e++) {
        assert_true(dq[e] == dq2[e]);
        assert_true(dk[e] == dk2[e]);
        assert_true(dv[e] == dv2[e]);
    }
    double bad_lse[2] = {-INFINITY, -INFINITY};
    EXPECT_FAIL(fm_ref_backward(&p, &m, q, k, v, out, bad_lse, dout, dq, dk, dv),
                FM_ERR_INVALID, "row 0");
    fm_mask_free(&m);
}

/* The dense backend, forced: Sq*Sk beyond its scratch limit is refused before any allocation
 * (the automatic choice would take the tiled backend; tests/reference/test_tiled.c). */
static void test_refuses_huge_problem(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 1, 1, 60000, 60000, 1);
    fm_mask m = fm_test_mask(1, 1, 60000, 60000, FM_CAUSAL_NONE);
    double dummy[1] = {0};
    const fm_ref_options dense = {.backend = FM_REF_DENSE};
    EXPECT_FAIL(fm_ref_forward_opts(&p, &m, &dense, dummy, dummy, dummy, dummy, dummy),
                FM_ERR_OVERFLOW, "60000");
    fm_mask_free(&m);
}

/* Invalid problems are refused by the native calls too (fm_problem_validate). */
static void test_refuses_invalid_problem(void **state)
{
    (void)state;
    fm_problem p;
    fm_problem_init(&p, 1, 3, 2, 2, 2, 1); /* Hk = 2 does not divide Hq = 3 */
    fm_mask m = fm_test_mask(1, 1, 2, 2, FM_CAUSAL_NONE);
    double x[16] = {0};
    EXPECT_FAIL(fm_ref_forward(&p, &m, x, x, x, x, x), FM_ERR_INVALID, "kv_heads");
    fm_problem_init(&p, 1, 1, 1, 2, 2, 1);
    fm_mask_column(&m, 0, 0, 1)[FM_LTS] = 2; /* start > end */
    fm_mask_column(&m, 0, 0, 1)[FM_LTE] = 1;
    assert_int_not_equal(fm_ref_backward(&p, &m, x, x, x, x, x, x, x, x, x), FM_OK);
    fm_mask_free(&m);
}

/* Finite but huge inputs overflow float64 in s * q.k: refused naming the tensor, not NaN. */
static void test_refuses_overflow(void **state)
{
    (void)state;
    fm_problem p = fm_test_problem(1, 1, 1, 2, 2, 1);
    fm_mask m = fm_test_mask(1, 1, 2, 2, FM_CAUSAL_NONE);
    const double q[2] = {1e200, 1}, k[2] = {1e200, 1}, v[2] = {1, 2};
    double out[2], lse[2];
    fm_tensors t = {.q = q, .k = k, .v = v, .out = out, .lse = lse};
    EXPECT_FAIL(fm_forward(FM_IMPL_REFERENCE, &p, &m, &t), FM_ERR_OVERFLOW, "lse[0]");
    fm_mask_free(&m);
}

/* ------------------------------------------------------------------ the property tests */

/* A property run by check_small_and_large with a coverage count as its context: the log line
 * says on how many cases it had something to bite on (`bites`), and where that is `required`
 * the generator must produce some (the property is vacuous otherwise) once 100 cases ran. */
typedef struct covered_test {
    const char *name;
    fm_property_fn prop;
    int trials;
    const char *bites; /* NULL: the log line gives the case count only */
    int required;
    coverage cov;
} covered_test;

static void run_covered(void **state)
{
    covered_test *t = *state;
    const int trials = check_small_and_large(t->name, t->prop, &t->cov, t->trials);
    if (t->bites)
        printf("%s: %d cases, %d %s\n", t->name, t->cov.trials, t->cov.exercised, t->bites);
    else
        printf("%s: %d cases\n", t->name, t->cov.trials);
    if (t->required && trials >= 100) assert_true(t->cov.exercised > 0);
}

#define covered_unit_test(t) {(t).name, run_covered, NULL, NULL, &(t)}

static covered_test naive_forward = {"naive_forward", prop_naive_forward, .trials = 1000};
static covered_test masked_kv = {"masked_kv", prop_masked_kv, 2000, .bites = "with dead keys",
                                 .required = 1};
static covered_test key_permutation = {"key_permutation", prop_key_permutation, 2000,
                                       .bites = "with Sk > 1"};
static covered_test gqa_repeat = {"gqa_repeat", prop_gqa_repeat, 2000, .bites = "with Hq/Hk > 1",
                                  .required = 1};
static covered_test fully_masked_rows = {"fully_masked_rows", prop_fully_masked_rows, 2000,
                                         .bites = "with fully masked rows", .required = 1};

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_form_causal),
        cmocka_unit_test(test_closed_form_fully_masked_row),
        cmocka_unit_test(test_closed_form_mqa),
        cmocka_unit_test(test_backward_checks_lse),
        cmocka_unit_test(test_refuses_huge_problem),
        cmocka_unit_test(test_refuses_invalid_problem),
        cmocka_unit_test(test_refuses_overflow),
        covered_unit_test(naive_forward),
        cmocka_unit_test(test_gradients_fd),
        covered_unit_test(masked_kv),
        covered_unit_test(key_permutation),
        covered_unit_test(gqa_repeat),
        covered_unit_test(fully_masked_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
