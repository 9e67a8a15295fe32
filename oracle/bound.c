/* oracle/bound.c — the derived pass rule's per-element error bounds (docs/oracle.md §2): for
 * every element of out, lse, dq, dk, dv, an upper bound on the error of ANY implementation that
 * computes in the candidate's precision X with FlashAttention's rounding points (inputs in X,
 * scores/softmax/accumulation in float32 in any order and tiling, P and dS rounded to X before
 * their products, O stored in X and read back for Delta, results rounded to X, lse float32;
 * under GQA the per-query-head dK, dV partials may be rounded to X and summed in X).
 * The bound is forward error analysis term by term (the derivation, with the reason for every
 * term and constant, is docs/oracle.md §2.2); the |.| products it needs are computed here in
 * float64 alongside a recomputation of the reference's P, dP and dS: O(Sq*Sk*D), the cost of
 * the reference itself.
 *
 * Layer: oracle <- masks (fm_element_masked via rules.h) <- core.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/oracle.h"
#include "fm_internal.h"
#include "oracle_internal.h"

#define V32 0x1p-24 /* unit roundoff of float32, the arithmetic of every step */

/* gamma_n = n v / (1 - n v): the classic bound on the relative error of n float32 roundings
 * (Higham, Accuracy and Stability of Numerical Algorithms, Lemma 3.1), valid for any order. */
static double gamma_n(double n)
{
    const double nv = n * V32;
    return nv < 0.5 ? nv / (1.0 - nv) : INFINITY;
}

/* The same bound for n roundings of unit roundoff u (X's, for a sum computed in X). */
static double gamma_u(double n, double u)
{
    const double nu = n * u;
    return nu < 0.5 ? nu / (1.0 - nu) : INFINITY;
}

double fm_oracle_unit_roundoff(fm_dtype dtype)
{
    switch (dtype) {
    case FM_FLOAT16: return 0x1p-11;
    case FM_BFLOAT16: return 0x1p-8;
    case FM_FLOAT32: return 0x1p-24;
    default: return 0x1p-53;
    }
}

/* Absolute rounding error below X's normal range: half of float16's subnormal spacing; for
 * bfloat16 and float32 the flush-to-zero threshold 2^-126 (kernels may flush subnormals). */
static double eta_of(fm_dtype dtype)
{
    return dtype == FM_FLOAT16 ? 0x1p-25 : 0x1p-126;
}

/* Absolute error of a float32 exp whose exact value is below the normal range: kernels flush
 * (the cpu layer's exp2 returns 0 below 2^-126) or lose bits there; any P_ij may be off by it. */
#define ETA32 0x1p-126

/* Everything below is multiplied by this: it covers the float64 rounding of the reference and
 * of this computation (relative 2^-53 per operation, n < 2^30 operations per value). */
#define SLACK (1.0 + 0x1p-20)

typedef struct rowbuf {
    double *s, *a, *pr; /* scores, s*sum|q||k|, probabilities; [Sk] */
    double *dkh, *dvh;  /* this query head's exact dK, dV partials [Sk*D] */
    double *sdk, *sdv;  /* sum over the group's query heads of |dK^h|, |dV^h| [Sk*D] */
} rowbuf;

static void rowbuf_free(rowbuf *r)
{
    free(r->s), free(r->a), free(r->pr), free(r->dkh), free(r->dvh), free(r->sdk), free(r->sdv);
}

/* One (b, kv head): every query head h of its group, every row i. */
/* Whether query row i of (batch b, query head h) sees key j under g's mask: the column mask's
 * rule (docs/spec.md §2), or the dense mask's value. */
static int allowed(const fm_oracle_bound_args *g, int64_t b, int64_t h, int64_t i, int64_t j)
{
    const fm_problem *p = g->p;
    const fm_mask *m = g->columns;
    if (m) {
        const int64_t offset = fm_causal_offset(m->causal, p->seqlen_q, p->seqlen_k);
        const int64_t hm = h / (p->q_heads / m->heads);
        return !fm_element_masked(fm_mask_column(m, b, hm, j), m->causal, offset, i, j);
    }
    const int64_t hm = h / (p->q_heads / g->mask_heads);
    return g->dense[(((size_t)b * (size_t)g->mask_heads + (size_t)hm) * (size_t)p->seqlen_q +
                     (size_t)i) * (size_t)p->seqlen_k + (size_t)j] != 0;
}

static void bounds_group(const fm_oracle_bound_args *g, int64_t b, int64_t hk, rowbuf *rb)
{
    const fm_problem *p = g->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t group = p->q_heads / p->kv_heads;
    const double u = fm_oracle_unit_roundoff(g->dtype), eta = eta_of(g->dtype), s = p->scale;
    const size_t kv0 = (size_t)((b * p->kv_heads + hk) * Sk * D);
    const double *K = g->t->k + kv0, *V = g->t->v + kv0;
    const int bwd = g->b_dq != NULL;
    const double gam_d = gamma_n((double)D), gam_k = gamma_n((double)(group * Sq + 2));
    double *bdk = bwd ? g->b_dk + kv0 : NULL, *bdv = bwd ? g->b_dv + kv0 : NULL;
    if (bwd) {
        memset(bdk, 0, (size_t)(Sk * D) * sizeof(double));
        memset(bdv, 0, (size_t)(Sk * D) * sizeof(double));
        memset(rb->sdk, 0, (size_t)(Sk * D) * sizeof(double));
        memset(rb->sdv, 0, (size_t)(Sk * D) * sizeof(double));
    }
    for (int64_t h = hk * group; h < (hk + 1) * group; h++) {
        if (bwd) {
            memset(rb->dkh, 0, (size_t)(Sk * D) * sizeof(double));
            memset(rb->dvh, 0, (size_t)(Sk * D) * sizeof(double));
        }
        for (int64_t i = 0; i < Sq; i++) {
            const size_t row = (size_t)((b * p->q_heads + h) * Sq + i);
            const double *Q = g->t->q + row * (size_t)D, *O = g->t->out + row * (size_t)D;
            double *bo = g->b_out + row * (size_t)D;
            memset(bo, 0, (size_t)D * sizeof(double));
            g->b_lse[row] = 0.0;
            if (bwd) memset(g->b_dq + row * (size_t)D, 0, (size_t)D * sizeof(double));
            /* pass 1: scores, their |.| sums, the row's allowed count and largest |score| sum */
            int64_t n = 0;
            double amax = 0.0;
            for (int64_t j = 0; j < Sk; j++) {
                rb->pr[j] = 0.0;
                if (!allowed(g, b, h, i, j)) continue;
                const double *kj = K + j * D;
                double dot = 0.0, ab = 0.0;
                for (int64_t d = 0; d < D; d++) dot += Q[d] * kj[d], ab += fabs(Q[d] * kj[d]);
                rb->s[j] = s * dot, rb->a[j] = s * ab;
                amax = fmax(amax, rb->a[j]);
                n++;
            }
            if (n == 0) continue; /* fully masked row: held to exact values, not to a bound */
            const double lse = g->t->lse[row];
            for (int64_t j = 0; j < Sk; j++)
                if (allowed(g, b, h, i, j)) rb->pr[j] = exp(rb->s[j] - lse);
            /* tau: error of any exponent argument S_ij - m or S_ij - lse (terms F1, F2) */
            const double tau = gamma_n((double)(D + 4)) * (2.0 * amax + fabs(lse));
            const double gsum = gamma_n(3.0 * (double)n + 8.0);
            const double kappa = 2.0 * tau + gsum;                          /* F3 */
            const double rho = expm1(u + kappa + gamma_n((double)n));       /* F4 */
            const double blse = SLACK * (tau + gsum + 6.0 * V32 * fabs(lse) /* F5 */
                                         + V32 * log((double)n + 1.0));
            /* F6: the stored lse may be rounded to X (results files may hold X); the backward
             * reads the kernel's own float32 lse, so pi below uses blse without it */
            g->b_lse[row] = blse + SLACK * u * fabs(lse);
            for (int64_t j = 0; j < Sk; j++) {
                if (rb->pr[j] == 0.0 && !allowed(g, b, h, i, j)) continue;
                const double w = rho * rb->pr[j] + eta;
                const double *vj = V + j * D;
                for (int64_t d = 0; d < D; d++) bo[d] += w * fabs(vj[d]);
            }
            for (int64_t d = 0; d < D; d++)
                bo[d] = SLACK * (u * fabs(O[d]) + eta + (1.0 + u) * bo[d]);
            if (!bwd) continue;

            /* backward (terms B1..B6) */
            const double *dO = g->t->dout + row * (size_t)D;
            double delta = 0.0, ddelta = 0.0, dabs = 0.0;
            for (int64_t d = 0; d < D; d++) {
                delta += dO[d] * O[d];
                ddelta += fabs(dO[d]) * bo[d];
                dabs += fabs(dO[d]) * (fabs(O[d]) + bo[d]);
            }
            ddelta += gam_d * dabs;                                            /* B2 */
            const double pi = expm1(tau + blse + gamma_n(4.0));                 /* B1 */
            const double e_pi2 = expm1(pi + gamma_n(2.0)), pi2 = (1.0 + pi) * (1.0 + gamma_n(2.0));
            const double gam_q = gamma_n((double)n + 2.0);
            const double pv = expm1(pi + u) * (1.0 + gam_k) + gam_k;           /* B5 */
            double *bdq = g->b_dq + row * (size_t)D;
            for (int64_t j = 0; j < Sk; j++) {
                const double pij = rb->pr[j];
                if (pij == 0.0 && !allowed(g, b, h, i, j)) continue;
                const double *kj = K + j * D, *vj = V + j * D;
                double dp = 0.0, c = 0.0;
                for (int64_t d = 0; d < D; d++) dp += dO[d] * vj[d], c += fabs(dO[d] * vj[d]);
                const double ds = pij * (dp - delta);
                const double w = e_pi2 * fabs(ds) + pi2 * pij * (gam_d * c + ddelta)  /* B3 */
                                 + ETA32 * (1.0 + gamma_n(2.0)) *
                                       (fabs(dp - delta) + gam_d * c + ddelta);
                const double W = (1.0 + u) * w + u * fabs(ds) + eta;
                const double wq = s * ((1.0 + gam_q) * W + gam_q * fabs(ds));      /* B4 */
                const double wk = s * ((1.0 + gam_k) * W + gam_k * fabs(ds));
                const double wv = pv * pij + (1.0 + gam_k) * ETA32 + eta;
                double *dkj = rb->dkh + j * D, *dvj = rb->dvh + j * D;
                double *bkj = bdk + j * D, *bvj = bdv + j * D;
                for (int64_t d = 0; d < D; d++) {
                    bdq[d] += wq * fabs(kj[d]);
                    bkj[d] += wk * fabs(Q[d]);
                    bvj[d] += wv * fabs(dO[d]);
                    dkj[d] += s * ds * Q[d];
                    dvj[d] += pij * dO[d];
                }
            }
            const double *dq = g->t->dq + row * (size_t)D;
            for (int64_t d = 0; d < D; d++)
                bdq[d] = SLACK * (u * fabs(dq[d]) + eta + (1.0 + u) * bdq[d]);
        }
        if (bwd) /* B6: a kernel may round each query head's partial to X before the GQA sum */
            for (int64_t x = 0; x < Sk * D; x++) {
                bdk[x] += u * fabs(rb->dkh[x]) / (1.0 + u);
                bdv[x] += u * fabs(rb->dvh[x]) / (1.0 + u);
                rb->sdk[x] += fabs(rb->dkh[x]);
                rb->sdv[x] += fabs(rb->dvh[x]);
            }
    }
    /* B7: ... and then add the g rounded partials in X (autograd summing the gradients of
     * K, V repeated to the query heads does): g - 1 additions rounded to X, gamma_{g-1}(u) times
     * the sum of the summands' magnitudes, each at most |dK^h| + its own error (E below); every
     * partial's and every addition's rounding may also lose eta below X's normal range. For
     * g = 1 (MHA) the term is 0 and the bound is that of a single rounding. */
    const double gx = gamma_u((double)(group - 1), u), etas = (double)(2 * group - 1) * eta;
    if (bwd)
        for (int64_t x = 0; x < Sk * D; x++) {
            const double ek = etas + (1.0 + u) * bdk[x], ev = etas + (1.0 + u) * bdv[x];
            bdk[x] = SLACK * (ek + gx * (rb->sdk[x] + ek));
            bdv[x] = SLACK * (ev + gx * (rb->sdv[x] + ev));
        }
}

fm_status fm_oracle_bounds_with(const fm_oracle_bound_args *g)
{
    const fm_problem *p = g->p;
    const int64_t Sk = p->seqlen_k, D = p->head_dim;
    const int64_t groups = p->batch * p->kv_heads;
    fm_status st = FM_OK;
    /* threads only when there is work for them: on small cases the fork/join costs more, and
     * on a loaded machine a descheduled thread stalls the barrier (reference/ says the same) */
    const double work = (double)groups * (double)(p->q_heads / p->kv_heads) *
                        (double)p->seqlen_q * (double)Sk * (double)D;
#pragma omp parallel if (groups > 1 && work >= 1e6)
    {
        rowbuf rb = {0};
        rb.s = malloc((size_t)Sk * sizeof(double));
        rb.a = malloc((size_t)Sk * sizeof(double));
        rb.pr = malloc((size_t)Sk * sizeof(double));
        rb.dkh = malloc((size_t)(Sk * D) * sizeof(double));
        rb.dvh = malloc((size_t)(Sk * D) * sizeof(double));
        rb.sdk = malloc((size_t)(Sk * D) * sizeof(double));
        rb.sdv = malloc((size_t)(Sk * D) * sizeof(double));
        const int ok = rb.s && rb.a && rb.pr && rb.dkh && rb.dvh && rb.sdk && rb.sdv;
        if (!ok) {
#pragma omp atomic write
            st = FM_ERR_NOMEM;
        }
#pragma omp for schedule(dynamic, 1)
        for (int64_t x = 0; x < groups; x++)
            if (ok) bounds_group(g, x / p->kv_heads, x % p->kv_heads, &rb);
        rowbuf_free(&rb);
    }
    if (st != FM_OK) return fm_fail(st, "derived bounds: out of memory (Sk = %lld, D = %lld)",
                                    (long long)Sk, (long long)D);
    return FM_OK;
}

fm_status fm_oracle_bounds(const fm_problem *p, const fm_mask *mask, fm_dtype dtype,
                           const fm_tensors *ref, double *b_out, double *b_lse, double *b_dq,
                           double *b_dk, double *b_dv)
{
    fm_clear_error();
    fm_status st = fm_problem_validate(p, mask);
    if (st != FM_OK) return st;
    if (dtype != FM_FLOAT32 && dtype != FM_FLOAT16 && dtype != FM_BFLOAT16)
        return fm_fail(FM_ERR_INVALID, "derived bounds: dtype %s is not a candidate precision",
                       fm_dtype_name(dtype));
    const int bwd = b_dq != NULL;
    if (!ref || !ref->q || !ref->k || !ref->v || !ref->out || !ref->lse || !b_out || !b_lse ||
        (bwd && (!ref->dout || !ref->dq || !b_dk || !b_dv)))
        return fm_fail(FM_ERR_INVALID, "derived bounds: NULL tensor");
    fm_oracle_bound_args g = {.p = p, .dtype = dtype, .t = ref, .columns = mask,
                              .b_out = b_out, .b_lse = b_lse, .b_dq = b_dq,
                              .b_dk = b_dk, .b_dv = b_dv};
    return fm_oracle_bounds_with(&g);
}
