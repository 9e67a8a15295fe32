/* oracle/bound.c — the derived pass rule's per-element error bounds (docs/oracle.md §2): for
 * every element of out, lse, dq, dk, dv, an upper bound on the error of ANY implementation that
 * computes in the candidate's precision X with FlashAttention's rounding points (inputs in X,
 * scores/softmax/accumulation in float32 in any order and tiling, P and dS rounded to X before
 * their products, O stored in X and read back for Delta, results rounded to X, lse float32;
 * under GQA the per-query-head dK, dV partials may be rounded to X and summed in X).
 * The bound is forward error analysis term by term (the derivation, with the reason for every
 * term and constant, is docs/oracle.md §2.2); the |.| products it needs are computed here in
 * float64 alongside a recomputation of the reference's P, dP and dS: O(Sq*Sk*D), ten matrix
 * products per block of query rows (OpenBLAS dgemm, one BLAS thread per (batch, kv head),
 * OpenMP over those), restricted to the block's allowed key range. The float64 sums' order is
 * BLAS's; SLACK covers their rounding whatever the order.
 *
 * Layer: oracle <- masks (fm_element_masked via rules.h) <- core.
 */
#include <cblas.h>
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

/* One thread's buffers. The O(Sq*Sk*D) products run as dgemms over blocks of R query rows
 * against the block's live key range [jlo, jhi): [R x Sk] matrices below, row-major, ld Sk. */
typedef struct rowbuf {
    int64_t R;
    double *s, *a, *pr, *w;              /* scores, s*|Q||K|^T, probabilities, forward weights */
    double *dp, *c, *wq, *wk, *wv, *ds;  /* dO V^T, |dO||V|^T, backward weights, s*dS */
    unsigned char *ok;                   /* [R x Sk] allowed */
    unsigned char *live;                 /* [R] the row has an allowed key */
    double *aq, *ado, *mo, *mdq;         /* [R x D] |Q|, |dO|, W|V|, Wq|K| */
    double *ak, *av;                     /* [Sk x D] |K|, |V| of the group */
    double *dkh, *dvh;  /* this query head's exact dK, dV partials [Sk*D] */
    double *sdk, *sdv;  /* sum over the group's query heads of |dK^h|, |dV^h| [Sk*D] */
} rowbuf;

static void rowbuf_free(rowbuf *r)
{
    free(r->s), free(r->a), free(r->pr), free(r->w), free(r->dp), free(r->c), free(r->wq);
    free(r->wk), free(r->wv), free(r->ds), free(r->ok), free(r->live), free(r->aq);
    free(r->ado), free(r->mo), free(r->mdq), free(r->ak), free(r->av), free(r->dkh);
    free(r->dvh), free(r->sdk), free(r->sdv);
}

/* Rows per block: a few MB per [R x Sk] matrix, at least 8 rows and at most 64. */
static int64_t rows_per_block(int64_t Sk)
{
    int64_t r = ((int64_t)1 << 19) / (Sk > 0 ? Sk : 1);
    return r < 8 ? 8 : r > 64 ? 64 : r;
}

static int rowbuf_alloc(rowbuf *r, const fm_problem *p, int bwd)
{
    const size_t Sk = (size_t)p->seqlen_k, D = (size_t)p->head_dim;
    r->R = rows_per_block(p->seqlen_k);
    const size_t m = (size_t)r->R * Sk, rd = (size_t)r->R * D;
    int ok = (r->s = malloc(m * sizeof(double))) && (r->a = malloc(m * sizeof(double))) &&
             (r->pr = malloc(m * sizeof(double))) && (r->w = malloc(m * sizeof(double))) &&
             (r->ok = malloc(m)) && (r->live = malloc((size_t)r->R)) &&
             (r->aq = malloc(rd * sizeof(double))) && (r->mo = malloc(rd * sizeof(double))) &&
             (r->ak = malloc(Sk * D * sizeof(double))) && (r->av = malloc(Sk * D * sizeof(double)));
    if (ok && bwd)
        ok = (r->dp = malloc(m * sizeof(double))) && (r->c = malloc(m * sizeof(double))) &&
             (r->wq = malloc(m * sizeof(double))) && (r->wk = malloc(m * sizeof(double))) &&
             (r->wv = malloc(m * sizeof(double))) && (r->ds = malloc(m * sizeof(double))) &&
             (r->ado = malloc(rd * sizeof(double))) && (r->mdq = malloc(rd * sizeof(double))) &&
             (r->dkh = malloc(Sk * D * sizeof(double))) &&
             (r->dvh = malloc(Sk * D * sizeof(double))) &&
             (r->sdk = malloc(Sk * D * sizeof(double))) &&
             (r->sdv = malloc(Sk * D * sizeof(double)));
    return ok;
}

static void abs_copy(double *dst, const double *src, size_t n)
{
    for (size_t x = 0; x < n; x++) dst[x] = fabs(src[x]);
}

/* C[rows x n] = alpha * A[rows x D] B[n x D]^T (ldc = ldc). */
static void gemm_nt(int64_t rows, int64_t n, int64_t D, double alpha, const double *A,
                    const double *B, double *C, int64_t ldc)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)D, alpha, A,
                (int)D, B, (int)D, 0.0, C, (int)ldc);
}

/* C[rows x D] = A[rows x n] (lda) B[n x D]. */
static void gemm_nn(int64_t rows, int64_t n, int64_t D, const double *A, int64_t lda,
                    const double *B, double *C)
{
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)D, (int)n, 1.0, A,
                (int)lda, B, (int)D, 0.0, C, (int)D);
}

/* C[n x D] += A[rows x n]^T (lda) B[rows x D]. */
static void gemm_tn_acc(int64_t rows, int64_t n, int64_t D, const double *A, int64_t lda,
                        const double *B, double *C)
{
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n, (int)D, (int)rows, 1.0, A,
                (int)lda, B, (int)D, 1.0, C, (int)D);
}

/* The forward terms of rows [i0, i0 + rows) of query head h: b_lse, b_out, and for the
 * backward rb->pr (P) and rb->live. Columns outside [jlo, jhi) are masked for every row. */

/* The bound of a stored result, element by element over `rows` rows of D: the rounding of the
 * value x itself (u |x| + eta) on top of its accumulated bound m, times (1 + u), all with the
 * SLACK margin; 0 in a row with no allowed key (held to its exact value instead). */
static void stored_bound_rows(int64_t rows, int64_t D, const unsigned char *live,
                              const double *x, const double *m, double u, double eta, double *b)
{
    for (int64_t ii = 0; ii < rows; ii++)
        for (int64_t d = 0; d < D; d++) {
            const size_t e = (size_t)(ii * D + d);
            b[e] = live[ii] ? SLACK * (u * fabs(x[e]) + eta + (1.0 + u) * m[e]) : 0.0;
        }
}

static void block_forward(const fm_oracle_bound_args *g, int64_t b, int64_t h, int64_t i0,
                          int64_t rows, int64_t jlo, int64_t jhi, const double *K, rowbuf *rb)
{
    const fm_problem *p = g->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim, nj = jhi - jlo;
    const double u = fm_oracle_unit_roundoff(g->dtype), eta = eta_of(g->dtype), s = p->scale;
    const size_t row0 = (size_t)((b * p->q_heads + h) * Sq + i0);
    const double *Q = g->t->q + row0 * (size_t)D;
    abs_copy(rb->aq, Q, (size_t)(rows * D));
    /* S = s Q K^T and A = s |Q| |K|^T: A_ij = s sum_d |q_d k_d| */
    gemm_nt(rows, nj, D, s, Q, K + jlo * D, rb->s + jlo, Sk);
    gemm_nt(rows, nj, D, s, rb->aq, rb->ak + jlo * D, rb->a + jlo, Sk);
    for (int64_t ii = 0; ii < rows; ii++) {
        const size_t row = row0 + (size_t)ii, o = (size_t)(ii * Sk);
        const unsigned char *ok = rb->ok + o;
        const double *S = rb->s + o, *A = rb->a + o;
        double *pr = rb->pr + o, *w = rb->w + o;
        int64_t n = 0;
        double amax = 0.0;
        for (int64_t j = jlo; j < jhi; j++)
            if (ok[j]) n++, amax = fmax(amax, A[j]);
        g->b_lse[row] = 0.0;
        rb->live[ii] = n > 0;
        if (n == 0) { /* fully masked row: held to exact values, not to a bound */
            memset(pr + jlo, 0, (size_t)nj * sizeof(double));
            memset(w + jlo, 0, (size_t)nj * sizeof(double));
            continue;
        }
        const double lse = g->t->lse[row];
        for (int64_t j = jlo; j < jhi; j++) pr[j] = ok[j] ? exp(S[j] - lse) : 0.0;
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
        for (int64_t j = jlo; j < jhi; j++) w[j] = ok[j] ? rho * pr[j] + eta : 0.0;
    }
    /* b_out = sum_j (rho P_ij + eta) |v_j|, then the rounding of O itself */
    gemm_nn(rows, nj, D, rb->w + jlo, Sk, rb->av + jlo * D, rb->mo);
    stored_bound_rows(rows, D, rb->live, g->t->out + row0 * (size_t)D, rb->mo, u, eta,
                      g->b_out + row0 * (size_t)D);
}

/* The backward terms (B1..B5) of the same rows: b_dq, and the block's shares of b_dk, b_dv
 * and of the exact partials dK^h, dV^h. */
static void block_backward(const fm_oracle_bound_args *g, int64_t b, int64_t h, int64_t i0,
                           int64_t rows, int64_t jlo, int64_t jhi, const double *V, rowbuf *rb,
                           double *bdk, double *bdv)
{
    const fm_problem *p = g->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim, nj = jhi - jlo;
    const int64_t group = p->q_heads / p->kv_heads;
    const double u = fm_oracle_unit_roundoff(g->dtype), eta = eta_of(g->dtype), s = p->scale;
    const double gam_d = gamma_n((double)D), gam_k = gamma_n((double)(group * Sq + 2));
    const size_t row0 = (size_t)((b * p->q_heads + h) * Sq + i0);
    const double *Q = g->t->q + row0 * (size_t)D, *dO0 = g->t->dout + row0 * (size_t)D;
    abs_copy(rb->ado, dO0, (size_t)(rows * D));
    /* dP = dO V^T and C = |dO| |V|^T */
    gemm_nt(rows, nj, D, 1.0, dO0, V + jlo * D, rb->dp + jlo, Sk);
    gemm_nt(rows, nj, D, 1.0, rb->ado, rb->av + jlo * D, rb->c + jlo, Sk);
    for (int64_t ii = 0; ii < rows; ii++) {
        const size_t row = row0 + (size_t)ii, o = (size_t)(ii * Sk);
        double *wq = rb->wq + o, *wk = rb->wk + o, *wv = rb->wv + o, *dsr = rb->ds + o;
        if (!rb->live[ii]) {
            memset(wq + jlo, 0, (size_t)nj * sizeof(double));
            memset(wk + jlo, 0, (size_t)nj * sizeof(double));
            memset(wv + jlo, 0, (size_t)nj * sizeof(double));
            memset(dsr + jlo, 0, (size_t)nj * sizeof(double));
            continue;
        }
        const double *dO = dO0 + ii * D, *O = g->t->out + row * (size_t)D;
        const double *bo = g->b_out + row * (size_t)D;
        double delta = 0.0, ddelta = 0.0, dabs = 0.0;
        for (int64_t d = 0; d < D; d++) {
            delta += dO[d] * O[d];
            ddelta += fabs(dO[d]) * bo[d];
            dabs += fabs(dO[d]) * (fabs(O[d]) + bo[d]);
        }
        ddelta += gam_d * dabs;                                            /* B2 */
        /* blse without F6, as block_forward computed it */
        const double lse = g->t->lse[row];
        const unsigned char *ok = rb->ok + o;
        const double *A = rb->a + o, *pr = rb->pr + o, *dp = rb->dp + o, *c = rb->c + o;
        int64_t n = 0;
        double amax = 0.0;
        for (int64_t j = jlo; j < jhi; j++)
            if (ok[j]) n++, amax = fmax(amax, A[j]);
        const double tau = gamma_n((double)(D + 4)) * (2.0 * amax + fabs(lse));
        const double gsum = gamma_n(3.0 * (double)n + 8.0);
        const double blse = SLACK * (tau + gsum + 6.0 * V32 * fabs(lse) +
                                     V32 * log((double)n + 1.0));
        const double pi = expm1(tau + blse + gamma_n(4.0));                 /* B1 */
        const double e_pi2 = expm1(pi + gamma_n(2.0)), pi2 = (1.0 + pi) * (1.0 + gamma_n(2.0));
        const double gam_q = gamma_n((double)n + 2.0);
        const double pv = expm1(pi + u) * (1.0 + gam_k) + gam_k;           /* B5 */
        for (int64_t j = jlo; j < jhi; j++) {
            if (!ok[j]) {
                wq[j] = wk[j] = wv[j] = dsr[j] = 0.0;
                continue;
            }
            const double pij = pr[j];
            const double ds = pij * (dp[j] - delta);
            const double w = e_pi2 * fabs(ds) + pi2 * pij * (gam_d * c[j] + ddelta)  /* B3 */
                             + ETA32 * (1.0 + gamma_n(2.0)) *
                                   (fabs(dp[j] - delta) + gam_d * c[j] + ddelta);
            const double W = (1.0 + u) * w + u * fabs(ds) + eta;
            wq[j] = s * ((1.0 + gam_q) * W + gam_q * fabs(ds));                   /* B4 */
            wk[j] = s * ((1.0 + gam_k) * W + gam_k * fabs(ds));
            wv[j] = pv * pij + (1.0 + gam_k) * ETA32 + eta;
            dsr[j] = s * ds;
        }
    }
    /* b_dq = sum_j wq_ij |k_j|; b_dk += sum_i wk_ij |q_i|; b_dv += sum_i wv_ij |dO_i|;
     * dK^h += sum_i s dS_ij q_i; dV^h += sum_i P_ij dO_i */
    gemm_nn(rows, nj, D, rb->wq + jlo, Sk, rb->ak + jlo * D, rb->mdq);
    gemm_tn_acc(rows, nj, D, rb->wk + jlo, Sk, rb->aq, bdk + jlo * D);
    gemm_tn_acc(rows, nj, D, rb->wv + jlo, Sk, rb->ado, bdv + jlo * D);
    gemm_tn_acc(rows, nj, D, rb->ds + jlo, Sk, Q, rb->dkh + jlo * D);
    gemm_tn_acc(rows, nj, D, rb->pr + jlo, Sk, dO0, rb->dvh + jlo * D);
    stored_bound_rows(rows, D, rb->live, g->t->dq + row0 * (size_t)D, rb->mdq, u, eta,
                      g->b_dq + row0 * (size_t)D);
}

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

/* The allowed pattern of rows [i0, i0 + rows) into rb->ok; [*jlo, *jhi) receives the range of
 * keys allowed to any of them (empty: *jlo == *jhi). */
static void block_allowed(const fm_oracle_bound_args *g, int64_t b, int64_t h, int64_t i0,
                          int64_t rows, rowbuf *rb, int64_t *jlo, int64_t *jhi)
{
    const int64_t Sk = g->p->seqlen_k;
    int64_t lo = Sk, hi = 0;
    for (int64_t ii = 0; ii < rows; ii++) {
        unsigned char *ok = rb->ok + ii * Sk;
        for (int64_t j = 0; j < Sk; j++) {
            ok[j] = (unsigned char)allowed(g, b, h, i0 + ii, j);
            if (ok[j]) {
                if (j < lo) lo = j;
                if (j + 1 > hi) hi = j + 1;
            }
        }
    }
    *jlo = lo < hi ? lo : 0;
    *jhi = lo < hi ? hi : 0;
}

/* One (b, kv head): every query head h of its group, every row i, by blocks of rows. */
static void bounds_group(const fm_oracle_bound_args *g, int64_t b, int64_t hk, rowbuf *rb)
{
    const fm_problem *p = g->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t group = p->q_heads / p->kv_heads;
    const double u = fm_oracle_unit_roundoff(g->dtype), eta = eta_of(g->dtype);
    const size_t kv0 = (size_t)((b * p->kv_heads + hk) * Sk * D);
    const double *K = g->t->k + kv0, *V = g->t->v + kv0;
    const int bwd = g->b_dq != NULL;
    double *bdk = bwd ? g->b_dk + kv0 : NULL, *bdv = bwd ? g->b_dv + kv0 : NULL;
    abs_copy(rb->ak, K, (size_t)(Sk * D));
    abs_copy(rb->av, V, (size_t)(Sk * D));
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
        for (int64_t i0 = 0; i0 < Sq; i0 += rb->R) {
            const int64_t rows = i0 + rb->R <= Sq ? rb->R : Sq - i0;
            int64_t jlo, jhi;
            block_allowed(g, b, h, i0, rows, rb, &jlo, &jhi);
            if (jlo == jhi) { /* every row fully masked: bound 0 (held to exact values) */
                const size_t row0 = (size_t)((b * p->q_heads + h) * Sq + i0);
                memset(g->b_out + row0 * (size_t)D, 0, (size_t)(rows * D) * sizeof(double));
                memset(g->b_lse + row0, 0, (size_t)rows * sizeof(double));
                if (bwd)
                    memset(g->b_dq + row0 * (size_t)D, 0, (size_t)(rows * D) * sizeof(double));
                continue;
            }
            block_forward(g, b, h, i0, rows, jlo, jhi, K, rb);
            if (bwd) block_backward(g, b, h, i0, rows, jlo, jhi, V, rb, bdk, bdv);
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
    const int bwd = g->b_dq != NULL;
    int nomem = 0;
    /* threads only when there is work for them: on small cases the fork/join costs more, and
     * on a loaded machine a descheduled thread stalls the barrier (reference/ says the same) */
    const double work = (double)groups * (double)(p->q_heads / p->kv_heads) *
                        (double)p->seqlen_q * (double)Sk * (double)D;
    /* one BLAS thread per call: the threads here share the work, and a bound's bits do not
     * depend on the machine's thread count */
    const int blas_threads = openblas_get_num_threads();
    if (blas_threads != 1) openblas_set_num_threads(1);
#pragma omp parallel if (groups > 1 && work >= 1e6) reduction(|| : nomem)
    {
        rowbuf rb = {0};
        if (!rowbuf_alloc(&rb, p, bwd)) nomem = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t x = 0; x < groups; x++)
            if (!nomem) bounds_group(g, x / p->kv_heads, x % p->kv_heads, &rb);
        rowbuf_free(&rb);
    }
    if (blas_threads != 1) openblas_set_num_threads(blas_threads);
    if (nomem) return fm_fail(FM_ERR_NOMEM, "derived bounds: out of memory (Sk = %lld, D = %lld)",
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
