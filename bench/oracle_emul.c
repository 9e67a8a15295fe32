/* bench/oracle_emul.c — the FlashAttention-2-order emulation with planted bugs described in
 * oracle_emul.h. Plain C float arithmetic (FLT_EVAL_METHOD 0), rounding to X by
 * fm_round_to_dtype. Layer: bench, above oracle/ and masks/.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/rules.h"
#include "oracle_emul.h"

#define BC 16 /* keys per tile */
#define BR 16 /* rows per row block */

static const char *const bug_names[BUG_COUNT] = {
    "none",       "lts_off_by_one", "lte_off_by_one", "uts_off_by_one", "ute_off_by_one",
    "causal_diagonal", "wrong_alignment", "no_rescale", "scale_twice", "no_scale",
    "unsound_tile_skip", "stale_accumulator", "lse_base2", "dq_no_scale", "gqa_head_map",
    "dk_dv_swapped", "nan_masked_tile", "some_heads_only"};

const char *emul_bug_name(emul_bug bug)
{
    return bug >= 0 && bug < BUG_COUNT ? bug_names[bug] : "unknown";
}

static inline float to_x(float x, fm_dtype dtype)
{
    return (float)fm_round_to_dtype((double)x, dtype);
}

/* The (possibly mutated) mask rule for row i, key j of mask head hm. */
static int masked(const fm_mask *m, emul_bug bug, int64_t b, int64_t hm, int64_t i, int64_t j)
{
    const int32_t *c = fm_mask_column(m, b, hm, j);
    int32_t col[4] = {c[0], c[1], c[2], c[3]};
    if (bug == BUG_LTS_OFF && col[FM_LTS] < col[FM_LTE]) col[FM_LTS]++;
    if (bug == BUG_LTE_OFF && col[FM_LTS] < col[FM_LTE]) col[FM_LTE]++;
    if (bug == BUG_UTS_OFF && col[FM_UTS] < col[FM_UTE]) col[FM_UTS]++;
    if (bug == BUG_UTE_OFF && col[FM_UTS] < col[FM_UTE]) col[FM_UTE]++;
    fm_causal causal = m->causal;
    if (bug == BUG_ALIGNMENT && causal != FM_CAUSAL_NONE)
        causal = causal == FM_CAUSAL_TOP_LEFT ? FM_CAUSAL_BOTTOM_RIGHT : FM_CAUSAL_TOP_LEFT;
    const int64_t off = fm_causal_offset(causal, m->seqlen_q, m->seqlen_k);
    if (col[FM_LTS] <= i && i < col[FM_LTE]) return 1;
    if (col[FM_UTS] <= i && i < col[FM_UTE]) return 1;
    if (causal == FM_CAUSAL_NONE) return 0;
    return bug == BUG_CAUSAL_DIAG ? j >= i + off : j > i + off;
}

typedef struct ctx {
    const fm_problem *p;
    const fm_mask *m;
    fm_dtype x;
    emul_bug bug;
    int64_t nbr, nbc;
    uint8_t *live;   /* [nbr * nbc]: tile (row block, key tile) processed */
    uint8_t *allow;  /* [Sq * Sk] for the current (b, h) */
} ctx;

static int64_t kv_head(const ctx *c, int64_t h)
{
    const fm_problem *p = c->p;
    return c->bug == BUG_GQA_MAP ? h % p->kv_heads : h / (p->q_heads / p->kv_heads);
}

/* The scale the scores get: p->scale in float32, or what the scale bugs make of it. */
static float score_scale(const ctx *c)
{
    const float scale = (float)c->p->scale;
    return c->bug == BUG_SCALE_TWICE ? scale * scale : c->bug == BUG_NO_SCALE ? 1.0f : scale;
}

/* Fills c->allow and c->live for (b, h). */
static void plan(ctx *c, int64_t b, int64_t h)
{
    const int64_t Sq = c->p->seqlen_q, Sk = c->p->seqlen_k;
    const int64_t hm = h / (c->p->q_heads / c->m->heads);
    memset(c->live, 0, (size_t)(c->nbr * c->nbc));
    for (int64_t i = 0; i < Sq; i++)
        for (int64_t j = 0; j < Sk; j++) {
            const uint8_t a = !masked(c->m, c->bug, b, hm, i, j);
            c->allow[i * Sk + j] = a;
            if (a) c->live[(i / BR) * c->nbc + j / BC] = 1;
        }
    if (c->bug == BUG_TILE_SKIP) /* skipped when the tile's corner element is masked */
        for (int64_t r = 0; r < c->nbr; r++)
            for (int64_t t = 0; t < c->nbc; t++)
                if (!c->allow[(r * BR) * Sk + t * BC]) c->live[r * c->nbc + t] = 0;
}

static void forward_head(ctx *c, int64_t b, int64_t h, const double *q, const double *k,
                         const double *v, double *out, double *lse, float *acc, float *stale,
                         float *s)
{
    const fm_problem *p = c->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t hk = kv_head(c, h);
    const float sc = score_scale(c);
    const double *kh = k + (size_t)((b * p->kv_heads + hk) * Sk * D);
    const double *vh = v + (size_t)((b * p->kv_heads + hk) * Sk * D);
    for (int64_t i = 0; i < Sq; i++) {
        const size_t row = (size_t)((b * p->q_heads + h) * Sq + i);
        const double *qi = q + row * (size_t)D;
        float m = -INFINITY, l = 0.0f;
        int first = 1;
        if (c->bug == BUG_STALE_ACC && i >= BR)
            memcpy(acc, stale + (i - BR) * D, (size_t)D * sizeof(float));
        else
            memset(acc, 0, (size_t)D * sizeof(float));
        for (int64_t t = 0; t < c->nbc; t++) {
            if (!c->live[(i / BR) * c->nbc + t]) continue;
            const int64_t j0 = t * BC, j1 = j0 + BC < Sk ? j0 + BC : Sk;
            float mt = -INFINITY;
            for (int64_t j = j0; j < j1; j++) {
                if (!c->allow[i * Sk + j]) {
                    s[j - j0] = -INFINITY;
                    continue;
                }
                float dot = 0.0f;
                for (int64_t d = 0; d < D; d++) dot += (float)qi[d] * (float)kh[j * D + d];
                s[j - j0] = dot * sc;
                mt = fmaxf(mt, s[j - j0]);
            }
            const float mn = fmaxf(m, mt);
            if (mn == -INFINITY && c->bug != BUG_MASKED_NAN) continue; /* nothing allowed yet */
            float alpha = m == -INFINITY ? 0.0f : expf(m - mn);
            if (c->bug == BUG_MASKED_NAN) alpha = expf(m - mn); /* -inf - -inf = NaN */
            float acc_alpha = c->bug == BUG_NO_RESCALE ? 1.0f : alpha;
            if (c->bug == BUG_STALE_ACC && first) acc_alpha = 1.0f;
            first = 0;
            l *= alpha;
            for (int64_t d = 0; d < D; d++) acc[d] *= acc_alpha;
            for (int64_t j = j0; j < j1; j++) {
                const float pj = expf(s[j - j0] - mn);
                if (!(pj == 0.0f) || isnan(pj)) {
                    l += pj;
                    const float px = to_x(pj, c->x);
                    for (int64_t d = 0; d < D; d++) acc[d] += px * (float)vh[j * D + d];
                }
            }
            m = mn;
        }
        double *oi = out + row * (size_t)D;
        if (l == 0.0f && c->bug != BUG_MASKED_NAN) { /* fully masked row */
            for (int64_t d = 0; d < D; d++) oi[d] = 0.0;
            lse[row] = -INFINITY;
        } else {
            for (int64_t d = 0; d < D; d++) oi[d] = fm_round_to_dtype(acc[d] / l, c->x);
            float ls = m + logf(l);
            if (c->bug == BUG_LSE_BASE2) ls = ls / 0.69314718f;
            lse[row] = ls;
        }
        if (c->bug == BUG_STALE_ACC) memcpy(stale + i * D, acc, (size_t)D * sizeof(float));
    }
}

static void backward_head(ctx *c, int64_t b, int64_t h, const double *q, const double *k,
                          const double *v, const double *out, const double *lse,
                          const double *dout, double *dq, float *dk_acc, float *dv_acc,
                          float *dq_acc)
{
    const fm_problem *p = c->p;
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const int64_t hk = kv_head(c, h);
    const float sc = score_scale(c);
    const size_t kv0 = (size_t)((b * p->kv_heads + hk) * Sk * D);
    const double *kh = k + kv0, *vh = v + kv0;
    float *dkh = dk_acc + kv0, *dvh = dv_acc + kv0;
    for (int64_t i = 0; i < Sq; i++) {
        const size_t row = (size_t)((b * p->q_heads + h) * Sq + i);
        const double *qi = q + row * (size_t)D, *oi = out + row * (size_t)D;
        const double *doi = dout + row * (size_t)D;
        memset(dq_acc, 0, (size_t)D * sizeof(float));
        const float li = c->bug == BUG_LSE_BASE2 ? (float)lse[row] * 0.69314718f
                                                 : (float)lse[row];
        float delta = 0.0f;
        for (int64_t d = 0; d < D; d++) delta += (float)doi[d] * (float)oi[d];
        if (lse[row] != -INFINITY)
            for (int64_t t = 0; t < c->nbc; t++) {
                if (!c->live[(i / BR) * c->nbc + t]) continue;
                const int64_t j0 = t * BC, j1 = j0 + BC < Sk ? j0 + BC : Sk;
                for (int64_t j = j0; j < j1; j++) {
                    if (!c->allow[i * Sk + j]) continue;
                    float dot = 0.0f, dp = 0.0f;
                    for (int64_t d = 0; d < D; d++) dot += (float)qi[d] * (float)kh[j * D + d];
                    for (int64_t d = D - 1; d >= 0; d--) dp += (float)doi[d] * (float)vh[j * D + d];
                    const float pij = expf(dot * sc - li);
                    const float px = to_x(pij, c->x), dsx = to_x(pij * (dp - delta), c->x);
                    for (int64_t d = 0; d < D; d++) {
                        dvh[j * D + d] += px * (float)doi[d];
                        dq_acc[d] += dsx * (float)kh[j * D + d];
                        dkh[j * D + d] += dsx * (float)qi[d];
                    }
                }
            }
        const float dqs = c->bug == BUG_DQ_NO_SCALE ? 1.0f : (float)p->scale;
        for (int64_t d = 0; d < D; d++)
            dq[row * (size_t)D + d] = fm_round_to_dtype(dq_acc[d] * dqs, c->x);
    }
}

fm_status emul_run(const fm_problem *p, const fm_mask *mask, fm_dtype x, emul_bug bug,
                   const double *q, const double *k, const double *v, const double *dout,
                   double *out, double *lse, double *dq, double *dk, double *dv)
{
    const int64_t Sq = p->seqlen_q, Sk = p->seqlen_k, D = p->head_dim;
    const size_t nkv = (size_t)(p->batch * p->kv_heads * Sk * D);
    ctx c = {.p = p, .m = mask, .x = x, .bug = bug, .nbr = (Sq + BR - 1) / BR,
             .nbc = (Sk + BC - 1) / BC};
    c.live = malloc((size_t)(c.nbr * c.nbc));
    c.allow = malloc((size_t)(Sq * Sk));
    float *acc = malloc((size_t)D * sizeof(float)), *s = malloc(BC * sizeof(float));
    float *stale = malloc((size_t)(Sq * D) * sizeof(float));
    float *dk_acc = calloc(nkv, sizeof(float)), *dv_acc = calloc(nkv, sizeof(float));
    fm_status st = (c.live && c.allow && acc && s && stale && dk_acc && dv_acc) ? FM_OK
                                                                             : FM_ERR_NOMEM;
    for (int64_t b = 0; st == FM_OK && b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++) {
            plan(&c, b, h);
            forward_head(&c, b, h, q, k, v, out, lse, acc, stale, s);
            backward_head(&c, b, h, q, k, v, out, lse, dout, dq, dk_acc, dv_acc, acc);
        }
    if (st == FM_OK) {
        const double sc = p->scale;
        for (size_t e = 0; e < nkv; e++) {
            double a = fm_round_to_dtype((float)(dk_acc[e] * (float)sc), x);
            double bv = fm_round_to_dtype(dv_acc[e], x);
            dk[e] = bug == BUG_DKDV_SWAP ? bv : a;
            dv[e] = bug == BUG_DKDV_SWAP ? a : bv;
        }
        if (bug == BUG_SOME_HEADS && p->q_heads > 1)
            for (int64_t b = 0; b < p->batch; b++) {
                const size_t r0 = (size_t)((b * p->q_heads + p->q_heads - 1) * Sq);
                memset(out + r0 * (size_t)D, 0, (size_t)(Sq * D) * sizeof(double));
                memset(lse + r0, 0, (size_t)Sq * sizeof(double));
                memset(dq + r0 * (size_t)D, 0, (size_t)(Sq * D) * sizeof(double));
            }
    }
    free(c.live), free(c.allow), free(acc), free(s), free(stale), free(dk_acc), free(dv_acc);
    return st;
}
