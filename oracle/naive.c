/* oracle/naive.c — the naive same-precision attention of docs/spec.md §5, emulated on the CPU: what a
 * straightforward PyTorch implementation in dtype X (float16, bfloat16, float32) would compute,
 * with the scores and the softmax in float32. Its distance to the float64 reference sets the
 * error budget a real kernel in X is allowed (oracle/check.c). Dense, O(Sq*Sk*D), no tiling.
 *
 * Layer: oracle <- masks (fm_element_masked via rules.h) <- core (fm_round_to_dtype).
 * All float32 arithmetic below is plain C `float` (FLT_EVAL_METHOD 0 on x86-64 and aarch64),
 * accumulated sequentially in index order; the rounding to X is fm_round_to_dtype.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/oracle.h"
#include "fm_internal.h"

/* Round a float32 value to X and return it as float32 (X is never wider than float32). */
static inline float to_x(float x, fm_dtype dtype)
{
    return (float)fm_round_to_dtype((double)x, dtype);
}

/* Copy n float64 values into float32 storage, rounded to X: "inputs in X". */
static float *load_x(const double *src, size_t n, fm_dtype dtype, const char *what)
{
    float *dst = fm_alloc(n, sizeof(float), what);
    if (dst)
        for (size_t i = 0; i < n; i++) dst[i] = (float)fm_round_to_dtype(src[i], dtype);
    return dst;
}

void fm_oracle_round_array(double *x, size_t n, fm_dtype dtype)
{
    for (size_t i = 0; i < n; i++) x[i] = fm_round_to_dtype(x[i], dtype);
}

static fm_status check_args(const fm_problem *p, const fm_mask *mask, fm_dtype dtype)
{
    fm_status st = fm_problem_validate(p, mask);
    if (st != FM_OK) return st;
    if (dtype != FM_FLOAT32 && dtype != FM_FLOAT16 && dtype != FM_BFLOAT16)
        return fm_fail(FM_ERR_INVALID,
                       "naive computation: dtype %s is not a candidate precision (float32, "
                       "float16 or bfloat16)", fm_dtype_name(dtype));
    return FM_OK;
}

/* float32 dot product of two rows of length d, accumulated in order. */
static inline float dot_f(const float *a, const float *b, int64_t d)
{
    float acc = 0.0f;
    for (int64_t x = 0; x < d; x++) acc += a[x] * b[x];
    return acc;
}

/* Which heads a query head reads (docs/spec.md §1 and 2): kv head and mask head. */
static inline int64_t kv_head_of(const fm_problem *p, int64_t h)
{
    return h / (p->q_heads / p->kv_heads);
}
static inline int64_t mask_head_of(const fm_problem *p, const fm_mask *m, int64_t h)
{
    return h / (p->q_heads / m->heads);
}

fm_status fm_oracle_masked_rows(const fm_problem *p, const fm_mask *mask, uint8_t *rows)
{
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    if (st != FM_OK) return st;
    if (!rows) return fm_fail(FM_ERR_INVALID, "masked rows: NULL output");
    const int64_t sq = p->seqlen_q, sk = p->seqlen_k;
    const int64_t off = fm_causal_offset(mask->causal, sq, sk);
    for (int64_t b = 0; b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++) {
            int64_t hm = mask_head_of(p, mask, h);
            for (int64_t i = 0; i < sq; i++) {
                int any_allowed = 0;
                for (int64_t j = 0; j < sk && !any_allowed; j++)
                    any_allowed = !fm_element_masked(fm_mask_column(mask, b, hm, j),
                                                     mask->causal, off, i, j);
                rows[(b * p->q_heads + h) * sq + i] = (uint8_t)!any_allowed;
            }
        }
    return FM_OK;
}

/* Scores of query row i against every key of one (b, kv head), float32; masked keys get
 * -INFINITY. Returns the row max (-INFINITY when the row is fully masked). */
static float row_scores(const fm_problem *p, const fm_mask *mask, int64_t b, int64_t hm,
                        const float *qi, const float *kh, int64_t i, float scale, float *s)
{
    const int64_t sk = p->seqlen_k, d = p->head_dim;
    const int64_t off = fm_causal_offset(mask->causal, p->seqlen_q, sk);
    float mx = -INFINITY;
    for (int64_t j = 0; j < sk; j++) {
        if (fm_element_masked(fm_mask_column(mask, b, hm, j), mask->causal, off, i, j)) {
            s[j] = -INFINITY;
            continue;
        }
        s[j] = dot_f(qi, kh + j * d, d) * scale; /* S = s * q.k, float32 */
        if (s[j] > mx) mx = s[j];
    }
    return mx;
}

fm_status fm_naive_forward(const fm_problem *p, const fm_mask *mask, fm_dtype dtype,
                           const double *q, const double *k, const double *v, double *out,
                           double *lse)
{
    fm_clear_error();
    fm_status st = check_args(p, mask, dtype);
    if (st != FM_OK) return st;
    if (!q || !k || !v || !out || !lse)
        return fm_fail(FM_ERR_INVALID, "naive forward: NULL q, k, v, out or lse");
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const int64_t sq = p->seqlen_q, sk = p->seqlen_k, d = p->head_dim;
    float *qx = load_x(q, nq, dtype, "naive q"), *kx = load_x(k, nkv, dtype, "naive k");
    float *vx = load_x(v, nkv, dtype, "naive v");
    float *s = fm_alloc((size_t)sk, sizeof(float), "naive scores");
    float *o = fm_alloc((size_t)d, sizeof(float), "naive out row");
    st = (qx && kx && vx && s && o) ? FM_OK : FM_ERR_NOMEM;
    const float scale = (float)p->scale;
    for (int64_t b = 0; st == FM_OK && b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++) {
            const int64_t hk = kv_head_of(p, h), hm = mask_head_of(p, mask, h);
            const float *kh = kx + (b * p->kv_heads + hk) * sk * d;
            const float *vh = vx + (b * p->kv_heads + hk) * sk * d;
            for (int64_t i = 0; i < sq; i++) {
                const size_t row = (size_t)((b * p->q_heads + h) * sq + i);
                double *oi = out + row * (size_t)d;
                float mx = row_scores(p, mask, b, hm, qx + row * (size_t)d, kh, i, scale, s);
                if (mx == -INFINITY) { /* fully masked row: out = 0, lse = -inf */
                    memset(oi, 0, (size_t)d * sizeof(double));
                    lse[row] = -INFINITY;
                    continue;
                }
                float sum = 0.0f; /* softmax in float32, max-shifted */
                for (int64_t j = 0; j < sk; j++)
                    if (s[j] != -INFINITY) sum += expf(s[j] - mx);
                lse[row] = (double)(mx + logf(sum));
                memset(o, 0, (size_t)d * sizeof(float));
                for (int64_t j = 0; j < sk; j++) {
                    if (s[j] == -INFINITY) continue;
                    float pij = to_x(expf(s[j] - mx) / sum, dtype); /* P rounded to X */
                    const float *vj = vh + j * d;
                    for (int64_t x = 0; x < d; x++) o[x] += pij * vj[x]; /* float32 acc */
                }
                for (int64_t x = 0; x < d; x++) oi[x] = fm_round_to_dtype(o[x], dtype);
            }
        }
    free(qx), free(kx), free(vx), free(s), free(o);
    return st;
}

fm_status fm_naive_backward(const fm_problem *p, const fm_mask *mask, fm_dtype dtype,
                            const double *q, const double *k, const double *v, const double *out,
                            const double *lse, const double *dout, double *dq, double *dk,
                            double *dv)
{
    fm_clear_error();
    fm_status st = check_args(p, mask, dtype);
    if (st != FM_OK) return st;
    if (!q || !k || !v || !out || !lse || !dout || !dq || !dk || !dv)
        return fm_fail(FM_ERR_INVALID, "naive backward: NULL tensor");
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const int64_t sq = p->seqlen_q, sk = p->seqlen_k, d = p->head_dim;
    const int64_t group = p->q_heads / p->kv_heads;
    float *qx = load_x(q, nq, dtype, "naive q"), *kx = load_x(k, nkv, dtype, "naive k");
    float *vx = load_x(v, nkv, dtype, "naive v"), *ox = load_x(out, nq, dtype, "naive out");
    float *dox = load_x(dout, nq, dtype, "naive dout");
    float *s = fm_alloc((size_t)sk, sizeof(float), "naive scores");
    float *dq_acc = fm_alloc((size_t)d, sizeof(float), "naive dq row");
    float *dk_acc = fm_alloc((size_t)(sk * d), sizeof(float), "naive dk head");
    float *dv_acc = fm_alloc((size_t)(sk * d), sizeof(float), "naive dv head");
    st = (qx && kx && vx && ox && dox && s && dq_acc && dk_acc && dv_acc) ? FM_OK : FM_ERR_NOMEM;
    const float scale = (float)p->scale;
    for (int64_t b = 0; st == FM_OK && b < p->batch; b++)
        for (int64_t hk = 0; hk < p->kv_heads; hk++) {
            const size_t kv_base = (size_t)((b * p->kv_heads + hk) * sk * d);
            const float *kh = kx + kv_base, *vh = vx + kv_base;
            /* dK, dV of this kv head sum over the query heads of its group, in float32 */
            memset(dk_acc, 0, (size_t)(sk * d) * sizeof(float));
            memset(dv_acc, 0, (size_t)(sk * d) * sizeof(float));
            for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
                const int64_t hm = mask_head_of(p, mask, h);
                for (int64_t i = 0; i < sq; i++) {
                    const size_t row = (size_t)((b * p->q_heads + h) * sq + i);
                    const float *qi = qx + row * (size_t)d, *doi = dox + row * (size_t)d;
                    memset(dq_acc, 0, (size_t)d * sizeof(float));
                    const float lse_i = (float)lse[row];
                    if (lse[row] != -INFINITY) {
                        row_scores(p, mask, b, hm, qi, kh, i, scale, s);
                        const float delta = dot_f(doi, ox + row * (size_t)d, d);
                        for (int64_t j = 0; j < sk; j++) {
                            if (s[j] == -INFINITY) continue;
                            const float pij = expf(s[j] - lse_i);         /* float32 */
                            const float dpij = dot_f(doi, vh + j * d, d);  /* dO . v_j */
                            const float p_x = to_x(pij, dtype);           /* P in X */
                            const float ds_x = to_x(pij * (dpij - delta), dtype); /* dS in X */
                            const float *kj = kh + j * d;
                            float *dkj = dk_acc + j * d, *dvj = dv_acc + j * d;
                            for (int64_t x = 0; x < d; x++) {
                                dvj[x] += p_x * doi[x];
                                dq_acc[x] += ds_x * kj[x];
                                dkj[x] += ds_x * qi[x];
                            }
                        }
                    }
                    for (int64_t x = 0; x < d; x++)
                        dq[row * (size_t)d + (size_t)x] = fm_round_to_dtype(dq_acc[x] * scale,
                                                                            dtype);
                }
            }
            for (size_t x = 0; x < (size_t)(sk * d); x++) {
                dk[kv_base + x] = fm_round_to_dtype(dk_acc[x] * scale, dtype);
                dv[kv_base + x] = fm_round_to_dtype(dv_acc[x], dtype);
            }
        }
    free(qx), free(kx), free(vx), free(ox), free(dox), free(s);
    free(dq_acc), free(dk_acc), free(dv_acc);
    return st;
}
