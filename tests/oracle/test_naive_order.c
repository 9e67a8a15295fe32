/* tests/oracle/test_naive_order.c — the naive same-precision computation (fm_naive_forward,
 * fm_naive_backward) gives, bit for bit, the plain loops of its definition (docs/oracle.md §2.4:
 * every dot product and sum in index order from 0, float32 products and sums, P and dS rounded
 * to X by fm_round_to_dtype), written out below one row and one key at a time. The library
 * computes it by blocks of rows, vectorised across keys and features and in parallel; any
 * change of a sum's order, a contraction into FMA or a wrong rounding shortcut shows here as a
 * different bit. Random cases of every family, GQA and mask heads, both alignments, fully
 * masked rows, the three dtypes, inputs at unit scale and x6 (tiny probabilities: float16's
 * subnormals), and a case longer than one block of rows and one chunk of keys.
 * Layer: tests of oracle/ (over masks/ and core/).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flashmask/oracle.h"
#include "prop.h"

static float to_x(float x, fm_dtype dtype) { return (float)fm_round_to_dtype((double)x, dtype); }

static float dot_f(const float *a, const float *b, int64_t d)
{
    float acc = 0.0f;
    for (int64_t x = 0; x < d; x++) acc += a[x] * b[x];
    return acc;
}

static float *load_x(const double *src, size_t n, fm_dtype dtype)
{
    float *dst = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) dst[i] = (float)fm_round_to_dtype(src[i], dtype);
    return dst;
}

static int allowed(const fm_problem *p, const fm_mask *m, int64_t b, int64_t h, int64_t i,
                   int64_t j)
{
    const int64_t hm = h / (p->q_heads / m->heads);
    const int64_t off = fm_causal_offset(m->causal, p->seqlen_q, p->seqlen_k);
    return !fm_element_masked(fm_mask_column(m, b, hm, j), m->causal, off, i, j);
}

/* Scores of row i (float32; masked: -inf); returns the row max. */
static float scores(const fm_problem *p, const fm_mask *m, int64_t b, int64_t h, int64_t i,
                    const float *qi, const float *kh, float *s)
{
    float mx = -INFINITY;
    for (int64_t j = 0; j < p->seqlen_k; j++) {
        s[j] = allowed(p, m, b, h, i, j) ? dot_f(qi, kh + j * p->head_dim, p->head_dim) *
                                               (float)p->scale
                                         : -INFINITY;
        if (s[j] > mx) mx = s[j];
    }
    return mx;
}

static void plain_forward(const fm_problem *p, const fm_mask *m, fm_dtype x, const double *q,
                          const double *k, const double *v, double *out, double *lse)
{
    const int64_t sq = p->seqlen_q, sk = p->seqlen_k, d = p->head_dim;
    float *qx = load_x(q, fm_problem_q_elems(p), x), *kx = load_x(k, fm_problem_kv_elems(p), x);
    float *vx = load_x(v, fm_problem_kv_elems(p), x);
    float *s = malloc((size_t)sk * sizeof(float)), *o = malloc((size_t)d * sizeof(float));
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++) {
            const int64_t hk = h / (p->q_heads / p->kv_heads);
            const float *kh = kx + (b * p->kv_heads + hk) * sk * d;
            const float *vh = vx + (b * p->kv_heads + hk) * sk * d;
            for (int64_t i = 0; i < sq; i++) {
                const size_t row = (size_t)((b * p->q_heads + h) * sq + i);
                float mx = scores(p, m, b, h, i, qx + row * (size_t)d, kh, s);
                if (mx == -INFINITY) {
                    for (int64_t e = 0; e < d; e++) out[row * (size_t)d + (size_t)e] = 0.0;
                    lse[row] = -INFINITY;
                    continue;
                }
                float sum = 0.0f;
                for (int64_t j = 0; j < sk; j++)
                    if (s[j] != -INFINITY) sum += expf(s[j] - mx);
                lse[row] = (double)(mx + logf(sum));
                for (int64_t e = 0; e < d; e++) o[e] = 0.0f;
                for (int64_t j = 0; j < sk; j++) {
                    if (s[j] == -INFINITY) continue;
                    const float pij = to_x(expf(s[j] - mx) / sum, x);
                    for (int64_t e = 0; e < d; e++) o[e] += pij * vh[j * d + e];
                }
                for (int64_t e = 0; e < d; e++)
                    out[row * (size_t)d + (size_t)e] = fm_round_to_dtype(o[e], x);
            }
        }
    free(qx), free(kx), free(vx), free(s), free(o);
}

static void plain_backward(const fm_problem *p, const fm_mask *m, fm_dtype x, const double *q,
                           const double *k, const double *v, const double *out,
                           const double *lse, const double *dout, double *dq, double *dk,
                           double *dv)
{
    const int64_t sq = p->seqlen_q, sk = p->seqlen_k, d = p->head_dim;
    const int64_t group = p->q_heads / p->kv_heads;
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    float *qx = load_x(q, nq, x), *kx = load_x(k, nkv, x), *vx = load_x(v, nkv, x);
    float *ox = load_x(out, nq, x), *dox = load_x(dout, nq, x);
    float *s = malloc((size_t)sk * sizeof(float)), *dqa = malloc((size_t)d * sizeof(float));
    float *dka = malloc((size_t)(sk * d) * sizeof(float));
    float *dva = malloc((size_t)(sk * d) * sizeof(float));
    const float scale = (float)p->scale;
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t hk = 0; hk < p->kv_heads; hk++) {
            const size_t kv0 = (size_t)((b * p->kv_heads + hk) * sk * d);
            memset(dka, 0, (size_t)(sk * d) * sizeof(float));
            memset(dva, 0, (size_t)(sk * d) * sizeof(float));
            for (int64_t h = hk * group; h < (hk + 1) * group; h++)
                for (int64_t i = 0; i < sq; i++) {
                    const size_t row = (size_t)((b * p->q_heads + h) * sq + i);
                    const float *qi = qx + row * (size_t)d, *doi = dox + row * (size_t)d;
                    memset(dqa, 0, (size_t)d * sizeof(float));
                    if (lse[row] != -INFINITY) {
                        scores(p, m, b, h, i, qi, kx + kv0, s);
                        const float delta = dot_f(doi, ox + row * (size_t)d, d);
                        for (int64_t j = 0; j < sk; j++) {
                            if (s[j] == -INFINITY) continue;
                            const float pij = expf(s[j] - (float)lse[row]);
                            const float dpij = dot_f(doi, vx + kv0 + (size_t)(j * d), d);
                            const float px = to_x(pij, x), dsx = to_x(pij * (dpij - delta), x);
                            for (int64_t e = 0; e < d; e++) {
                                dva[j * d + e] += px * doi[e];
                                dqa[e] += dsx * kx[kv0 + (size_t)(j * d + e)];
                                dka[j * d + e] += dsx * qi[e];
                            }
                        }
                    }
                    for (int64_t e = 0; e < d; e++)
                        dq[row * (size_t)d + (size_t)e] = fm_round_to_dtype(dqa[e] * scale, x);
                }
            for (size_t e = 0; e < (size_t)(sk * d); e++) {
                dk[kv0 + e] = fm_round_to_dtype(dka[e] * scale, x);
                dv[kv0 + e] = fm_round_to_dtype(dva[e], x);
            }
        }
    free(qx), free(kx), free(vx), free(ox), free(dox), free(s), free(dqa), free(dka), free(dva);
}

/* 0 when a and b hold the same bits (NaN never occurs here). */
static int differ(const double *a, const double *b, size_t n, size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(&a[i], &b[i], sizeof(double)) != 0) {
            *at = i;
            return 1;
        }
    return 0;
}

/* Both computations on inputs scaled by `gain`, in every dtype. */
static int same_bits(const fm_problem *p, const fm_mask *m, const double *q0, const double *k0,
                     const double *v0, const double *dout, double gain, char *msg, size_t len)
{
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    double *q = malloc(nq * 8), *k = malloc(nkv * 8), *v = malloc(nkv * 8);
    for (size_t i = 0; i < nq; i++) q[i] = gain * q0[i];
    for (size_t i = 0; i < nkv; i++) k[i] = gain * k0[i], v[i] = v0[i];
    double *a[5], *b[5];
    const size_t sizes[5] = {nq, nl, nq, nkv, nkv};
    const char *names[5] = {"out", "lse", "dq", "dk", "dv"};
    for (int t = 0; t < 5; t++) a[t] = malloc(sizes[t] * 8 + 8), b[t] = malloc(sizes[t] * 8 + 8);
    const fm_dtype dtypes[3] = {FM_FLOAT16, FM_BFLOAT16, FM_FLOAT32};
    int ok = 1;
    for (int di = 0; ok && di < 3; di++) {
        const fm_dtype x = dtypes[di];
        plain_forward(p, m, x, q, k, v, a[0], a[1]);
        plain_backward(p, m, x, q, k, v, a[0], a[1], dout, a[2], a[3], a[4]);
        fm_status st = fm_naive_forward(p, m, x, q, k, v, b[0], b[1]);
        if (st == FM_OK)
            st = fm_naive_backward(p, m, x, q, k, v, b[0], b[1], dout, b[2], b[3], b[4]);
        if (st != FM_OK) {
            snprintf(msg, len, "%s: status %s (%s)", fm_dtype_name(x), fm_status_string(st),
                     fm_last_error());
            ok = 0;
            break;
        }
        for (int t = 0; ok && t < 5; t++) {
            size_t at;
            if (differ(a[t], b[t], sizes[t], &at)) {
                snprintf(msg, len, "%s, gain %g: %s[%zu] = %.17g, the plain loops give %.17g",
                         fm_dtype_name(x), gain, names[t], at, b[t][at], a[t][at]);
                ok = 0;
            }
        }
    }
    for (int t = 0; t < 5; t++) free(a[t]), free(b[t]);
    free(q), free(k), free(v);
    return ok;
}

static int prop_same_bits(const fm_random_case *c, void *ctx, char *msg, size_t len)
{
    (void)ctx;
    return same_bits(&c->problem, &c->mask, c->q, c->k, c->v, c->dout, 1.0, msg, len) &&
           same_bits(&c->problem, &c->mask, c->q, c->k, c->v, c->dout, 6.0, msg, len);
}

static void test_random_cases(void **state)
{
    (void)state;
    fm_check_property("naive: the plain loops' bits", prop_same_bits, NULL, 40, NULL);
}

/* Longer than one block of rows (8) and one chunk of keys (512), GQA, causal document. */
static void test_long_case(void **state)
{
    (void)state;
    fm_problem p;
    fm_problem_init(&p, 1, 4, 2, 37, 1100, 24);
    fm_mask_params mp;
    fm_mask m;
    assert_int_equal(fm_mask_params_default(&mp, FM_FAMILY_CAUSAL_DOCUMENT, 1100), FM_OK);
    assert_int_equal(fm_mask_build(&m, &mp, 1, 1, 37, 1100, FM_CAUSAL_BOTTOM_RIGHT), FM_OK);
    fm_mask_params_free(&mp);
    const size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    double *q = malloc(nq * 8), *k = malloc(nkv * 8), *v = malloc(nkv * 8), *dout = malloc(nq * 8);
    fm_rng r;
    fm_rng_seed(&r, 11);
    for (size_t i = 0; i < nq; i++) q[i] = fm_rng_normal(&r), dout[i] = fm_rng_normal(&r);
    for (size_t i = 0; i < nkv; i++) k[i] = fm_rng_normal(&r), v[i] = fm_rng_normal(&r);
    char msg[256] = "";
    int ok = same_bits(&p, &m, q, k, v, dout, 1.0, msg, sizeof msg);
    if (!ok) fprintf(stderr, "long case: %s\n", msg);
    assert_true(ok);
    free(q), free(k), free(v), free(dout);
    fm_mask_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_cases),
        cmocka_unit_test(test_long_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
