/* tests/sparse/sparse_case.h — what the 'sparse' suites share: dense masks drawn from a random
 * case (the case's own column mask made dense, i.i.d. cells of random density, blocky
 * patterns, scrambled bands that no column form can hold), float64 run buffers, error
 * measures, and a printf-style failure message for properties.
 * Layer: tests, above sparse/, cpu, reference and the harness (tests/common/prop.h).
 */
#ifndef FM_TEST_SPARSE_CASE_H
#define FM_TEST_SPARSE_CASE_H

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask.h"
#include "prop.h"

static inline int sp_fail(char *msg, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    return 0;
}

/* Kinds of dense mask a property may draw. */
enum { SP_FROM_COLUMNS, SP_IID, SP_BLOCKY, SP_SCRAMBLED_BAND, SP_KINDS };

/* A dense mask [B, Hm, Sq, Sk] for case c (Hm = c->mask.heads), of `kind`, from rng. The caller
 * frees it. */
static inline uint8_t *sp_dense_mask(const fm_random_case *c, int kind, fm_rng *rng)
{
    const fm_mask *m = &c->mask;
    const int64_t sq = m->seqlen_q, sk = m->seqlen_k;
    const size_t n = (size_t)(m->batch * m->heads) * (size_t)sq * (size_t)sk;
    uint8_t *a = malloc(n ? n : 1);
    if (!a) return NULL;
    if (kind == SP_FROM_COLUMNS) {
        if (fm_mask_to_dense(m, a) != FM_OK) {
            free(a);
            return NULL;
        }
        return a;
    }
    const double density = fm_rng_uniform(rng);
    const int64_t bh_cells = 1 + (int64_t)fm_rng_below(rng, 6),
                  bw_cells = 1 + (int64_t)fm_rng_below(rng, 6);
    const int64_t band = 1 + (int64_t)fm_rng_below(rng, 4);
    /* a random permutation of positions for the scrambled band */
    int64_t len = sq > sk ? sq : sk;
    int64_t *perm = malloc((size_t)len * sizeof *perm);
    if (!perm) {
        free(a);
        return NULL;
    }
    for (int64_t x = 0; x < len; x++) perm[x] = x;
    for (int64_t x = len - 1; x > 0; x--) {
        int64_t y = (int64_t)fm_rng_below(rng, (uint64_t)x + 1), t = perm[x];
        perm[x] = perm[y], perm[y] = t;
    }
    size_t e = 0;
    for (int64_t bh = 0; bh < m->batch * m->heads; bh++)
        for (int64_t i = 0; i < sq; i++)
            for (int64_t j = 0; j < sk; j++, e++) {
                switch (kind) {
                case SP_IID: a[e] = fm_rng_uniform(rng) < density; break;
                case SP_BLOCKY: a[e] = ((i / bh_cells) + (j / bw_cells) + bh) % 3 == 0; break;
                default: { /* |perm(i) - perm(j)| < band: a band scrambled in both directions */
                    int64_t d = perm[i] - perm[j];
                    a[e] = (d < 0 ? -d : d) < band;
                }
                }
            }
    free(perm);
    return a;
}

/* Float64 buffers of one run (out, lse, dq, dk, dv). */
typedef struct sp_run {
    double *out, *lse, *dq, *dk, *dv;
} sp_run;

static inline int sp_run_alloc(sp_run *r, const fm_problem *p)
{
    size_t nq = fm_problem_q_elems(p), nk = fm_problem_kv_elems(p), nl = fm_problem_lse_elems(p);
    r->out = malloc(nq * sizeof(double)), r->dq = malloc(nq * sizeof(double));
    r->lse = malloc(nl * sizeof(double));
    r->dk = malloc(nk * sizeof(double)), r->dv = malloc(nk * sizeof(double));
    return r->out && r->lse && r->dq && r->dk && r->dv;
}

static inline void sp_run_free(sp_run *r)
{
    free(r->out), free(r->lse), free(r->dq), free(r->dk), free(r->dv);
    memset(r, 0, sizeof *r);
}

static inline fm_tensors sp_tensors(const fm_random_case *c, sp_run *r)
{
    fm_tensors t = {c->q, c->k, c->v, c->dout, r->out, r->lse, r->dq, r->dk, r->dv};
    return t;
}

/* Largest |a - b| over n elements; equal infinities count 0, NaN or one-sided inf gives inf. */
static inline double sp_diff(const double *a, const double *b, size_t n)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] == b[i]) continue;
        double d = fabs(a[i] - b[i]);
        if (!(d <= m)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* Whether the five outputs of `got` are within `tol` of `want` (largest absolute difference,
 * sp_diff); if not, msg says "<what>: <worst tensor> differs from the dense oracle by D". */
static inline int sp_runs_agree(const fm_problem *p, const sp_run *got, const sp_run *want,
                                double tol, const char *what, char *msg, size_t len)
{
    size_t nq = fm_problem_q_elems(p), nk = fm_problem_kv_elems(p), nl = fm_problem_lse_elems(p);
    const struct { const char *name; double d; } all[] = {
        {"out", sp_diff(got->out, want->out, nq)}, {"lse", sp_diff(got->lse, want->lse, nl)},
        {"dq", sp_diff(got->dq, want->dq, nq)},    {"dk", sp_diff(got->dk, want->dk, nk)},
        {"dv", sp_diff(got->dv, want->dv, nk)},
    };
    double worst = 0.0;
    const char *which = "none";
    for (size_t i = 0; i < 5; i++)
        if (!(all[i].d <= worst)) worst = all[i].d, which = all[i].name;
    if (worst <= tol) return 1;
    sp_fail(msg, len, "%s: %s differs from the dense oracle by %.3g", what, which, worst);
    return 0;
}

/* The dense-mask reference, forward then backward, into r. */
static inline fm_status sp_dense_reference(const fm_random_case *c, const uint8_t *dense,
                                           int64_t mask_heads, sp_run *r)
{
    const fm_problem *p = &c->problem;
    fm_status st = fm_ref_forward_dense(p, dense, mask_heads, c->q, c->k, c->v, r->out, r->lse);
    if (st != FM_OK) return st;
    return fm_ref_backward_dense(p, dense, mask_heads, c->q, c->k, c->v, r->out, r->lse, c->dout,
                                 r->dq, r->dk, r->dv);
}

#endif
