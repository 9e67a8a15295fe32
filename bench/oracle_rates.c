/* bench/oracle_rates.c — the oracle's two pass rules measured side by side (docs/oracle.md §6):
 *
 * false alarms: random cases (the test suites' generator: every family and random interval
 *   masks, GQA, mask heads, Sq != Sk with both causal alignments, fully masked rows), sizes
 *   from 1 row and 1 key up to --max-seqlen (mostly small: that is where alarms live), each in
 *   a random dtype X; correct candidates judged under the derived rule and the FA rule:
 *     exact    the float64 reference rounded once to X (lse to float32)
 *     ideal16  the same, but the backward's Delta from O rounded to X (fm_ref_backward on it)
 *     emul     the FlashAttention-2-order emulation in X (oracle_emul.c)
 *     cpu32    libflashmask's cpu layer (float32), on float32 cases;
 *     gqasum   GQA cases only: ideal16 per query head (K, V repeated to the query heads), each
 *              head's dK, dV partial rounded to X, then summed over the group in X one addition
 *              at a time (what autograd does for SDPA called on repeated K, V);
 * power: the emulation with each planted bug (oracle_emul.h), on cases where the bug changes
 *   the result at all (bitwise) and is a bug there (not a no-op of exact arithmetic or below X's
 *   resolution: noop_reason below; those are counted apart); the fraction caught, for cases of
 *   < 64 and >= 64 query rows.
 *
 * usage: oracle_rates [--alarm N] [--power N] [--first I] [--power-first I (= --first)]
 *                     [--seed S] [--max-seqlen M]
 *                     [--case SEED]  (one alarm case, as printed by an alarm-case line)
 *                     [--power-case SEED]  (one power case, as printed by a miss line)
 *   cases I .. I+N-1 of the seed (chunks of one run add up). Output: one line per count,
 *   "alarm CAND DTYPE RULE JUDGED FAILED WORST_ERROR/BOUND" and "power BUG ROWS RULE EFFECTIVE CAUGHT",
 *   "excluded BUG ROWS REASON COUNT"
 *   (bench/oracle_rates.sh turns the lines of all chunks into the tables), and
 *   "alarm-case ..." naming each derived-rule false alarm's seed (there should be none),
 *   "miss ..." naming each bug a rule missed.
 * Layer: bench, above oracle/, reference/, cpu/ (public API) and the tests' case generator.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flashmask/oracle.h"
#include "flashmask/reference.h"
#include "oracle_emul.h"
#include "prop.h"
#include "runs.h"

/* Why a planted bug that changes bits is still no bug on a case (docs/oracle.md section 6.1):
 * NOOP_ONE_KEY: dq_no_scale where no row sees more than one key: the exact dS, hence dQ, is 0
 *   (one key: P = 1 and Delta = dO.O = dO.v = dP), so dQ / s is 0 too and only rounding noise
 *   differs;
 * NOOP_RESOLUTION: dq_no_scale with |1/s - 1| <= 2u: a correct kernel that rounds dS and dQ to
 *   X may already be off by 2u |dQ| (every s dS_ij K_jd of the same sign), so a sound rule must
 *   accept dQ / s there;
 * NOOP_BELOW_NOISE: dq_no_scale whose exact change, max |(1/s - 1) dQ_ref|, is at most the error
 *   the correct emulation made on the same case, max |dQ_emul - dQ_ref|: the bug moves dQ less
 *   far from the truth than a correct kernel's rounding does (dQ cancelling to nearly 0). */
enum { NOOP_ONE_KEY, NOOP_RESOLUTION, NOOP_BELOW_NOISE, NOOP_REASONS };
static const char *const noop_names[NOOP_REASONS] = {"one_key_rows", "scale_within_2u",
                                                     "change_below_noise"};

enum { CAND_EXACT, CAND_IDEAL16, CAND_EMUL, CAND_CPU32, CAND_GQASUM, CANDS };
static const char *const cand_names[CANDS] = {"exact", "ideal16", "emul", "cpu32", "gqasum"};
static const fm_dtype dtypes[3] = {FM_FLOAT16, FM_BFLOAT16, FM_FLOAT32};

typedef struct tallies {
    long judged[CANDS][3][2], failed[CANDS][3][2];   /* [cand][dtype][rule] */
    double worst[CANDS][3][2];                       /* largest error/bound of a candidate */
    long effective[BUG_COUNT][2][2], caught[BUG_COUNT][2][2]; /* [bug][rows>=64][rule] */
    long excluded[BUG_COUNT][2][NOOP_REASONS];   /* changed bits, but no bug there (noop_reason) */
} tallies;

/* What one case's judgement needs, computed once: reference, naive, bounds, masked rows. */
typedef struct judge_ctx {
    const fm_problem *p;
    fm_dtype x;
    double *ref[5], *naive[5], *bound[5];
    uint8_t *rows;
    size_t n[5];
} judge_ctx;

static void judge_free(judge_ctx *j)
{
    for (int t = 0; t < 5; t++) free(j->ref[t]), free(j->naive[t]), free(j->bound[t]);
    free(j->rows);
}

static fm_status judge_prepare(judge_ctx *j, const fm_random_case *c, const fm_problem *p,
                               fm_dtype x, const fm_tensors *in)
{
    memset(j, 0, sizeof *j);
    j->p = p, j->x = x;
    const size_t nq = fm_problem_q_elems(p), nkv = fm_problem_kv_elems(p);
    const size_t nl = fm_problem_lse_elems(p);
    const size_t n[5] = {nq, nl, nq, nkv, nkv};
    for (int t = 0; t < 5; t++) {
        j->n[t] = n[t];
        j->ref[t] = malloc(n[t] * sizeof(double));
        j->naive[t] = malloc(n[t] * sizeof(double));
        j->bound[t] = malloc(n[t] * sizeof(double));
        if (!j->ref[t] || !j->naive[t] || !j->bound[t]) return FM_ERR_NOMEM;
    }
    if (!(j->rows = malloc(nl))) return FM_ERR_NOMEM;
    fm_status st = fm_ref_forward(p, &c->mask, in->q, in->k, in->v, j->ref[0], j->ref[1]);
    if (!st) st = fm_ref_backward(p, &c->mask, in->q, in->k, in->v, j->ref[0], j->ref[1],
                                  in->dout, j->ref[2], j->ref[3], j->ref[4]);
    if (!st) st = fm_naive_forward(p, &c->mask, x, in->q, in->k, in->v, j->naive[0], j->naive[1]);
    if (!st) st = fm_naive_backward(p, &c->mask, x, in->q, in->k, in->v, j->naive[0],
                                    j->naive[1], in->dout, j->naive[2], j->naive[3], j->naive[4]);
    fm_tensors r = *in;
    r.out = j->ref[0], r.lse = j->ref[1], r.dq = j->ref[2], r.dk = j->ref[3], r.dv = j->ref[4];
    if (!st) st = fm_oracle_bounds(p, &c->mask, x, &r, j->bound[0], j->bound[1], j->bound[2],
                                   j->bound[3], j->bound[4]);
    if (!st) st = fm_oracle_masked_rows(p, &c->mask, j->rows);
    return st;
}

/* 1 pass, 0 fail under `rule` (FM_RULE_*); -1 error. `why` gets the first failure, `worst`
 * (may be NULL) the largest error/bound over the tensors. */
static int judge(const judge_ctx *j, double *const cand[5], int rule, char *why, size_t len,
                 double *worst)
{
    static const fm_masked_rule masked[5] = {FM_MASKED_ZERO, FM_MASKED_NEG_INF, FM_MASKED_FREE,
                                             FM_MASKED_FREE, FM_MASKED_FREE};
    static const char *const names[5] = {"out", "lse", "dq", "dk", "dv"};
    const size_t len_row[5] = {(size_t)j->p->head_dim, 1, (size_t)j->p->head_dim, 0, 0};
    int pass = 1;
    for (int t = 0; t < 5; t++) {
        fm_tensor_check tc;
        if (fm_check_tensor_bounded(names[t], j->x, j->n[t], cand[t], j->ref[t], j->naive[t],
                                    rule == FM_RULE_DERIVED ? j->bound[t] : NULL,
                                    t < 3 ? j->rows : NULL, len_row[t], masked[t], &tc) != FM_OK)
            return -1;
        if (!tc.pass && pass && why) snprintf(why, len, "%s: %s", names[t], tc.why);
        if (worst && isfinite(tc.ratio)) *worst = fmax(*worst, tc.ratio);
        pass &= tc.pass;
    }
    return pass;
}

/* The gqasum candidate's dK, dV (see the top): p is expanded to kv_heads = q_heads, K and V
 * repeated, the reference backward run on it with the X-rounded O, the partials rounded to X
 * and added in X in head order. Returns FM_OK or an error; dk, dv are [nkv]. */
static fm_status gqa_sum(const fm_problem *p, const fm_mask *m, fm_dtype x, const fm_tensors *in,
                         const double *ox, const double *lse, double *dq, double *dk, double *dv)
{
    const int64_t G = p->q_heads / p->kv_heads, Sk = p->seqlen_k, D = p->head_dim;
    fm_problem e = *p;
    e.kv_heads = p->q_heads;
    const size_t blk = (size_t)(Sk * D), ne = fm_problem_kv_elems(&e);
    double *k = malloc(ne * sizeof(double)), *v = malloc(ne * sizeof(double));
    double *pk = malloc(ne * sizeof(double)), *pv = malloc(ne * sizeof(double));
    fm_status st = k && v && pk && pv ? FM_OK : FM_ERR_NOMEM;
    for (int64_t b = 0; !st && b < p->batch; b++)
        for (int64_t h = 0; h < p->q_heads; h++) {
            const size_t src = (size_t)(b * p->kv_heads + h / G) * blk;
            const size_t dst = (size_t)(b * p->q_heads + h) * blk;
            memcpy(k + dst, in->k + src, blk * sizeof(double));
            memcpy(v + dst, in->v + src, blk * sizeof(double));
        }
    if (!st) st = fm_ref_backward(&e, m, in->q, k, v, ox, lse, in->dout, dq, pk, pv);
    for (int64_t b = 0; !st && b < p->batch; b++)
        for (int64_t hk = 0; hk < p->kv_heads; hk++)
            for (size_t z = 0; z < blk; z++) {
                double sk = 0.0, sv = 0.0;
                for (int64_t g = 0; g < G; g++) {
                    const size_t at = (size_t)(b * p->q_heads + hk * G + g) * blk + z;
                    sk = fm_round_to_dtype(sk + fm_round_to_dtype(pk[at], x), x);
                    sv = fm_round_to_dtype(sv + fm_round_to_dtype(pv[at], x), x);
                }
                dk[(size_t)(b * p->kv_heads + hk) * blk + z] = sk;
                dv[(size_t)(b * p->kv_heads + hk) * blk + z] = sv;
            }
    if (!st) fm_oracle_round_array(dq, fm_problem_q_elems(p), x);
    free(k), free(v), free(pk), free(pv);
    return st;
}

static double *round_copy(const double *x, size_t n, fm_dtype d, int lse)
{
    double *y = malloc(n * sizeof(double));
    for (size_t i = 0; y && i < n; i++) y[i] = lse ? (double)(float)x[i] : fm_round_to_dtype(x[i], d);
    return y;
}

/* Limits of case t: mostly tiny, some medium, a few large (<= max_seqlen). */
static fm_case_limits limits_of(uint64_t seed, int64_t max_seqlen)
{
    fm_case_limits l = fm_case_limits_default();
    const unsigned r = (unsigned)((seed * 0x9E3779B97F4A7C15ull) >> 54); /* 0..1023 */
    l.max_batch = 2, l.max_q_heads = 4, l.max_head_dim = 64;
    if (r < 700) l.max_seqlen = 8;
    else if (r < 900) l.max_seqlen = 32, l.max_head_dim = 128;
    else if (r < 1010) l.max_seqlen = 160, l.max_head_dim = 256, l.max_batch = 1, l.max_q_heads = 2;
    else if (r < 1022) l.max_seqlen = 600, l.max_head_dim = 64, l.max_batch = 1, l.max_q_heads = 2;
    else l.max_seqlen = 4096, l.max_head_dim = 32, l.max_batch = 1, l.max_q_heads = 1;
    if (l.max_seqlen > max_seqlen) l.max_seqlen = max_seqlen;
    return l;
}

static void run_case(uint64_t seed, int power, int64_t max_seqlen, tallies *T)
{
    fm_case_limits l = limits_of(seed, max_seqlen);
    if (power) { /* half below 64 rows, half from 64 to 256 */
        l = fm_case_limits_default();
        l.max_batch = 1, l.max_q_heads = 4, l.max_head_dim = 64;
        l.max_seqlen = (seed & 1) ? (max_seqlen < 256 ? max_seqlen : 256) : 63;
    }
    fm_random_case c;
    if (fm_random_case_make(&c, seed, &l) != FM_OK) return;
    fm_problem p = c.problem;
    if (power && (seed & 1) && p.seqlen_q < 64) { /* >= 64 rows asked: draw Sq again */
        fm_random_case_free(&c);
        l.allow_unequal_seqlens = 0;
        for (uint64_t s = seed; ; s += 2) {
            if (fm_random_case_make(&c, s, &l) != FM_OK) return;
            if (c.problem.seqlen_q >= 64) break;
            fm_random_case_free(&c);
        }
        p = c.problem;
    }
    const int xi = (int)((seed >> 7) % 3);
    const fm_dtype x = dtypes[xi];
    p.dtype = FM_FLOAT64;
    const size_t nq = fm_problem_q_elems(&p), nkv = fm_problem_kv_elems(&p);
    const size_t nl = fm_problem_lse_elems(&p);
    fm_tensors in = {0};
    fm_test_inputs_rounded(&in, &p, c.q, c.k, c.v, c.dout, x);
    judge_ctx J;
    char why[300];
    if (judge_prepare(&J, &c, &p, x, &in) != FM_OK) {
        fprintf(stderr, "case %llu: %s\n", (unsigned long long)seed, fm_last_error());
        goto done;
    }
    const size_t n5[5] = {nq, nl, nq, nkv, nkv};
    double *e[5];
    for (int t = 0; t < 5; t++) e[t] = malloc(n5[t] * sizeof(double));
    if (emul_run(&p, &c.mask, x, BUG_NONE, in.q, in.k, in.v, in.dout, e[0], e[1], e[2], e[3],
                 e[4]) != FM_OK)
        goto done_e;
    if (!power) {
        double *cand[CANDS][5] = {{0}};
        for (int t = 0; t < 5; t++) cand[CAND_EXACT][t] = round_copy(J.ref[t], n5[t], x, t == 1);
        cand[CAND_IDEAL16][0] = round_copy(J.ref[0], nq, x, 0);
        cand[CAND_IDEAL16][1] = round_copy(J.ref[1], nl, x, 1);
        for (int t = 2; t < 5; t++) cand[CAND_IDEAL16][t] = malloc(n5[t] * sizeof(double));
        fm_ref_backward(&p, &c.mask, in.q, in.k, in.v, cand[CAND_IDEAL16][0], J.ref[1], in.dout,
                        cand[CAND_IDEAL16][2], cand[CAND_IDEAL16][3], cand[CAND_IDEAL16][4]);
        for (int t = 2; t < 5; t++) fm_oracle_round_array(cand[CAND_IDEAL16][t], n5[t], x);
        for (int t = 0; t < 5; t++) cand[CAND_EMUL][t] = e[t];
        int ncand = 3, gqa = 0;
        if (p.q_heads > p.kv_heads) {
            for (int t = 0; t < 5; t++)
                cand[CAND_GQASUM][t] = t < 2 ? round_copy(J.ref[t], n5[t], x, t == 1)
                                             : malloc(n5[t] * sizeof(double));
            gqa = gqa_sum(&p, &c.mask, x, &in, cand[CAND_GQASUM][0], J.ref[1],
                          cand[CAND_GQASUM][2], cand[CAND_GQASUM][3],
                          cand[CAND_GQASUM][4]) == FM_OK;
        }
        if (x == FM_FLOAT32) {
            fm_tensors t32 = in;
            for (int t = 0; t < 5; t++) cand[CAND_CPU32][t] = malloc(n5[t] * sizeof(double));
            t32.out = cand[CAND_CPU32][0], t32.lse = cand[CAND_CPU32][1];
            t32.dq = cand[CAND_CPU32][2], t32.dk = cand[CAND_CPU32][3], t32.dv = cand[CAND_CPU32][4];
            fm_problem p32 = p;
            p32.dtype = FM_FLOAT32;
            if (fm_forward(FM_IMPL_CPU, &p32, &c.mask, &t32) == FM_OK &&
                fm_backward(FM_IMPL_CPU, &p32, &c.mask, &t32) == FM_OK)
                ncand = 4;
        }
        for (int k = 0; k < CANDS; k++)
            for (int rule = 0; rule < 2; rule++) {
                if (k == CAND_CPU32 ? ncand < 4 : k == CAND_GQASUM ? !gqa : 0) continue;
                double w = 0.0;
                int v = judge(&J, cand[k], rule, why, sizeof why, &w);
                if (v < 0) continue;
                T->worst[k][xi][rule] = fmax(T->worst[k][xi][rule], w);
                T->judged[k][xi][rule]++;
                T->failed[k][xi][rule] += !v;
                if (!v && rule == FM_RULE_DERIVED)
                    printf("alarm-case %s %s seed %llu Sq=%lld Sk=%lld D=%lld: %s\n",
                           cand_names[k], fm_dtype_name(x), (unsigned long long)seed,
                           (long long)p.seqlen_q, (long long)p.seqlen_k, (long long)p.head_dim,
                           why);
            }
        for (int k = 0; k < CANDS; k++)
            if (k != CAND_EMUL)
                for (int t = 0; t < 5; t++) free(cand[k][t]);
    } else {
        const int big = p.seqlen_q >= 64;
        int64_t most_keys = 0; /* the most keys a row sees, over batches and mask heads */
        for (int64_t b = 0; b < p.batch; b++)
            for (int64_t hm = 0; hm < c.mask.heads; hm++)
                for (int64_t i = 0; i < p.seqlen_q && most_keys < 2; i++) {
                    int64_t n = 0;
                    for (int64_t j = 0; j < p.seqlen_k && n < 2; j++)
                        n += !fm_mask_is_masked(&c.mask, b, hm, i, j);
                    if (n > most_keys) most_keys = n;
                }
        const double u = fm_oracle_unit_roundoff(x);
        double *m[5];
        for (int t = 0; t < 5; t++) m[t] = malloc(n5[t] * sizeof(double));
        for (int bug = 1; bug < BUG_COUNT; bug++) {
            if (emul_run(&p, &c.mask, x, (emul_bug)bug, in.q, in.k, in.v, in.dout, m[0], m[1],
                         m[2], m[3], m[4]) != FM_OK)
                continue;
            int differs = 0;
            for (int t = 0; t < 5 && !differs; t++)
                for (size_t i = 0; i < n5[t] && !differs; i++)
                    differs = memcmp(&m[t][i], &e[t][i], sizeof(double)) != 0 &&
                              !(m[t][i] == e[t][i]);
            if (!differs) continue;
            int noop = -1;
            if (bug == BUG_DQ_NO_SCALE) {
                double change = 0.0, noise = 0.0;
                for (size_t z = 0; z < nq; z++)
                    if (isfinite(e[2][z]) && isfinite(J.ref[2][z])) {
                        change = fmax(change, fabs((1.0 / p.scale - 1.0) * J.ref[2][z]));
                        noise = fmax(noise, fabs(e[2][z] - J.ref[2][z]));
                    }
                noop = most_keys <= 1                          ? NOOP_ONE_KEY
                       : fabs(1.0 / p.scale - 1.0) <= 2.0 * u ? NOOP_RESOLUTION
                       : change <= noise                      ? NOOP_BELOW_NOISE
                                                              : -1;
            }
            if (noop >= 0) {
                T->excluded[bug][big][noop]++;
                continue;
            }
            for (int rule = 0; rule < 2; rule++) {
                int v = judge(&J, m, rule, NULL, 0, NULL);
                if (v < 0) continue;
                T->effective[bug][big][rule]++;
                T->caught[bug][big][rule] += !v;
                if (v)
                    printf("miss %s %s %s seed %llu Sq=%lld Sk=%lld D=%lld Hq=%lld Hk=%lld "
                           "scale=%.4g %s\n", emul_bug_name((emul_bug)bug),
                           big ? "ge64" : "lt64", rule ? "fa" : "derived", (unsigned long long)seed,
                           (long long)p.seqlen_q, (long long)p.seqlen_k, (long long)p.head_dim,
                           (long long)p.q_heads, (long long)p.kv_heads, p.scale,
                           fm_dtype_name(x));
            }
        }
        for (int t = 0; t < 5; t++) free(m[t]);
    }
done_e:
    for (int t = 0; t < 5; t++) free(e[t]);
done:
    judge_free(&J);
    fm_test_inputs_free(&in);
    fm_random_case_free(&c);
}

int main(int argc, char **argv)
{
    long alarm = 200, power = 40, first = 0, power_first = -1;
    uint64_t seed = 20261202;
    int64_t max_seqlen = 4096;
    uint64_t one_case = 0, power_case = 0; /* --case SEED: replay the alarm case of that seed alone */
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--alarm")) alarm = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--power")) power = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--first")) first = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--power-first")) power_first = atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--seed")) seed = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--max-seqlen")) max_seqlen = atoll(argv[i + 1]);
        else if (!strcmp(argv[i], "--case")) one_case = strtoull(argv[i + 1], NULL, 0);
        else if (!strcmp(argv[i], "--power-case")) power_case = strtoull(argv[i + 1], NULL, 0);
        else {
            fprintf(stderr, "oracle_rates: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    tallies *T = calloc(1, sizeof *T);
    if (!T) return 2;
    if (one_case) alarm = power = 0, run_case(one_case, 0, max_seqlen, T);
    if (power_case) alarm = power = 0, run_case(power_case, 1, max_seqlen, T);
    for (long t = first; t < first + alarm; t++)
        run_case(seed * 1000003ull + (uint64_t)t * 2654435761ull, 0, max_seqlen, T);
    if (power_first < 0) power_first = first;
    for (long t = power_first; t < power_first + power; t++)
        run_case((seed ^ 0x5eedull) * 1000003ull + (uint64_t)t * 2654435761ull, 1, max_seqlen, T);
    static const char *const rules[2] = {"derived", "fa"};
    long derived_alarms = 0;
    for (int k = 0; k < CANDS; k++)
        for (int xi = 0; xi < 3; xi++)
            for (int r = 0; r < 2; r++)
                if (T->judged[k][xi][r]) {
                    printf("alarm %s %s %s %ld %ld %.4g\n", cand_names[k],
                           fm_dtype_name(dtypes[xi]), rules[r], T->judged[k][xi][r],
                           T->failed[k][xi][r], T->worst[k][xi][r]);
                    if (r == 0) derived_alarms += T->failed[k][xi][r];
                }
    for (int bug = 1; bug < BUG_COUNT; bug++)
        for (int big = 0; big < 2; big++)
            for (int r = 0; r < 2; r++)
                printf("power %s %s %s %ld %ld\n", emul_bug_name((emul_bug)bug),
                       big ? "ge64" : "lt64", rules[r], T->effective[bug][big][r],
                       T->caught[bug][big][r]);
    for (int bug = 1; bug < BUG_COUNT; bug++)
        for (int big = 0; big < 2; big++)
            for (int r = 0; r < NOOP_REASONS; r++)
                if (T->excluded[bug][big][r])
                    printf("excluded %s %s %s %ld\n", emul_bug_name((emul_bug)bug),
                           big ? "ge64" : "lt64", noop_names[r], T->excluded[bug][big][r]);
    free(T);
    return derived_alarms ? 1 : 0; /* a derived-rule false alarm is an oracle defect */
}
