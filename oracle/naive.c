/* oracle/naive.c — the naive same-precision attention of docs/spec.md §5, emulated on the CPU: what a
 * straightforward PyTorch implementation in dtype X (float16, bfloat16, float32) would compute,
 * with the scores and the softmax in float32. Its distance to the float64 reference sets the
 * error budget a real kernel in X is allowed (oracle/check.c). O(Sq*Sk*D): blocks of rows
 * against the whole key range (the mask decides element by element), OpenMP-parallel, the
 * inner loops vectorised without changing any sum's order (see "blocks of rows" below).
 *
 * Layer: oracle <- masks (fm_element_masked via rules.h) <- core (fm_round_to_dtype).
 * All float32 arithmetic below is plain C `float` (FLT_EVAL_METHOD 0 on x86-64 and aarch64),
 * accumulated sequentially in index order; the rounding to X is fm_round_to_dtype's (to_x
 * computes the same value on a float's bits).
 */
#include <math.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "flashmask/oracle.h"
#include "fm_internal.h"

/* Round a float32 value to X and return it as float32 (X is never wider than float32): the
 * value fm_round_to_dtype gives (ties to even, overflow to inf, X's subnormals), computed on
 * the float's bits, since it runs once per (row, key). */
static inline float to_x(float x, fm_dtype dtype)
{
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint32_t a = bits & 0x7fffffffu;
    if (dtype == FM_FLOAT32 || a >= 0x7f800000u) return x; /* float32, inf, NaN */
    if (dtype == FM_BFLOAT16) {
        /* keep 16 bits, ties to even; a carry into the exponent is the right rounding (to
         * the next binade or to inf); bfloat16's subnormals are float32's */
        bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
    } else if (a >= 0x38800000u) { /* float16, |x| >= 2^-14 (normal): keep 10 of 23 bits */
        uint32_t r = (a + 0xfffu + ((a >> 13) & 1u)) & ~0x1fffu;
        if (r > 0x477fe000u) r = 0x7f800000u; /* above 65504: inf */
        bits = (bits & 0x80000000u) | r;
    } else { /* float16's subnormal range: multiples of 2^-24 (both scalings are exact) */
        return nearbyintf(x * 0x1p24f) * 0x1p-24f;
    }
    memcpy(&x, &bits, sizeof x);
    return x;
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

/* ---------------------------------------------------------------- blocks of rows
 *
 * The arithmetic is that of the plain loops the header describes (every dot product summed in
 * index order from 0.0f, products and sums in float32, the same rounding points); only the
 * loop nesting differs, so that the compiler can vectorise across keys and feature dimensions
 * without changing any sum's order: scores of RB rows at once against K stored transposed
 * (lane j of a vector holds key j's dot product, summed over d in order), P V and the gradient
 * updates over d. Rows are independent in the forward (OpenMP over blocks of rows); the
 * backward's dK, dV sum over the rows of a (batch, kv head) in row order (OpenMP over those).
 */

enum { RB = 8 }; /* query rows per block */

/* The hot loops are compiled for AVX-512 and AVX2 as well as the baseline, picked at load time
 * (GCC's function multiversioning): wider vectors, the same operations in the same order (no
 * contraction into FMA under -std=c11), so the same bits on every machine. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define FM_NAIVE_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#endif
#endif
#ifndef FM_NAIVE_CLONES
#define FM_NAIVE_CLONES
#endif

/* kT[d * sk + j] = k[j * d_ + d]: one head's keys (or values) transposed. */
static void transpose(const float *k, int64_t sk, int64_t d, float *kT)
{
    for (int64_t j = 0; j < sk; j++)
        for (int64_t x = 0; x < d; x++) kT[x * sk + j] = k[j * d + x];
}

/* Per block: which (row, key) pairs are allowed and the keys [jlo, jhi) any row allows. */
typedef struct block {
    const fm_problem *p;
    const fm_mask *mask;
    int64_t b, hm, i0, rows, jlo, jhi;
    unsigned char *ok; /* [RB x sk] */
} block;

static void block_mask(block *blk)
{
    const fm_problem *p = blk->p;
    const fm_mask *m = blk->mask;
    const int64_t sk = p->seqlen_k, off = fm_causal_offset(m->causal, p->seqlen_q, sk);
    int64_t lo = sk, hi = 0;
    for (int64_t r = 0; r < blk->rows; r++)
        for (int64_t j = 0; j < sk; j++) {
            const int a = !fm_element_masked(fm_mask_column(m, blk->b, blk->hm, j), m->causal,
                                             off, blk->i0 + r, j);
            blk->ok[r * sk + j] = (unsigned char)a;
            if (a) {
                if (j < lo) lo = j;
                if (j + 1 > hi) hi = j + 1;
            }
        }
    blk->jlo = lo < hi ? lo : 0;
    blk->jhi = lo < hi ? hi : 0;
}

/* out[r * sk + j] = sum_x a[r * d + x] * bT[x * sk + j] (summed over x in order, from 0.0f)
 * for the block's rows and keys [jlo, jhi), in chunks of keys that stay in cache. */
FM_NAIVE_CLONES static void block_dots(const block *blk, const float *a, const float *bT, float *out)
{
    const int64_t sk = blk->p->seqlen_k, d = blk->p->head_dim;
    enum { CH = 512 };
    for (int64_t j0 = blk->jlo; j0 < blk->jhi; j0 += CH) {
        const int64_t j1 = j0 + CH < blk->jhi ? j0 + CH : blk->jhi;
        for (int64_t r = 0; r < blk->rows; r++)
            for (int64_t j = j0; j < j1; j++) out[r * sk + j] = 0.0f;
        for (int64_t x = 0; x < d; x++) {
            const float *bx = bT + x * sk;
            for (int64_t r = 0; r < blk->rows; r++) {
                const float ax = a[r * d + x];
                float *o = out + r * sk;
#pragma omp simd
                for (int64_t j = j0; j < j1; j++) o[j] += ax * bx[j];
            }
        }
    }
}

/* Scores S = s * q.k (float32) of the block's rows; masked keys get -INFINITY. */
static void block_scores(const block *blk, const float *q, const float *kT, float scale,
                         float *s)
{
    const int64_t sk = blk->p->seqlen_k;
    block_dots(blk, q, kT, s);
    for (int64_t r = 0; r < blk->rows; r++)
        for (int64_t j = blk->jlo; j < blk->jhi; j++) {
            float *sj = s + r * sk + j;
            *sj = blk->ok[r * sk + j] ? *sj * scale : -INFINITY;
        }
}

typedef struct scratch {
    unsigned char *ok;
    float *s, *e, *o; /* [RB x sk] scores, exp / dP; [RB x d] accumulators */
    float *dk, *dv;   /* [sk x d] the backward's dK, dV of one kv head */
} scratch;

static void scratch_free(scratch *w)
{
    free(w->ok), free(w->s), free(w->e), free(w->o), free(w->dk), free(w->dv);
}

static int scratch_alloc(scratch *w, int64_t sk, int64_t d, int bwd)
{
    memset(w, 0, sizeof *w);
    const size_t m = (size_t)RB * (size_t)sk;
    int ok = (w->ok = malloc(m)) && (w->s = malloc(m * sizeof(float))) &&
             (w->e = malloc(m * sizeof(float))) &&
             (w->o = malloc((size_t)RB * (size_t)d * sizeof(float)));
    if (ok && bwd)
        ok = (w->dk = malloc((size_t)(sk * d) * sizeof(float))) &&
             (w->dv = malloc((size_t)(sk * d) * sizeof(float)));
    return ok;
}

/* The forward of one block of rows of (b, h). */
FM_NAIVE_CLONES static void forward_block(block *blk, int64_t h, fm_dtype dtype, const float *qx,
                          const float *kT, const float *vh, double *out, double *lse,
                          scratch *w)
{
    const fm_problem *p = blk->p;
    const int64_t sq = p->seqlen_q, sk = p->seqlen_k, d = p->head_dim;
    const size_t row0 = (size_t)((blk->b * p->q_heads + h) * sq + blk->i0);
    blk->ok = w->ok;
    block_mask(blk);
    block_scores(blk, qx + row0 * (size_t)d, kT, (float)p->scale, w->s);
    float maxes[RB];
    for (int64_t r = 0; r < blk->rows; r++) {
        const size_t row = row0 + (size_t)r;
        const float *s = w->s + r * sk;
        float *e = w->e + r * sk, mx = -INFINITY;
        for (int64_t j = blk->jlo; j < blk->jhi; j++)
            if (s[j] > mx) mx = s[j];
        maxes[r] = mx;
        memset(w->o + r * d, 0, (size_t)d * sizeof(float));
        if (mx == -INFINITY) { /* fully masked row: out = 0, lse = -inf */
            memset(out + row * (size_t)d, 0, (size_t)d * sizeof(double));
            lse[row] = -INFINITY;
            continue;
        }
        float sum = 0.0f; /* softmax in float32, max-shifted, summed in key order */
        for (int64_t j = blk->jlo; j < blk->jhi; j++)
            if (s[j] != -INFINITY) sum += (e[j] = expf(s[j] - mx));
        lse[row] = (double)(mx + logf(sum));
        for (int64_t j = blk->jlo; j < blk->jhi; j++) /* P rounded to X */
            e[j] = s[j] != -INFINITY ? to_x(e[j] / sum, dtype) : 0.0f;
    }
    for (int64_t j = blk->jlo; j < blk->jhi; j++) { /* O = P V, float32, key order */
        const float *vj = vh + j * d;
        for (int64_t r = 0; r < blk->rows; r++) {
            if (maxes[r] == -INFINITY || w->s[r * sk + j] == -INFINITY) continue;
            const float pij = w->e[r * sk + j];
            float *o = w->o + r * d;
#pragma omp simd
            for (int64_t x = 0; x < d; x++) o[x] += pij * vj[x];
        }
    }
    for (int64_t r = 0; r < blk->rows; r++) {
        if (maxes[r] == -INFINITY) continue;
        double *oi = out + (row0 + (size_t)r) * (size_t)d;
        for (int64_t x = 0; x < d; x++) oi[x] = fm_round_to_dtype(w->o[r * d + x], dtype);
    }
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
    float *kT = fm_alloc(nkv, sizeof(float), "naive k transposed");
    st = (qx && kx && vx && kT) ? FM_OK : FM_ERR_NOMEM;
    const int64_t nblk = (sq + RB - 1) / RB, tasks = p->batch * p->q_heads * nblk;
    if (st == FM_OK) {
        for (int64_t x = 0; x < p->batch * p->kv_heads; x++)
            transpose(kx + x * sk * d, sk, d, kT + x * sk * d);
        int nomem = 0;
#pragma omp parallel if (tasks > 1 && (double)nq * (double)sk >= 1e6) reduction(|| : nomem)
        {
            scratch w;
            if (!scratch_alloc(&w, sk, d, 0)) nomem = 1;
#pragma omp for schedule(dynamic, 1)
            for (int64_t t = 0; t < tasks; t++) {
                if (nomem) continue;
                const int64_t bh = t / nblk, b = bh / p->q_heads, h = bh % p->q_heads;
                const int64_t i0 = (t % nblk) * RB;
                const size_t kv = (size_t)((b * p->kv_heads + kv_head_of(p, h)) * sk * d);
                block blk = {p, mask, b, mask_head_of(p, mask, h), i0,
                             i0 + RB <= sq ? RB : sq - i0, 0, 0, NULL};
                forward_block(&blk, h, dtype, qx, kT + kv, vx + kv, out, lse, &w);
            }
            scratch_free(&w);
        }
        if (nomem) st = fm_fail(FM_ERR_NOMEM, "naive forward: out of memory (Sk = %lld)",
                                (long long)sk);
    }
    free(qx), free(kx), free(vx), free(kT);
    return st;
}

/* The backward of one block of rows of query head h: dq of its rows, and its shares of the
 * kv head's float32 dK, dV accumulators (rows in order, so each sum keeps the row order). */
FM_NAIVE_CLONES static void backward_block(block *blk, int64_t h, fm_dtype dtype, const float *qx,
                           const float *kh, const float *kT, const float *vT, const float *ox,
                           const float *dox, const double *lse, double *dq, scratch *w)
{
    const fm_problem *p = blk->p;
    const int64_t sq = p->seqlen_q, sk = p->seqlen_k, d = p->head_dim;
    const size_t row0 = (size_t)((blk->b * p->q_heads + h) * sq + blk->i0);
    const float scale = (float)p->scale;
    blk->ok = w->ok;
    block_mask(blk);
    block_scores(blk, qx + row0 * (size_t)d, kT, scale, w->s);
    block_dots(blk, dox + row0 * (size_t)d, vT, w->e); /* dP = dO . v_j */
    float delta[RB], lse_f[RB];
    int live[RB];
    for (int64_t r = 0; r < blk->rows; r++) {
        const size_t row = row0 + (size_t)r;
        live[r] = lse[row] != -INFINITY;
        lse_f[r] = (float)lse[row];
        delta[r] = live[r] ? dot_f(dox + row * (size_t)d, ox + row * (size_t)d, d) : 0.0f;
        memset(w->o + r * d, 0, (size_t)d * sizeof(float));
    }
    for (int64_t j = blk->jlo; j < blk->jhi; j++) {
        const float *kj = kh + j * d;
        float *dkj = w->dk + j * d, *dvj = w->dv + j * d;
        for (int64_t r = 0; r < blk->rows; r++) {
            const float sj = w->s[r * sk + j];
            if (!live[r] || sj == -INFINITY) continue;
            const size_t row = row0 + (size_t)r;
            const float *qi = qx + row * (size_t)d, *doi = dox + row * (size_t)d;
            const float pij = expf(sj - lse_f[r]);                 /* float32 */
            const float dpij = w->e[r * sk + j];                   /* dO . v_j */
            const float p_x = to_x(pij, dtype);                    /* P in X */
            const float ds_x = to_x(pij * (dpij - delta[r]), dtype); /* dS in X */
            float *dq_acc = w->o + r * d;
#pragma omp simd
            for (int64_t x = 0; x < d; x++) {
                dvj[x] += p_x * doi[x];
                dq_acc[x] += ds_x * kj[x];
                dkj[x] += ds_x * qi[x];
            }
        }
    }
    for (int64_t r = 0; r < blk->rows; r++)
        for (int64_t x = 0; x < d; x++)
            dq[(row0 + (size_t)r) * (size_t)d + (size_t)x] =
                fm_round_to_dtype(w->o[r * d + x] * scale, dtype);
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
    const int64_t group = p->q_heads / p->kv_heads, groups = p->batch * p->kv_heads;
    float *qx = load_x(q, nq, dtype, "naive q"), *kx = load_x(k, nkv, dtype, "naive k");
    float *vx = load_x(v, nkv, dtype, "naive v"), *ox = load_x(out, nq, dtype, "naive out");
    float *dox = load_x(dout, nq, dtype, "naive dout");
    float *kT = fm_alloc(nkv, sizeof(float), "naive k transposed");
    float *vT = fm_alloc(nkv, sizeof(float), "naive v transposed");
    st = (qx && kx && vx && ox && dox && kT && vT) ? FM_OK : FM_ERR_NOMEM;
    if (st == FM_OK) {
        for (int64_t x = 0; x < groups; x++) {
            transpose(kx + x * sk * d, sk, d, kT + x * sk * d);
            transpose(vx + x * sk * d, sk, d, vT + x * sk * d);
        }
        int nomem = 0;
#pragma omp parallel if (groups > 1 && (double)nq * (double)sk >= 1e6) reduction(|| : nomem)
        {
            scratch w;
            if (!scratch_alloc(&w, sk, d, 1)) nomem = 1;
#pragma omp for schedule(dynamic, 1)
            for (int64_t x = 0; x < groups; x++) {
                if (nomem) continue;
                const int64_t b = x / p->kv_heads, hk = x % p->kv_heads;
                const size_t kv_base = (size_t)(x * sk * d);
                /* dK, dV of this kv head sum over the query heads of its group, in float32 */
                memset(w.dk, 0, (size_t)(sk * d) * sizeof(float));
                memset(w.dv, 0, (size_t)(sk * d) * sizeof(float));
                for (int64_t h = hk * group; h < (hk + 1) * group; h++)
                    for (int64_t i0 = 0; i0 < sq; i0 += RB) {
                        block blk = {p, mask, b, mask_head_of(p, mask, h), i0,
                                     i0 + RB <= sq ? RB : sq - i0, 0, 0, NULL};
                        backward_block(&blk, h, dtype, qx, kx + kv_base, kT + kv_base,
                                       vT + kv_base, ox, dox, lse, dq, &w);
                    }
                for (size_t e = 0; e < (size_t)(sk * d); e++) {
                    dk[kv_base + e] = fm_round_to_dtype(w.dk[e] * (float)p->scale, dtype);
                    dv[kv_base + e] = fm_round_to_dtype(w.dv[e], dtype);
                }
            }
            scratch_free(&w);
        }
        if (nomem) st = fm_fail(FM_ERR_NOMEM, "naive backward: out of memory (Sk = %lld)",
                                (long long)sk);
    }
    free(qx), free(kx), free(vx), free(ox), free(dox), free(kT), free(vT);
    return st;
}
